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
- ``'shared'``: the k x k convs of equal shape C -> C within a stage (the first part of their module name under
  any wrapper, e.g. ``layer2`` of a torchvision ResNet, of its ``torch.compile`` or of its DataParallel) that agree
  in bias, dtype, device and training share one :class:`leanconv.nn.ConvAnchor` initialised from their mean
  weight (and mean bias); each keeps its stride, padding and dilation; option ``rotate``. The anchors are
  registered on the model as ``model.anchors`` (``model.leanconv_anchors`` where the model's own ``anchors`` is
  something else, say a detector's anchor boxes). Width-changing and 1x1 convs stay dense.
- ``'multigrid'``: a fresh :class:`leanconv.nn.MultigridConv2d` of each conv's shape (options ``group_size``,
  ``coarsest``); nothing is copied, since a V-cycle has no counterpart of a dense weight.

Kept dense and named in the summary: convs with hooks or parametrizations (spectral_norm, weight_norm: a layer
made from the weight alone would drop them) and distinct convs sharing one weight Parameter. A conv used in several
places becomes one layer used in the same places; a frozen conv gives a frozen layer, an eval-mode one an eval-mode
layer. ``skip``: names (as in ``named_modules()``) of convs, or of modules whose convs, to leave alone (e.g. a stem);
a name that is no module, or holds no conv, is refused. Every check and every new layer comes before the first
change, so a failure (naming its layer) leaves even an ``inplace`` model as it was.

The generated-weight family has no conversion: its weights are a permutation of a ring, not a function of
a trained weight. The families and their conversions are registered in :mod:`leanconv.families`.
"""
import copy
from typing import Dict, Iterable, List, Tuple

import torch
from torch import nn

from ._model_places import Places, checked_skip, free_attribute, is_skipped, places_of, stage_of, unwrapped_root
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


def _hooked(module: nn.Module) -> bool:
    """Whether something beyond the conv's weight shapes what it computes or what it gives to others: forward
    (pre-)hooks (torch.nn.utils.spectral_norm computes the used weight in one), backward hooks, or a
    parametrization (weight_norm, orthogonal): a layer made from ``conv.weight`` alone would drop them."""
    hooks = (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks,
             getattr(module, "_backward_pre_hooks", {}))
    return any(len(h) for h in hooks) or torch.nn.utils.parametrize.is_parametrized(module)


def _learned(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _listed(names, limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _Plan:
    """The model's convs sorted before anything changes: ``targets`` (convertible, by identity, with every place),
    and those kept with a reason: ``hooked``, ``tied_weights`` (distinct convs sharing a weight Parameter), and
    ``unknown`` (subclasses that override forward)."""

    def __init__(self, model: nn.Module, skip: List[str]):
        places = places_of(model)
        convs = [p for p in places.values() if _candidate(p.module) and not is_skipped(p.names, skip)]
        self.unknown = [p for p in convs if not _computes_conv2d(p.module)]
        convs = [p for p in convs if _computes_conv2d(p.module)]
        self.hooked = [p for p in convs if _hooked(p.module)]
        plain = [p for p in convs if p not in self.hooked]
        users = {}
        for p in plain:
            users.setdefault(id(p.module.weight), []).append(p)
        self.tied_weights = [p for p in plain if len(users[id(p.module.weight)]) > 1]
        self.targets: List[Places] = [p for p in plain if p not in self.tied_weights]


def _layers_from_convs(chosen, targets: List[Places], options) -> Dict[int, nn.Module]:
    """Each target conv's layer of a per-conv family (or the conv itself where the family keeps it dense), made
    before the model is touched; a failure names the layer."""
    layers = {}
    for place in targets:
        conv = place.module
        try:
            layer = chosen.from_conv(conv, **options)
        except Exception as error:  # re-raised with the layer's name: the model is still unchanged
            raise _named(error, place.name) from error
        if layer is not conv:
            _keep_training_state(layer, conv)
        layers[id(conv)] = layer
    return layers


def _named(error: Exception, name: str) -> Exception:
    message = f"leanconv.convert: layer {name!r}: {str(error).removeprefix('leanconv: ')}"
    try:
        return type(error)(message)
    except Exception:  # an exception type with another constructor
        return RuntimeError(message)


def _keep_training_state(layer: nn.Module, conv: nn.Conv2d) -> None:
    """The layer is trained as the conv was: frozen where the conv's weight (its bias) was frozen, and in its mode."""
    own_bias = getattr(layer, "bias", None)
    for parameter in layer.parameters():
        source = conv.bias if parameter is own_bias and conv.bias is not None else conv.weight
        parameter.requires_grad_(source.requires_grad)
    layer.train(conv.training)


