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


# The CUDA tests compare leanconv's kernels with the CPU kernels and float64 references at float32 tolerances;
# cuDNN's default TF32 (10-bit mantissa) in the convolutions leanconv calls would dominate those differences.
# Users keep PyTorch's defaults: TF32 in cuDNN convolutions, as for nn.Conv2d.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
