"""Every leanconv module kind, declared once: how to build it (inside a model that owns any shared state, as a
user would) and an input for it. The module-contract suite (test_module_contract.py) runs over all of them."""
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from torch import nn

from leanconv.nn import (AnchoredConv2d, ConvAnchor, EigenConv2d, FilterSummaryConv2d, GeneratedConv2d, GeneratedLinear,
                         GroupedConv2d, MultigridBlock, MultigridConv2d, ParameterRing)


class RingModel(nn.Module):
    """A ring and the generated layers drawing on it, registered the documented way (model.ring = ring)."""

    def __init__(self, make_layers, ring_size=40, seed=3):
        super().__init__()
        self.ring = ParameterRing(ring_size, seed=seed)
        self.layers = nn.Sequential(*make_layers(self.ring))

    def forward(self, x):
        return self.layers(x)


class AnchorModel(nn.Module):
    """An anchor and the shared-weight layers using it, registered the documented way (model.anchor = anchor)."""

    def __init__(self, make_layers, channels=4, kernel_size=3):
        super().__init__()
        self.anchor = ConvAnchor(channels, kernel_size)
        self.layers = nn.Sequential(*make_layers(self.anchor))

    def forward(self, x):
        return self.layers(x)


@dataclass
class ModuleSpec:
    name: str
    build: Callable[[], nn.Module]
    input_shape: Tuple[int, ...]
    conv: bool = True  # materialize() gives an nn.Conv2d (or the model holds such layers)
    smooth: bool = True  # False: a straight-through quantiser makes finite differences meaningless
    materializable: bool = True  # False: no single dense layer computes the same (a V-cycle with BatchNorms)
    batch_norm: bool = False  # True: holds BatchNorms (per-sample gradients then use eval mode, as torch.func asks)
    # The C++ twin, through leanconv._C.cpp: cpp(cpp_namespace) -> (forward, {state_dict name: C++ tensor}).
    cpp: Optional[Callable] = None

    def layer(self, model: nn.Module) -> nn.Module:
        return model.layers[0] if isinstance(model, (RingModel, AnchorModel)) else model


def _state(module, prefix=""):
    return {prefix + k: v for k, v in [*module.named_parameters(), *module.named_buffers()]}


def _cpp_ring_model(make_layer):
    """A C++ ring and one C++ layer on it, named as RingModel names its parts."""
    def build(cpp):
        ring = cpp.ParameterRing(40, 3)
        layer = make_layer(cpp, ring.cpp_module)
        return layer.forward, {**_state(ring, "ring."), **_state(layer, "layers.0.")}
    return build


def _cpp_anchor_model(make_layer, channels=4, kernel_size=3):
    """A C++ anchor and one C++ layer using it, named as AnchorModel names its parts."""
    def build(cpp):
        anchor = cpp.ConvAnchor(channels, kernel_size)
        layer = make_layer(cpp, anchor.cpp_module)
        return layer.forward, {**_state(anchor, "anchor."), **_state(layer, "layers.0.")}
    return build


def _cpp_layer(make_layer):
    def build(cpp):
        layer = make_layer(cpp)
        return layer.forward, _state(layer)
    return build


