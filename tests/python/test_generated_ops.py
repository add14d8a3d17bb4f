"""The generated-weight ops: layout against an independent NumPy implementation, gradients, opcheck, errors."""
import numpy as np
import pytest
import torch

from leanconv import ops
from leanconv.reference.generated import RingLayout, ring_indices_and_signs

from conftest import DEVICES, requires_cuda


@pytest.mark.parametrize("total", [1, 2, 3, 5, 64, 1000, 65537, (1 << 20) + 7])
@pytest.mark.parametrize("seed", [0, 1, 123456789, -5])
def test_reference_layout_is_a_bijection(total, seed):
    layout = RingLayout(seed, total)
    g = np.arange(total, dtype=np.uint64)
    v = layout.permute(g)
    assert np.array_equal(np.sort(v), g)
    assert np.array_equal(layout.unpermute(v), g)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("total,ring_size,offset,numel", [(1, 1, 0, 1), (7, 3, 2, 5), (1000, 97, 100, 900),
                                                          (300000, 4099, 12345, 200000)])
@pytest.mark.parametrize("seed", [0, 42])
def test_generate_matches_reference_bit_for_bit(device, total, ring_size, offset, numel, seed):
    ring = torch.arange(1, ring_size + 1, dtype=torch.float64, device=device)
    out = ops.generate_weights(ring, seed, total, offset, [numel], 1.0).cpu()
    index, sign = ring_indices_and_signs(seed, total, ring_size, offset, numel)
    expected = sign.double() * (index + 1).double()
    assert torch.equal(out, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_even_sampling_over_the_whole_sequence(device):
    total, ring_size = 100003, 977
    ring = torch.arange(1, ring_size + 1, dtype=torch.float64, device=device)
    used = ops.generate_weights(ring, 7, total, 0, [total], 1.0).abs().long() - 1
    counts = torch.bincount(used.cpu(), minlength=ring_size)
    assert counts.min().item() == total // ring_size
    assert counts.max().item() == -(-total // ring_size)
    assert counts.sum().item() == total


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("deterministic", [False, True])
def test_backward_matches_autograd_through_explicit_indices(device, deterministic):
    total, ring_size, offset, shape = 5000, 311, 777, (8, 4, 3, 3)
    numel = 8 * 4 * 9
    grad = torch.randn(shape, dtype=torch.float64, device=device)
    index, sign = ring_indices_and_signs(3, total, ring_size, offset, numel)
    reference = torch.zeros(ring_size, dtype=torch.float64).index_add_(0, index, sign.double() * grad.cpu().flatten() * 0.5)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        result = ops.generate_weights_backward(grad, ring_size, 3, total, offset, 0.5)
        again = ops.generate_weights_backward(grad, ring_size, 3, total, offset, 0.5)
    finally:
        torch.use_deterministic_algorithms(previous)
    torch.testing.assert_close(result.cpu(), reference)
    if deterministic:
        assert torch.equal(result, again)


def test_empty_range_and_zero_size_shape():
    ring = torch.randn(5)
    assert ops.generate_weights(ring, 0, 10, 3, [0, 4], 1.0).shape == (0, 4)
    assert ops.generate_weights_backward(torch.empty(0), 5, 0, 10, 3, 1.0).abs().sum() == 0


@pytest.mark.parametrize("call,message", [
    (lambda: ops.generate_weights(torch.randn(0), 0, 10, 0, [2], 1.0), "ring must not be empty"),
    (lambda: ops.generate_weights(torch.randn(2, 2), 0, 10, 0, [2], 1.0), "ring must be 1-D"),
    (lambda: ops.generate_weights(torch.arange(4), 0, 10, 0, [2], 1.0), "ring must be a floating-point"),
    (lambda: ops.generate_weights(torch.randn(4), 0, 0, 0, [2], 1.0), "create the layers"),
    (lambda: ops.generate_weights(torch.randn(4), 0, 10, 9, [2], 1.0), "lies outside"),
    (lambda: ops.generate_weights(torch.randn(4), 0, 10, -1, [2], 1.0), "offset must be non-negative"),
    (lambda: ops.generate_weights(torch.randn(4), 0, 10, 0, [-2], 1.0), "non-negative sizes"),
    (lambda: ops.generate_weights_backward(torch.randn(3), 0, 0, 10, 0, 1.0), "ring_size must be positive"),
])
def test_clear_errors(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


@requires_cuda
def test_cuda_matches_cpu_and_float64():
    ring = torch.randn(4099)
    grad = torch.randn(64, 64, 3, 3)
    total, offset = 200000, 5000
    cpu = ops.generate_weights(ring, 9, total, offset, [64, 64, 3, 3], 0.4)
    gpu = ops.generate_weights(ring.cuda(), 9, total, offset, [64, 64, 3, 3], 0.4)
    f64 = ops.generate_weights(ring.double(), 9, total, offset, [64, 64, 3, 3], 0.4)
    torch.testing.assert_close(gpu.cpu(), cpu)
    torch.testing.assert_close(gpu.cpu().double(), f64)
    back_cpu = ops.generate_weights_backward(grad, 4099, 9, total, offset, 0.4)
    back_gpu = ops.generate_weights_backward(grad.cuda(), 4099, 9, total, offset, 0.4)
    back_f64 = ops.generate_weights_backward(grad.double(), 4099, 9, total, offset, 0.4)
    torch.testing.assert_close(back_gpu.cpu(), back_cpu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(back_gpu.cpu().double(), back_f64, rtol=1e-5, atol=1e-5)
