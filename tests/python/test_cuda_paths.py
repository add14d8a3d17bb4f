"""CUDA code paths that the op catalogue's small samples never reach, each against the CPU kernel: a reduction
over several chunks per channel, a grid-stride loop that wraps (more elements than the capped grid has threads),
an empty generated range, and the eigen conv's backward over several batch chunks. On the CPU the same functions
run CPU against CPU, so the arguments stay valid where no GPU is at hand.
"""
import pytest
import torch

import leanconv  # noqa: F401
from conftest import DEVICES, requires_cuda
from leanconv import ops


def relative_difference(actual, expected):
    return ((actual.cpu().double() - expected.double()).abs().max() / expected.double().abs().max().clamp_min(1)).item()


TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_batch_norm_epilogue_reduces_over_several_chunks_per_channel(device, dtype, channels_last):
    # 9,000 values a channel in 40 channels: several reduction chunks a channel in both layouts (cuda/channel_passes.cuh
    # sizes them from the SM count; test_cuda_kernels_speedpaths.py walks the chunking's edges). Forward (statistics)
    # and backward (the gradient's reduction) against the CPU.
    format = torch.channels_last if channels_last else torch.contiguous_format
    x = (torch.randn(3, 40, 60, 50) * 2 + 1).to(dtype).contiguous(memory_format=format)
    residual = torch.randn(3, 40, 60, 50).to(dtype).contiguous(memory_format=format)
    weight, bias = torch.randn(40), torch.randn(40)
    grad = torch.randn(3, 40, 60, 50).to(dtype).contiguous(memory_format=format)

    def run(on):
        args = [t.to(on).requires_grad_() for t in (x, weight, bias, residual)]
        out, mean, invstd, var = ops.batch_norm_epilogue(*args, relu=True, eps=1e-5)
        out.backward(grad.to(on))
        return [out, mean, invstd, var] + [a.grad for a in args]

    for actual, expected in zip(run(device), run("cpu")):
        assert relative_difference(actual, expected) < TOLERANCE[dtype]


GRID_THREADS = 1 << 28  # cuda/launch.cuh: at most 2^20 blocks of 256 threads, then the loop strides


@requires_cuda
def test_generated_kernels_wrap_their_grid_stride_loop():
    # numel past the capped grid: the positions beyond 2^28 are computed on the loop's second turn. Generation is
    # positional, so the CPU computes only the tail, at its offset.
    if torch.cuda.get_device_properties(0).total_memory < 8 * 2**30:
        pytest.skip("needs 8 GiB of GPU memory")
    numel, tail, seed, total, offset = GRID_THREADS + 1000, 1000, 11, 3 * GRID_THREADS, 12345
    ring = torch.randn(4099)
    out = ops.generate_weights(ring.cuda(), seed, total, offset, [numel], 0.5)
    expected_tail = ops.generate_weights(ring, seed, total, offset + GRID_THREADS, [tail], 0.5)
    assert torch.equal(out[GRID_THREADS:].cpu(), expected_tail)
    assert torch.equal(out[:tail].cpu(), ops.generate_weights(ring, seed, total, offset, [tail], 0.5))
    del out
    grad = torch.zeros(numel, device="cuda")
    grad[GRID_THREADS:] = torch.randn(tail, device="cuda")
    for deterministic in (False, True):
        torch.use_deterministic_algorithms(deterministic)
        try:
            reduced = ops.generate_weights_backward(grad, ring.numel(), seed, total, offset, 0.5)
        finally:
            torch.use_deterministic_algorithms(False)
        expected = ops.generate_weights_backward(grad[GRID_THREADS:].cpu(), ring.numel(), seed, total,
                                                 offset + GRID_THREADS, 0.5)
        torch.testing.assert_close(reduced.cpu(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_an_empty_generated_range(device, deterministic):
    ring = torch.randn(97, device=device, requires_grad=True)
    torch.use_deterministic_algorithms(deterministic)
    try:
        out = ops.generate_weights(ring, 5, 1000, 1000, [0, 3], 0.3)
        assert out.shape == (0, 3) and out.device == ring.device
        out.sum().backward()
        reduced = ops.generate_weights_backward(torch.empty(0, device=device), 97, 5, 1000, 1000, 0.3)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(ring.grad, torch.zeros_like(ring)) and torch.equal(reduced, torch.zeros_like(ring))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_eigen_backward_over_several_batch_chunks(device, channels_last):
    # cuda/lowrank.cu takes 2^24 intermediate elements per chunk: C_in*R*H*W = 32*8*32*32 = 2^18, so 64 images a
    # chunk and 130 images are three chunks (the last partial). Gradients against the CPU kernel.
    format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(130, 32, 32, 32).contiguous(memory_format=format)
    basis, coeff = torch.randn(32, 8, 3, 3) / 3, torch.randn(24, 256) / 16
    grad = torch.randn(130, 24, 32, 32).contiguous(memory_format=format)
    args = [[1, 1], [1, 1], [1, 1], [True, True, True]]
    actual = ops_backward(grad.to(device), x.to(device), basis.to(device), coeff.to(device), *args)
    expected = ops_backward(grad, x, basis, coeff, *args)
    for a, e in zip(actual, expected):
        assert relative_difference(a, e) < 1e-5
    if channels_last:
        assert actual[0].is_contiguous(memory_format=torch.channels_last)


def ops_backward(*args):
    return torch.ops.leanconv.eigen_conv2d_backward(*args)
