"""Shape helpers of the fake (meta) kernels, the same arithmetic the C++ checks use."""
import torch
from torch._prims_common import suggest_memory_format


def conv_out(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def memory_format(t):
    """The memory format a kernel gives its output for input ``t`` (what ``suggest_memory_format`` says in C++)."""
    return suggest_memory_format(t) if t.dim() == 4 else torch.contiguous_format
