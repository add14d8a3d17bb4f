"""Fuzzing of the block-epilogue ops (batch_norm_epilogue, affine_epilogue and fused_batch_norm): drawn arguments
around the catalogue's ops (catalogue/block_epilogue.py), judged as fuzz_draws.check judges every op: the float64 reference's answer or a clear
leanconv error, whichever the op's documented domain says."""
import torch
from hypothesis import assume, given, strategies as st

import leanconv  # noqa: F401
from fuzz_draws import FLOATS, FUZZ, Arguments, check, feature_map, per_channel, residual_of, eps_of
from op_catalogue import (affine_epilogue_backward_reference, affine_epilogue_reference,
                          batch_norm_epilogue_backward_reference, batch_norm_epilogue_reference,
                          fused_batch_norm_reference)


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
