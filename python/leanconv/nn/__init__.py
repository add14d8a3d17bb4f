"""torch.nn modules of leanconv's compact convolution families."""
from .counting import parameter_counts
from .generated import GeneratedConv2d, GeneratedLinear, ParameterRing

__all__ = ["ParameterRing", "GeneratedConv2d", "GeneratedLinear", "parameter_counts"]
