"""The filter-summary (FSNet) layer written in plain PyTorch, for tests and benchmarks: an int64 index buffer
built from the layout formula, a gather through it (autograd's scatter for the backward) and the dense conv."""
import torch
import torch.nn.functional as F
from torch import nn


def summary_index(out_channels: int, in_channels: int, kernel_h: int, kernel_w: int,
                  summary_stride: int) -> torch.Tensor:
    """index[o, c, i, j] = (o*s + (i*kw + j)*C_in + c) mod (C_out*s), s = summary_stride."""
    o = torch.arange(out_channels).view(-1, 1, 1, 1)
    c = torch.arange(in_channels).view(1, -1, 1, 1)
    i = torch.arange(kernel_h).view(1, 1, -1, 1)
    j = torch.arange(kernel_w).view(1, 1, 1, -1)
    return (o * summary_stride + (i * kernel_w + j) * in_channels + c) % (out_channels * summary_stride)


class PlainFilterSummaryConv2d(nn.Module):
    def __init__(self, summary: torch.Tensor, in_channels, out_channels, kernel_size, summary_stride, stride=1,
                 padding=0, bias=None):
        super().__init__()
        self.summary, self.bias = summary, bias
        self.register_buffer("index", summary_index(out_channels, in_channels, kernel_size, kernel_size,
                                                    summary_stride).to(summary.device))
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.summary[self.index], self.bias, self.stride, self.padding)
