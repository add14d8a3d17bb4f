"""Property-based fuzzing of every op's arguments: sizes including zero, strides, paddings and dilations,
values near the int64 limits, dtypes and layouts. Each drawn call must either agree with the float64 reference
or raise a clear leanconv error (RuntimeError whose message starts "leanconv:"), and which one it does must be
what the op's documented domain says: a valid call that errors, or an invalid one that returns, fails.

Each example runs under a time limit: a hang ends the run with a traceback (faulthandler), as a crash does.
The validity predicates below are written with Python's unbounded integers, independently of the C++ checks.
"""
import contextlib
import faulthandler

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st

import leanconv  # noqa: F401
from op_catalogue import (OPS, affine_epilogue_backward_reference, affine_epilogue_reference,
                          batch_norm_epilogue_backward_reference, batch_norm_epilogue_reference,
                          coarse_grid_correction_reference, eigen_conv2d_backward_reference, eigen_conv2d_reference,
                          eigen_weight_backward_reference, eigen_weight_reference,
                          filter_summary_weight_backward_reference, filter_summary_weight_reference,
                          fused_batch_norm_reference, generate_weights_backward_reference, generate_weights_reference,
                          grouped_conv2d_backward_reference, grouped_conv2d_reference, op_samples,
                          segment_conv2d_backward_reference, segment_conv2d_reference,
                          shifted_sum_backward_reference, shifted_sum_reference)

INT64_MAX = 2 ** 63 - 1
MAX_TOTAL = 2 ** 62
SMALL_RESULT = 1 << 14  # valid calls are only made when their outputs stay this small
EDGES = [-(2 ** 63), -(2 ** 62), -1, 0, 1, 2, 3, 5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 61 + 1,
         2 ** 62 - 1, 2 ** 62, 2 ** 62 + 1, INT64_MAX]
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def int64s(low=-2, high=9):
    """Mostly small values, often the int64 edges, sometimes anything in int64."""
    return st.one_of(st.integers(low, high), st.sampled_from(EDGES), st.integers(-(2 ** 63), INT64_MAX))


def small_sizes(high=5):
    return st.integers(0, high)


class Arguments:
    """Draws an op's arguments. Half the examples stay in the op's valid domain (and are compared with the
    reference); in the others each argument has a one-in-three chance to be drawn from anywhere in int64 (or
    its own wild range), so invalid calls are mostly invalid in one or a few arguments."""

    def __init__(self, data):
        self.data = data
        self.wild = data.draw(st.booleans(), label="wild")

    def __call__(self, name, valid, wild=None):
        if self.wild and self.data.draw(st.integers(0, 2), label=f"{name} wild?") == 0:
            return self.data.draw(wild if wild is not None else int64s(), label=name)
        return self.data.draw(valid, label=name)

    def pair(self, name, valid):
        return [self(f"{name}[{axis}]", valid) for axis in range(2)]

    def window(self):
        """kh, kw, stride, padding, dilation of a conv window."""
        kh, kw = self.pair("kernel", st.integers(1, 3))
        return (kh, kw, self.pair("stride", st.integers(1, 3)), self.pair("padding", st.integers(0, 2)),
                self.pair("dilation", st.integers(1, 2)))

    def spatial_size(self, name, kernel, padding, dilation):
        """An input size the window fits (when the window is valid), or a wild one."""
        try:
            smallest = max(0, dilation * (kernel - 1) + 1 - 2 * padding)
        except TypeError:
            smallest = 0
        if not (0 <= smallest <= 8):
            smallest = 0
        return self(name, st.integers(smallest, smallest + 5), st.integers(0, 8))


@contextlib.contextmanager
def time_limit(seconds=30):
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def fits(*values):
    return all(-(2 ** 63) <= v <= INT64_MAX for v in values)


def numel(shape):
    if any(s == 0 for s in shape):
        return 0
    n = 1
    for s in shape:
        n *= s
    return n


def output_strides_fit(sizes):
    """Whether a (C, H, W) output (or intermediate) has strides in int64, as even an empty batch's must."""
    return fits(numel(sizes))


def tolerance(dtype):
    return {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-5)


# Values the dispatcher itself cannot carry (an int list entry near -2^63 is no SymInt) are refused by torch
# before any leanconv code runs, with this message.
TORCH_ARGUMENT_ERRORS = ("cannot be represented as a SymInt", "SymIntArrayRef expected to contain only concrete integers")


