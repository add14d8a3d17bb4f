"""Block-epilogue ops (docs/shared.md): BatchNorm + optional residual add + optional ReLU in one pass.

No autocast policy: like aten's batch_norm the ops run in their input's dtype and accept float32 per-channel
tensors beside a float16 or bfloat16 input. The Python wrappers of ``torch.ops.leanconv.*``, their fake kernels,
and :func:`fused_batch_norm`, the ``F.batch_norm``-shaped composition with the running-statistics update (the
same as the C++ ``leanconv::ops::fused_batch_norm``).
"""
from typing import Optional

import torch
from torch import Tensor

from ._meta import memory_format, register_fake


def batch_norm_epilogue(input: Tensor, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
                        residual: Optional[Tensor] = None, relu: bool = False, eps: float = 1e-5):
    """Training-mode BatchNorm fused with its block's tail: ``(out, mean, invstd, var)`` with
    ``out = act(weight * (input - mean) * invstd + bias + residual)``, the batch statistics over (N, H, W) (``var``
    the biased variance, ``invstd = 1 / sqrt(var + eps)``) and ``act`` = ReLU when ``relu``. All four outputs are
    differentiable; the statistics are float32 for a float16 or bfloat16 input."""
    return torch.ops.leanconv.batch_norm_epilogue(input, weight, bias, residual, bool(relu), float(eps))


def affine_epilogue(input: Tensor, scale: Optional[Tensor] = None, shift: Optional[Tensor] = None,
                    residual: Optional[Tensor] = None, relu: bool = False) -> Tensor:
    """``act(input * scale + shift + residual)`` per channel: an eval-mode or folded BatchNorm with its block's
    tail."""
    return torch.ops.leanconv.affine_epilogue(input, scale, shift, residual, bool(relu))


def fused_batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
                     weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
                     residual: Optional[Tensor] = None, training: bool = False, momentum: float = 0.1,
                     eps: float = 1e-5, relu: bool = False) -> Tensor:
    """``F.batch_norm`` followed by ``+ residual`` and ReLU, in one pass: batch statistics in training (the running
    statistics, if given, updated in place as BatchNorm2d does, from the batch's mean and variance) or without
    running statistics; in eval the running statistics folded into a per-channel scale and shift. The C++
    ``leanconv::ops::fused_batch_norm``, through the dispatcher."""
    return torch.ops.leanconv.fused_batch_norm(input, running_mean, running_var, weight, bias, residual,
                                               bool(training), float(momentum), float(eps), bool(relu))


def eval_scale_shift(running_mean: Tensor, running_var: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                     eps: float):
    """An eval-mode BatchNorm as ``x * scale + shift`` per channel (differentiable in weight and bias)."""
    scale = torch.rsqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return scale, shift


# ---- fake kernels ----

def _check_input(op, input):
    torch._check(input.dim() == 4, lambda: f"leanconv: {op} expects a 4-D (N, C, H, W) input, got {input.dim()}-D")


def _empty_feature_map(like):
    return torch.empty(like.shape, dtype=like.dtype, device=like.device, memory_format=memory_format(like))


def _op_math_dtype(input):
    """The statistics' dtype: float32 for a float16 or bfloat16 input (as aten's batch_norm on CUDA)."""
    return torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype


def _parameter_dtype(input, *tensors):
    for t in tensors:
        if t is not None:
            return t.dtype
    return input.dtype


@register_fake("leanconv::batch_norm_epilogue")
def _batch_norm_epilogue_fake(input, weight, bias, residual, relu, eps):
    _check_input("batch_norm_epilogue", input)
    stats = input.new_empty((input.shape[1],), dtype=_op_math_dtype(input))
    return _empty_feature_map(input), stats, torch.empty_like(stats), torch.empty_like(stats)


@register_fake("leanconv::batch_norm_epilogue_backward")
def _batch_norm_epilogue_backward_fake(grad_output, grad_mean, grad_invstd, output, input, weight, mean, invstd,
                                       relu, output_mask):
    _check_input("batch_norm_epilogue_backward", input)
    dtype = _parameter_dtype(input, weight)
    vector = lambda: input.new_empty((input.shape[1],), dtype=dtype)  # noqa: E731
    return (_empty_feature_map(input) if output_mask[0] else None, vector() if output_mask[1] else None,
            vector() if output_mask[2] else None, _empty_feature_map(input) if output_mask[3] else None)


@register_fake("leanconv::affine_epilogue")
def _affine_epilogue_fake(input, scale, shift, residual, relu):
    _check_input("affine_epilogue", input)
    return _empty_feature_map(input)


@register_fake("leanconv::affine_epilogue_backward")
def _affine_epilogue_backward_fake(grad_output, output, input, scale, relu, output_mask):
    _check_input("affine_epilogue_backward", input)
    dtype = _parameter_dtype(input, scale)
    vector = lambda: input.new_empty((input.shape[1],), dtype=dtype)  # noqa: E731
    return (_empty_feature_map(input) if output_mask[0] else None, vector() if output_mask[1] else None,
            vector() if output_mask[2] else None, _empty_feature_map(input) if output_mask[3] else None)


__all__ = ["batch_norm_epilogue", "affine_epilogue", "fused_batch_norm"]