MODULES = [
    ModuleSpec("shared_conv_rotated", lambda: AnchorModel(lambda a: [AnchoredConv2d(a, rotate=1)]), (2, 4, 6, 6),
               cpp=_cpp_anchor_model(lambda cpp, anchor: cpp.AnchoredConv2d(anchor, rotate=1))),
    # A small image: the activations (2*4*2*3) are smaller than the anchor (4*4*3*3) and are rotated instead.
    ModuleSpec("shared_conv_rotated_small_image", lambda: AnchorModel(lambda a: [AnchoredConv2d(a, rotate=3)]),
               (2, 4, 2, 3), cpp=_cpp_anchor_model(lambda cpp, anchor: cpp.AnchoredConv2d(anchor, rotate=3))),
    ModuleSpec("shared_conv_strided", lambda: AnchorModel(lambda a: [AnchoredConv2d(a, stride=2, padding=2, dilation=2,
                                                                                    rotate=2)]), (2, 4, 7, 6),
               cpp=_cpp_anchor_model(lambda cpp, anchor: cpp.AnchoredConv2d(anchor, stride=2, padding=2, dilation=2,
                                                                            rotate=2))),
    ModuleSpec("shared_conv_strided_reflect",
               lambda: AnchorModel(lambda a: [AnchoredConv2d(a, stride=2, padding=2, dilation=2, rotate=3,
                                                            padding_mode="reflect")]), (2, 4, 7, 6)),
    ModuleSpec("generated_conv", lambda: RingModel(lambda r: [GeneratedConv2d(r, 3, 4, 3, padding=1)]), (2, 3, 6, 6),
               cpp=_cpp_ring_model(lambda cpp, ring: cpp.GeneratedConv2d(ring, 3, 4, 3, padding=1))),
    ModuleSpec("generated_conv_same_reflect",
               lambda: RingModel(lambda r: [GeneratedConv2d(r, 3, 4, 4, padding="same", padding_mode="reflect")]),
               (2, 3, 6, 7)),
    ModuleSpec("generated_linear", lambda: RingModel(lambda r: [GeneratedLinear(r, 5, 3)]), (2, 5), conv=False,
               cpp=_cpp_ring_model(lambda cpp, ring: cpp.GeneratedLinear(ring, 5, 3))),
    ModuleSpec("filter_summary_gather", lambda: FilterSummaryConv2d(8, 8, 3, padding=1, path="gather"), (2, 8, 5, 5),
               cpp=_cpp_layer(lambda cpp: cpp.FilterSummaryConv2d(8, 8, 3, padding=1, path="gather"))),
    ModuleSpec("filter_summary_direct", lambda: FilterSummaryConv2d(8, 8, 3, stride=2, padding=1, path="direct"),
               (2, 8, 5, 5), cpp=_cpp_layer(lambda cpp: cpp.FilterSummaryConv2d(8, 8, 3, stride=2, padding=1,
                                                                                   path="direct"))),
    ModuleSpec("filter_summary_same_circular",
               lambda: FilterSummaryConv2d(8, 6, 2, padding="same", padding_mode="circular", compression=4),
               (2, 8, 5, 6)),
    ModuleSpec("filter_summary_quantised", lambda: FilterSummaryConv2d(8, 8, 3, padding=1, quant_bits=4),
               (2, 8, 5, 5), smooth=False,
               cpp=_cpp_layer(lambda cpp: cpp.FilterSummaryConv2d(8, 8, 3, padding=1, quant_bits=4))),
    ModuleSpec("lowrank_fused", lambda: EigenConv2d(4, 6, 3, stride=2, padding=1, rank=3, path="fused"), (2, 4, 6, 6),
               cpp=_cpp_layer(lambda cpp: cpp.EigenConv2d(4, 6, 3, rank=3, stride=2, padding=1, path="fused"))),
    ModuleSpec("lowrank_materialized", lambda: EigenConv2d(4, 6, 3, padding=1, rank=3, path="materialized"),
               (2, 4, 6, 6), cpp=_cpp_layer(lambda cpp: cpp.EigenConv2d(4, 6, 3, rank=3, padding=1,
                                                                         path="materialized"))),
    ModuleSpec("lowrank_valid_replicate",
               lambda: EigenConv2d(4, 5, 3, stride=2, padding="valid", padding_mode="replicate", rank=2, path="fused"),
               (2, 4, 7, 6)),
    ModuleSpec("multigrid_grouped_conv_kernel", lambda: GroupedConv2d(8, 12, 3, stride=2, padding=1, groups=4, path="kernel"),
               (2, 8, 7, 6), cpp=_cpp_layer(lambda cpp: cpp.GroupedConv2d(8, 12, 3, stride=2, padding=1, groups=4,
                                                                           path="kernel"))),
    ModuleSpec("multigrid_grouped_conv_auto", lambda: GroupedConv2d(8, 8, 1, groups=2), (2, 8, 5, 5),
               cpp=_cpp_layer(lambda cpp: cpp.GroupedConv2d(8, 8, 1, groups=2))),
    ModuleSpec("multigrid_block", lambda: MultigridBlock(4, 8, stride=2, group_size=4, coarsest=4), (2, 4, 5, 5),
               materializable=False, batch_norm=True,
               cpp=_cpp_layer(lambda cpp: cpp.MultigridBlock(4, 8, stride=2, group_size=4, coarsest=4))),
    ModuleSpec("multigrid_conv", lambda: MultigridConv2d(8, 8, 3, group_size=4, coarsest=4), (2, 8, 5, 5),
               materializable=False, batch_norm=True,
               cpp=_cpp_layer(lambda cpp: cpp.MultigridConv2d(8, 8, 3, group_size=4, coarsest=4))),
    ModuleSpec("multigrid_conv_strided_pointwise",
               lambda: MultigridConv2d(8, 16, 1, stride=2, group_size=4, coarsest=4), (2, 8, 5, 5),
               materializable=False, batch_norm=True,
               cpp=_cpp_layer(lambda cpp: cpp.MultigridConv2d(8, 16, 1, stride=2, group_size=4, coarsest=4))),
    ModuleSpec("lowrank_same_zeros_even_kernel",
               lambda: EigenConv2d(3, 4, 2, padding="same", rank=2, path="fused"), (1, 3, 5, 5)),
]

MODULE_IDS = [spec.name for spec in MODULES]
