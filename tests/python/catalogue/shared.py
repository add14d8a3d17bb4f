"""The shared-weight family's module kinds (its blocks run on the block epilogue's ops: catalogue/block_epilogue.py)."""

from torch import nn

from leanconv.nn import AnchoredConv2d, ConvAnchor
from catalogue._spec import ModuleSpec, _state


class AnchorModel(nn.Module):
    """An anchor and the shared-weight layers using it, registered the documented way (model.anchor = anchor)."""

    holds_shared_state = True  # ModuleSpec.layer: the layer under test is layers[0]

    def __init__(self, make_layers, channels=4, kernel_size=3):
        super().__init__()
        self.anchor = ConvAnchor(channels, kernel_size)
        self.layers = nn.Sequential(*make_layers(self.anchor))

    def forward(self, x):
        return self.layers(x)


def _cpp_anchor_model(make_layer, channels=4, kernel_size=3):
    """A C++ anchor and one C++ layer using it, named as AnchorModel names its parts."""
    def build(cpp):
        anchor = cpp.ConvAnchor(channels, kernel_size)
        layer = make_layer(cpp, anchor.cpp_module)
        return layer.forward, {**_state(anchor, "anchor."), **_state(layer, "layers.0.")}
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
]

OPS = []


# The family's layer over nn.Conv2d's argument space (test_module_contract.py): (C_in, C_out, kernel_size, **conv
# keywords) -> a model whose first layer is the family's; the anchor is C_in x C_in (C_out must equal C_in).
def CONV2D_LIKE(c_in, c_out, kernel_size, **conv_options):
    return AnchorModel(lambda anchor: [AnchoredConv2d(anchor, **conv_options)], c_in, kernel_size)
