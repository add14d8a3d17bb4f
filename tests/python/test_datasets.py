"""The training datasets on small files written here in the real on-disk formats (CIFAR python pickles, SVHN .mat,
an ImageFolder of JPEGs, Fashion-MNIST idx), the augmentations' shapes, the missing-data message, and the training
command line end to end on them."""
import gzip
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leanconv.train.datasets import DATASETS, DatasetMissing, dataset

REPO = Path(__file__).resolve().parents[2]


def _write_cifar(root: Path, hundred: bool, per_file: int = 6) -> None:
    rng = np.random.default_rng(0)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    label_key = "fine_labels" if hundred else "labels"
    classes = 100 if hundred else 10
    names = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
                 label_key: rng.integers(0, classes, per_file).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    meta = {"fine_label_names": [f"c{i}" for i in range(100)]} if hundred else {
        "label_names": [f"c{i}" for i in range(10)]}
    with open(folder / ("meta" if hundred else "batches.meta"), "wb") as f:
        pickle.dump(meta, f)


def _write_svhn(root: Path, count: int = 5) -> None:
    import scipy.io

    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, count), dtype=np.uint8),
                                                      "y": rng.integers(1, 11, (count, 1), dtype=np.uint8)})


def _write_image_folder(root: Path) -> None:
    rng = np.random.default_rng(2)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (40 + 10 * i, 50, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _write_fashion(root: Path, count: int = 7) -> None:
    rng = np.random.default_rng(3)
    root.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (count,)))


@pytest.mark.parametrize("name,write,train_len,shape", [
    ("cifar10", lambda r: _write_cifar(r, False), 30, (3, 32, 32)),
    ("cifar100", lambda r: _write_cifar(r, True), 6, (3, 32, 32)),
    ("svhn", _write_svhn, 5, (3, 32, 32)),
    ("imagenet", _write_image_folder, 4, (3, 224, 224)),
    ("fashion-mnist", _write_fashion, 7, (1, 32, 32)),
])
def test_each_dataset_loads_from_its_on_disk_format(tmp_path, name, write, train_len, shape):
    write(tmp_path)
    train, test = dataset(name, tmp_path, True), dataset(name, tmp_path, False)
    assert len(train) == train_len and len(test) > 0
    torch.manual_seed(0)
    for split in (train, test):
        x, y = split[0]
        assert x.shape == shape and x.dtype == torch.float32
        assert 0 <= int(y) < DATASETS[name].num_classes
        assert abs(x.mean().item()) < 3  # normalised
    # Training augments (random crop / flip): two draws of one image differ; the test split is fixed.
    torch.manual_seed(1)
    draws = [train[0][0] for _ in range(6)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    assert torch.equal(test[0][0], test[0][0])


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_missing_files_are_named_with_where_to_get_them(tmp_path, name):
    with pytest.raises(DatasetMissing) as error:
        dataset(name, tmp_path / "empty", True)
    message = str(error.value)
    assert "not found in" in message and "Get " in message
    assert all(str(p) in message for p in DATASETS[name].expected(tmp_path / "empty"))


def test_the_command_line_trains_on_a_dataset_and_reports_missing_data_without_a_traceback(tmp_path):
    _write_cifar(tmp_path, False, per_file=20)
    run = subprocess.run([sys.executable, "-m", "leanconv.train", "--dataset", "cifar10", "--data", str(tmp_path),
                          "--epochs", "1", "--batch-size", "16", "--workers", "1", "--model", "resnet20"],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO / "python")})
    assert run.returncode == 0, run.stderr
    assert "| resnet20-dense |" in run.stdout
    missing = subprocess.run([sys.executable, "-m", "leanconv.train", "--dataset", "svhn", "--data",
                              str(tmp_path / "nowhere")], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={**__import__("os").environ, "PYTHONPATH": str(REPO / "python")})
    assert missing.returncode != 0
    assert "train_32x32.mat" in missing.stderr and "Traceback" not in missing.stderr
