"""leanconv's operators, one module per family; importing this package registers every op's fake kernel."""
from .block_epilogue import affine_epilogue, batch_norm_epilogue, fused_batch_norm
from .filter_summary import filter_summary_weight, filter_summary_weight_backward, segment_conv2d, shifted_sum
from .generated import generate_weights, generate_weights_backward
from .multigrid import grouped_conv2d, grouped_conv2d_choices, grouped_conv2d_uses_kernel
from .lowrank import eigen_conv2d, eigen_conv2d_fused_is_cheaper, eigen_weight

__all__ = ["generate_weights", "generate_weights_backward", "filter_summary_weight", "filter_summary_weight_backward",
           "shifted_sum", "segment_conv2d", "eigen_conv2d", "eigen_conv2d_fused_is_cheaper", "eigen_weight",
           "batch_norm_epilogue", "affine_epilogue", "fused_batch_norm",
           "grouped_conv2d", "grouped_conv2d_uses_kernel", "grouped_conv2d_choices"]
