"""The bandwidth-minded CUDA paths against the CPU kernels and float64 references, at shapes that run each of
their loops, chunks and fallbacks at least twice:

- the deterministic generated backward (a stable sort by ring entry, then each entry's terms added in position
  order): the CPU kernel's order, so the same bits, and no cost that grows with the virtual sequence's length;
- the block-epilogue passes: several chunks per channel, several NHWC channel tiles, 16-byte vectors and their
  scalar fallbacks (odd sizes, a storage offset of one element), empty batches, the same bits run to run;
- the shifted sum in NCHW and channels_last (no layout copies) and the overlap-add backward's warp path.

Each test runs on the CPU too (the CPU against itself), so the arguments stay valid where no GPU is at hand.
"""
import contextlib
import time

import pytest
import torch

import leanconv  # noqa: F401
from conftest import DEVICES, requires_cuda
from leanconv import ops
from leanconv.reference.generated import ring_indices_and_signs

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["float32", "float64", "float16", "bfloat16"]
# Relative to the largest expected magnitude: one rounding to the dtype plus differently ordered op-math sums.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 3e-2}


def relative_difference(actual, expected):
    actual, expected = actual.detach().cpu().double(), expected.detach().cpu().double()
    if expected.numel() == 0:
        return 0.0
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1)).item()


@contextlib.contextmanager
def deterministic_algorithms(enabled=True):
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


# ---- generated: the deterministic backward -------------------------------------------------------------------

# (ring_size, total, offset, numel), each a different shape of the runs the sort makes.
GENERATED_CASES = {
    "one entry, one run over everything": (1, 50, 0, 50),
    "small ring, runs of ~9": (97, 1000, 100, 900),
    "runs of ~49, 13-bit keys": (4099, 300000, 12345, 200000),
    "more entries than positions, 21-bit keys": ((1 << 20) + 3, 1 << 22, 5, 70000),
    "64-bit layout crossing 2^32": (1000, (1 << 33) + 17, (1 << 32) - 100, 5000),
}


def ring_gradient_reference(grad, ring_size, seed, total, offset, scale):
    index, sign = ring_indices_and_signs(seed, total, ring_size, offset, grad.numel())
    terms = sign.double() * grad.detach().cpu().double().flatten() * scale
    return torch.zeros(ring_size, dtype=torch.float64).index_add_(0, index, terms)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(GENERATED_CASES.values()), ids=list(GENERATED_CASES))
def test_deterministic_generated_backward_gives_the_cpu_bits(device, dtype, case):
    # The CPU adds each entry's terms in increasing position order, each term g * (+-scale) rounded on its own;
    # the deterministic CUDA backward adds them in the same order, so every dtype matches bit for bit.
    ring_size, total, offset, numel = case
    grad = torch.randn(numel).to(dtype)
    with deterministic_algorithms():
        actual = ops.generate_weights_backward(grad.to(device), ring_size, 7, total, offset, 0.3)
        again = ops.generate_weights_backward(grad.to(device), ring_size, 7, total, offset, 0.3)
    expected = ops.generate_weights_backward(grad, ring_size, 7, total, offset, 0.3)
    assert torch.equal(actual.cpu(), expected)
    assert torch.equal(actual, again)
    reference = ring_gradient_reference(grad, ring_size, 7, total, offset, 0.3)
    assert relative_difference(actual, reference) < TOLERANCE[dtype]


@requires_cuda
def test_deterministic_generated_backward_over_several_sort_chunks():
    # cuda/generated.cu sorts at most 2^24 positions at a time: 2^24 + 4097 positions are two chunks, and an
    # entry's sum continues from the first into the second in position order.
    numel, ring_size, total, offset = (1 << 24) + 4097, 4099, 1 << 26, 777
    grad = torch.randn(numel)
    with deterministic_algorithms():
        actual = ops.generate_weights_backward(grad.cuda(), ring_size, 3, total, offset, 0.5)
    assert torch.equal(actual.cpu(), ops.generate_weights_backward(grad, ring_size, 3, total, offset, 0.5))


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_generated_backward_costs_nothing_in_the_sequence_length(device):
    # A small range far into a sequence of 2^33 positions: the work is the range's, not the sequence's (a walk
    # over the whole sequence would take many seconds).
    total, numel, ring_size = (1 << 33) + 12345, 64 * 64 * 9, 1000003
    offset = total - 3 * numel
    grad = torch.randn(numel)
    on_device = grad.to(device)
    with deterministic_algorithms():
        ops.generate_weights_backward(on_device, ring_size, 5, total, offset, 0.25)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        actual = ops.generate_weights_backward(on_device, ring_size, 5, total, offset, 0.25)
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"{elapsed:.3f} s for {numel} positions"
    assert torch.equal(actual.cpu(), ops.generate_weights_backward(grad, ring_size, 5, total, offset, 0.25))
