"""Overlapping-segment (FSNet) convolution: all filters of a layer are windows of one learned 1-D summary.

``weight[o, c, i, j] = summary[(o*s + (i*k + j)*C_in + c) mod L]`` with ``s = C_in*k*k // compression`` and
``L = C_out * s``: neighbouring filters share their overlap, and the layer learns L parameters instead of
C_out*C_in*k*k (compression K/s, K = C_in*k*k).

Two execution paths compute the same function:
- ``gather``: build the dense weight from the summary (a gather) and run the dense conv (cuDNN / oneDNN);
- ``direct``: when s divides C_in, filter o's channel vector at tap t is the segment g_m = summary[m*s : m*s + C_in]
  with m = (o + t*C_in/s) mod C_out, so the layer is one 1x1 conv against the C_out segments followed by a
  shifted sum over the k*k taps: about k*k fewer multiplies than the dense conv.

Quantisation: with ``quant_bits`` (2..8) the summary is fake-quantised in the forward (symmetric, one scale per
layer, round to nearest, straight-through gradient); :mod:`leanconv.filter_summary` exports int summaries and scales.
"""
import math
import numbers
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ._checked_options import CheckedOptions
from ._convs import DenseConvs, Scope
from .counting import conv_multiply_adds
from ._conv_args import (apply_padding_mode, arguments_of, check_conv_input, conv_extra_repr, conv_geometry, copy_bias,
                         dense_conv_like)

PATHS = ("auto", "direct", "gather")