def check(valid, call, reference, dtype):
    """Runs the op under the time limit; asserts the outcome the predicate says."""
    event("valid call" if valid else "invalid call")  # --hypothesis-show-statistics shows the mix
    with time_limit():
        try:
            result = call()
        except RuntimeError as error:
            message = str(error)
            assert not valid, f"a valid call raised: {message}"
            assert message.startswith("leanconv:") or any(e in message for e in TORCH_ARGUMENT_ERRORS), \
                f"not a clear leanconv error: {message}"
            return
    assert valid, "an invalid call returned a result"
    expected = reference()
    tol = tolerance(dtype)
    results = result if isinstance(result, (tuple, list)) else [result]
    expecteds = expected if isinstance(expected, (tuple, list)) else [expected]
    assert len(results) == len(expecteds)
    for r, e in zip(results, expecteds):  # outputs a mask left out are None on both sides
        assert (r is None) == (e is None)
        if r is not None:
            scale = max(1.0, e.abs().max().item()) if e.numel() else 1.0
            torch.testing.assert_close(r.double(), e.double(), rtol=tol, atol=tol * scale)


def conv_axis(size, kernel, stride, pad, dilation):
    """The output size of one axis, or None when the geometry is invalid (or would overflow int64)."""
    if kernel < 1 or stride < 1 or dilation < 1 or pad < 0 or size < 0:
        return None
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * pad
    if not fits(dilation * (kernel - 1), span, 2 * pad, padded) or padded < span:
        return None
    return (padded - span) // stride + 1


# ---- generated-weight ops ------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS + [torch.int64]), scale=st.floats(-4, 4))
def test_generate_weights(data, dtype, scale):
    draw = Arguments(data)
    ring_size = draw("ring_size", st.integers(1, 40), st.integers(0, 3))
    seed = data.draw(int64s(), label="seed")
    total = draw("total", st.integers(1, 300))
    offset = draw("offset", st.integers(0, total) if total >= 0 else st.just(0))
    room = total - offset if 0 <= offset <= total else 6
    shape = [draw(f"shape[{i}]", st.integers(0, min(6, room))) for i in range(data.draw(st.integers(0, 2)))]
    count = numel(shape) if all(s >= 0 for s in shape) else -1
    valid = (ring_size >= 1 and dtype.is_floating_point and 1 <= total <= MAX_TOTAL and count >= 0 and fits(count)
             and offset >= 0 and offset + count <= total)
    assume(not valid or count <= SMALL_RESULT)
    ring = (torch.randn(ring_size, dtype=torch.float64) * 3).to(dtype)
    check(valid, lambda: torch.ops.leanconv.generate_weights(ring, seed, total, offset, shape, scale),
          lambda: generate_weights_reference(ring.double(), seed, total, offset, shape, scale), dtype)


@FUZZ
@given(data=st.data(), grad_shape=st.lists(small_sizes(), max_size=3), dtype=st.sampled_from(FLOATS),
       scale=st.floats(-4, 4))
def test_generate_weights_backward(data, grad_shape, dtype, scale):
    draw = Arguments(data)
    grad = torch.randn(grad_shape, dtype=torch.float64).to(dtype)
    count = grad.numel()
    ring_size = draw("ring_size", st.integers(1, 50))
    seed = data.draw(int64s(), label="seed")
    total = draw("total", st.integers(max(count, 1), 300))
    offset = draw("offset", st.integers(0, max(total - count, 0)) if total >= 0 else st.just(0))
    valid = ring_size >= 1 and 1 <= total <= MAX_TOTAL and offset >= 0 and offset + count <= total
    assume(not valid or ring_size <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.generate_weights_backward(grad, ring_size, seed, total, offset, scale),
          lambda: generate_weights_backward_reference(grad.double(), ring_size, seed, total, offset, scale), dtype)


# ---- filter-summary ops ----------------------------------------------------------------------------------

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


def conv_backward_operands(draw, data, channels, hw, out_size, outputs, dtype, channels_last):
    """A conv backward's (input, grad_output, output_mask, skew): the gradient has the output size (3x3 when the
    geometry is invalid, out_size None), one row more or less when the drawn skew is not 0."""
    batch, in_channels, out_channels = channels
    skew = draw("gradient size skew", st.just(0), st.integers(-1, 1))
    out_h, out_w = out_size if out_size is not None else (3, 3)
    grad_h, grad_w = out_h + skew, out_w
    assume(0 <= grad_h <= 32 and 0 <= grad_w <= 32)
    mask = [data.draw(st.booleans(), label=f"mask[{i}]") for i in range(outputs)]
    x = torch.randn(batch, in_channels, *hw, dtype=torch.float64).to(dtype)
    grad = torch.randn(batch, out_channels, grad_h, grad_w, dtype=torch.float64).to(dtype)
    if channels_last:
        x, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, grad))
    return x, grad, mask, skew


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


