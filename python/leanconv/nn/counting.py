"""What a model costs: its parameters (learned, each shared tensor once, and its dense equivalent) and the
multiply-adds of one forward pass, each layer reporting its own (``multiply_adds(input, output)``)."""
from typing import Tuple

import torch
from torch import nn

from ._holder import SharedHolder


def parameter_counts(model: nn.Module) -> Tuple[int, int]:
    """Returns ``(learned, dense)``: the model's learned parameters, each shared tensor counted once, and the
    parameters the same model would have with every leanconv layer replaced by its dense equivalent."""
    learned = sum(p.numel() for p in model.parameters())
    dense = learned
    for module in model.modules():
        if hasattr(module, "num_dense_params") and hasattr(module, "num_learned_params"):
            dense += module.num_dense_params() - module.num_learned_params()
    return learned, dense


def conv_multiply_adds(module: nn.Module, output: torch.Tensor) -> int:
    """A conv with a (C_out, C_in / groups, kh, kw) weight, stored or computed (generated, anchored, gathered): each
    output element sums C_in / groups * kh * kw products."""
    kh, kw = module.kernel_size
    return output.numel() * module.in_channels // getattr(module, "groups", 1) * kh * kw


def _layer_multiply_adds(module: nn.Module, inputs, output) -> int:
    if hasattr(module, "multiply_adds"):
        return module.multiply_adds(inputs[0], output)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return conv_multiply_adds(module, output)


def multiply_adds(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one forward of ``model(x)``: the sum over its layers, each counting its own (a leanconv layer's
    ``multiply_adds(input, output)``; ``nn.Conv2d`` and ``nn.Linear`` from their shapes; a layer's sublayers are
    counted where it has no method of its own, as a multigrid V-cycle's grouped convs). A leanconv layer that neither
    reports its multiply-adds nor holds layers that do is an error, not a silent zero."""
    counted = [m for m in model.modules() if hasattr(m, "multiply_adds") or isinstance(m, (nn.Conv2d, nn.Linear))]
    inside_counted = {id(sub) for m in counted if hasattr(m, "multiply_adds") for sub in m.modules() if sub is not m}
    counted = [m for m in counted if id(m) not in inside_counted]
    _check_every_layer_is_counted(model, {id(m) for m in counted})
    total = [0]

    def count(module, inputs, output):
        total[0] += _layer_multiply_adds(module, inputs, output)

    hooks = [m.register_forward_hook(count) for m in counted]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]


def is_compact_layer(module: nn.Module) -> bool:
    """A family's layer (what it puts in place of a conv or a block: it counts the dense parameters it stands for),
    not a holder the layers share (a ring, an anchor)."""
    return hasattr(module, "num_dense_params") and not isinstance(module, SharedHolder)


def _check_every_layer_is_counted(model: nn.Module, counted: set) -> None:
    for name, module in model.named_modules():
        if not is_compact_layer(module):
            continue  # (a ring or anchor: its users count the work)
        if not any(id(m) in counted for m in module.modules()):
            raise TypeError(f"leanconv: {type(module).__name__} at {name or 'the model'} reports no multiply-adds: "
                            f"give it a multiply_adds(input, output) method")


__all__ = ["parameter_counts", "multiply_adds"]
