"""Datasets for the training command line.

Fashion-MNIST is read straight from its idx files (gzip or raw), as Debian's ``dataset-fashion-mnist``
installs them, so no network is needed. ``random`` gives synthetic images for throughput runs.
"""
import gzip
import os
from pathlib import Path
from typing import Tuple

import torch
from torch.utils.data import TensorDataset

from .._extras import training_dependency

np = training_dependency("numpy")

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist", "data/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


def read_idx(path: Path) -> np.ndarray:
    """Reads an idx file (the MNIST format): magic (0, 0, dtype, ndim), ndim big-endian sizes, data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an idx file")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown idx element type {data[2]:#x}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} elements, found {array.size}")
    return array.reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(f"{root / stem}[.gz] not found")


def fashion_mnist_candidates():
    """Where Fashion-MNIST is looked for: $LEANCONV_FASHION_MNIST alone when it is set (a mistyped path is an
    error, not a reason to read another copy), else Debian's install, then ./data/fashion-mnist."""
    chosen = os.environ.get("LEANCONV_FASHION_MNIST")
    return [chosen] if chosen else list(FASHION_MNIST_DIRS)


def fashion_mnist_root(root=None) -> Path:
    candidates = [root] if root else fashion_mnist_candidates()
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    if root or os.environ.get("LEANCONV_FASHION_MNIST"):
        raise FileNotFoundError(f"Fashion-MNIST not found: {candidates[0]} is not a folder")
    raise FileNotFoundError("Fashion-MNIST not found: install Debian's dataset-fashion-mnist "
                            "(apt-get install dataset-fashion-mnist) or set LEANCONV_FASHION_MNIST to a folder of "
                            "its files")


def fashion_mnist(train: bool, root=None, pad_to: int = 32) -> TensorDataset:
    """Fashion-MNIST as normalised (N, 1, pad_to, pad_to) float images and int64 labels."""
    base = fashion_mnist_root(root)
    prefix = "train" if train else "t10k"
    images = read_idx(_find(base, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(base, f"{prefix}-labels-idx1-ubyte"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = (x - 0.2860) / 0.3530  # the training set's mean and std
    pad = (pad_to - x.shape[-1]) // 2
    if pad > 0:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=float(-0.2860 / 0.3530))
    return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


def random_images(count: int, shape: Tuple[int, int, int], num_classes: int, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(count, *shape, generator=g), torch.randint(0, num_classes, (count,), generator=g))
