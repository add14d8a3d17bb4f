"""Rank tools of the low-rank (DeCEF) family: how many basis filters each input channel's filters need.

For a conv weight W (C_out, C_in, k, k), input channel i's filters form the C_out x k^2 matrix M_i = W[:, i].
DeCEF writes ``W[o, i] = sum_r A[o, i, r] E[i, r]`` with R basis filters E[i, r] per input channel.

Effective rank (this library's definition; the paper's exact one was not available): with the singular
values s_1 >= s_2 >= ... of M_i, the effective rank of channel i at ``energy`` e is the smallest R whose
leading singular values keep a share e of the squared Frobenius norm: sum_{r<=R} s_r^2 >= e * sum_r s_r^2.
The layer's effective rank is the smallest R that, applied to every channel, keeps the share e of the whole
layer's energy (never more than the largest per-channel rank).
"""
from typing import List, NamedTuple, Tuple, Union

import torch
from torch import Tensor, nn


def _channel_matrices(weight: Tensor) -> Tensor:
    if weight.dim() != 4:
        raise ValueError(f"leanconv: expected a conv weight (C_out, C_in, kh, kw), got shape {tuple(weight.shape)}")
    c_out, c_in, kh, kw = weight.shape
    return weight.detach().double().permute(1, 0, 2, 3).reshape(c_in, c_out, kh * kw)  # (C_in, C_out, k^2)


def _weight_of(conv_or_weight: Union[nn.Module, Tensor]) -> Tensor:
    weight = conv_or_weight.weight if isinstance(conv_or_weight, nn.Module) else conv_or_weight
    if isinstance(conv_or_weight, nn.Conv2d) and conv_or_weight.groups != 1:
        raise ValueError("leanconv: effective rank is defined for groups=1 convs")
    return weight


def effective_rank(conv_or_weight: Union[nn.Module, Tensor], energy: float = 0.99,
                   per_channel: bool = False) -> Union[int, Tensor]:
    """The layer's effective rank (an int), or with ``per_channel=True`` each input channel's (int64 tensor)."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"leanconv: energy must be in (0, 1], got {energy}")
    s2 = torch.linalg.svdvals(_channel_matrices(_weight_of(conv_or_weight))).square()  # (C_in, min(C_out, k^2))
    # The share kept by the leading r components, with a little slack for rounding at energy = 1.
    tolerance = 1e-12
    per_channel_share = s2.cumsum(1) / s2.sum(1, keepdim=True).clamp_min(1e-300)
    ranks = (per_channel_share < energy - tolerance).sum(1) + 1
    ranks = ranks.clamp(max=s2.shape[1])
    if per_channel:
        return ranks
    layer_share = s2.sum(0).cumsum(0) / s2.sum().clamp_min(1e-300)
    layer_rank = int((layer_share < energy - tolerance).sum()) + 1
    return min(layer_rank, int(ranks.max()), s2.shape[1])


def factorize(weight: Tensor, rank: int) -> Tuple[Tensor, Tensor]:
    """The best rank-``rank`` DeCEF factorisation of a conv weight, per input channel by SVD.

    Returns ``basis`` (C_in, R, kh, kw), orthonormal filters per channel, and ``coeff`` (C_out, C_in*R) with
    ``coeff[o, i*R + r] = A[o, i, r]``. Exact when rank >= min(C_out, kh*kw); components beyond the matrix
    rank are zero."""
    c_out, c_in, kh, kw = weight.shape
    if not 1 <= rank <= kh * kw:
        raise ValueError(f"leanconv: rank must be between 1 and kh*kw = {kh * kw}, got {rank}")
    u, s, vh = torch.linalg.svd(_channel_matrices(weight), full_matrices=False)  # (C_in, C_out, q), (C_in, q), (C_in, q, k^2)
    q = s.shape[1]
    keep = min(rank, q)
    basis = torch.zeros(c_in, rank, kh * kw, dtype=torch.float64)
    coeff = torch.zeros(c_out, c_in, rank, dtype=torch.float64)
    basis[:, :keep] = vh[:, :keep]
    coeff[:, :, :keep] = (u[:, :, :keep] * s[:, None, :keep]).permute(1, 0, 2)
    return (basis.reshape(c_in, rank, kh, kw).to(weight.dtype),
            coeff.reshape(c_out, c_in * rank).to(weight.dtype))


def reconstruct(basis: Tensor, coeff: Tensor) -> Tensor:
    """The dense weight (C_out, C_in, kh, kw) of a factorisation: W[o, i] = sum_r coeff[o, i*R + r] basis[i, r]."""
    c_in, rank, kh, kw = basis.shape
    c_out = coeff.shape[0]
    return torch.einsum("oir,irk->oik", coeff.reshape(c_out, c_in, rank), basis.reshape(c_in, rank, kh * kw)) \
        .reshape(c_out, c_in, kh, kw)


class LayerRank(NamedTuple):
    name: str
    in_channels: int
    out_channels: int
    kernel_size: Tuple[int, int]
    effective_rank: int
    max_rank: int


def rank_report(model: nn.Module, energy: float = 0.99) -> List[LayerRank]:
    """Effective rank of every k x k (k > 1, groups=1) conv of a model, in module order (i.e. by depth)."""
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.groups == 1 and module.kernel_size != (1, 1):
            kh, kw = module.kernel_size
            rows.append(LayerRank(name, module.in_channels, module.out_channels, (kh, kw),
                                  effective_rank(module, energy), min(module.out_channels, kh * kw)))
    return rows


def format_report(rows: List[LayerRank]) -> str:
    lines = ["| layer | C_in -> C_out | kernel | effective rank | max |", "|---|---|---|---:|---:|"]
    lines += [f"| {r.name} | {r.in_channels} -> {r.out_channels} | {r.kernel_size[0]}x{r.kernel_size[1]} | "
              f"{r.effective_rank} | {r.max_rank} |" for r in rows]
    return "\n".join(lines)


__all__ = ["effective_rank", "factorize", "reconstruct", "rank_report", "format_report", "LayerRank"]