# ---- low-rank op ------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans())
def test_eigen_conv2d(data, dtype, channels_last):
    draw = Arguments(data)
    _, _, stride, padding, dilation = draw.window()
    kh, kw = draw("kernel_h", st.integers(1, 3), st.integers(0, 3)), draw("kernel_w", st.integers(1, 3), st.integers(0, 3))
    rank = draw("rank", st.integers(1, max(kh * kw, 1)), st.integers(0, 10))
    batch = data.draw(st.integers(0, 2), label="batch")
    in_channels = draw("in_channels", st.integers(1, 3), st.integers(0, 1))
    out_channels = draw("out_channels", st.integers(1, 3), st.integers(0, 1))
    hw = [draw.spatial_size("height", kh, padding[0], dilation[0]),
          draw.spatial_size("width", kw, padding[1], dilation[1])]
    coeff_skew = draw("coeff skew", st.just(0), st.integers(-1, 1))
    bias = draw("bias", st.sampled_from(["none", "right"]), st.just("wrong"))
    mixed_dtype = draw("mixed dtype", st.just(False), st.booleans())
    x = torch.randn(batch, in_channels, *hw, dtype=torch.float64).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    basis = torch.randn(in_channels, max(rank, 0), max(kh, 0), max(kw, 0), dtype=torch.float64).to(dtype)
    coeff = torch.randn(out_channels, max(in_channels * rank + coeff_skew, 0), dtype=torch.float64)
    coeff = coeff.to(torch.float64 if mixed_dtype and dtype != torch.float64 else dtype)
    b = {"none": None, "right": torch.randn(out_channels), "wrong": torch.randn(out_channels + 1)}[bias]
    b = None if b is None else b.to(dtype)
    out_h = conv_axis(hw[0], kh, stride[0], padding[0], dilation[0])
    out_w = conv_axis(hw[1], kw, stride[1], padding[1], dilation[1])
    valid = (in_channels >= 1 and out_channels >= 1 and kh >= 1 and kw >= 1 and 1 <= rank <= kh * kw
             and coeff_skew == 0 and bias != "wrong" and (not mixed_dtype or dtype == torch.float64)
             and out_h is not None and out_w is not None
             and output_strides_fit([max(out_channels, in_channels * rank), out_h, out_w]))
    assume(not valid or numel([batch, out_channels, out_h, out_w]) <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.eigen_conv2d(x, basis, coeff, b, stride, padding, dilation),
          lambda: eigen_conv2d_reference(x.double(), basis.double(), coeff.double(), None if b is None else b.double(),
                                         stride, padding, dilation), dtype)


@pytest.mark.parametrize("dilation,padding", [(2 ** 40, 2 ** 40), (2 ** 30 + 1, 2 ** 30)])
def test_eigen_conv2d_with_a_huge_dilated_kernel(dilation, padding):
    # Every tap but the centre one reads padding: a valid geometry whose kernel spans far past the image.
    x, basis, coeff = torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3), torch.randn(3, 4)
    args = ([1, 1], [padding, padding], [dilation, dilation])
    with time_limit():
        y = torch.ops.leanconv.eigen_conv2d(x, basis, coeff, None, *args)
    z = torch.nn.functional.conv2d(x, basis.reshape(4, 1, 3, 3), None, args[0], args[1], args[2], groups=2)
    expected = torch.nn.functional.conv2d(z, coeff.reshape(3, 4, 1, 1))  # aten handles the padding implicitly
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans())
def test_eigen_conv2d_backward(data, dtype, channels_last):
    draw = Arguments(data)
    seed_values(data)
    _, _, stride, padding, dilation = draw.window()
    # (Tensor sizes are drawn from small ranges even when wild: the test allocates them.)
    kh, kw = draw("kernel_h", st.integers(1, 3), st.integers(0, 3)), draw("kernel_w", st.integers(1, 3), st.integers(0, 3))
    rank = draw("rank", st.integers(1, max(kh * kw, 1)), st.integers(0, 10))
    batch, in_channels, out_channels = (data.draw(st.integers(0, 2), label="batch"),
                                        draw("in_channels", st.integers(1, 3), st.integers(0, 1)),
                                        draw("out_channels", st.integers(1, 3), st.integers(0, 1)))
    hw = [draw.spatial_size("height", kh, padding[0], dilation[0]),
          draw.spatial_size("width", kw, padding[1], dilation[1])]
    out_h = conv_axis(hw[0], kh, stride[0], padding[0], dilation[0])
    out_w = conv_axis(hw[1], kw, stride[1], padding[1], dilation[1])
    geometry = out_h is not None and out_w is not None and min(kh, kw, in_channels, out_channels) >= 1
    x, grad, mask, skew = conv_backward_operands(draw, data, (batch, in_channels, out_channels), hw,
                                                 (out_h, out_w) if geometry else None, 3, dtype, channels_last)
    basis = torch.randn(in_channels, max(rank, 0), max(kh, 0), max(kw, 0), dtype=torch.float64).to(dtype)
    coeff = torch.randn(out_channels, in_channels * max(rank, 0), dtype=torch.float64).to(dtype)
    valid = (geometry and skew == 0 and 1 <= rank <= kh * kw
             and output_strides_fit([max(out_channels, in_channels * rank), out_h, out_w]))
    assume(not valid or numel([batch, in_channels * rank, *hw]) <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.eigen_conv2d_backward(grad, x, basis, coeff, stride, padding, dilation,
                                                                  mask),
          lambda: eigen_conv2d_backward_reference(grad.double(), x.double(), basis.double(), coeff.double(), stride,
                                                  padding, dilation, mask), dtype)


