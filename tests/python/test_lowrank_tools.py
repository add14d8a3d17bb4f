"""Rank tools of the low-rank (DeCEF) family: effective rank, SVD factorisation, the depth report."""
import pytest
import torch
from torch import nn

from leanconv import lowrank
from leanconv.models import resnet20


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
