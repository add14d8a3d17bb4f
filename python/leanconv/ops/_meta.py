"""The fake (meta) kernels' registration and shape helpers, the same arithmetic the C++ checks use."""
import functools

import torch
from torch._prims_common import suggest_memory_format


def register_fake(name: str):
    """``torch.library.register_fake(name)`` for a function that first checks, as every real kernel does, that its
    tensors share one device. The fake kernel is also the op's Meta kernel, which the dispatcher picks as soon as one
    argument is a meta tensor: without the check a meta tensor beside CPU tensors would return an uninitialised CPU
    tensor instead of aten's "same device" error."""
    def decorate(function):
        @functools.wraps(function)
        def checked(*args, **kwargs):
            devices = {a.device for a in _tensors(args) + _tensors(kwargs.values())}
            torch._check(len(devices) <= 1, lambda: f"leanconv: {name.split('::')[-1]}: expected all tensors on one "
                                                    f"device, got {', '.join(sorted(map(str, devices)))}")
            return function(*args, **kwargs)
        return torch.library.register_fake(name)(checked)
    return decorate


def _tensors(values):
    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += _tensors(value)
    return found


def conv_out(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def memory_format(t):
    """The memory format a kernel gives its output for input ``t`` (what ``suggest_memory_format`` says in C++)."""
    return suggest_memory_format(t) if t.dim() == 4 else torch.contiguous_format
