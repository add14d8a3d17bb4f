"""The CUDA kernels of cuda/ on the CPU: the emulated build (libleanconv_cuda_emulated, built with the tests) and
how the tests configure it.

``emulated.op(...)`` is ``torch.ops.leanconv_cuda_emulated.op``: leanconv::op's CUDA launcher and kernels, compiled
by the host compiler against the emulated execution model, on CPU tensors. ``device(...)`` sets the emulated
device for a block of code: its SM count (the reductions' chunking), the schedule of a block's threads (forward,
reverse or seeded random: a missing barrier changes the result), the execution (fibers, or OS threads for
ThreadSanitizer) and the grid-stride loops' grid cap (3 blocks by default, so that every grid-stride loop wraps).
"""
import contextlib
import ctypes
import os
from pathlib import Path

import torch

import leanconv  # noqa: F401  (the leanconv ops, whose schemas the emulated ops take)

# LEANCONV_EMULATED_LIBRARY: a sanitizer build of it (make test-cuda-emulation-asan, -tsan).
LIBRARY_NAME = os.environ.get("LEANCONV_EMULATED_LIBRARY", "libleanconv_cuda_emulated.so")
SCHEDULES = {"forward": 0, "reverse": 1, "random": 2}
EXECUTIONS = {"fibers": 0, "threads": 1}


def library_path() -> Path:
    build = Path(os.environ.get("LEANCONV_BUILD_DIR", Path(__file__).resolve().parents[2] / "build" / "cmake"))
    path = build / LIBRARY_NAME
    if not path.exists():
        raise RuntimeError(f"{path} is not built: `make build` builds it with the tests (LEANCONV_BUILD_TESTS=1)")
    return path


_PATH = library_path()
torch.ops.load_library(str(_PATH))
_C = ctypes.CDLL(str(_PATH))
_C.leanconv_emulation_configure.argtypes = [ctypes.c_int64, ctypes.c_int, ctypes.c_uint64, ctypes.c_int,
                                            ctypes.c_int64]
_C.leanconv_emulation_launched_kernels.argtypes = [ctypes.c_char_p, ctypes.c_int64]
_C.leanconv_emulation_launched_kernels.restype = ctypes.c_int64
_C.leanconv_emulation_check_launch.argtypes = [ctypes.c_char_p] + [ctypes.c_int64] * 7 + [ctypes.c_char_p,
                                                                                         ctypes.c_int64]
_C.leanconv_emulation_check_launch.restype = ctypes.c_int64

emulated = torch.ops.leanconv_cuda_emulated
# A grid-stride grid of at most 3 blocks (the GPU build allows 2^20): every grid-stride loop of a test wraps.
# LEANCONV_EMULATION_EXECUTION=threads: every test on OS threads (the ThreadSanitizer run).
DEFAULT = dict(sm_count=132, schedule="forward", seed=0, execution=os.environ.get("LEANCONV_EMULATION_EXECUTION", "fibers"),
               grid_stride_blocks=3)
_current = dict(DEFAULT)


def configure(**settings):
    unknown = set(settings) - set(DEFAULT)
    if unknown:
        raise TypeError(f"unknown emulation settings {sorted(unknown)}; expected {sorted(DEFAULT)}")
    _current.update({k: v for k, v in settings.items() if v is not None})
    _C.leanconv_emulation_configure(_current["sm_count"], SCHEDULES[_current["schedule"]], _current["seed"],
                                    EXECUTIONS[_current["execution"]], _current["grid_stride_blocks"])


@contextlib.contextmanager
def device(**settings):
    previous = dict(_current)
    configure(**settings)
    try:
        yield
    finally:
        configure(**previous)


def check_launch(kernel, grid_x, grid_y, grid_z, block_x, block_y, block_z, max_block_threads):
    """cuda/launch.cuh's check of a launch: its error message, or "" when CUDA would take it."""
    buffer = ctypes.create_string_buffer(4096)
    _C.leanconv_emulation_check_launch(kernel.encode(), grid_x, grid_y, grid_z, block_x, block_y, block_z,
                                       max_block_threads, buffer, len(buffer))
    return buffer.value.decode()


def launched_kernels():
    """{kernel as launched (with its template arguments as written): launches} since the library loaded."""
    buffer = ctypes.create_string_buffer(1 << 16)
    _C.leanconv_emulation_launched_kernels(buffer, len(buffer))
    lines = [line.rsplit(": ", 1) for line in buffer.value.decode().splitlines()]
    return {name: int(count) for name, count in lines}


configure(**DEFAULT)
