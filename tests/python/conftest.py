import pytest
import torch

import leanconv  # noqa: F401  (registers the ops)

CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")

# Every device-parametrised test runs on the CPU, and on CUDA when a GPU is present (skipped cleanly otherwise).
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
