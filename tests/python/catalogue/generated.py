"""The generated-weight family's ops: the ring generation and its adjoint. Each op: sample arguments and an independent
float64 reference (op_catalogue.py collects every family's OPS)."""

import torch
from torch import nn

from leanconv.reference.generated import ring_indices_and_signs
from leanconv.nn import GeneratedConv2d, GeneratedLinear, ParameterRing
from catalogue._spec import ModuleSpec, OpSpec, _randn, _state


def generate_weights_reference(ring, seed, total, offset, shape, scale):
    numel = 1
    for s in shape:
        numel *= s
    index, sign = ring_indices_and_signs(seed, total, ring.numel(), offset, numel)
    return (scale * sign.to(ring.dtype) * ring[index.to(ring.device)]).view(shape)


def generate_weights_backward_reference(grad, ring_size, seed, total, offset, scale):
    index, sign = ring_indices_and_signs(seed, total, ring_size, offset, grad.numel())
    contributions = scale * sign.to(grad.dtype) * grad.flatten()
    return torch.zeros(ring_size, dtype=grad.dtype, device=grad.device).index_add(0, index.to(grad.device),
                                                                                   contributions)


def _generate_samples(device, dtype):
    return [(_randn(n, device=device, dtype=dtype), seed, total, offset, shape, scale)
            for n, seed, total, offset, shape, scale in [
                (20, 3, 50, 5, [24], 0.7), (1, 0, 7, 0, [7], 1.0), (97, -5, 1000, 100, [6, 4, 3, 3], 0.3),
                (64, 2 ** 40 + 3, (1 << 33) + 17, (1 << 32) - 10, [4, 5], 1.5)]]  # crosses g = 2^32


def _generate_backward_samples(device, dtype):
    return [(_randn(*shape, device=device, dtype=dtype), n, seed, total, offset, scale)
            for n, seed, total, offset, shape, scale in [
                (20, 3, 50, 5, [24], 0.7), (1, 0, 7, 0, [7], 1.0), (97, -5, 1000, 100, [6, 4, 3, 3], 0.3),
                (64, 7, (1 << 33) + 17, (1 << 32) - 10, [4, 5], 1.5)]]


OPS = [
    OpSpec("generate_weights", _generate_samples, generate_weights_reference, (0,)),
    OpSpec("generate_weights_backward", _generate_backward_samples, generate_weights_backward_reference, (0,)),
]


class RingModel(nn.Module):
    """A ring and the generated layers drawing on it, registered the documented way (model.ring = ring)."""

    holds_shared_state = True  # ModuleSpec.layer: the layer under test is layers[0]

    def __init__(self, make_layers, ring_size=40, seed=3):
        super().__init__()
        self.ring = ParameterRing(ring_size, seed=seed)
        self.layers = nn.Sequential(*make_layers(self.ring))

    def forward(self, x):
        return self.layers(x)


def _cpp_ring_model(make_layer):
    """A C++ ring and one C++ layer on it, named as RingModel names its parts."""
    def build(cpp):
        ring = cpp.ParameterRing(40, 3)
        layer = make_layer(cpp, ring.cpp_module)
        return layer.forward, {**_state(ring, "ring."), **_state(layer, "layers.0.")}
    return build


MODULES = [
    ModuleSpec("generated_conv", lambda: RingModel(lambda r: [GeneratedConv2d(r, 3, 4, 3, padding=1)]), (2, 3, 6, 6),
               cpp=_cpp_ring_model(lambda cpp, ring: cpp.GeneratedConv2d(ring, 3, 4, 3, padding=1))),
    ModuleSpec("generated_conv_same_reflect",
               lambda: RingModel(lambda r: [GeneratedConv2d(r, 3, 4, 4, padding="same", padding_mode="reflect")]),
               (2, 3, 6, 7)),
    ModuleSpec("generated_linear", lambda: RingModel(lambda r: [GeneratedLinear(r, 5, 3)]), (2, 5), conv=False,
               cpp=_cpp_ring_model(lambda cpp, ring: cpp.GeneratedLinear(ring, 5, 3))),
]


# The family's layer over nn.Conv2d's argument space (test_module_contract.py): nn.Conv2d's arguments -> a model
# whose first layer is the family's.
def CONV2D_LIKE(*conv_arguments, **conv_options):
    return RingModel(lambda ring: [GeneratedConv2d(ring, *conv_arguments, **conv_options)])
