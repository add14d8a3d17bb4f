"""Shared-weight modules (Deep Anchored CNN): one conv kernel, the anchor, used by many layers.

A :class:`ConvAnchor` holds one weight (C, C, k, k). Each :class:`AnchoredConv2d` is a C -> C conv that uses it,
with its own stride, padding, dilation and optional bias. The anchor's gradient is the sum over its uses (autograd
accumulates it). Register the anchor on the model that owns the layers (``model.anchor = anchor``): layers keep
only a reference, so the anchor is stored once in the state_dict and listed once by ``parameters()``.

Rotation: ``rotate=r`` gives the reference code's channel rotation around a use, ``conv(cat(x[:, r:], x[:, :r]),
W)``. Rotating the activations costs a copy of the feature map per use; the same output comes from the anchor
with its input-channel axis rotated, ``roll(W, r, dim=1)``, a weight-sized copy. The layer rotates the smaller of
the two: the anchor in the early, wide-image stages, the activations where C*C*k*k exceeds N*C*H*W (late stages
at small batches: a 512-channel 3x3 anchor is 2.4M values, a batch of 16 4x4 feature maps 131K).

:class:`Regulator` is the unshared 1x1 C x C conv of a residual block, applied after the block's second conv and
BatchNorm and before the residual add: ``out = relu(x + R(BN(W * h)))``.
"""
import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from ._checked_options import CheckedOptions
from ._conv_args import apply_padding_mode, check_conv_input, conv_geometry, dense_conv_like
from ._convs import DenseConvs, Scope
from .counting import conv_multiply_adds
from ._holder import SharedHolder, check_input_against


