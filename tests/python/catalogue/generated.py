"""The generated-weight family's ops: the ring generation and its adjoint. Each op: sample arguments and an independent
float64 reference (op_catalogue.py collects every family's OPS)."""

import torch

from leanconv.reference.generated import ring_indices_and_signs
from catalogue._spec import OpSpec, _randn


def generate_weights_reference(ring, seed, total, offset, shape, scale):
    numel = 1
    for s in shape:
        numel *= s
    index, sign = ring_indices_and_signs(seed, total, ring.numel(), offset, numel)
    return (scale * sign.to(ring.dtype) * ring[index.to(ring.device)]).view(shape)


def generate_weights_backward_reference(grad, ring_size, seed, total, offset, scale):
    index, sign = ring_indices_and_signs(seed, total, ring_size, offset, grad.numel())
    contributions = scale * sign.to(grad.dtype) * grad.flatten()
    return torch.zeros(ring_size, dtype=grad.dtype, device=grad.device).index_add(0, index.to(grad.device),
                                                                                   contributions)


def _generate_samples(device, dtype):
    return [(_randn(n, device=device, dtype=dtype), seed, total, offset, shape, scale)
            for n, seed, total, offset, shape, scale in [
                (20, 3, 50, 5, [24], 0.7), (1, 0, 7, 0, [7], 1.0), (97, -5, 1000, 100, [6, 4, 3, 3], 0.3),
                (64, 2 ** 40 + 3, (1 << 33) + 17, (1 << 32) - 10, [4, 5], 1.5)]]  # crosses g = 2^32


def _generate_backward_samples(device, dtype):
    return [(_randn(*shape, device=device, dtype=dtype), n, seed, total, offset, scale)
            for n, seed, total, offset, shape, scale in [
                (20, 3, 50, 5, [24], 0.7), (1, 0, 7, 0, [7], 1.0), (97, -5, 1000, 100, [6, 4, 3, 3], 0.3),
                (64, 7, (1 << 33) + 17, (1 << 32) - 10, [4, 5], 1.5)]]


OPS = [
    OpSpec("generate_weights", _generate_samples, generate_weights_reference, (0,)),
    OpSpec("generate_weights_backward", _generate_backward_samples, generate_weights_backward_reference, (0,)),
]
