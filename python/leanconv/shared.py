"""Tools of the shared-weight (DACNN) family: inference folding.

Folding a BatchNorm into the conv before it is the usual inference rewrite, but a shared anchor is used by many
convs, each with its own BatchNorm: folding into the weight would give every use its own copy and undo the
sharing. :func:`fold` folds each BatchNorm into a per-use scale and shift instead, applied by the block epilogue
(one pass with the residual add and the ReLU), and keeps one copy of each anchor.
"""
from torch import nn

from .nn.block_epilogue import FoldedBatchNorm2d


def fold(model: nn.Module) -> nn.Module:
    """Puts the model in eval mode and replaces, in place, every ``nn.BatchNorm2d`` (including
    :class:`leanconv.nn.FusedBatchNorm2d`) by the :class:`leanconv.nn.FoldedBatchNorm2d` of its eval-mode function.
    A ReLU module right after a BatchNorm in an ``nn.Sequential`` is folded into the same pass. The multigrid
    modules' corrections take their folded BatchNorm as one too. The anchors and every other parameter are
    untouched (one copy each). Returns the model."""
    model.eval()
    for module in list(model.modules()):
        children = list(module.named_children())
        for i, (name, child) in enumerate(children):
            if not isinstance(child, nn.BatchNorm2d):
                continue
            next_is_relu = (isinstance(module, nn.Sequential) and i + 1 < len(children)
                            and isinstance(children[i + 1][1], nn.ReLU))
            folded = FoldedBatchNorm2d.from_batch_norm(child, relu=getattr(child, "relu", False) or next_is_relu)
            setattr(module, name, folded)
            if next_is_relu:
                setattr(module, children[i + 1][0], nn.Identity())
    return model
