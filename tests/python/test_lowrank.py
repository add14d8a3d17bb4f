"""Low-rank (DeCEF) family: the fused eigen-filter conv against a float64 einsum + F.conv2d reference, its
gradients, both paths of EigenConv2d, SVD initialisation and the C++ module."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import leanconv
from leanconv import ops
from leanconv.nn import EigenConv2d

from conftest import DEVICES, requires_cuda, requires_extension


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


# ---- the module -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", ["fused", "materialized"])
def test_module_paths_compute_the_same_function(device, path):
    layer = EigenConv2d(6, 10, 3, stride=2, padding=1, rank=4, path=path, dtype=torch.float64, device=device)
    x = torch.randn(3, 6, 11, 9, dtype=torch.float64, device=device)
    expected = reference(x, layer.basis, layer.coeff, layer.bias, (2, 2), (1, 1), (1, 1))
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer(x[0]), expected[0])  # unbatched
    torch.testing.assert_close(layer.materialize()(x), expected)
    assert layer.chosen_path() == path


def test_module_learns_what_it_reports():
    layer = EigenConv2d(16, 32, 3, padding=1, rank=4)
    assert dict(layer.named_parameters()).keys() == {"basis", "coeff", "bias"}
    assert layer.basis.shape == (16, 4, 3, 3) and layer.coeff.shape == (32, 64)
    assert layer.num_learned_params() == 16 * 4 * 9 + 32 * 64 + 32
    assert layer.num_dense_params() == 32 * 16 * 9 + 32
    assert "rank=4" in repr(layer) and "path=auto (cpu:" in repr(layer)
    assert layer.weight.shape == (32, 16, 3, 3) and layer.weight.requires_grad


def test_default_init_has_the_dense_conv_scale():
    layer = EigenConv2d(64, 64, 3, rank=4)
    dense = nn.Conv2d(64, 64, 3)
    assert layer.weight.std().item() == pytest.approx(dense.weight.std().item(), rel=0.15)


def test_auto_path_follows_the_cost_model():
    for c, rank in [(16, 4), (64, 2), (64, 4), (64, 9), (512, 4)]:
        layer = EigenConv2d(c, c, 3, padding=1, rank=rank)
        cheaper = ops.eigen_conv2d_fused_is_cheaper("cpu", c, c, (3, 3), rank)
        assert layer.chosen_path("cpu") == ("fused" if cheaper else "materialized")
    assert ops.eigen_conv2d_fused_is_cheaper("cpu", 64, 64, (3, 3), 2)
    assert not ops.eigen_conv2d_fused_is_cheaper("cpu", 64, 64, (3, 3), 9)


def test_module_argument_errors():
    with pytest.raises(ValueError, match="rank must be between 1 and kh\\*kw = 9"):
        EigenConv2d(4, 4, 3, rank=10)
    with pytest.raises(ValueError, match="rank must be between"):
        EigenConv2d(4, 4, 3, rank=0)
    with pytest.raises(ValueError, match="groups=1"):
        EigenConv2d(4, 4, 3, groups=4, rank=2)
    with pytest.raises(ValueError, match="path must be one of"):
        EigenConv2d(4, 4, 3, rank=2, path="fast")
    with pytest.raises(RuntimeError, match="expects 4 input channels"):
        EigenConv2d(4, 4, 3, rank=2)(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("path", ["fused", "materialized"])
def test_from_conv_at_full_rank_reproduces_the_dense_conv(path):
    conv = nn.Conv2d(5, 7, 3, stride=2, padding=1, dtype=torch.float64)
    layer = EigenConv2d.from_conv(conv, rank=9, path=path)
    x = torch.randn(2, 5, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(layer(x), conv(x))


def test_from_conv_defaults_to_the_effective_rank():
    conv = nn.Conv2d(8, 16, 3, padding=1)
    layer = EigenConv2d.from_conv(conv, energy=0.9)
    assert layer.rank == leanconv.lowrank.effective_rank(conv, 0.9)
    low = EigenConv2d.from_conv(conv, rank=2)
    x = torch.randn(2, 8, 6, 6)
    err_low = (low(x) - conv(x)).norm()
    err_high = (EigenConv2d.from_conv(conv, rank=6)(x) - conv(x)).norm()
    assert err_high < err_low


@requires_extension
def test_cpp_and_python_modules_choose_the_same_path():
    # (numbers and state_dict names: test_module_contract.py)
    for rank in (1, 4, 9):
        for channels in (16, 64, 256):
            cpp_layer = leanconv._C.cpp.EigenConv2d(channels, channels, 3, padding=1, rank=rank)
            assert cpp_layer.chosen_path("cpu") == EigenConv2d(channels, channels, 3, padding=1, rank=rank).chosen_path("cpu")


# ---- models --------------------------------------------------------------------------------------------------


def test_resnets_accept_lowrank_with_a_rank_rule():
    from leanconv.models import resnet
    from leanconv.nn import parameter_counts

    model = resnet.resnet20(conv="lowrank", rank=4)
    eigen = [m for m in model.modules() if isinstance(m, EigenConv2d)]
    assert len(eigen) == 18 and all(m.rank == 4 for m in eigen)
    scheduled = resnet.resnet20(conv="lowrank", rank=(6, 5, 4))
    assert [m.rank for m in scheduled.modules() if isinstance(m, EigenConv2d)] == [6] * 6 + [5] * 6 + [4] * 6
    by_width = resnet.resnet18(conv="lowrank", rank=lambda c_in, c_out, k, scope: 2 if c_out >= 256 else 6)
    ranks = {m.out_channels: m.rank for m in by_width.modules() if isinstance(m, EigenConv2d)}
    assert ranks == {64: 6, 128: 6, 256: 2, 512: 2}
    learned, dense = parameter_counts(model)
    assert learned < dense == sum(p.numel() for p in resnet.resnet20().parameters())
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    with pytest.raises(ValueError, match="no entry for stage 3"):
        resnet.resnet18(conv="lowrank", rank=(4, 4, 4))
    with pytest.raises(TypeError, match="unknown options"):
        resnet.resnet20(conv="lowrank", compression=3)


# ---- converting a trained model ------------------------------------------------------------------------------


def test_convert_at_full_rank_keeps_the_function():
    from leanconv.models import resnet

    dense = resnet.resnet20().double().eval()
    eigen = leanconv.convert(dense, "lowrank", rank=9)
    assert sum(isinstance(m, EigenConv2d) for m in eigen.modules()) == 19  # 18 block convs + the stem
    assert not any(isinstance(m, EigenConv2d) for m in dense.modules())  # the original is untouched
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(eigen(x), dense(x))
    kept = leanconv.convert(dense, "lowrank", energy=0.5, skip=["stem.0"])
    assert type(kept.stem[0]) is nn.Conv2d
    for name, conv in dense.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and name != "stem.0":
            assert kept.get_submodule(name).rank == leanconv.lowrank.effective_rank(conv, 0.5)


def test_convert_to_filter_summary_and_errors():
    from leanconv.models import resnet
    from leanconv.nn import FilterSummaryConv2d

    model = leanconv.convert(resnet.resnet20(), "filter_summary", compression=9, skip=["stem.0"])
    assert sum(isinstance(m, FilterSummaryConv2d) for m in model.modules()) == 18
    with pytest.raises(ValueError, match="convert supports"):
        leanconv.convert(model, "generated")


def test_the_lowrank_workflow_cli(capsys):
    from leanconv.train import lowrank as lowrank_workflow

    lowrank_workflow.main(["--dataset", "random", "--epochs", "1", "--finetune-epochs", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "Effective rank by depth" in out and "| converted + fine-tuned |" in out


@pytest.mark.parametrize("family", ["lowrank", "filter_summary"])
def test_convert_handles_string_paddings_a_bare_conv_and_a_rank_above_k_squared(family):
    options = {"rank": 20} if family == "lowrank" else {"compression": 3}
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding="same", padding_mode="reflect"), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding="valid"), nn.Conv2d(8, 4, (2, 3), padding="same")).double()
    converted = leanconv.convert(model, family, **options)
    assert not any(type(m) is nn.Conv2d for m in converted.modules())
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    assert converted(x).shape == model(x).shape
    if family == "lowrank":  # rank 20 is clipped to the full rank k*k = 9 (6 for the 2x3 conv): exact
        assert [m.rank for m in converted.modules() if isinstance(m, EigenConv2d)] == [9, 9, 6]
        torch.testing.assert_close(converted(x), model(x))
    bare = nn.Conv2d(3, 8, 3, padding=1).double()
    layer = leanconv.convert(bare, family, **options)
    assert type(layer) is not nn.Conv2d
    assert leanconv.convert(bare, family, skip=[""], **options) is not bare  # a copy, left dense
    if family == "lowrank":
        torch.testing.assert_close(layer(x), bare(x))


def test_ranks_and_compressions_that_would_be_silently_changed_are_refused():
    from leanconv.nn import FilterSummaryConv2d
    from leanconv.models import resnet

    with pytest.raises(TypeError, match="rank must be an int"):
        EigenConv2d(4, 4, 3, rank=2.5)
    with pytest.raises(TypeError, match="rank must be an int"):
        resnet.resnet20(conv="lowrank", rank=2.5)
    with pytest.raises(TypeError, match="rank must be an int"):
        leanconv.convert(nn.Conv2d(3, 4, 3), "lowrank", rank=1.5)
    for compression in (0.5, 0, -2, float("nan")):
        with pytest.raises(ValueError, match="compression must be a number >= 1"):
            FilterSummaryConv2d(4, 4, 3, compression=compression)
