"""torch.nn modules of leanconv's compact convolution families."""
from .counting import parameter_counts
from .block_epilogue import FoldedBatchNorm2d, FusedBatchNorm2d
from .filter_summary import FilterSummaryConv2d, fake_quantize
from .generated import GeneratedConv2d, GeneratedLinear, ParameterRing
from .lowrank import EigenConv2d
from .multigrid import GroupedConv2d, MultigridBlock, MultigridConv2d
from .shared import AnchoredConv2d, ConvAnchor, Regulator

__all__ = ["ParameterRing", "GeneratedConv2d", "GeneratedLinear", "FilterSummaryConv2d", "fake_quantize", "EigenConv2d",
           "ConvAnchor", "AnchoredConv2d", "Regulator", "FusedBatchNorm2d",
           "FoldedBatchNorm2d", "GroupedConv2d", "MultigridBlock", "MultigridConv2d", "parameter_counts"]
