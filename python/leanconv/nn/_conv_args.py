"""Argument handling every conv family shares with nn.Conv2d."""
import numbers
from typing import Tuple

import torch
from torch import nn

import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def conv_geometry(module_name: str, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation,
                  groups: int, padding_mode: str):
    """Validates nn.Conv2d-style arguments; returns (kernel_size, stride, padding, dilation), each a pair except
    a string padding ('same' or 'valid'), which is kept as nn.Conv2d keeps it."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"leanconv: {module_name} {name} must be an int, got {value!r}")
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"leanconv: {module_name} in_channels and out_channels must be positive, got "
                         f"{in_channels} and {out_channels}")
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(f"leanconv: {module_name} groups must divide in_channels and out_channels, got "
                         f"groups={groups} for {in_channels} -> {out_channels}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"leanconv: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    kernel_size, stride, dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"leanconv: {module_name} padding must be 'same', 'valid' or numbers, got {padding!r}")
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"leanconv: {module_name} padding='same' is not supported for strided convolutions "
                             "(as in nn.Conv2d)")
    else:
        padding = _pair(padding)
    numeric = kernel_size + stride + dilation + (() if isinstance(padding, str) else padding)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in numeric):
        raise TypeError(f"leanconv: {module_name} kernel_size, stride, padding and dilation must be ints")
    if min(kernel_size + stride + dilation) < 1 or (not isinstance(padding, str) and min(padding) < 0):
        raise ValueError(f"leanconv: {module_name} kernel_size, stride and dilation must be positive and padding "
                         "non-negative")
    return kernel_size, stride, padding, dilation


def padding_amounts(padding, kernel_size, dilation) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """((top, bottom), (left, right)) padding of a numeric, 'same' or 'valid' padding, as nn.Conv2d computes it
    ('same' puts the odd element of an even total on the bottom / right)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        amounts = []
        for k, d in zip(kernel_size, dilation):
            total = d * (k - 1)
            amounts.append((total // 2, total - total // 2))
        return tuple(amounts)
    return (padding[0], padding[0]), (padding[1], padding[1])


def check_conv_input(module_name: str, input: Tensor, in_channels: int) -> None:
    if input.dim() not in (3, 4):
        raise RuntimeError(f"leanconv: {module_name} expects a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                           f"{tuple(input.shape)}")
    if input.shape[-3] != in_channels:
        raise RuntimeError(f"leanconv: {module_name} expects {in_channels} input channels, got {input.shape[-3]} "
                           f"(input shape {tuple(input.shape)})")


def apply_padding_mode(input: Tensor, module) -> Tuple[Tensor, Tuple[int, int]]:
    """The input and the symmetric numeric conv padding for ``module``'s padding and padding_mode: pads the input
    explicitly (as nn.Conv2d does) for the non-zero modes and for an asymmetric 'same'."""
    (top, bottom), (left, right) = padding_amounts(module.padding, module.kernel_size, module.dilation)
    if module.padding_mode == "zeros" and top == bottom and left == right:
        return input, (top, left)
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    padded = F.pad(input, [left, right, top, bottom], mode=mode)
    if input.dim() == 4 and input.is_contiguous(memory_format=torch.channels_last) and not input.is_contiguous():
        padded = padded.contiguous(memory_format=torch.channels_last)  # some pad modes return NCHW: keep the format
    return padded, (0, 0)


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


def arguments_of(conv: nn.Conv2d) -> dict:
    """nn.Conv2d's constructor arguments that rebuild ``conv``'s geometry, device and dtype (for from_conv)."""
    return dict(in_channels=conv.in_channels, out_channels=conv.out_channels, kernel_size=conv.kernel_size,
                stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                bias=conv.bias is not None, padding_mode=conv.padding_mode, device=conv.weight.device,
                dtype=conv.weight.dtype)


def copy_bias(layer, conv: nn.Conv2d) -> None:
    if conv.bias is not None:
        with torch.no_grad():
            layer.bias.copy_(conv.bias)


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
