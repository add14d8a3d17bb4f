"""The block epilogue (infrastructure of the shared-weight blocks and the multigrid correction), its ops beyond the op
contract as a user meets them: FusedBatchNorm2d (fused_batch_norm) is nn.BatchNorm2d + add + ReLU in every mode,
dtype and running-statistics case, compiles, and refuses what does not fit. (Values, derivatives, fake kernels,
torch.func and determinism of the ops: the op contract.)"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import leanconv
from leanconv.nn import FoldedBatchNorm2d, FusedBatchNorm2d


def plain_tail(bn, x, residual, relu):
    y = bn(x)
    if residual is not None:
        y = y + residual
    return F.relu(y) if relu else y


def pair(channels, relu, momentum=0.1, affine=True, track=True, dtype=torch.float64):
    fused = FusedBatchNorm2d(channels, momentum=momentum, affine=affine, track_running_stats=track, relu=relu)
    plain = nn.BatchNorm2d(channels, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            plain.weight.uniform_(0.5, 1.5), plain.bias.uniform_(-0.5, 0.5)
    fused.load_state_dict(plain.state_dict())  # the same state_dict, both ways
    return fused.to(dtype), plain.to(dtype)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("relu,with_residual", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_batch_norm_is_batch_norm_add_relu_in_training_and_eval(relu, with_residual, momentum, channels_last):
    fused, plain = pair(6, relu, momentum)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for step in range(3):
        x = (torch.randn(4, 6, 5, 7, dtype=torch.float64) * 2 + 1).contiguous(memory_format=layout)
        residual = torch.randn_like(x) if with_residual else None
        xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
        ys = [fused(xs[0], residual), plain_tail(plain, xs[1], residual, relu)]
        torch.testing.assert_close(ys[0], ys[1], rtol=1e-12, atol=1e-12)
        assert ys[0].is_contiguous(memory_format=layout)
        grad = torch.randn_like(ys[1])
        ys[0].backward(grad), ys[1].backward(grad)
        torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(fused.weight.grad, plain.weight.grad, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(fused.bias.grad, plain.bias.grad, rtol=1e-10, atol=1e-10)
    for name, buffer in plain.state_dict().items():  # running statistics and num_batches_tracked
        torch.testing.assert_close(fused.state_dict()[name], buffer, rtol=1e-12, atol=1e-12)
    fused.eval(), plain.eval()
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    residual = torch.randn(3, 6, 4, 4, dtype=torch.float64) if with_residual else None
    torch.testing.assert_close(fused(x, residual), plain_tail(plain, x, residual, relu), rtol=1e-12, atol=1e-12)
    g_fused = torch.autograd.grad(fused(x, residual).sum(), [x, fused.weight])
    g_plain = torch.autograd.grad(plain_tail(plain, x, residual, relu).sum(), [x, plain.weight])
    for a, b in zip(g_fused, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_without_affine_or_running_statistics():
    for affine, track in [(False, True), (True, False), (False, False)]:
        fused, plain = pair(3, True, affine=affine, track=track)
        for mode in ("train", "eval"):
            getattr(fused, mode)(), getattr(plain, mode)()
            x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
            torch.testing.assert_close(fused(x), F.relu(plain(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_input_with_float32_parameters(dtype):
    # The mixed-precision case autocast gives: a half conv output into a float32 BatchNorm.
    fused, plain = pair(8, True, dtype=torch.float32)
    x = torch.randn(4, 8, 6, 6) * 3 + 2
    residual = torch.randn_like(x)
    y = fused(x.to(dtype), residual.to(dtype))
    assert y.dtype == dtype
    expected = plain_tail(plain, x.to(dtype).float(), residual.to(dtype).float(), True)
    torch.testing.assert_close(y.float(), expected, rtol=2e-2, atol=2e-2)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    with torch.autocast("cpu", dtype=dtype):
        out = fused(conv(x), residual.to(dtype))
        promoted = fused(conv(x), residual)  # BN(h) + residual promotes, as in plain PyTorch
    assert out.dtype == dtype and promoted.dtype == torch.float32
    out.float().sum().backward()
    assert fused.weight.grad.dtype == torch.float32 and conv.weight.grad is not None


def test_a_compiled_block_trains_like_eager():
    torch._dynamo.reset()
    block = leanconv.models.dacnn("plain", blocks=(1,), width=8, num_classes=3).features[1]
    twin = copy.deepcopy(block)
    x = torch.randn(4, 8, 6, 6)
    compiled = torch.compile(twin, fullgraph=True)
    for _ in range(2):
        y, y_compiled = block(x), compiled(x)
        torch.testing.assert_close(y_compiled, y, rtol=1e-5, atol=1e-5)
        y.square().sum().backward(), y_compiled.square().sum().backward()
    torch.testing.assert_close(twin.bn2.weight.grad, block.bn2.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(twin.bn1.running_var, block.bn1.running_var, rtol=1e-5, atol=1e-5)
    assert int(twin.bn1.num_batches_tracked) == int(block.bn1.num_batches_tracked) == 2


def test_clear_errors():
    op = leanconv.ops
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match="leanconv: batch_norm_epilogue: weight must have shape \\(3\\)"):
        op.batch_norm_epilogue(x, torch.ones(4))
    with pytest.raises(RuntimeError, match="leanconv: batch_norm_epilogue: residual must have the input's shape"):
        op.batch_norm_epilogue(x, residual=torch.randn(2, 3, 4, 5))
    with pytest.raises(RuntimeError, match="leanconv: affine_epilogue: scale must have the input's dtype"):
        op.affine_epilogue(x, torch.ones(3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="must share one dtype"):
        op.affine_epilogue(x.half(), torch.ones(3), torch.ones(3, dtype=torch.half))
    with pytest.raises(RuntimeError, match="4-D"):
        op.affine_epilogue(torch.randn(3, 4, 4))
    with pytest.raises(RuntimeError, match="eps must be positive"):
        op.batch_norm_epilogue(x, eps=0.0)
    with pytest.raises(RuntimeError, match="floating-point"):
        op.affine_epilogue(torch.ones(2, 3, 4, 4, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="more than 1 value per channel"):
        FusedBatchNorm2d(3)(torch.randn(1, 3, 1, 1))
    with pytest.raises(ValueError, match="cannot be folded"):
        FoldedBatchNorm2d.from_batch_norm(nn.BatchNorm2d(3, track_running_stats=False))


@pytest.mark.parametrize("scale", [1e-5, 1e-3, 0.0], ids=["var-far-below-eps", "var-below-eps", "constant"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_running_statistics_are_batch_norms_at_any_variance(scale, dtype):
    # The running variance comes from the batch variance itself, not from invstd (whose rounding swamps a
    # variance far below eps): nn.BatchNorm2d's numbers, a constant channel's variance exactly 0.
    torch.manual_seed(0)
    x = (torch.randn(8, 3, 5, 5, dtype=torch.float64) * scale + torch.tensor([1.0, -2.0, 3.0]).view(1, 3, 1, 1))
    x = x.to(dtype)
    fused, plain = FusedBatchNorm2d(3, dtype=dtype), nn.BatchNorm2d(3, dtype=dtype)
    for _ in range(3):
        fused(x), plain(x)
    torch.testing.assert_close(fused.running_mean, plain.running_mean, rtol=1e-6, atol=0)
    torch.testing.assert_close(fused.running_var, plain.running_var, rtol=1e-5, atol=0)
    batch_var = leanconv.ops.batch_norm_epilogue(x)[3]
    torch.testing.assert_close(batch_var.double(), x.double().var((0, 2, 3), unbiased=False), rtol=1e-5, atol=0)
    if scale == 0:
        assert torch.all(batch_var == 0)


@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan")])
def test_a_non_positive_eps_is_refused_in_every_mode(eps):
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        FusedBatchNorm2d(3, eps=eps)
    for training in (True, False):
        with pytest.raises(RuntimeError, match="eps must be"):
            leanconv.ops.fused_batch_norm(x, torch.zeros(3), torch.ones(3), training=training, eps=eps)


@pytest.mark.parametrize("mean,var,message", [
    (torch.zeros(4), torch.ones(3), "running_mean must have shape \\(3,\\)"),
    (torch.zeros(3), torch.ones(3, 1), "running_var must have shape \\(3,\\)"),
    (torch.zeros(3, dtype=torch.int64), torch.ones(3), "running_mean must be floating point"),
    (torch.zeros(3), None, "both running_mean and running_var, or neither"),
    (None, torch.ones(3), "both running_mean and running_var, or neither"),
])
def test_running_statistics_that_do_not_fit_are_named(mean, var, message):
    x = torch.randn(2, 3, 4, 4)
    for training in (True, False):
        with pytest.raises(RuntimeError, match=message):
            leanconv.ops.fused_batch_norm(x, mean, var, training=training)
