"""The generated-weight (RPG) layout written again in NumPy, and the plain-PyTorch RPG layer.

This follows the definition in csrc/common/ring_permutation.h without sharing its code: the tests
compare the two bit for bit, and the benchmarks use :class:`PlainGeneratedConv2d`, which stores an int64
index and a sign mask per generated weight and gathers through them as the paper's reference code does.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_ROUNDS = 4
_M64 = (1 << 64) - 1


def _splitmix64_stream(seed: int, count: int):
    state = seed & _M64
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & _M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        yield z ^ (z >> 31)


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


class RingLayout:
    """pi, pi^-1 and s for a virtual sequence of ``total`` weights and a seed."""

    def __init__(self, seed: int, total: int):
        if total < 1:
            raise ValueError("total must be positive")
        self.total = total
        bits = 2
        while (1 << bits) < total:
            bits += 1
        self.hi_bits = bits // 2
        self.lo_bits = bits - self.hi_bits
        keys = [k & 0xFFFFFFFF for k in _splitmix64_stream(seed, _ROUNDS + 1)]
        self.round_keys = keys[:_ROUNDS]
        self.sign_key = keys[_ROUNDS]

    @staticmethod
    def _mask(bits):
        return np.uint64((1 << bits) - 1)

    def _round(self, r, half):
        return _fmix32((half & np.uint64(0xFFFFFFFF)).astype(np.uint32) ^ np.uint32(self.round_keys[r])).astype(np.uint64)

    def _feistel(self, x):
        hb, lb = self.hi_bits, self.lo_bits
        hi, lo = x >> np.uint64(lb), x & self._mask(lb)
        for r in range(_ROUNDS):
            hi, lo = lo, hi ^ (self._round(r, lo) & self._mask(hb))
            hb, lb = lb, hb
        return (hi << np.uint64(lb)) | lo

    def _feistel_inverse(self, y):
        hb, lb = self.hi_bits, self.lo_bits
        hi, lo = y >> np.uint64(lb), y & self._mask(lb)
        for r in reversed(range(_ROUNDS)):
            prev_lo = hi
            hi, lo = lo ^ (self._round(r, prev_lo) & self._mask(lb)), prev_lo
            hb, lb = lb, hb
        return (hi << np.uint64(lb)) | lo

    def _walk(self, step, x):
        y = step(np.asarray(x, dtype=np.uint64))
        outside = y >= np.uint64(self.total)
        while outside.any():
            y[outside] = step(y[outside])
            outside = y >= np.uint64(self.total)
        return y

    def permute(self, g):
        return self._walk(self._feistel, g)

    def unpermute(self, v):
        return self._walk(self._feistel_inverse, v)

    def sign(self, g):
        g = np.asarray(g, dtype=np.uint64)
        h = _fmix32((g & np.uint64(0xFFFFFFFF)).astype(np.uint32) ^ np.uint32(self.sign_key))
        upper = (g >> np.uint64(32)).astype(np.uint32)
        h = np.where(upper != 0, _fmix32(h ^ upper), h)
        return np.where(h >> np.uint32(31), -1, 1).astype(np.int8)


def ring_indices_and_signs(seed: int, total: int, ring_size: int, offset: int = 0, numel: int = None):
    """int64 ring indices and +-1 signs of positions [offset, offset + numel), as explicit tensors."""
    numel = total - offset if numel is None else numel
    layout = RingLayout(seed, total)
    g = np.arange(offset, offset + numel, dtype=np.uint64)
    index = (layout.permute(g) % np.uint64(ring_size)).astype(np.int64)
    return torch.from_numpy(index), torch.from_numpy(layout.sign(g).astype(np.float32))


class PlainGeneratedConv2d(nn.Module):
    """The RPG layer as plain PyTorch: an int64 index buffer and a sign buffer per weight, a gather, a conv."""

    def __init__(self, ring: torch.Tensor, seed: int, total: int, offset: int, in_channels, out_channels,
                 kernel_size, stride=1, padding=0, scale=1.0):
        super().__init__()
        self.ring = ring
        self.shape = (out_channels, in_channels, kernel_size, kernel_size)
        index, sign = ring_indices_and_signs(seed, total, ring.numel(), offset, math.prod(self.shape))
        self.register_buffer("index", index.to(ring.device))
        self.register_buffer("sign", (sign * scale).to(ring.device, ring.dtype))
        self.stride, self.padding = stride, padding

    def forward(self, x):
        weight = (self.ring[self.index] * self.sign).view(self.shape)
        return F.conv2d(x, weight, None, self.stride, self.padding)
