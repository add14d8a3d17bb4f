import os

# cuBLAS refuses deterministic algorithms without a fixed workspace; set before CUDA starts (no effect elsewhere).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

import leanconv  # noqa: E402,F401  (registers the ops)

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



class _Shard:
    """LEANCONV_TEST_SHARD=k/n keeps every n-th selected test from the k-th on: n processes with k = 0..n-1 run
    the selection once between them (the GPU check runs its CUDA tests so, side by side on one GPU)."""

    def __init__(self, index: int, count: int):
        self.index, self.count = index, count

    @pytest.hookimpl(trylast=True)  # after -m and -k have deselected
    def pytest_collection_modifyitems(self, config, items):
        config.hook.pytest_deselected(items=[t for i, t in enumerate(items) if i % self.count != self.index])
        items[:] = items[self.index::self.count]


def pytest_configure(config):
    shard = os.environ.get("LEANCONV_TEST_SHARD")
    if shard:
        index, count = (int(part) for part in shard.split("/"))
        if not 0 <= index < count:
            raise pytest.UsageError(f"LEANCONV_TEST_SHARD={shard}: expected k/n with 0 <= k < n")
        config.pluginmanager.register(_Shard(index, count), "leanconv-shard")