def convert(model: nn.Module, family: str, *, inplace: bool = False, skip: Iterable[str] = (), verbose: bool = True,
            **options) -> nn.Module:
    """The model with its k x k convs replaced by ``family``'s layers initialised from them (see module doc); with
    ``verbose`` it prints a summary: convs replaced, those kept and why, learned parameters before and after.
    Every check and every new layer comes before the first change: a failure leaves the model as it was."""
    chosen = _family(family)
    skip = checked_skip(model, skip, lambda m: isinstance(m, nn.Conv2d))
    learned_before = _learned(model)
    model = model if inplace else copy.deepcopy(model)
    plan = _Plan(model, skip)
    if chosen.tie is not None:
        converted, anchors_at = _tie(chosen, model, plan.targets, options)
    else:
        converted, anchors_at = _replace(chosen, model, plan.targets, options), None
    if verbose:
        print(_summary(family, learned_before, converted, plan, anchors_at))
    return converted


def _family(family: str):
    if family not in FAMILIES or not FAMILIES[family].convertible:
        reason = f": {FAMILIES[family].not_convertible}" if family in FAMILIES else ""
        raise ValueError(f"leanconv: convert supports {convertible_families()}, got {family!r}{reason}")
    return FAMILIES[family]


def _replace(chosen, model: nn.Module, targets: List[Places], options) -> nn.Module:
    layers = _layers_from_convs(chosen, targets, options)
    for place in targets:
        layer = layers[id(place.module)]
        if place.names == [""]:  # the model is itself one conv
            return layer
        for parent, attribute in place.slots:  # every place the conv sits (a tied conv stays one layer)
            setattr(parent, attribute, layer)
    return model


def _tie(chosen, model: nn.Module, targets: List[Places], options) -> Tuple[nn.Module, str]:
    """A family whose layers share a holder: the family ties the convs, then the anchors are registered on the
    model under its wrappers (``model.anchors``, or ``model.leanconv_anchors`` where the model's own ``anchors``
    is something else) and the layers placed."""
    prefix, root = unwrapped_root(model)
    targets = [p for p in targets if p.names != [""]]  # a bare conv has no model to hold an anchor
    try:
        anchors, layers = chosen.tie([(stage_of(p.name, prefix), p.module) for p in targets], **options)
    except Exception as error:
        raise _named(error, "(the tied convs)") from error
    attribute = free_attribute(root, "anchors", lambda value: isinstance(value, type(anchors)))
    holder = getattr(root, attribute, None) or anchors
    if holder is not anchors:  # a model converted twice keeps its earlier anchors
        for key, anchor in anchors.items():
            unique = key
            while unique in holder:
                unique += "_"
            holder[unique] = anchor
    for place in targets:
        layer = layers.get(id(place.module))
        if layer is not None:
            layer.train(place.module.training)
            for parent, slot in place.slots:
                setattr(parent, slot, layer)
    if anchors and getattr(root, attribute, None) is not holder:
        setattr(root, attribute, holder)
    # Named in the summary only where the model's own ``anchors`` made another attribute necessary.
    return model, None if attribute == "anchors" else f"{prefix}{attribute}"


def _summary(family: str, learned_before: int, after: nn.Module, plan: _Plan, anchors_at) -> str:
    """What was replaced, what was kept and why, and the learned parameters before and after."""
    still = {id(m) for m in after.modules()}
    kept = [p.name for p in plan.targets if id(p.module) in still]
    learned_after = _learned(after)
    line = (f"leanconv.convert(model, {family!r}): replaced {len(plan.targets) - len(kept)} of {len(plan.targets)} "
            f"convertible convs; learned parameters {learned_before:,} -> {learned_after:,} "
            f"({learned_before / max(learned_after, 1):.2f}x fewer)")
    if anchors_at and len(plan.targets) > len(kept):
        line += f"\n  anchors registered as model.{anchors_at} (the model's own 'anchors' is something else)"
    if kept:
        line += f"\n  kept dense, the family does not apply to their shape: {_listed(kept)}"
    if plan.hooked:
        line += ("\n  kept dense, convs with hooks or parametrizations (a layer made from their weight alone would "
                 f"drop them): {_listed([p.name for p in plan.hooked])}")
    if plan.tied_weights:
        line += ("\n  kept dense, distinct convs sharing one weight Parameter (separate layers would untie them): "
                 f"{_listed([p.name for p in plan.tied_weights])}")
    if plan.unknown:
        line += ("\n  skipped, nn.Conv2d subclasses that override forward (their function is not nn.Conv2d's, so "
                 f"no layer of the family computes it): {_listed([f'{p.name} ({type(p.module).__name__})' for p in plan.unknown])}")
    return line


__all__ = ["convert", "convertible_families"]