def eigen_factors(draw, dtype):
    """(basis, coeff, valid): factors of drawn sizes, sometimes of mismatched or out-of-range ones."""
    # (Tensor sizes are drawn from small ranges even when wild: the test allocates them.)
    kh, kw = draw("kernel_h", st.integers(1, 3), st.integers(0, 3)), draw("kernel_w", st.integers(1, 3), st.integers(0, 3))
    rank = draw("rank", st.integers(1, max(kh * kw, 1)), st.integers(0, 10))
    in_channels = draw("in_channels", st.integers(1, 4), st.integers(0, 1))
    out_channels = draw("out_channels", st.integers(1, 4), st.integers(0, 1))
    columns = draw("coeff columns", st.just(in_channels * rank), st.integers(0, 12))
    basis = torch.randn(in_channels, rank, kh, kw, dtype=torch.float64).to(dtype)
    coeff = torch.randn(out_channels, columns, dtype=torch.float64).to(
        draw("coeff dtype", st.just(dtype), st.sampled_from(FLOATS)))
    valid = (min(kh, kw, in_channels, out_channels) >= 1 and 1 <= rank <= kh * kw and columns == in_channels * rank
             and coeff.dtype == dtype)
    return basis, coeff, valid


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_eigen_weight(data, dtype):
    draw = Arguments(data)
    basis, coeff, valid = eigen_factors(draw, dtype)
    check(valid, lambda: torch.ops.leanconv.eigen_weight(basis, coeff),
          lambda: eigen_weight_reference(basis.double(), coeff.double()), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_eigen_weight_backward(data, dtype):
    draw = Arguments(data)
    basis, coeff, valid = eigen_factors(draw, dtype)
    skew = draw("gradient size skew", st.just(0), st.integers(-1, 1))  # != 0: a gradient of the wrong size
    grad = torch.randn(max(coeff.shape[0] + skew, 0), *basis.shape[:1], *basis.shape[2:], dtype=torch.float64).to(dtype)
    mask = [data.draw(st.booleans(), label=f"mask[{i}]") for i in range(2)]
    check(valid and skew == 0, lambda: torch.ops.leanconv.eigen_weight_backward(grad, basis, coeff, mask),
          lambda: eigen_weight_backward_reference(grad.double(), basis.double(), coeff.double(), mask), dtype)


# ---- grouped conv (multigrid) ------------------------------------------------------------------------------

def grouped_geometry(draw, data):
    """A grouped conv's arguments: (x, weight, groups, window, output size or None, valid so far)."""
    seed_values(data)
    _, _, stride, padding, dilation = draw.window()
    kh, kw = draw("kernel_h", st.integers(1, 3), st.integers(0, 3)), draw("kernel_w", st.integers(1, 3), st.integers(0, 3))
    groups = draw("groups", st.integers(1, 3), st.integers(0, 4))
    group_in = draw("group_in", st.integers(1, 4), st.integers(0, 1))
    group_out = draw("group_out", st.integers(1, 4), st.integers(0, 1))
    batch = data.draw(st.integers(0, 2), label="batch")
    in_skew = draw("in_channels skew", st.just(0), st.integers(-1, 1))  # != 0: channels groups do not divide
    in_channels = max(groups, 1) * group_in + in_skew
    hw = [draw.spatial_size("height", kh, padding[0], dilation[0]),
          draw.spatial_size("width", kw, padding[1], dilation[1])]
    x = torch.randn(batch, max(in_channels, 0), *hw, dtype=torch.float64)
    weight = torch.randn(max(groups, 1) * group_out, group_in, max(kh, 0), max(kw, 0), dtype=torch.float64)
    out_h = conv_axis(hw[0], kh, stride[0], padding[0], dilation[0])
    out_w = conv_axis(hw[1], kw, stride[1], padding[1], dilation[1])
    valid = (groups >= 1 and in_skew == 0 and min(group_in, group_out, kh, kw) >= 1 and out_h is not None
             and out_w is not None and output_strides_fit([weight.shape[0], out_h, out_w]))
    return x, weight, groups, (stride, padding, dilation), (batch, weight.shape[0], out_h, out_w), valid


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans())
def test_grouped_conv2d(data, dtype, channels_last):
    draw = Arguments(data)
    x, weight, groups, window, out_shape, valid = grouped_geometry(draw, data)
    bias = draw("bias", st.sampled_from(["none", "right"]), st.just("wrong"))
    b = {"none": None, "right": torch.randn(weight.shape[0]), "wrong": torch.randn(weight.shape[0] + 1)}[bias]
    x, weight, b = x.to(dtype), weight.to(dtype), None if b is None else b.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    valid = valid and bias != "wrong"
    assume(not valid or numel(out_shape) <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.grouped_conv2d(x, weight, b, *window, groups),
          lambda: grouped_conv2d_reference(x.double(), weight.double(), None if b is None else b.double(), *window,
                                           groups), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans())