class ConvAnchor(SharedHolder):
    """The one shared weight (C, C, k, k) of a family of anchored convs (and optionally their shared bias)."""

    registration_example = "model.anchor = anchor"

    def __init__(self, channels: int, kernel_size=3, bias: bool = False, device=None, dtype=None):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
            raise ValueError(f"leanconv: ConvAnchor channels must be a positive int, got {channels!r}")
        self.channels, self.kernel_size = int(channels), _pair(kernel_size)
        if min(self.kernel_size) < 1:
            raise ValueError(f"leanconv: ConvAnchor kernel_size must be positive, got {kernel_size}")
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(channels, channels, *self.kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv2d's default initialisation for a C -> C conv.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.channels * self.kernel_size[0] * self.kernel_size[1])
            nn.init.uniform_(self.bias, -bound, bound)

    def num_learned_params(self) -> int:
        return self.weight.numel() + (0 if self.bias is None else self.bias.numel())

    def num_dense_params(self) -> int:
        return 0  # the dense equivalents are counted by the layers that use the anchor

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, bias={self.bias is not None}"


class AnchoredConv2d(CheckedOptions, nn.Module):
    """A C -> C conv whose weight is the anchor's (rotated by ``rotate`` input channels).

    ``padding`` defaults to k//2 ('same' for odd kernels); ``'same'``, ``'valid'`` and numbers as in nn.Conv2d, and
    every padding_mode. The bias, if any, is the anchor's (shared too)."""

    def __init__(self, anchor: ConvAnchor, stride=1, padding=None, dilation=1, rotate: int = 0,
                 padding_mode: str = "zeros"):
        super().__init__()
        if not isinstance(anchor, ConvAnchor):
            raise TypeError(f"leanconv: anchor must be a leanconv.nn.ConvAnchor, got {type(anchor).__name__}")
        c, k = anchor.channels, anchor.kernel_size
        if padding is None:
            padding = (k[0] // 2, k[1] // 2)
        if padding == "same" and (k[0] % 2 == 0 or k[1] % 2 == 0):
            raise ValueError(f"leanconv: AnchoredConv2d padding='same' needs an odd kernel, got {k}: the anchor's "
                             "uses would pad asymmetrically; give numeric padding")
        self.kernel_size, self.stride, self.padding, self.dilation = conv_geometry(
            "AnchoredConv2d", c, c, k, stride, padding, dilation, 1, padding_mode)
        if isinstance(rotate, bool) or not isinstance(rotate, numbers.Integral) or not 0 <= rotate < c:
            raise ValueError(f"leanconv: rotate must be an int in [0, {c}), got {rotate!r}")
        object.__setattr__(self, "_anchor", anchor)  # a reference, not a submodule (see the module docstring)
        self.in_channels = self.out_channels = c
        self.groups, self.rotate, self.padding_mode = 1, int(rotate), padding_mode

    def reset_parameters(self) -> None:
        pass  # nothing of its own: the anchor holds the parameters

    # The rotation changes the function, not the parameters: it is in the state_dict ("rotate") and a checkpoint of
    # another rotation is refused on load.
    def checked_options(self):
        return {"rotate": self.rotate}

    def option_mismatch(self, name, stored):
        return (f"the checkpoint's AnchoredConv2d rotates by {stored} channels, this layer by {self.rotate}: build it "
                f"with rotate={stored} to load it")

    @property
    def anchor(self) -> ConvAnchor:
        return self._anchor

    @property
    def weight(self) -> Tensor:
        """The dense equivalent weight: the anchor with its input channels rotated (differentiable)."""
        w = self._anchor.weight
        return torch.roll(w, self.rotate, dims=1) if self.rotate else w

    @property
    def bias(self):
        return self._anchor.bias

    def forward(self, input: Tensor) -> Tensor:
        check_conv_input("AnchoredConv2d", input, self.in_channels)
        self._anchor.check_registered("layer")
        check_input_against(input, self._anchor.weight, "anchor")
        if self.rotate and input.numel() < self._anchor.weight.numel():  # rotate the smaller operand (see above)
            input, weight = torch.roll(input, -self.rotate, dims=-3), self._anchor.weight
        else:
            weight = self.weight
        input, padding = apply_padding_mode(input, self)
        return F.conv2d(input, weight, self.bias, self.stride, padding, self.dilation)

    def materialize(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` computing the same function, with the (rotated) anchor copied in."""
        bias = self.bias
        return dense_conv_like(self, self.weight.detach(), None if bias is None else bias.detach())

    def num_learned_params(self) -> int:
        return 0  # the anchor's parameters are counted by the anchor

    def num_dense_params(self) -> int:
        c, k = self.in_channels, self.kernel_size
        return c * c * k[0] * k[1] + (0 if self.bias is None else c)

    def multiply_adds(self, input: Tensor, output: Tensor) -> int:
        return conv_multiply_adds(self, output)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.rotate:
            s += f", rotate={self.rotate}"
        return s + ", shared"


class AnchorDict(nn.ModuleDict):
    """The anchors of a model converted to the shared family (``model.anchors``). Registered as a child of the
    model, they could also end up inside an ``nn.Sequential`` (a model that is one): there the holder is a
    pass-through step, returning its input, so the Sequential computes what it did."""

    def forward(self, input: Tensor) -> Tensor:
        return input


class Regulator(nn.Conv2d):
    """The unshared 1x1 C x C conv of a residual block (no bias), applied before the residual add."""

    def __init__(self, channels: int, device=None, dtype=None):
        super().__init__(channels, channels, 1, bias=False, device=device, dtype=dtype)


def activation_rotation(x: Tensor, rotate: int) -> Tensor:
    """The reference code's rotation of the activations, ``cat(x[:, r:], x[:, :r])`` (for tests and references)."""
    return torch.cat([x[:, rotate:], x[:, :rotate]], dim=1)


# ---- the family's conv factory (leanconv.families) ----------------------------------------------------------------

class SharedConvs(DenseConvs):
    """Shared-weight (DACNN) convs: in each stage, the k x k convs of equal shape C -> C use one anchor; the
    width-changing and 1x1 convs stay dense. ``rotate`` is the channel rotation of every anchored use."""

    def __init__(self, rotate: int = 0):
        self.rotate = rotate
        self.anchors = AnchorDict()

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        if in_channels != out_channels or kernel_size == 1:
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        key = f"stage{scope[0]}_{in_channels}x{kernel_size}"
        if key not in self.anchors:
            self.anchors[key] = ConvAnchor(in_channels, kernel_size)
        return AnchoredConv2d(self.anchors[key], stride, padding, rotate=self.rotate)

    def finish(self, model: nn.Module) -> nn.Module:
        model.anchors = self.anchors  # registered once, on the model: one copy in the state_dict
        return model

    @staticmethod
    def tie(convs, rotate: int = 0):
        """``leanconv.convert``'s step for this family, on a trained model's convs ``[(stage, conv), ...]`` (the
        stage: the first part of the conv's name under any wrapper). The k x k convs C -> C of one stage that agree
        in everything an anchor holds once (bias or none, dtype, device, frozen or trainable) are tied to one anchor
        initialised from their mean. Returns the anchors (an AnchorDict ``{key: ConvAnchor}``) and each tied conv's layer
        ``{id(conv): AnchoredConv2d}``; the model is not touched (the caller places both)."""
        groups = {}
        for stage, conv in convs:
            if conv.in_channels == conv.out_channels and conv.kernel_size != (1, 1):
                groups.setdefault((stage, conv.in_channels, conv.kernel_size), {}).setdefault(
                    _anchor_traits(conv), []).append(conv)
        anchors, layers = AnchorDict(), {}
        for (stage, channels, (kh, kw)), variants in groups.items():
            for traits, members in variants.items():
                key = f"{stage}_{channels}x{kh}x{kw}".replace(".", "_")
                if len(variants) > 1:  # the stage's convs differ in a trait: one anchor per variant, named by it
                    key += "_" + "_".join(_describe_traits(traits))
                anchors[key] = anchor = _anchor_from_mean(members)
                for conv in members:
                    layers[id(conv)] = AnchoredConv2d(anchor, conv.stride, conv.padding, conv.dilation, rotate=rotate,
                                                      padding_mode=conv.padding_mode)
        return anchors, layers


def _anchor_traits(conv: nn.Conv2d):
    """What one anchor holds once for all its uses: a bias or none, the dtype, the device, and whether each of the
    weight and the bias is trained."""
    bias = conv.bias
    return (bias is not None, conv.weight.dtype, conv.weight.device, conv.weight.requires_grad,
            bias is not None and bias.requires_grad)


def _describe_traits(traits):
    has_bias, dtype, device, weight_trained, bias_trained = traits
    return ["bias" if has_bias else "nobias", str(dtype).replace("torch.", ""), str(device).replace(":", ""),
            "trained" if weight_trained else "frozen"] + (["frozenbias"] if has_bias and not bias_trained else [])


def _anchor_from_mean(members) -> ConvAnchor:
    first = members[0]
    anchor = ConvAnchor(first.in_channels, first.kernel_size, bias=first.bias is not None,
                        device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        anchor.weight.copy_(torch.stack([c.weight for c in members]).mean(0))
        if anchor.bias is not None:
            anchor.bias.copy_(torch.stack([c.bias for c in members]).mean(0))
    anchor.weight.requires_grad_(first.weight.requires_grad)
    if anchor.bias is not None:
        anchor.bias.requires_grad_(first.bias.requires_grad)
    return anchor


__all__ = ["ConvAnchor", "AnchoredConv2d", "Regulator"]
