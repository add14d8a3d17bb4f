"""Fuzzing of the lowrank ops (eigen_conv2d and eigen_weight): drawn arguments around the catalogue's ops
(catalogue/lowrank.py), judged as fuzz_draws.check judges every op: the float64 reference's answer or a clear
leanconv error, whichever the op's documented domain says."""
import pytest
import torch
from hypothesis import assume, given, strategies as st

import leanconv  # noqa: F401
from fuzz_draws import (SMALL_RESULT, FLOATS, FUZZ, Arguments, time_limit, numel, output_strides_fit, check,
                        conv_axis, conv_backward_operands, seed_values)
from op_catalogue import (eigen_conv2d_backward_reference, eigen_conv2d_reference, eigen_weight_backward_reference,
                          eigen_weight_reference)


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
