"""Generated-weight ops (docs/generated.md). Autocast: none; the gather is an exact copy in the ring's dtype.

The Python wrappers of the family's ops (``torch.ops.leanconv.*``, with argument docs), their fake (meta) kernels
for torch.compile and torch.export, and the family's autocast choice (registered in C++ beside the schema).
"""
from typing import Sequence

import torch
from torch import Tensor

from ._meta import register_fake


def generate_weights(ring: Tensor, seed: int, total: int, offset: int, shape: Sequence[int], scale: float) -> Tensor:
    """Positions ``[offset, offset + prod(shape))`` of a generated-weight model's virtual weight sequence.

    ``out[j] = scale * s(offset + j) * ring[pi(offset + j) % ring.numel()]`` where ``pi`` is a fixed
    pseudo-random bijection of ``[0, total)`` and ``s`` a fixed pseudo-random sign, both from ``seed``.
    Differentiable with respect to ``ring``.
    """
    return torch.ops.leanconv.generate_weights(ring, int(seed), int(total), int(offset), list(shape), float(scale))


def generate_weights_backward(grad: Tensor, ring_size: int, seed: int, total: int, offset: int, scale: float) -> Tensor:
    """The adjoint of :func:`generate_weights`: reduces ``grad`` into a ring of ``ring_size`` entries."""
    return torch.ops.leanconv.generate_weights_backward(grad, int(ring_size), int(seed), int(total), int(offset),
                                                        float(scale))


# ---- fake kernels ----

@register_fake("leanconv::generate_weights")
def _generate_weights_fake(ring, seed, total, offset, shape, scale):
    torch._check(ring.dim() == 1, lambda: f"leanconv: ring must be 1-D, got {ring.dim()}-D")
    torch._check(total > 0, lambda: "leanconv: the ring's virtual weight sequence is empty")
    return ring.new_empty(shape)


@register_fake("leanconv::generate_weights_backward")
def _generate_weights_backward_fake(grad, ring_size, seed, total, offset, scale):
    return grad.new_empty((ring_size,))


__all__ = ["generate_weights", "generate_weights_backward"]
