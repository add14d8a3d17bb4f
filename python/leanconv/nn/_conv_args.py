"""Argument handling every conv family shares with nn.Conv2d."""
from typing import Tuple

import torch
from torch import nn

import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def conv_geometry(module_name: str, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation,
                  groups: int, padding_mode: str):
    """Validates nn.Conv2d-style arguments; returns (kernel_size, stride, padding, dilation) as pairs."""
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"leanconv: {module_name} in_channels and out_channels must be positive, got "
                         f"{in_channels} and {out_channels}")
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(f"leanconv: {module_name} groups must divide in_channels and out_channels, got "
                         f"groups={groups} for {in_channels} -> {out_channels}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"leanconv: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    kernel_size, stride, dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
    padding = padding if isinstance(padding, str) else _pair(padding)
    if min(kernel_size + stride + dilation) < 1 or (not isinstance(padding, str) and min(padding) < 0):
        raise ValueError(f"leanconv: {module_name} kernel_size, stride and dilation must be positive and padding "
                         "non-negative")
    return kernel_size, stride, padding, dilation


def check_conv_input(module_name: str, input: Tensor, in_channels: int) -> None:
    if input.dim() not in (3, 4):
        raise RuntimeError(f"leanconv: {module_name} expects a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                           f"{tuple(input.shape)}")
    if input.shape[-3] != in_channels:
        raise RuntimeError(f"leanconv: {module_name} expects {in_channels} input channels, got {input.shape[-3]} "
                           f"(input shape {tuple(input.shape)})")


def apply_padding_mode(input: Tensor, padding, padding_mode: str) -> Tuple[Tensor, object]:
    """For non-zero padding modes, pads explicitly as nn.Conv2d does; returns the input and the conv padding."""
    if padding_mode == "zeros":
        return input, padding
    pad = [p for p in reversed(padding) for _ in range(2)]
    return F.pad(input, pad, mode=padding_mode), (0, 0)


def conv_extra_repr(module) -> str:
    s = (f"{module.in_channels}, {module.out_channels}, kernel_size={module.kernel_size}, stride={module.stride}, "
         f"padding={module.padding}")
    if module.dilation != (1, 1):
        s += f", dilation={module.dilation}"
    if getattr(module, "groups", 1) != 1:
        s += f", groups={module.groups}"
    if module.bias is None:
        s += ", bias=False"
    if module.padding_mode != "zeros":
        s += f", padding_mode={module.padding_mode}"
    return s


def dense_conv_like(module, weight: Tensor, bias) -> nn.Conv2d:
    """An nn.Conv2d with the module's geometry holding copies of ``weight`` and ``bias`` (materialize())."""
    conv = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                     module.dilation, module.groups, bias is not None, module.padding_mode, device=weight.device,
                     dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv
