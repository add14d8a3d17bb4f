"""torch.nn modules of leanconv's compact convolution families."""
from .counting import parameter_counts
from .lowrank import EigenConv2d
from .filter_summary import FilterSummaryConv2d, fake_quantize
from .generated import GeneratedConv2d, GeneratedLinear, ParameterRing

__all__ = ["ParameterRing", "GeneratedConv2d", "GeneratedLinear", "FilterSummaryConv2d", "fake_quantize", "EigenConv2d",
           "parameter_counts"]
