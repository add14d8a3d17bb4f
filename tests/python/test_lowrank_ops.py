"""Low-rank (DeCEF) family, its ops beyond the op contract: the fused eigen-filter conv against a float64 einsum +
F.conv2d reference at many geometries, its gradients, tiles that span row bands and images, clear errors, and
CUDA against the CPU."""
import pytest
import torch
import torch.nn.functional as F

from leanconv import ops
from conftest import DEVICES, requires_cuda


def reference(x, basis, coeff, bias, stride, padding, dilation):
    """Dense weight by einsum (independent of the library's reconstruct), then F.conv2d, in float64."""
    c_in, rank, kh, kw = basis.shape
    c_out = coeff.shape[0]
    weight = torch.einsum("oir,irhw->oihw", coeff.double().reshape(c_out, c_in, rank), basis.double())
    return F.conv2d(x.double(), weight, None if bias is None else bias.double(), stride, padding, dilation)


def operands(n, c_in, c_out, hw, k, rank, device="cpu", dtype=torch.float64, bias=True):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(n, c_in, *hw, dtype=dtype, device=device)
    basis = torch.randn(c_in, rank, kh, kw, dtype=dtype, device=device)
    coeff = torch.randn(c_out, c_in * rank, dtype=dtype, device=device)
    b = torch.randn(c_out, dtype=dtype, device=device) if bias else None
    return x, basis, coeff, b


SHAPES = [  # (k, rank, stride, padding, dilation, (H, W))
    (1, 1, (1, 1), (0, 0), (1, 1), (6, 7)),
    (3, 1, (1, 1), (1, 1), (1, 1), (9, 8)),
    (3, 4, (2, 2), (1, 1), (1, 1), (11, 10)),
    (3, 6, (1, 2), (2, 0), (2, 1), (12, 13)),
    (3, 9, (2, 1), (0, 3), (1, 2), (10, 9)),
    (5, 7, (1, 1), (2, 2), (1, 1), (9, 17)),
    (5, 25, (3, 3), (1, 4), (1, 1), (13, 12)),
    ((3, 1), 2, (1, 1), (1, 0), (1, 1), (7, 5)),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k,rank,stride,padding,dilation,hw", SHAPES)
def test_forward_and_backward_match_the_dense_reference(device, k, rank, stride, padding, dilation, hw):
    x, basis, coeff, bias = [t.requires_grad_() for t in operands(3, 5, 7, hw, k, rank, device)]
    y = ops.eigen_conv2d(x, basis, coeff, bias, stride, padding, dilation)
    expected = reference(x, basis, coeff, bias, stride, padding, dilation)
    torch.testing.assert_close(y, expected)
    grad = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, basis, coeff, bias), grad)
    want = torch.autograd.grad(expected, (x, basis, coeff, bias), grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("n,c_in,hw,rank,stride", [
    (3, 64, (20, 30), 9, 1),   # several row bands per image, the last one partial
    (9, 2, (5, 5), 3, 1),      # several images per tile, the last group partial
    (2, 48, (23, 9), 6, 2),    # row bands with a strided input
])
def test_tiles_spanning_row_bands_and_images(n, c_in, hw, rank, stride):
    x, basis, coeff, bias = [t.requires_grad_() for t in operands(n, c_in, 5, hw, 3, rank)]
    y = ops.eigen_conv2d(x, basis, coeff, bias, (stride, stride), (1, 1))
    expected = reference(x, basis, coeff, bias, (stride, stride), (1, 1), (1, 1))
    torch.testing.assert_close(y, expected)
    grad = torch.randn_like(y)
    for g, w in zip(torch.autograd.grad(y, (x, basis, coeff), grad), torch.autograd.grad(expected, (x, basis, coeff), grad)):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("device", DEVICES)
def test_partial_gradients(device):
    """Only the requested gradients are computed, and each equals the full computation's."""
    x, basis, coeff, bias = operands(2, 4, 3, (7, 7), 3, 3, device)
    full = [t.clone().requires_grad_() for t in (x, basis, coeff)]
    y = ops.eigen_conv2d(*full, None, padding=(1, 1))
    all_grads = torch.autograd.grad(y.sum(), full)
    for i in range(3):
        inputs = [t.clone().requires_grad_(j == i) for j, t in enumerate((x, basis, coeff))]
        (g,) = torch.autograd.grad(ops.eigen_conv2d(*inputs, None, padding=(1, 1)).sum(), inputs[i])
        torch.testing.assert_close(g, all_grads[i])


@pytest.mark.parametrize("device", DEVICES)
def test_bad_operands_give_clear_errors(device):
    x, basis, coeff, bias = operands(2, 4, 3, (6, 6), 3, 2, device, torch.float32)
    cases = [
        ((x[:, :3], basis, coeff, bias), "input has 3"),
        ((x, basis, coeff[:, :7], bias), r"coeff must be \(C_out, C_in\*R\)"),
        ((x, basis, coeff, bias[:2]), "bias must have shape"),
        ((x, torch.randn(4, 10, 3, 3, device=device), torch.randn(3, 40, device=device), bias), "between 1 and kh"),
        ((x, basis.double(), coeff, bias), "same dtype"),
        ((x[0], basis, coeff, bias), "4-D"),
        ((x.int(), basis, coeff, bias), "floating-point"),
    ]
    for args, message in cases:
        with pytest.raises(RuntimeError, match=message):
            ops.eigen_conv2d(*args, padding=(1, 1))
    with pytest.raises(RuntimeError, match="stride and dilation must be positive"):
        ops.eigen_conv2d(x, basis, coeff, bias, stride=(0, 1))
    with pytest.raises(RuntimeError, match="smaller than the dilated kernel"):
        ops.eigen_conv2d(x[:, :, :2, :2], basis, coeff, bias)


@requires_cuda
def test_operands_on_different_devices_are_refused():
    x, basis, coeff, bias = operands(2, 4, 3, (6, 6), 3, 2, "cpu", torch.float32)
    with pytest.raises(RuntimeError, match="same device"):
        ops.eigen_conv2d(x.cuda(), basis, coeff, bias)


@requires_cuda
@pytest.mark.parametrize("k,rank,stride,padding,dilation,hw", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(k, rank, stride, padding, dilation, hw, dtype):
    x, basis, coeff, bias = operands(3, 20, 70, hw, k, rank, "cpu", dtype)
    leaves_cpu = [t.clone().requires_grad_() for t in (x, basis, coeff, bias)]
    leaves_gpu = [t.cuda().requires_grad_() for t in (x, basis, coeff, bias)]
    y_cpu = ops.eigen_conv2d(*leaves_cpu, stride, padding, dilation)
    y_gpu = ops.eigen_conv2d(*leaves_gpu, stride, padding, dilation)
    tol = dict(atol=1e-3, rtol=1e-3) if dtype == torch.float32 else {}
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, **tol)
    torch.testing.assert_close(y_gpu.cpu().double(), reference(x, basis, coeff, bias, stride, padding, dilation),
                               **tol)
    grad = torch.randn_like(y_cpu)
    y_cpu.backward(grad)
    y_gpu.backward(grad.cuda())
    for a, b in zip(leaves_gpu, leaves_cpu):
        torch.testing.assert_close(a.grad.cpu(), b.grad, **tol)
