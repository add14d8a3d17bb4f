"""The grouped conv kernels against F.conv2d(groups=...) in float64, over every configuration the multigrid family
uses (group widths 4-64, 1x1 and 3x3, stride 1 and 2, float32/float16/bfloat16, NCHW and channels_last), and the
per-shape kernel choice. The op contract (opcheck, gradcheck, compile, vmap, ...) is in test_op_contract.py."""
import itertools

import pytest
import torch
import torch.nn.functional as F

import leanconv  # noqa: F401  (registers the ops)
from conftest import DEVICES
from leanconv.ops import multigrid as grouped_conv
from leanconv.ops.multigrid import grouped_conv2d

TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def _relative_error(actual, expected):
    return ((actual.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("group_width,kernel,stride,channels_last",
                         list(itertools.product([4, 8, 16, 32, 64], [1, 3], [1, 2], [False, True])))
def test_grouped_conv_matches_float64_conv2d(device, dtype, group_width, kernel, stride, channels_last):
    torch.manual_seed(group_width * 10 + kernel + stride)
    channels = 2 * group_width if group_width < 64 else 64
    _check_against_float64(device, dtype, channels, channels, channels // group_width, kernel, stride, channels_last)


# The narrow shapes the modules run on the kernel in every dtype (the rule's 1-4 input channels a group): an MGIC
# level's conv at group size 2 and 4, the restriction (g -> g/2 a group) and prolongation (g/2 -> g), the entry conv
# (one input channel a group, two outputs) and the coarsest level's full conv of 2-4 channels (groups = 1).
NARROW = {"level g2": (16, 16, 8), "level g4": (16, 16, 4), "restriction g2": (16, 8, 8),
          "prolongation g4": (8, 16, 4), "entry": (8, 16, 8), "coarsest full 2": (2, 2, 1), "coarsest full 4": (4, 4, 1)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("shape", list(NARROW))
@pytest.mark.parametrize("kernel,stride,channels_last",
                         [(3, 1, False), (3, 2, True), (1, 1, False), (1, 1, True), (3, 1, True), (1, 2, False)])
def test_narrow_group_shapes_match_float64_conv2d(device, dtype, shape, kernel, stride, channels_last):
    torch.manual_seed(kernel + stride)
    _check_against_float64(device, dtype, *NARROW[shape], kernel, stride, channels_last)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("in_channels,out_channels,groups", [(16, 8, 8), (8, 16, 2), (32, 32, 4)])
def test_pointwise_convs_over_several_pixel_blocks_match_float64_conv2d(device, dtype, in_channels, out_channels,
                                                                        groups):
    # 1x1 convs on NCHW take the CPU kernel's plane path, in blocks of 256 pixels: 20x15 = 300 pixels end in a
    # partial block.
    torch.manual_seed(groups)
    _check_against_float64(device, dtype, in_channels, out_channels, groups, 1, 1, False, size=(20, 15), batch=3)


def _check_against_float64(device, dtype, in_channels, out_channels, groups, kernel, stride, channels_last,
                           size=(9, 7), batch=2):
    x = torch.randn(batch, in_channels, *size, dtype=torch.float64)
    fan_in = in_channels // groups * kernel
    w = torch.randn(out_channels, in_channels // groups, kernel, kernel, dtype=torch.float64) / fan_in ** 0.5
    b = torch.randn(out_channels, dtype=torch.float64)
    padding = kernel // 2
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    expected = F.conv2d(xr, wr, br, stride, padding, 1, groups)
    grad = torch.randn_like(expected)
    expected.backward(grad)

    xt = x.to(device, dtype)
    if channels_last:
        xt = xt.contiguous(memory_format=torch.channels_last)
    xt.requires_grad_()
    wt, bt = (t.to(device, dtype).requires_grad_() for t in (w, b))
    y = grouped_conv2d(xt, wt, bt, (stride, stride), (padding, padding), (1, 1), groups)
    y.backward(grad.to(device, dtype))
    tol = TOLERANCE[dtype]
    assert y.dtype == dtype and y.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert _relative_error(y.cpu(), expected) < tol
    assert _relative_error(xt.grad.cpu(), xr.grad) < tol
    assert _relative_error(wt.grad.cpu(), wr.grad) < tol
    assert _relative_error(bt.grad.cpu(), br.grad) < tol


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel", [3, 1])
def test_grouped_conv_is_deterministic_under_deterministic_algorithms(device, kernel):
    # Bitwise the same gradients run after run, and (CPU) whatever the thread count.
    torch.manual_seed(0)
    x = torch.randn(5, 32, 20, 15, device=device, requires_grad=True)
    w = torch.randn(32, 8, kernel, kernel, device=device, requires_grad=True)
    grads = []
    threads = torch.get_num_threads()
    with torch.backends.cudnn.flags(deterministic=True):
        torch.use_deterministic_algorithms(True)
        try:
            for run in range(3):
                torch.set_num_threads(1 if run == 2 and device == "cpu" else threads)
                x.grad = w.grad = None
                grouped_conv2d(x, w, None, (1, 1), (kernel // 2,) * 2, (1, 1), 4).square().sum().backward()
                grads.append((x.grad.clone(), w.grad.clone()))
        finally:
            torch.use_deterministic_algorithms(False)
            torch.set_num_threads(threads)
    for other in grads[1:]:
        assert torch.equal(grads[0][0], other[0]) and torch.equal(grads[0][1], other[1])


def test_grouped_conv_errors_are_clear():
    x = torch.randn(1, 8, 5, 5)
    with pytest.raises(RuntimeError, match="groups = 3 must divide"):
        grouped_conv2d(x, torch.randn(9, 2, 3, 3), None, (1, 1), (1, 1), (1, 1), 3)
    with pytest.raises(RuntimeError, match="weight must be \\(C_out, C_in/groups"):
        grouped_conv2d(x, torch.randn(8, 3, 3, 3), None, (1, 1), (1, 1), (1, 1), 2)
    with pytest.raises(RuntimeError, match="same dtype"):
        grouped_conv2d(x, torch.randn(8, 4, 3, 3, dtype=torch.float64), None, (1, 1), (1, 1), (1, 1), 2)
    with pytest.raises(RuntimeError, match="groups must be positive"):
        grouped_conv2d(x, torch.randn(8, 4, 3, 3), None, (1, 1), (1, 1), (1, 1), 0)
    with pytest.raises(RuntimeError, match="4-D"):
        grouped_conv2d(x[0], torch.randn(8, 4, 3, 3), None, (1, 1), (1, 1), (1, 1), 2)


def test_kernel_choice_follows_the_rule_until_a_measurement_is_recorded():
    args = ("cpu", torch.float32, False, 64, 64, 8, 3, 1, (32, 32))
    grouped_conv.clear_grouped_conv2d_choices()
    try:
        rule = grouped_conv.grouped_conv2d_rule(*args)
        assert grouped_conv.grouped_conv2d_uses_kernel(*args) == rule
        grouped_conv.record_grouped_conv2d_choice(*args, not rule)
        assert grouped_conv.grouped_conv2d_uses_kernel(*args) == (not rule)
        assert grouped_conv.grouped_conv2d_choices() == [
            f"cpu Float nchw 64->64 g8 k3 s1 32x32: {'aten' if rule else 'leanconv'}"]
        # Another shape is untouched.
        other = ("cpu", torch.bfloat16, True, 64, 64, 8, 3, 1, (32, 32))
        assert grouped_conv.grouped_conv2d_uses_kernel(*other) == grouped_conv.grouped_conv2d_rule(*other)
    finally:
        grouped_conv.clear_grouped_conv2d_choices()
    # The rule where it is measured (benchmarks/bench_multigrid.py): the kernels for half and bfloat16 on the CPU,
    # and for float32 and float64 k x k convs of narrow groups (1-4 input channels a group, 8 on images of 28x28 and
    # more); oneDNN for wider groups and 1x1 convs.
    rule = grouped_conv.grouped_conv2d_rule
    assert rule("cpu", torch.bfloat16, False, 64, 64, 2, 3, 1, (32, 32))
    assert not rule("cpu", torch.float32, False, 64, 64, 2, 3, 1, (32, 32))
    assert all(rule("cpu", dtype, False, 16 * g, 16 * g, 16, 3, 1, (8, 8)) for g in (1, 2, 4)
               for dtype in (torch.float32, torch.float64))
    assert rule("cpu", torch.float32, False, 64, 64, 8, 3, 1, (32, 32))
    assert rule("cpu", torch.float32, False, 8, 8, 1, 3, 1, (32, 32))
    assert not rule("cpu", torch.float32, False, 64, 64, 8, 3, 1, (16, 16))
    assert not rule("cpu", torch.float32, False, 64, 64, 8, 3, 2, (32, 32))
    assert rule("cpu", torch.float32, False, 16, 8, 8, 1, 1, (32, 32))  # a restriction at g = 2, NCHW
    assert rule("cpu", torch.float32, False, 64, 32, 8, 1, 1, (8, 8))  # at g = 8
    assert not rule("cpu", torch.float32, True, 16, 8, 8, 1, 1, (32, 32))  # channels_last: oneDNN
    assert not rule("cpu", torch.float32, False, 64, 32, 2, 1, 1, (8, 8))  # g = 32: oneDNN
    assert not rule("cuda", torch.float32, False, 16, 16, 8, 3, 1, (32, 32))
