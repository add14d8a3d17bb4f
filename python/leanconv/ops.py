"""Python wrappers of leanconv's operators (torch.ops.leanconv.*), with argument docs."""
from typing import Sequence

import torch
from torch import Tensor


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


__all__ = ["generate_weights", "generate_weights_backward"]
