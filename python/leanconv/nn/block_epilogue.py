"""BatchNorm fused with its block's tail: ``act(BN(x) + residual)`` in one pass over the feature map.

:class:`FusedBatchNorm2d` is an ``nn.BatchNorm2d`` (same parameters, buffers, state_dict, running-statistics
update and momentum rules) whose forward takes an optional ``residual`` and applies an optional ReLU in the same
pass: ``out = relu(BN(x) + residual)``. A DACNN block's BatchNorm + add + ReLU are three passes over the feature
map in plain PyTorch, one here (two in training, which must first read the batch statistics).

:class:`FoldedBatchNorm2d` is an eval-mode BatchNorm folded into a per-channel scale and shift (buffers), with
the same call signature; :func:`leanconv.shared.fold` puts one in place of every BatchNorm of a model.
"""
import math
from typing import Optional

import torch
from torch import Tensor, nn

from ..ops.block_epilogue import affine_epilogue, eval_scale_shift, fused_batch_norm


def _promoted(input: Tensor, residual: Optional[Tensor]):
    """``input`` and ``residual`` in one dtype, the one ``BN(input) + residual`` would have (type promotion)."""
    if residual is None or residual.dtype == input.dtype:
        return input, residual
    dtype = torch.promote_types(input.dtype, residual.dtype)
    return input.to(dtype), residual.to(dtype)


class FusedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d(num_features, ...)`` then ``+ residual`` (optional, in forward) and ReLU (``relu=True``)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, relu: bool = False, device=None, dtype=None):
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"leanconv: FusedBatchNorm2d eps must be a positive number, got {eps!r}")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.relu = bool(relu)

    def forward(self, input: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        self._check_input_dim(input)
        input, residual = _promoted(input, residual)
        running_mean, running_var, use_batch_stats, factor = self.step_arguments()
        return fused_batch_norm(input, running_mean, running_var, self.weight, self.bias, residual, use_batch_stats,
                                factor, self.eps, self.relu)

    def step_arguments(self):
        """``(running_mean, running_var, training, momentum)`` for ``F.batch_norm``-shaped calls of this step, by
        nn.BatchNorm2d's rules for the averaging factor and for when batch statistics are used (counting the step
        in ``num_batches_tracked``)."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return (self.running_mean if track else None, self.running_var if track else None, use_batch_stats,
                factor)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", relu=True" if self.relu else "")


class FoldedBatchNorm2d(nn.Module):
    """``act(x * scale + shift + residual)`` per channel: an eval-mode BatchNorm folded for inference."""

    def __init__(self, scale: Tensor, shift: Tensor, relu: bool = False):
        super().__init__()
        if scale.dim() != 1 or scale.shape != shift.shape:
            raise ValueError(f"leanconv: FoldedBatchNorm2d needs scale and shift of one shape (C,), got "
                             f"{tuple(scale.shape)} and {tuple(shift.shape)}")
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())
        self.relu = bool(relu)

    @classmethod
    def from_batch_norm(cls, bn: nn.BatchNorm2d, relu: Optional[bool] = None) -> "FoldedBatchNorm2d":
        """The fold of ``bn``'s eval-mode function (its running statistics, weight and bias)."""
        if bn.running_mean is None:
            raise ValueError("leanconv: a BatchNorm without running statistics uses batch statistics in eval mode "
                             "too and cannot be folded")
        with torch.no_grad():
            scale, shift = eval_scale_shift(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
        return cls(scale, shift, getattr(bn, "relu", False) if relu is None else relu)

    def forward(self, input: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        if input.dim() != 4:
            raise ValueError(f"leanconv: FoldedBatchNorm2d expects a 4-D (N, C, H, W) input, got shape "
                             f"{tuple(input.shape)}")
        input, residual = _promoted(input, residual)
        return affine_epilogue(input, self.scale, self.shift, residual, self.relu)

    def extra_repr(self) -> str:
        return f"{self.scale.numel()}" + (", relu=True" if self.relu else "")


__all__ = ["FusedBatchNorm2d", "FoldedBatchNorm2d"]
