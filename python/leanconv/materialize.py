"""``leanconv.materialize(model)``: the same model with every leanconv conv layer replaced by plain PyTorch layers
computing the same outputs, for deployment (export, another runtime) or inspection.

- Each layer with a ``materialize()`` method (GeneratedConv2d/Linear, FilterSummaryConv2d, EigenConv2d,
  AnchoredConv2d, GroupedConv2d) becomes the ``nn.Conv2d`` / ``nn.Linear`` it computes; the shared holders those
  layers drew on (rings, anchors) are then unused and removed.
- A MultigridBlock or MultigridConv2d, which no single conv computes (its levels hold BatchNorms and ReLUs),
  becomes its plain-PyTorch composition (its ``materialize()``: ``leanconv.nn.multigrid_plain.PlainMultigrid``,
  ``nn.Conv2d``, ``nn.BatchNorm2d`` and ReLU, with copies of its parameters and buffers).

BatchNorm tails fused with a residual (``leanconv.nn.FusedBatchNorm2d``, taking ``residual=`` in the forward) keep
their module: they are BatchNorm2d subclasses whose call signature the surrounding block relies on
(``leanconv.shared.fold`` folds them for inference).
"""
import copy

import torch
from torch import nn

from .nn._holder import SharedHolder


def _plain(module: nn.Module) -> nn.Module:
    if not (hasattr(module, "materialize") and callable(module.materialize)):
        return module
    plain = module.materialize()
    _keep_frozen(plain, module)
    # The plain layers keep the mode of what they replace (an eval-mode model stays in eval mode, and so does an
    # eval-mode part of a training model): BatchNorm computes another function in each.
    return plain.train(module.training)


def _keep_frozen(plain: nn.Module, module: nn.Module) -> None:
    """The plain layer's weight (bias) is frozen where everything the layer's weight (bias) is computed from is
    frozen: a frozen part of a model stays frozen."""
    for attribute in ("weight", "bias"):
        target = getattr(plain, attribute, None)
        if isinstance(target, nn.Parameter):
            with torch.enable_grad():  # (materialize may run under no_grad: the question is about the parameters)
                source = getattr(module, attribute, None)
                target.requires_grad_(source is not None and source.requires_grad)


def materialize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The model with its leanconv conv layers replaced by plain PyTorch layers of equal outputs (see the module
    doc); every module keeps its mode, and in eval mode the outputs are equal, in training mode too (the BatchNorms'
    statistics are copied)."""
    model = model if inplace else copy.deepcopy(model)
    replaced = _plain(model)
    if replaced is not model:
        return replaced
    replaced_prefixes = []
    for name, module in list(model.named_modules()):
        if not name or any(name.startswith(prefix) for prefix in replaced_prefixes):
            continue  # the model itself, or inside a module already replaced
        plain = _plain(module)
        if plain is not module:
            replaced_prefixes.append(name + ".")
            parent_name, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attribute, plain)
    # The holders (rings, anchors) served the replaced layers only.
    for name, module in list(model.named_modules()):
        if isinstance(module, SharedHolder) and name:
            parent_name, _, attribute = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            if isinstance(parent, (nn.ModuleDict, nn.ModuleList)):
                del parent[attribute if isinstance(parent, nn.ModuleDict) else int(attribute)]
            else:
                delattr(parent, attribute)
    for name, module in list(model.named_modules()):  # containers the holders left empty
        if name and isinstance(module, (nn.ModuleDict, nn.ModuleList)) and len(module) == 0:
            parent_name, _, attribute = name.rpartition(".")
            delattr(model.get_submodule(parent_name) if parent_name else model, attribute)
    return model


__all__ = ["materialize"]
