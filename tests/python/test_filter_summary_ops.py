"""Overlapping-segment (FSNet) family, its ops beyond the op contract: the summary gather against the layout formula
element by element, the overlap-add as its adjoint, and the ops' errors."""
import pytest
import torch

from leanconv import ops
from leanconv.nn import FilterSummaryConv2d
from conftest import DEVICES


def reference_weight(summary, out_channels, in_channels, kh, kw, s):
    """Straight from the layout formula, element by element (float64)."""
    L = summary.numel()
    w = torch.empty(out_channels, in_channels, kh, kw, dtype=torch.float64)
    for o in range(out_channels):
        for c in range(in_channels):
            for i in range(kh):
                for j in range(kw):
                    w[o, c, i, j] = summary[(o * s + (i * kw + j) * in_channels + c) % L]
    return w


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("out_channels,in_channels,k,s", [(4, 3, 3, 2), (6, 8, 1, 8), (5, 4, 5, 7), (2, 3, 3, 40)])
def test_gather_matches_the_layout_formula(device, out_channels, in_channels, k, s):
    summary = torch.randn(out_channels * s, dtype=torch.float64)
    w = ops.filter_summary_weight(summary.to(device), out_channels, in_channels, (k, k), s).cpu()
    assert torch.equal(w, reference_weight(summary, out_channels, in_channels, k, k, s))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("out_channels,in_channels,k,s", [(4, 3, 3, 2), (5, 4, 5, 7), (2, 3, 3, 40)])
def test_overlap_add_is_the_adjoint_of_the_gather(device, out_channels, in_channels, k, s):
    summary = torch.randn(out_channels * s, dtype=torch.float64, device=device)
    grad = torch.randn(out_channels, in_channels, k, k, dtype=torch.float64, device=device)
    w = ops.filter_summary_weight(summary, out_channels, in_channels, (k, k), s)
    back = ops.filter_summary_weight_backward(grad, summary.numel(), s)
    torch.testing.assert_close((w * grad).sum(), (summary * back).sum())
    assert torch.autograd.gradcheck(lambda f: ops.filter_summary_weight(f, out_channels, in_channels, (k, k), s),
                                    (summary.clone().requires_grad_(),))


def test_op_and_forward_errors():
    with pytest.raises(RuntimeError, match="summary length must be C_out"):
        ops.filter_summary_weight(torch.randn(10), 4, 3, (3, 3), 2)
    with pytest.raises(RuntimeError, match="stride s must be at least 1"):
        ops.filter_summary_weight(torch.randn(0), 4, 3, (3, 3), 0)
    with pytest.raises(RuntimeError, match="floating-point"):
        ops.filter_summary_weight(torch.arange(8), 4, 3, (3, 3), 2)
    with pytest.raises(RuntimeError, match="smaller than the dilated kernel"):
        ops.shifted_sum(torch.randn(1, 2, 2, 2), (3, 3), 1)
    layer = FilterSummaryConv2d(4, 4, 3, compression=9)
    with pytest.raises(RuntimeError, match="expects 4 input channels"):
        layer(torch.randn(1, 3, 8, 8))
    with pytest.raises(RuntimeError):
        layer(torch.randn(1, 4, 8, 8, dtype=torch.float64))


@pytest.mark.parametrize("batch,channels,size,dtype", [
    (1, 3, 70, torch.float32),   # 4,900 pixels: the input gradient's GEMMs over two pixel blocks of one image
    (17, 2, 9, torch.float32),   # three weight-gradient partials of 8 images, the last one short
    (3, 64, 40, torch.float32),  # z of 400 KiB an image: bands of several rows, one GEMM each
    (2, 8, 33, torch.float64)])
def test_segment_conv2d_work_splits_match_float64_at_every_thread_count(batch, channels, size, dtype):
    # The CPU kernels split the work into bands of rows, blocks of pixels and groups of images, fixed by the shapes:
    # the results match the float64 composition and do not change with the thread count.
    from op_catalogue import segment_conv2d_backward_reference, segment_conv2d_reference
    x = torch.randn(batch, channels, size, size, dtype=dtype)
    segments = torch.randn(channels + 1, channels, dtype=dtype)
    args = (3, 3, 2, [1, 1], [1, 1], [1, 1])
    y_ref = segment_conv2d_reference(x.double(), segments.double(), *args)
    grad = torch.randn_like(y_ref).to(dtype)
    grads_ref = segment_conv2d_backward_reference(grad.double(), x.double(), segments.double(), *args, [True, True])
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            y = torch.ops.leanconv.segment_conv2d(x, segments, *args)
            grads = torch.ops.leanconv.segment_conv2d_backward(grad, x, segments, *args, [True, True])
            results.append((y, *grads))
    finally:
        torch.set_num_threads(previous)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for actual, expected in zip(results[0], (y_ref, *grads_ref)):
        scale = expected.abs().max().item()
        torch.testing.assert_close(actual.double(), expected, rtol=tol, atol=tol * scale)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))