def test_grouped_conv2d_backward(data, dtype, channels_last):
    draw = Arguments(data)
    x, weight, groups, window, (batch, channels, out_h, out_w), valid = grouped_geometry(draw, data)
    skew = draw("gradient size skew", st.just(0), st.integers(-1, 1))
    grad_h, grad_w = (out_h if out_h is not None else 3) + skew, out_w if out_w is not None else 3
    assume(0 <= grad_h <= 32 and 0 <= grad_w <= 32)
    grad = torch.randn(batch, channels, grad_h, grad_w, dtype=torch.float64).to(dtype)
    x, weight = x.to(dtype), weight.to(dtype)
    if channels_last:
        x, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, grad))
    mask = [data.draw(st.booleans(), label=f"mask[{i}]") for i in range(2)]
    valid = valid and skew == 0
    assume(not valid or x.numel() <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.grouped_conv2d_backward(grad, x, weight, *window, groups, mask),
          lambda: grouped_conv2d_backward_reference(grad.double(), x.double(), weight.double(), *window, groups,
                                                    mask), dtype)


# ---- every windowed op at windows near the int64 limits -----------------------------------------------------

# Window values past int32 (where a library's 32-bit index arithmetic or a size product wraps) and up to int64's.
HUGE = [2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 2 ** 40, 2 ** 58, 2 ** 62 - 1, 2 ** 62, INT64_MAX // 2, INT64_MAX]


def window_value(data, name, small):
    return data.draw(st.one_of(small, st.sampled_from(HUGE)), label=name)


def huge_window(data):
    """Small tensors under a window whose strides, paddings and dilations are often near the int64 limits."""
    pair = lambda name, small: [window_value(data, f"{name}[{a}]", small) for a in range(2)]  # noqa: E731
    kh, kw = data.draw(st.integers(1, 3), label="kernel_h"), data.draw(st.integers(1, 3), label="kernel_w")
    window = (pair("stride", st.integers(1, 3)), pair("padding", st.integers(0, 2)), pair("dilation", st.integers(1, 2)))
    hw = [data.draw(st.integers(0, 5), label="height"), data.draw(st.integers(0, 5), label="width")]
    out = [conv_axis(hw[a], (kh, kw)[a], window[0][a], window[1][a], window[2][a]) for a in range(2)]
    return kh, kw, window, hw, out


def _windowed_calls(op, data, dtype):
    """(call, reference, output size, leading output sizes, whether a gradient of the output's size was made) of one
    windowed op with small tensors; an output size is None where the window is invalid."""
    kh, kw, window, hw, out = huge_window(data)
    batch, c_in, c_out = (data.draw(st.integers(0, 2), label="batch"), data.draw(st.integers(1, 3), label="in"),
                          data.draw(st.integers(1, 3), label="out"))
    seed_values(data)
    x = torch.randn(batch, c_in, *hw, dtype=torch.float64).to(dtype)
    # A gradient of the output's shape where that is valid and small (where it is not, a backward call is invalid, and
    # a larger example discarded below); at most 9 channels.
    grad_out = out if (all(o is not None for o in out) and fits(numel([9, *out]))
                       and (batch == 0 or numel([batch, 9, *out]) <= SMALL_RESULT)) else [1, 1]
    grad_shape = lambda channels: [batch, channels, *grad_out]  # noqa: E731
    step = data.draw(st.integers(0, 4), label="channel_step")
    if op in ("shifted_sum", "shifted_sum_backward"):
        if op == "shifted_sum":
            return (lambda: torch.ops.leanconv.shifted_sum(x, kh, kw, step, *window),
                    lambda: shifted_sum_reference(x.double(), kh, kw, step, *window), out, [batch, c_in], True)
        grad = torch.randn(grad_shape(c_in), dtype=torch.float64).to(dtype)
        return (lambda: torch.ops.leanconv.shifted_sum_backward(grad, kh, kw, step, *window, hw),
                lambda: shifted_sum_backward_reference(grad.double(), kh, kw, step, *window, hw), out, [batch, c_in],
                grad_out == out)
    if op in ("segment_conv2d", "segment_conv2d_backward"):
        segments = torch.randn(c_out, c_in, dtype=torch.float64).to(dtype)
        if op == "segment_conv2d":
            return (lambda: torch.ops.leanconv.segment_conv2d(x, segments, kh, kw, step, *window),
                    lambda: segment_conv2d_reference(x.double(), segments.double(), kh, kw, step, *window), out,
                    [batch, c_out], True)
        grad = torch.randn(grad_shape(c_out), dtype=torch.float64).to(dtype)
        return (lambda: torch.ops.leanconv.segment_conv2d_backward(grad, x, segments, kh, kw, step, *window,
                                                                   [True, True]),
                lambda: segment_conv2d_backward_reference(grad.double(), x.double(), segments.double(), kh, kw, step,
                                                          *window, [True, True]), out, [batch, c_out],
                grad_out == out)
    if op in ("eigen_conv2d", "eigen_conv2d_backward"):
        rank = data.draw(st.integers(1, kh * kw), label="rank")
        basis = torch.randn(c_in, rank, kh, kw, dtype=torch.float64).to(dtype)
        coeff = torch.randn(c_out, c_in * rank, dtype=torch.float64).to(dtype)
        if op == "eigen_conv2d":
            return (lambda: torch.ops.leanconv.eigen_conv2d(x, basis, coeff, None, *window),
                    lambda: eigen_conv2d_reference(x.double(), basis.double(), coeff.double(), None, *window), out,
                    [batch, max(c_out, c_in * rank)], True)
        grad = torch.randn(grad_shape(c_out), dtype=torch.float64).to(dtype)
        return (lambda: torch.ops.leanconv.eigen_conv2d_backward(grad, x, basis, coeff, *window, [True, True, True]),
                lambda: eigen_conv2d_backward_reference(grad.double(), x.double(), basis.double(), coeff.double(),
                                                        *window, [True, True, True]), out,
                [batch, max(c_out, c_in * rank)], grad_out == out)
    groups = data.draw(st.sampled_from([g for g in (1, 2, 3) if c_in % g == 0]), label="groups")
    weight = torch.randn(c_out * groups, c_in // groups, kh, kw, dtype=torch.float64).to(dtype)
    if op == "grouped_conv2d":
        return (lambda: torch.ops.leanconv.grouped_conv2d(x, weight, None, *window, groups),
                lambda: grouped_conv2d_reference(x.double(), weight.double(), None, *window, groups), out,
                [batch, c_out * groups], True)
    grad = torch.randn(grad_shape(c_out * groups), dtype=torch.float64).to(dtype)
    return (lambda: torch.ops.leanconv.grouped_conv2d_backward(grad, x, weight, *window, groups, [True, True]),
            lambda: grouped_conv2d_backward_reference(grad.double(), x.double(), weight.double(), *window, groups,
                                                      [True, True]), out, [batch, c_out * groups], grad_out == out)


WINDOWED_OPS = ["shifted_sum", "shifted_sum_backward", "segment_conv2d", "segment_conv2d_backward", "eigen_conv2d",
                "eigen_conv2d_backward", "grouped_conv2d", "grouped_conv2d_backward"]


@pytest.mark.parametrize("op", WINDOWED_OPS)
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_every_windowed_op_at_windows_near_the_int64_limits(op, data, dtype):
    """Strides, paddings and dilations past int32 and up to int64's limit, in the op's valid domain: the result
    equals the reference (which gathers taps and never pads), an invalid window is a clear error, and nothing
    crashes or hangs."""
    call, reference, out, leading, gradient_fits = _windowed_calls(op, data, dtype)
    # (The output's strides must fit even for an empty batch, and so must those of the widest intermediate.)
    valid = (all(o is not None for o in out) and fits(numel(leading + out), numel([1, *leading[1:], *out]))
             and gradient_fits)
    assume(not valid or numel(leading + out) <= SMALL_RESULT)
    check(valid, call, reference, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_a_padding_near_2_31_that_ended_the_process_in_half_precision(dtype):
    # oneDNN's float16 convolution died on this window (found by the fuzzing above); the composites now go by taps.
    x, basis, coeff = (torch.randn(1, 1, 6, 2, dtype=dtype), torch.randn(1, 1, 1, 1, dtype=dtype),
                       torch.randn(1, 1, dtype=dtype))
    window = ([2 ** 31 - 1, 2], [2 ** 31 - 1, 1], [2, 1])
    with time_limit():
        y = torch.ops.leanconv.eigen_conv2d(x, basis, coeff, None, *window)
        grads = torch.ops.leanconv.eigen_conv2d_backward(torch.ones_like(y), x, basis, coeff, *window,
                                                         [True, True, True])
    expected = eigen_conv2d_reference(x.double(), basis.double(), coeff.double(), None, *window)
    expected_grads = eigen_conv2d_backward_reference(torch.ones_like(expected), x.double(), basis.double(),
                                                     coeff.double(), *window, [True, True, True])
    tol = tolerance(dtype)
    for actual, reference in zip((y, *grads), (expected, *expected_grads)):
        torch.testing.assert_close(actual.double(), reference, rtol=tol, atol=tol)


# ---- block epilogue (shared, multigrid) ---------------------------------------------------------------------

def seed_values(data):
    """The tensors' values from a seed the example draws: a replayed example has the same values."""
    torch.manual_seed(data.draw(st.integers(0, 2 ** 16), label="values seed"))


def feature_map(draw, data, dtype, channels_last):
    """(N, C, H, W) values (a few wrong dimension counts), with at least two values per channel when valid (one
    value has no variance: its normalised value is rounding alone, relative to nothing)."""
    seed_values(data)
    shape = [data.draw(st.integers(1, 3), label="batch"), draw("channels", st.integers(1, 4), st.integers(0, 1)),
             data.draw(st.integers(1, 4), label="height"), data.draw(st.integers(1, 4), label="width")]
    shape = shape[:draw("dims", st.just(4), st.integers(3, 5))] + [2] * max(0, len(shape) - 4)
    x = (torch.randn(shape, dtype=torch.float64) * 2 + 0.5).to(dtype)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    valid = x.dim() == 4  # zero channels too: an empty result
    assume(not valid or shape[0] * shape[2] * shape[3] >= 2)
    return x, valid


def per_channel(draw, name, channels, dtype):
    """None, a (C,) tensor, or (wild) one of the wrong length."""
    kind = draw(name, st.sampled_from(["none", "right"]), st.just("wrong"))
    t = {"none": None, "right": torch.randn(channels), "wrong": torch.randn(channels + 1)}[kind]
    param_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    return (None if t is None else t.to(param_dtype)), kind != "wrong"


def residual_of(draw, x):
    kind = draw("residual", st.sampled_from(["none", "right"]), st.just("wrong"))
    if kind == "none":
        return None, True
    shape = list(x.shape)
    if kind == "wrong":
        shape[-1] += 1
    return torch.randn(shape, dtype=torch.float64).to(x.dtype), kind == "right"


def eps_of(draw):
    eps = draw("eps", st.sampled_from([1e-5, 1e-3]), st.sampled_from([0.0, -1e-5, float("nan")]))
    return eps, eps > 0


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans(), relu=st.booleans())
def test_batch_norm_epilogue(data, dtype, channels_last, relu):
    draw = Arguments(data)
    x, valid_x = feature_map(draw, data, dtype, channels_last)
    c = x.shape[1] if x.dim() > 1 else 1
    (w, valid_w), (b, valid_b), (r, valid_r) = (per_channel(draw, "weight", c, dtype),
                                                per_channel(draw, "bias", c, dtype), residual_of(draw, x))
    eps, valid_eps = eps_of(draw)
    valid = valid_x and valid_w and valid_b and valid_r and valid_eps
    check(valid, lambda: torch.ops.leanconv.batch_norm_epilogue(x, w, b, r, relu, eps),
          lambda: batch_norm_epilogue_reference(x.double(), w, b, None if r is None else r.double(), relu, eps),
          dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), relu=st.booleans())
def test_batch_norm_epilogue_backward(data, dtype, relu):
    draw = Arguments(data)
    x, valid = feature_map(draw, data, dtype, False)
    assume(valid)  # the forward's outputs are needed to build the arguments
    c = x.shape[1]
    w, valid_w = per_channel(draw, "weight", c, dtype)
    out, mean, invstd, _ = torch.ops.leanconv.batch_norm_epilogue(x, w if valid_w else None, None, None, relu, 1e-5)
    grad, grad_mean, grad_invstd = torch.randn_like(out), torch.randn_like(mean), torch.randn_like(invstd)
    with_output = draw("output given", st.just(relu), st.booleans())  # a ReLU's backward needs its output
    mask = [data.draw(st.booleans(), label=f"mask[{i}]") for i in range(4)]
    mask[1] = mask[1] and w is not None
    valid = valid_w and (with_output or not relu)  # an output given without a ReLU is not read
    check(valid, lambda: torch.ops.leanconv.batch_norm_epilogue_backward(
              grad, grad_mean, grad_invstd, out if with_output else None, x, w, mean, invstd, relu, mask),
          lambda: batch_norm_epilogue_backward_reference(
              grad.double(), grad_mean.double(), grad_invstd.double(), out.double() if relu else None, x.double(),
              None if w is None else w.double(), mean.double(), invstd.double(), relu, mask), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), channels_last=st.booleans(), relu=st.booleans())
