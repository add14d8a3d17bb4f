import pytest
import torch

import leanconv  # noqa: F401  (registers the ops)

CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
# The C++ modules are reached from Python through the pybind11 extension; a run that loads the op library alone
# (LEANCONV_LIBRARY, e.g. the packed GPU check on another Python) has no extension: GoogleTest covers them there.
requires_extension = pytest.mark.skipif(leanconv._C is None, reason="leanconv._C is not built for this Python "
                                        "(op library loaded through LEANCONV_LIBRARY)")


def pytest_collection_modifyitems(items):
    # Every test that needs a GPU also carries the marker "cuda", so `pytest -m cuda` selects exactly them.
    for item in items:
        if any(mark.name == "skipif" and mark.kwargs.get("reason") == "needs a CUDA GPU"
               for mark in item.iter_markers()):
            item.add_marker(pytest.mark.cuda)

# Every device-parametrised test runs on the CPU, and on CUDA when a GPU is present (skipped cleanly otherwise).
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


# The CUDA tests compare leanconv's kernels with the CPU kernels and float64 references at float32 tolerances;
# cuDNN's default TF32 (10-bit mantissa) in the convolutions leanconv calls would dominate those differences.
# Users keep PyTorch's defaults: TF32 in cuDNN convolutions, as for nn.Conv2d.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
