"""Loads libleanconv, which registers torch.ops.leanconv.* (schemas, CPU/CUDA kernels, autograd, autocast).

Normally through the pybind11 extension ``leanconv._C``, which links the library and also binds the C++
modules. Where ``_C`` was built for another Python (a packed GPU check runs on another interpreter), setting
``LEANCONV_LIBRARY=/path/to/libleanconv.so`` loads the op library alone with ``torch.ops.load_library``: every
op, module and model works; only ``leanconv._C.cpp`` (the C++ modules seen from Python) is then absent.
"""
import os
from typing import Optional

import torch


def load_extension() -> Optional[object]:
    """The ``_C`` module, or None when the library was loaded without it (LEANCONV_LIBRARY)."""
    library = os.environ.get("LEANCONV_LIBRARY")
    if library:
        if not os.path.isfile(library):
            raise ImportError(f"leanconv: LEANCONV_LIBRARY={library!r} is not a file")
        torch.ops.load_library(library)
        return None
    from . import _C

    return _C


def has_cuda_kernels() -> bool:
    """Whether the loaded library registered CUDA kernels (it was built with nvcc)."""
    return torch._C._dispatch_has_kernel_for_dispatch_key("leanconv::generate_weights", "CUDA")