def test_affine_epilogue(data, dtype, channels_last, relu):
    draw = Arguments(data)
    x, valid_x = feature_map(draw, data, dtype, channels_last)
    c = x.shape[1] if x.dim() > 1 else 1
    (scale, valid_s), (shift, valid_t), (r, valid_r) = (per_channel(draw, "scale", c, dtype),
                                                        per_channel(draw, "shift", c, dtype), residual_of(draw, x))
    valid = valid_x and valid_s and valid_t and valid_r
    check(valid, lambda: torch.ops.leanconv.affine_epilogue(x, scale, shift, r, relu),
          lambda: affine_epilogue_reference(x.double(), None if scale is None else scale.double(),
                                            None if shift is None else shift.double(),
                                            None if r is None else r.double(), relu), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), relu=st.booleans())
def test_affine_epilogue_backward(data, dtype, relu):
    draw = Arguments(data)
    x, valid = feature_map(draw, data, dtype, False)
    assume(valid)
    scale, valid_s = per_channel(draw, "scale", x.shape[1], dtype)
    out = torch.ops.leanconv.affine_epilogue(x, scale if valid_s else None, None, None, relu)
    grad = torch.randn_like(out)
    mask = [data.draw(st.booleans(), label=f"mask[{i}]") for i in range(4)]
    mask[1] = mask[1] and scale is not None
    check(valid_s, lambda: torch.ops.leanconv.affine_epilogue_backward(grad, out if relu else None, x, scale, relu,
                                                                       mask),
          lambda: affine_epilogue_backward_reference(grad.double(), out.double() if relu else None, x.double(),
                                                     None if scale is None else scale.double(), relu, mask), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS), relu=st.booleans(), training=st.booleans())
