"""Low-rank (DeCEF) family, its modules and tools: both paths of EigenConv2d, SVD initialisation and the rank tools
(effective rank, factorisation, the depth report), the models, convert, the workflow command line and the C++
module."""
import pytest
import torch
from torch import nn

import leanconv
from leanconv import lowrank, ops
from leanconv.models import resnet20
from leanconv.nn import EigenConv2d
from conftest import DEVICES, requires_extension
from test_lowrank_ops import reference


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


def test_the_lowrank_workflow_cli(capsys):
    from leanconv.train import lowrank as lowrank_workflow

    lowrank_workflow.main(["--dataset", "random", "--epochs", "1", "--finetune-epochs", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "Effective rank by depth" in out and "| converted + fine-tuned |" in out


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


def _rank_r_weight(c_out, c_in, k, r):
    basis = torch.randn(c_in, r, k, k, dtype=torch.float64)
    coeff = torch.randn(c_out, c_in * r, dtype=torch.float64)
    return lowrank.reconstruct(basis, coeff)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_full_rank_factorisation_is_exact(k):
    w = torch.randn(7, 4, k, k, dtype=torch.float64)
    basis, coeff = lowrank.factorize(w, k * k)
    torch.testing.assert_close(lowrank.reconstruct(basis, coeff), w)
    assert basis.shape == (4, k * k, k, k) and coeff.shape == (7, 4 * k * k)


def test_factorisation_error_falls_with_rank_and_is_the_svd_optimum():
    w = torch.randn(16, 3, 3, 3, dtype=torch.float64)
    errors = [(lowrank.reconstruct(*lowrank.factorize(w, r)) - w).norm() for r in range(1, 10)]
    assert all(a >= b - 1e-12 for a, b in zip(errors, errors[1:])) and errors[-1] < 1e-10
    # Eckart-Young: the error is the energy of the dropped singular values, channel by channel.
    s = torch.linalg.svdvals(w.permute(1, 0, 2, 3).reshape(3, 16, 9))
    torch.testing.assert_close(errors[3], s[:, 4:].square().sum().sqrt())


def test_basis_filters_are_orthonormal_per_channel():
    basis, _ = lowrank.factorize(torch.randn(12, 5, 3, 3, dtype=torch.float64), 4)
    flat = basis.reshape(5, 4, 9)
    torch.testing.assert_close(flat @ flat.transpose(1, 2), torch.eye(4, dtype=torch.float64).expand(5, 4, 4))


def test_effective_rank_of_low_rank_weights():
    w = _rank_r_weight(32, 6, 3, 2)
    assert lowrank.effective_rank(w, 0.999) == 2
    assert torch.equal(lowrank.effective_rank(w, 0.999, per_channel=True), torch.full((6,), 2))
    assert lowrank.effective_rank(torch.randn(32, 6, 3, 3), 1.0) == 9
    assert lowrank.effective_rank(nn.Conv2d(6, 32, 3), 0.5) <= lowrank.effective_rank(nn.Conv2d(6, 32, 3), 0.99)


def test_rank_report_follows_depth():
    rows = lowrank.rank_report(resnet20(), energy=0.9)
    assert len(rows) == 19  # the stem and 18 block convs (3x3)
    assert rows[0].name.startswith("stem") and all(1 <= r.effective_rank <= r.max_rank for r in rows)
    assert "effective rank" in lowrank.format_report(rows)


@pytest.mark.parametrize("call,message", [
    (lambda: lowrank.factorize(torch.randn(4, 2, 3, 3), 10), "rank must be between 1 and"),
    (lambda: lowrank.factorize(torch.randn(4, 2, 3, 3), 0), "rank must be between 1 and"),
    (lambda: lowrank.effective_rank(torch.randn(4, 2, 3), 0.9), "expected a conv weight"),
    (lambda: lowrank.effective_rank(torch.randn(4, 2, 3, 3), 1.5), "energy must be in"),
    (lambda: lowrank.effective_rank(nn.Conv2d(4, 4, 3, groups=2), 0.9), "groups=1"),
])
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