def summary_stride(in_channels: int, kernel_size, compression: float) -> int:
    """s = C_in*kh*kw // compression; raises if that leaves no element per filter step."""
    filter_length = in_channels * kernel_size[0] * kernel_size[1]
    if isinstance(compression, bool) or not isinstance(compression, numbers.Real) or not compression >= 1:
        raise ValueError(f"leanconv: compression must be a number >= 1 (a summary no longer than the dense filters), "
                         f"got {compression!r}")
    s = int(filter_length // compression)
    if s < 1:
        raise ValueError(f"leanconv: compression {compression} is too high for filters of C_in*k*k = {filter_length} "
                         "elements: it gives a summary stride s < 1")
    return s


def quantize(summary: Tensor, bits: int, scale: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Symmetric uniform quantisation to ``bits``: the integers round(summary / scale), clamped to
    +-(2^(bits-1) - 1), and the scale, by default max|summary| / (2^(bits-1) - 1). No gradient."""
    qmax = 2 ** (bits - 1) - 1
    summary = summary.detach()
    if scale is None:
        scale = summary.abs().amax().clamp_min(torch.finfo(summary.dtype).tiny) / qmax
    return torch.clamp(torch.round(summary / scale), -qmax, qmax), scale


def fake_quantize(summary: Tensor, bits: int, scale: Optional[Tensor] = None) -> Tensor:
    """``quantize`` and back, with a straight-through gradient."""
    q, scale = quantize(summary, bits, scale)
    return summary + (q * scale - summary).detach()


class FilterSummaryConv2d(CheckedOptions, nn.Module):
    """A conv whose filters are overlapping windows of one learned summary vector (FSNet).

    Same arguments as ``nn.Conv2d`` (``groups`` must be 1) plus ``compression`` (default 9), ``quant_bits``
    (None, or 2..8) and ``path`` ('auto', 'direct' or 'gather').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None,
                 compression: float = 9, quant_bits: Optional[int] = None, path: str = "auto"):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = conv_geometry(
            "FilterSummaryConv2d", in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            padding_mode)
        if groups != 1:
            raise ValueError(f"leanconv: FilterSummaryConv2d supports groups=1 only, got groups={groups} (a "
                             "depthwise layer has too few weights per filter to summarise)")
        if quant_bits is not None and not 2 <= int(quant_bits) <= 8:
            raise ValueError(f"leanconv: quant_bits must be between 2 and 8, got {quant_bits}")
        if path not in PATHS:
            raise ValueError(f"leanconv: path must be one of {PATHS}, got {path!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, 1
        self.padding_mode = padding_mode
        self.compression_arg = compression
        self.summary_stride = summary_stride(in_channels, self.kernel_size, compression)
        if path == "direct" and in_channels % self.summary_stride:
            raise ValueError(f"leanconv: the direct path needs s = {self.summary_stride} to divide in_channels = "
                             f"{in_channels}")
        self.path = path
        self.quant_bits = None if quant_bits is None else int(quant_bits)
        factory = {"device": device, "dtype": dtype}
        self.summary = nn.Parameter(torch.empty(out_channels * self.summary_stride, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        # A fixed quantisation scale (set when int summaries are loaded); 0 means "from the summary".
        self.register_buffer("quant_scale", torch.zeros((), **factory))
        self._scale_fixed = False  # mirrors quant_scale > 0 without reading the buffer in the forward
        self.register_load_state_dict_post_hook(FilterSummaryConv2d._adopt_scale)
        self.reset_parameters()

    @staticmethod
    def _adopt_scale(module, incompatible_keys) -> None:
        if module.quant_scale.is_meta:  # a meta layer loads nothing (torch warns that the copy is a no-op)
            return
        module._scale_fixed = bool(module.quant_scale > 0)

    # The state_dict holds what the forward depends on, written from what the forward reads: the bit width
    # (as "quant_bits", 0 = not quantised; a checkpoint of another width is refused on load) and the scale
    # buffer, 0 unless a fixed scale is in use.
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if not self._scale_fixed:
            destination[prefix + "quant_scale"] = torch.zeros_like(self.quant_scale)

    # How the summary is read into filters, (C_out, C_in, kh, kw, s): a summary of equal length from a layer of
    # another geometry or compression would load into this one and compute other filters.
    unchecked_when_absent = frozenset({"summary_layout"})

    def checked_options(self):
        return {"quant_bits": self.quant_bits or 0,
                "summary_layout": (self.out_channels, self.in_channels, *self.kernel_size, self.summary_stride)}

    def option_mismatch(self, name, stored):
        if name == "summary_layout":
            return (f"the checkpoint's summary has the layout (C_out, C_in, kh, kw, s) = {stored}, this layer "
                    f"{self.checked_options()[name]}: a summary read with another layout computes other filters; "
                    "build the layer with the checkpoint's geometry and compression")

        def describe(bits):
            return f"{bits}-bit quantised" if bits else "unquantised"
        return (f"the checkpoint's FilterSummaryConv2d is {describe(stored)}, this layer is "
                f"{describe(self.quant_bits or 0)}: build the layer with quant_bits={stored or None} to load it")

    def fix_quant_scale(self, scale) -> None:
        """Quantises with this scale from now on instead of max|summary| / qmax (used by int summaries)."""
        with torch.no_grad():
            self.quant_scale.fill_(float(scale))
        self._scale_fixed = float(scale) > 0

    @property
    def filter_length(self) -> int:
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    @property
    def compression(self) -> float:
        return self.filter_length / self.summary_stride

    def reset_parameters(self) -> None:
        # nn.Conv2d's default scale: every weight is a summary element, uniform in +-1/sqrt(fan_in).
        bound = 1.0 / math.sqrt(self.filter_length)
        nn.init.uniform_(self.summary, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        # A new summary has no fixed quantisation scale: back to max|summary| / qmax.
        self.fix_quant_scale(0.0)

    def effective_summary(self) -> Tensor:
        """The summary the forward uses: fake-quantised when quant_bits is set."""
        if self.quant_bits is None:
            return self.summary
        return fake_quantize(self.summary, self.quant_bits, self.quant_scale if self._scale_fixed else None)

    @property
    def weight(self) -> Tensor:
        """The dense equivalent weight, differentiable with respect to the summary."""
        return ops.filter_summary_weight(self.effective_summary(), self.out_channels, self.in_channels,
                                         self.kernel_size, self.summary_stride)

    def direct_path_allowed(self) -> bool:
        return self.in_channels % self.summary_stride == 0

    def uses_direct_path(self, input_hw=None) -> bool:
        """Which path a forward takes. 'auto' picks the direct path when the layout allows it and the dense
        conv would do at least twice its multiplies (k*k taps against the 1x1 conv over the input)."""
        if self.path != "auto":
            return self.path == "direct"
        if not self.direct_path_allowed() or self.kernel_size == (1, 1):
            return False
        taps = self.kernel_size[0] * self.kernel_size[1]
        return taps / (self.stride[0] * self.stride[1]) >= 2

    def forward(self, input: Tensor) -> Tensor:
        check_conv_input("FilterSummaryConv2d", input, self.in_channels)
        input, padding = apply_padding_mode(input, self)
        summary = self.effective_summary()
        if not self.uses_direct_path():
            weight = ops.filter_summary_weight(summary, self.out_channels, self.in_channels, self.kernel_size,
                                               self.summary_stride)
            return F.conv2d(input, weight, self.bias, self.stride, padding, self.dilation)
        unbatched = input.dim() == 3
        x = input.unsqueeze(0) if unbatched else input
        segments = ops.filter_summary_weight(summary, self.out_channels, self.in_channels, (1, 1),
                                             self.summary_stride)
        y = ops.segment_conv2d(x, segments.flatten(1), self.kernel_size, self.in_channels // self.summary_stride,
                               self.stride, padding, self.dilation)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1).to(y.dtype)
        return y.squeeze(0) if unbatched else y

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, compression: float = 9, **options) -> "FilterSummaryConv2d":
        """A layer initialised from a trained dense conv: the least-squares summary, i.e. each summary element
        the mean of the dense weights that map to it."""
        layer = cls(**arguments_of(conv), compression=compression, **options)
        with torch.no_grad():
            s, length = layer.summary_stride, layer.summary.numel()
            total = ops.filter_summary_weight_backward(conv.weight.detach(), length, s)
            count = ops.filter_summary_weight_backward(torch.ones_like(conv.weight), length, s)
            layer.summary.copy_(total / count)
        copy_bias(layer, conv)
        return layer

    def materialize(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` computing the same function, with the (fake-quantised) filters copied in."""
        return dense_conv_like(self, self.weight.detach(), self.bias)

    def num_learned_params(self) -> int:
        return self.summary.numel() + (0 if self.bias is None else self.bias.numel())

    def num_dense_params(self) -> int:
        return self.out_channels * self.filter_length + (0 if self.bias is None else self.bias.numel())

    def multiply_adds(self, input: Tensor, output: Tensor) -> int:
        """The direct path's 1x1 conv at the input's size (its shifted sum only adds), else the gathered conv's."""
        if self.uses_direct_path():
            return input.numel() * self.out_channels
        return conv_multiply_adds(self, output)

    def extra_repr(self) -> str:
        s = conv_extra_repr(self) + f", summary={self.summary.numel()}, compression={self.compression:.2f}x"
        if self.quant_bits is not None:
            s += f", quant_bits={self.quant_bits}"
        return s + f", path={self.path}"


# ---- the family's conv factory (leanconv.families) ----------------------------------------------------------------

class FilterSummaryConvs(DenseConvs):
    """Filter-summary (FSNet) convs with one compression ratio (and optional quantisation) for every layer.

    A layer whose filters are too short for the ratio (s < 1) is kept dense, as are 1x1 convs unless
    ``pointwise=True``."""

    def __init__(self, compression: float = 9, quant_bits=None, pointwise: bool = False, path: str = "auto"):
        self.compression, self.quant_bits, self.pointwise, self.path = compression, quant_bits, pointwise, path

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        if (kernel_size == 1 and not self.pointwise) or in_channels * kernel_size * kernel_size < self.compression:
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        return FilterSummaryConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False,
                                   compression=self.compression, quant_bits=self.quant_bits, path=self.path)

    @staticmethod
    def from_conv(conv: nn.Conv2d, compression: float = 9, quant_bits=None, path: str = "auto") -> nn.Module:
        """``leanconv.convert``'s layer for a trained conv: its least-squares summary, or the conv itself where its
        filters are too short for the compression."""
        if conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1] < compression:
            return conv
        return FilterSummaryConv2d.from_conv(conv, compression=compression, quant_bits=quant_bits, path=path)


__all__ = ["FilterSummaryConv2d", "fake_quantize"]