def test_fused_batch_norm(data, dtype, relu, training):
    draw = Arguments(data)
    x, valid_x = feature_map(draw, data, dtype, False)
    c = x.shape[1] if x.dim() > 1 else 1
    assume(c >= 1)  # (the reference, F.batch_norm, has no zero-channel case)
    (w, valid_w), (b, valid_b), (r, valid_r) = (per_channel(draw, "weight", c, dtype),
                                                per_channel(draw, "bias", c, dtype), residual_of(draw, x))
    running = draw("running statistics", st.sampled_from(["none", "both"]), st.sampled_from(["mean only", "short"]))
    stats_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    size = c + (running == "short")
    mean = None if running == "none" else torch.randn(size, dtype=stats_dtype)
    var = None if running in ("none", "mean only") else torch.rand(size, dtype=stats_dtype) + 0.5
    eps, valid_eps = eps_of(draw)
    valid = valid_x and valid_w and valid_b and valid_r and valid_eps and running in ("none", "both")
    # One value per channel cannot be normalised in training (nn.BatchNorm2d's rule).
    assume(not (valid and training and x.numel() // c == 1))
    reference_stats = (mean.clone().double(), var.clone().double()) if running == "both" else (None, None)
    check(valid, lambda: torch.ops.leanconv.fused_batch_norm(x, mean, var, w, b, r, training or mean is None, 0.1,
                                                             eps, relu),
          lambda: fused_batch_norm_reference(x.double(), *reference_stats, None if w is None else w.double(),
                                             None if b is None else b.double(), None if r is None else r.double(),
                                             training or mean is None, 0.1, eps, relu), dtype)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]), use_kernel=st.booleans())
