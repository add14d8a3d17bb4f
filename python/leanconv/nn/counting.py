"""Parameter counts of a model: learned (each shared tensor once) and its dense equivalent."""
from typing import Tuple

from torch import nn


def parameter_counts(model: nn.Module) -> Tuple[int, int]:
    """Returns ``(learned, dense)``: the model's learned parameters, each shared tensor counted once, and the
    parameters the same model would have with every leanconv layer replaced by its dense equivalent."""
    learned = sum(p.numel() for p in model.parameters())
    dense = learned
    for module in model.modules():
        if hasattr(module, "num_dense_params") and hasattr(module, "num_learned_params"):
            dense += module.num_dense_params() - module.num_learned_params()
    return learned, dense


__all__ = ["parameter_counts"]
