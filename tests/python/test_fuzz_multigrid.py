"""Fuzzing of the multigrid ops (grouped_conv2d and coarse_grid_correction): drawn arguments around the catalogue's ops
(catalogue/multigrid.py), judged as fuzz_draws.check judges every op: the float64 reference's answer or a clear
leanconv error, whichever the op's documented domain says."""
import torch
from hypothesis import assume, given, strategies as st

import leanconv  # noqa: F401
from fuzz_draws import (SMALL_RESULT, FLOATS, FUZZ, Arguments, numel, output_strides_fit, check, conv_axis,
                        seed_values, per_channel, eps_of)
from op_catalogue import (coarse_grid_correction_reference, grouped_conv2d_backward_reference,
                          grouped_conv2d_reference)


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