def test_coarse_grid_correction(data, dtype, use_kernel):
    draw = Arguments(data)
    seed_values(data)
    groups = data.draw(st.integers(1, 3), label="groups")
    coarse_group, fine_group = (data.draw(st.integers(1, 2), label="coarse per group"),
                                data.draw(st.integers(1, 3), label="fine per group"))
    n, h, w = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    fine_channels, coarse_channels = groups * fine_group, groups * coarse_group
    skew = draw("restricted size skew", st.just(0), st.integers(-1, 1))
    fine = torch.randn(n, fine_channels, h, w, dtype=dtype)
    coarse = torch.randn(n, coarse_channels, h, w, dtype=dtype)
    restricted = torch.randn(n, coarse_channels, h, max(w + skew, 0), dtype=dtype)
    prolongation = torch.randn(fine_channels, coarse_group, 1, 1, dtype=dtype)
    (weight, valid_w), (bias, valid_b) = (per_channel(draw, "weight", fine_channels, dtype),
                                          per_channel(draw, "bias", fine_channels, dtype))
    eps, valid_eps = eps_of(draw)
    valid = skew == 0 and valid_w and valid_b and valid_eps and n * h * w > 1
    check(valid, lambda: torch.ops.leanconv.coarse_grid_correction(
              fine, coarse, restricted, prolongation, groups, weight, bias, None, None, True, 0.1, eps, use_kernel),
          lambda: coarse_grid_correction_reference(
              fine.double(), coarse.double(), restricted.double(), prolongation.double(), groups,
              None if weight is None else weight.double(), None if bias is None else bias.double(), None, None, True,
              0.1, eps, use_kernel), dtype)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.data())
def test_every_op_refuses_tensors_on_mixed_devices(data):
    # Any op of the catalogue, any of its samples, any non-empty proper subset of its tensors moved to the meta
    # device: a clear "device" error, never a result (a meta tensor would otherwise route the call to the op's meta
    # kernel and return an uninitialised tensor on the other device).
    spec = data.draw(st.sampled_from(OPS), label="op")
    args = data.draw(st.sampled_from(op_samples(spec, "cpu", torch.float32)), label="sample")
    positions = [p for p, a in enumerate(args) if isinstance(a, torch.Tensor)]
    assume(len(positions) >= 2)
    moved = data.draw(st.sets(st.sampled_from(positions), min_size=1, max_size=len(positions) - 1), label="moved")
    mixed = [a.to("meta") if p in moved else a for p, a in enumerate(args)]
    with time_limit(), pytest.raises(RuntimeError, match="device"):
        spec.op(*mixed)
