"""Swap the convs of an existing (possibly trained) model for a compact family, initialised from their weights.

``leanconv.convert(model, family, **options)`` replaces every ``nn.Conv2d`` with groups=1 and a kernel larger
than 1x1 (the convs the papers compress; pointwise and depthwise convs stay) by the family's layer built with
``from_conv``, so a trained model keeps as much of its function as the family can hold:

- ``'lowrank'``: :meth:`leanconv.nn.EigenConv2d.from_conv` (per-channel SVD); options ``rank`` (None: each
  layer's effective rank at ``energy``), ``energy`` (default 0.99), ``path``.
- ``'filter_summary'``: :meth:`leanconv.nn.FilterSummaryConv2d.from_conv` (least-squares summary); options
  ``compression``, ``quant_bits``, ``path``. Layers whose filters are too short for the compression stay dense.

``skip``: names (as in ``named_modules()``) of convs to leave alone, e.g. a stem.
The generated-weight family has no conversion: its weights are a permutation of a ring, not a function of
a trained weight.
"""
import copy
from typing import Callable, Dict, Iterable

from torch import nn

from .nn import EigenConv2d, FilterSummaryConv2d
from .nn.eigen import checked_rank


def _lowrank(conv: nn.Conv2d, rank=None, energy: float = 0.99, path: str = "auto") -> nn.Module:
    if rank is not None:  # as the model builders do: a rank above k*k is the full rank k*k
        rank = min(checked_rank(rank, conv.kernel_size[0] * conv.kernel_size[1]),
                   conv.kernel_size[0] * conv.kernel_size[1])
    return EigenConv2d.from_conv(conv, rank=rank, energy=energy, path=path)


def _filter_summary(conv: nn.Conv2d, compression: float = 9, quant_bits=None, path: str = "auto") -> nn.Module:
    if conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1] < compression:
        return conv
    return FilterSummaryConv2d.from_conv(conv, compression=compression, quant_bits=quant_bits, path=path)


FAMILIES: Dict[str, Callable[..., nn.Module]] = {"lowrank": _lowrank, "filter_summary": _filter_summary}


def _convertible(module: nn.Module) -> bool:
    return type(module) is nn.Conv2d and module.groups == 1 and module.kernel_size != (1, 1)


def convert(model: nn.Module, family: str, *, inplace: bool = False, skip: Iterable[str] = (),
            **options) -> nn.Module:
    """The model with its k x k convs replaced by ``family``'s layers initialised from them (see module doc)."""
    if family not in FAMILIES:
        raise ValueError(f"leanconv: convert supports {sorted(FAMILIES)}, got {family!r}")
    make = FAMILIES[family]
    model = model if inplace else copy.deepcopy(model)
    skip = set(skip)
    if _convertible(model) and "" not in skip:  # the model is itself one conv
        return make(model, **options)
    targets = [name for name, module in model.named_modules() if name and _convertible(module) and name not in skip]
    for name in targets:
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attribute, make(getattr(parent, attribute), **options))
    return model


__all__ = ["convert", "FAMILIES"]
