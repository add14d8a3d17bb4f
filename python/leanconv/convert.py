"""Swap the convs of an existing (possibly trained) model for a compact family, initialised from their weights.

``leanconv.convert(model, family, **options)`` replaces every ``nn.Conv2d`` with groups=1 and a kernel larger
than 1x1 (the convs the papers compress; pointwise and depthwise convs stay) by the family's layer built with
``from_conv``, so a trained model keeps as much of its function as the family can hold:

- ``'lowrank'``: :meth:`leanconv.nn.EigenConv2d.from_conv` (per-channel SVD); options ``rank`` (None: each
  layer's effective rank at ``energy``), ``energy`` (default 0.99), ``path``.
- ``'filter_summary'``: :meth:`leanconv.nn.FilterSummaryConv2d.from_conv` (least-squares summary); options
  ``compression``, ``quant_bits``, ``path``. Layers whose filters are too short for the compression stay dense.

- ``'shared'``: the k x k convs of equal shape C -> C within a stage (the first part of their module name, e.g.
  ``layer2`` of a torchvision ResNet or ``blocks`` here) share one :class:`leanconv.nn.ConvAnchor` initialised
  from their mean weight (and mean bias); each keeps its stride, padding and dilation; option ``rotate``. The
  anchors are registered on the model as ``model.anchors``. Width-changing and 1x1 convs stay dense.

``skip``: names (as in ``named_modules()``) of convs to leave alone, e.g. a stem.
The generated-weight family has no conversion: its weights are a permutation of a ring, not a function of
a trained weight. The families and their conversions are registered in :mod:`leanconv.families`.
"""
import copy
from typing import Iterable

from torch import nn

from .families import FAMILIES


def convertible_families():
    return sorted(name for name, f in FAMILIES.items() if f.convertible)


def _convertible(module: nn.Module) -> bool:
    return type(module) is nn.Conv2d and module.groups == 1 and module.kernel_size != (1, 1)


def _learned(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _summary(family: str, before: nn.Module, after: nn.Module, considered: int) -> str:
    """One line: how many convs were replaced and the learned parameters before and after."""
    replaced = sum(1 for name, m in before.named_modules() if _convertible(m) and not _same_module(after, name, m))
    learned_before, learned_after = _learned(before), _learned(after)
    return (f"leanconv.convert(model, {family!r}): replaced {replaced} of {considered} convertible convs; learned "
            f"parameters {learned_before:,} -> {learned_after:,} ({learned_before / max(learned_after, 1):.2f}x fewer)")


def _same_module(model: nn.Module, name: str, original: nn.Module) -> bool:
    """Whether ``model`` still has at ``name`` a plain conv of the original's shape (the conversion kept it)."""
    try:
        current = model.get_submodule(name) if name else model
    except AttributeError:
        return False
    return type(current) is nn.Conv2d and current.weight.shape == original.weight.shape


def convert(model: nn.Module, family: str, *, inplace: bool = False, skip: Iterable[str] = (), verbose: bool = True,
            **options) -> nn.Module:
    """The model with its k x k convs replaced by ``family``'s layers initialised from them (see module doc); with
    ``verbose`` it prints a one-line summary (convs replaced, learned parameters before and after)."""
    original = model if not inplace else copy.deepcopy(model)
    converted = _convert(model, family, inplace=inplace, skip=skip, **options)
    if verbose:
        considered = sum(1 for name, m in original.named_modules() if _convertible(m) and name not in set(skip))
        print(_summary(family, original, converted, considered))
    return converted


def _convert(model: nn.Module, family: str, *, inplace: bool, skip: Iterable[str], **options) -> nn.Module:
    if family not in FAMILIES or not FAMILIES[family].convertible:
        reason = f": {FAMILIES[family].not_convertible}" if family in FAMILIES else ""
        raise ValueError(f"leanconv: convert supports {convertible_families()}, got {family!r}{reason}")
    chosen = FAMILIES[family]
    model = model if inplace else copy.deepcopy(model)
    skip = set(skip)
    targets = [name for name, module in model.named_modules() if name and _convertible(module) and name not in skip]
    if chosen.tie is not None:  # a shared family: group the convs, then give each group one holder
        groups = {}
        for name in targets:
            conv = model.get_submodule(name)
            if conv.in_channels == conv.out_channels:
                key = f"{name.split('.')[0]}_{conv.in_channels}x{conv.kernel_size[0]}x{conv.kernel_size[1]}"
                groups.setdefault(key.replace(".", "_"), []).append((name, conv))
        chosen.tie(model, groups, **options)
        return model
    make = chosen.from_conv
    if _convertible(model) and "" not in skip:  # the model is itself one conv
        return make(model, **options)
    for name in targets:
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attribute, make(getattr(parent, attribute), **options))
    return model


__all__ = ["convert", "convertible_families"]
