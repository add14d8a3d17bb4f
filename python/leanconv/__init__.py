"""leanconv: parameter-efficient convolutions as PyTorch ops with CPU and CUDA kernels."""
import os as _os

import torch as _torch  # noqa: F401  (torch first: _C links against its libraries)

from ._library import has_cuda_kernels as _has_cuda_kernels, load_extension as _load_extension

_C = _load_extension()  # loads libleanconv (torch.ops.leanconv.*); None when loaded without the extension
from . import ops  # noqa: E402  (the op wrappers and their fake kernels, for torch.compile / torch.export)
from . import nn, models, families  # noqa: E402
from ._exports import family_tools as _family_tools  # noqa: E402

_tools = _family_tools(__name__, families.FAMILIES, globals())  # leanconv.<family>: a family's tools, where it has them
from .convert import convert
from .materialize import materialize

__version__ = "0.1.0"

#: Directory to add to CMAKE_PREFIX_PATH so that a C++ project's find_package(leanconv) finds this install.
cmake_prefix_path = _os.path.join(_os.path.dirname(__file__), "share", "cmake")


def compiled_with_cuda() -> bool:
    """Whether this build has the CUDA kernels."""
    return _has_cuda_kernels()


__all__ = ["ops", "nn", "models", "families", *_tools, "convert", "materialize", "cmake_prefix_path",
           "compiled_with_cuda"]
