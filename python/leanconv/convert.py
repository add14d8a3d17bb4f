"""Swap the convs of an existing (possibly trained) model for a compact family, initialised from their weights.

``leanconv.convert(model, family, **options)`` replaces every ``nn.Conv2d`` with groups=1 and a kernel larger
than 1x1 (the convs the papers compress; pointwise and depthwise convs stay) by the family's layer built with
``from_conv``, so a trained model keeps as much of its function as the family can hold. Subclasses of
``nn.Conv2d`` are converted when they compute nn.Conv2d's function (they do not override ``forward``); the others
(e.g. convs with a dynamic "same" padding) are kept and named in the printed summary, with every conv the family
kept dense:

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


def _computes_conv2d(module: nn.Module) -> bool:
    """Whether an ``nn.Conv2d`` (or subclass) computes nn.Conv2d's own function: a subclass that overrides
    ``forward`` or ``_conv_forward`` (e.g. a dynamic "same" padding) computes something else."""
    kind = type(module)
    return kind.forward is nn.Conv2d.forward and kind._conv_forward is nn.Conv2d._conv_forward


def _candidate(module: nn.Module) -> bool:
    """A k x k conv with groups = 1 (the convs the papers compress; pointwise and depthwise convs stay)."""
    return isinstance(module, nn.Conv2d) and module.groups == 1 and module.kernel_size != (1, 1)


def _convertible(module: nn.Module) -> bool:
    return _candidate(module) and _computes_conv2d(module)


def _learned(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _listed(names, limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _summary(family: str, learned_before: int, after: nn.Module, targets, unknown) -> str:
    """What was replaced, what was kept and why, and the learned parameters before and after."""
    kept = [name for name in targets if isinstance(after.get_submodule(name) if name else after, nn.Conv2d)]
    learned_after = _learned(after)
    line = (f"leanconv.convert(model, {family!r}): replaced {len(targets) - len(kept)} of {len(targets)} convertible "
            f"convs; learned parameters {learned_before:,} -> {learned_after:,} "
            f"({learned_before / max(learned_after, 1):.2f}x fewer)")
    if kept:
        line += f"\n  kept dense, the family does not apply to their shape: {_listed(kept)}"
    if unknown:
        line += ("\n  skipped, nn.Conv2d subclasses that override forward (their function is not nn.Conv2d's, so "
                 f"no layer of the family computes it): {_listed([f'{n} ({t})' for n, t in unknown])}")
    return line


def convert(model: nn.Module, family: str, *, inplace: bool = False, skip: Iterable[str] = (), verbose: bool = True,
            **options) -> nn.Module:
    """The model with its k x k convs replaced by ``family``'s layers initialised from them (see module doc); with
    ``verbose`` it prints a summary: convs replaced, those kept and why, learned parameters before and after."""
    skip = set(skip)
    candidates = [(name, m) for name, m in model.named_modules() if _candidate(m) and name not in skip]
    targets = [name for name, m in candidates if _computes_conv2d(m)]
    unknown = [(name, type(m).__name__) for name, m in candidates if not _computes_conv2d(m)]
    learned_before = _learned(model)
    converted = _convert(model, family, inplace=inplace, skip=skip, **options)
    if verbose:
        print(_summary(family, learned_before, converted, targets, unknown))
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
