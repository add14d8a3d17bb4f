"""Fuzzing of the filter-summary ops (filter_summary_weight, shifted_sum and segment_conv2d): drawn arguments around the catalogue's ops
(catalogue/filter_summary.py), judged as fuzz_draws.check judges every op: the float64 reference's answer or a clear
leanconv error, whichever the op's documented domain says."""
import torch
from hypothesis import assume, given, strategies as st

import leanconv  # noqa: F401
from fuzz_draws import (SMALL_RESULT, FLOATS, FUZZ, small_sizes, Arguments, fits, numel, output_strides_fit, check,
                        conv_axis, conv_backward_operands)
from op_catalogue import (filter_summary_weight_backward_reference, filter_summary_weight_reference,
                          segment_conv2d_backward_reference, segment_conv2d_reference, shifted_sum_backward_reference,
                          shifted_sum_reference)


def summary_layout_valid(out, inc, kh, kw, stride):
    if min(out, inc, kh, kw) < 1 or stride < 1:
        return False
    k = inc * kh * kw
    length = out * stride
    return fits(inc * kh, k, out * k, length, length + k, 2 * length + k)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_filter_summary_weight(data, dtype):
    draw = Arguments(data)
    out = draw("out_channels", st.integers(1, 6))
    inc = draw("in_channels", st.integers(1, 5))
    kh, kw = draw.pair("kernel", st.integers(1, 3))
    stride = draw("stride", st.integers(1, 8))
    right_length = out * stride if 0 <= out * stride <= 48 else 0
    length = draw("length", st.just(right_length), st.integers(0, 48))
    summary = torch.randn(length, dtype=torch.float64).to(dtype)
    two_dimensional = draw("summary is 2-D", st.just(False), st.booleans())
    if two_dimensional:
        summary = summary.view(1, -1)
    valid = not two_dimensional and summary_layout_valid(out, inc, kh, kw, stride) and out * stride == length
    assume(not valid or out * inc * kh * kw <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.filter_summary_weight(summary, out, inc, kh, kw, stride),
          lambda: filter_summary_weight_reference(summary.double(), out, inc, kh, kw, stride), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_filter_summary_weight_backward(data, dtype):
    draw = Arguments(data)
    shape = [draw(f"shape[{i}]", st.integers(1, 4), st.integers(0, 4))
             for i in range(draw("dims", st.just(4), st.integers(3, 5)))]
    grad = torch.randn(shape, dtype=torch.float64).to(dtype)
    stride = draw("stride", st.integers(1, 8))
    length = draw("length", st.just(shape[0] * stride))
    valid = len(shape) == 4 and summary_layout_valid(*shape, stride) and length == shape[0] * stride
    assume(not valid or length <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.filter_summary_weight_backward(grad, length, stride),
          lambda: filter_summary_weight_backward_reference(grad.double(), length, stride), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans())
def test_shifted_sum(data, dtype, channels_last):
    draw = Arguments(data)
    kh, kw, stride, padding, dilation = draw.window()
    step = draw("channel_step", st.integers(0, 9))
    shape = [draw("batch", st.integers(0, 2), st.integers(0, 2)), draw("channels", st.integers(1, 5), st.integers(0, 2)),
             draw.spatial_size("height", kh, padding[0], dilation[0]),
             draw.spatial_size("width", kw, padding[1], dilation[1])]
    shape = shape[:draw("dims", st.just(4), st.integers(3, 4))]
    z = torch.randn(shape, dtype=torch.float64).to(dtype)
    if channels_last and z.dim() == 4:
        z = z.contiguous(memory_format=torch.channels_last)
    valid = z.dim() == 4 and shape[1] >= 1 and step >= 0 and kh >= 1 and kw >= 1 and fits(kh * kw * shape[1])
    if valid:
        out_h = conv_axis(shape[2], kh, stride[0], padding[0], dilation[0])
        out_w = conv_axis(shape[3], kw, stride[1], padding[1], dilation[1])
        valid = out_h is not None and out_w is not None and output_strides_fit([shape[1], out_h, out_w])
        assume(not valid or numel([shape[0], shape[1], out_h, out_w]) <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.shifted_sum(z, kh, kw, step, stride, padding, dilation),
          lambda: shifted_sum_reference(z.double(), kh, kw, step, stride, padding, dilation), dtype)


@FUZZ
@given(data=st.data(), batch=small_sizes(2), dtype=st.sampled_from(FLOATS))
def test_shifted_sum_backward(data, batch, dtype):
    draw = Arguments(data)
    kh, kw, stride, padding, dilation = draw.window()
    step = draw("channel_step", st.integers(0, 9))
    channels = draw("channels", st.integers(1, 4), st.integers(0, 2))
    input_size = [draw.spatial_size("height", kh, padding[0], dilation[0]),
                  draw.spatial_size("width", kw, padding[1], dilation[1])]
    out_h = conv_axis(input_size[0], kh, stride[0], padding[0], dilation[0])
    out_w = conv_axis(input_size[1], kw, stride[1], padding[1], dilation[1])
    geometry = out_h is not None and out_w is not None and kh >= 1 and kw >= 1 and step >= 0 and channels >= 1
    skew = draw("gradient size skew", st.just(0), st.integers(-1, 1))  # != 0: a gradient of the wrong size
    grad_h = (out_h if geometry else 3) + skew
    grad_w = out_w if geometry else 3
    assume(0 <= grad_h <= 64 and 0 <= grad_w <= 64)
    grad = torch.randn(batch, channels, grad_h, grad_w, dtype=torch.float64).to(dtype)
    valid = geometry and skew == 0 and fits(kh * kw * channels)
    assume(not valid or numel([batch, channels, *input_size]) <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.shifted_sum_backward(grad, kh, kw, step, stride, padding, dilation,
                                                                 input_size),
          lambda: shifted_sum_backward_reference(grad.double(), kh, kw, step, stride, padding, dilation, input_size),
          dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans())
def test_segment_conv2d(data, dtype, channels_last):
    draw = Arguments(data)
    kh, kw, stride, padding, dilation = draw.window()
    step = draw("channel_step", st.integers(0, 9))
    in_channels = draw("in_channels", st.integers(1, 5), st.integers(0, 2))
    shape = [draw("batch", st.integers(0, 2), st.integers(0, 2)), in_channels,
             draw.spatial_size("height", kh, padding[0], dilation[0]),
             draw.spatial_size("width", kw, padding[1], dilation[1])]
    shape = shape[:draw("dims", st.just(4), st.integers(3, 4))]
    input = torch.randn(shape, dtype=torch.float64).to(dtype)
    if channels_last and input.dim() == 4:
        input = input.contiguous(memory_format=torch.channels_last)
    out_channels = draw("out_channels", st.integers(1, 5), st.integers(0, 2))
    segment_columns = draw("segment columns", st.just(in_channels), st.integers(0, 5))
    segments = torch.randn(out_channels, segment_columns, dtype=torch.float64).to(
        draw("segments dtype", st.just(dtype), st.sampled_from(FLOATS)))
    valid = (input.dim() == 4 and out_channels >= 1 and segment_columns == in_channels and segments.dtype == dtype
             and step >= 0 and kh >= 1 and kw >= 1 and fits(kh * kw * out_channels))
    if valid:
        out_h = conv_axis(shape[2], kh, stride[0], padding[0], dilation[0])
        out_w = conv_axis(shape[3], kw, stride[1], padding[1], dilation[1])
        valid = (out_h is not None and out_w is not None and fits(numel([out_channels, out_h, out_w]))
                 and fits(numel([shape[0], out_channels, out_h, out_w])))
        assume(not valid or numel([shape[0], out_channels, out_h, out_w]) <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.segment_conv2d(input, segments, kh, kw, step, stride, padding, dilation),
          lambda: segment_conv2d_reference(input.double(), segments.double(), kh, kw, step, stride, padding,
                                           dilation), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans())
def test_segment_conv2d_backward(data, dtype, channels_last):
    draw = Arguments(data)
    kh, kw, stride, padding, dilation = draw.window()
    step = draw("channel_step", st.integers(0, 9))
    batch = data.draw(st.integers(0, 10), label="batch")  # past 8 images: several weight-gradient partials
    in_channels = draw("in_channels", st.integers(1, 4), st.integers(0, 1))
    out_channels = draw("out_channels", st.integers(1, 4), st.integers(0, 1))
    hw = [draw.spatial_size("height", kh, padding[0], dilation[0]),
          draw.spatial_size("width", kw, padding[1], dilation[1])]
    out_h = conv_axis(hw[0], kh, stride[0], padding[0], dilation[0])
    out_w = conv_axis(hw[1], kw, stride[1], padding[1], dilation[1])
    geometry = (out_h is not None and out_w is not None and min(kh, kw, out_channels) >= 1 and step >= 0
                and fits(kh * kw * out_channels))
    x, grad, mask, skew = conv_backward_operands(draw, data, (batch, in_channels, out_channels), hw,
                                                 (out_h, out_w) if geometry else None, 2, dtype, channels_last)
    segments = torch.randn(out_channels, in_channels, dtype=torch.float64).to(dtype)
    valid = geometry and skew == 0
    assume(not valid or numel([batch, max(in_channels, out_channels), *hw]) <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.segment_conv2d_backward(grad, x, segments, kh, kw, step, stride, padding,
                                                                    dilation, mask),
          lambda: segment_conv2d_backward_reference(grad.double(), x.double(), segments.double(), kh, kw, step,
                                                    stride, padding, dilation, mask), dtype)
