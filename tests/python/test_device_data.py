"""Datasets held on the training device (--data-on-device): the same images, normalisation and augmentations as
the DataLoader path (torchvision's transforms), batches in the run's order, and a resume that redraws the same
augmentations."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from conftest import DEVICES
from leanconv.train.datasets import _NORMALIZATION, dataset, device_dataset
from test_datasets import REPO, _write_cifar, _write_fashion, _write_svhn

WRITERS = {"fashion-mnist": _write_fashion, "cifar10": lambda r: _write_cifar(r, False),
           "cifar100": lambda r: _write_cifar(r, True), "svhn": _write_svhn}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_test_images_equal_the_loader_path(tmp_path, name, device):
    WRITERS[name](tmp_path)
    loader_path, on_device = dataset(name, tmp_path, False), device_dataset(name, tmp_path, False, device)
    assert len(on_device) == len(loader_path)
    x, y = next(on_device.batches(range(len(on_device)), len(on_device)))
    assert x.device.type == device and y.device.type == device
    for i in range(len(loader_path)):
        expected, label = loader_path[i]
        torch.testing.assert_close(x[i].cpu(), expected, rtol=1e-6, atol=1e-6)
        assert int(y[i]) == int(label)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_training_augmentation_is_torchvisions_crop_and_flip_at_the_drawn_offsets(tmp_path, name, device):
    WRITERS[name](tmp_path)
    train = device_dataset(name, tmp_path, True, device, flip=True)
    draws = train.epoch_draws(seed=3, epoch=1)
    rows, cols, flips = draws[:3]
    x, _ = train.batch(torch.arange(len(train)), draws)
    margin = train.augmentation.crop_padding
    for i in range(len(train)):
        image = _padded_training_image(name, tmp_path, i)
        padded = torch.nn.functional.pad(image, (margin,) * 4, value=0.0)
        expected = padded[:, int(rows[i]):int(rows[i]) + train.size, int(cols[i]):int(cols[i]) + train.size]
        if flips[i]:
            expected = expected.flip(-1)
        torch.testing.assert_close(x[i].cpu(), v2.functional.normalize(expected / 255, *_NORMALIZATION[name]),
                                   rtol=1e-5, atol=1e-5)


def _padded_training_image(name, root, index):
    """Training image ``index`` as float in [0, 255], padded as the dataset pads it (before the random crop)."""
    source = dataset(name, root, True)
    if name == "fashion-mnist":
        return torch.nn.functional.pad(source.images[index].float(), (2, 2, 2, 2))
    if name == "svhn":
        return torch.from_numpy(source.data[index]).float()
    return torch.from_numpy(source.data[index]).permute(2, 0, 1).float()


def test_an_epochs_draws_depend_on_seed_and_epoch_only(tmp_path):
    _write_fashion(tmp_path, count=40)
    train = device_dataset("fashion-mnist", tmp_path, True)
    first, again = train.epoch_draws(0, 2), train.epoch_draws(0, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, train.epoch_draws(0, 3)))
    assert not all(torch.equal(a, b) for a, b in zip(first, train.epoch_draws(1, 2)))
    # A batch is the same whichever batches came before it (a resumed run starts mid-epoch).
    order = torch.randperm(40)
    whole = list(train.batches(order, 8, seed=0, epoch=2))
    resumed = list(train.batches(order[16:], 8, seed=0, epoch=2))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(whole[2:], resumed))


def test_the_command_line_trains_with_the_data_on_the_device(tmp_path):
    _write_fashion(tmp_path, count=64)
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    base = [sys.executable, "-m", "leanconv.train", "--dataset", "fashion-mnist", "--data", str(tmp_path),
            "--epochs", "1", "--batch-size", "16", "--model", "resnet20", "--device", "cpu"]
    run = subprocess.run(base + ["--data-on-device", "--flip", "--log-csv", str(tmp_path / "log.csv")], cwd=REPO,
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert "| resnet20-dense |" in run.stdout and (tmp_path / "log.csv").exists()
    for flags, message in ((["--flip"], "--flip and --random-erasing are augmentations of --data-on-device"),
                           (["--data-on-device", "--dataset", "imagenet"], "--data-on-device holds")):
        refused = subprocess.run(base + flags, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
        assert refused.returncode != 0 and message in refused.stderr and "Traceback" not in refused.stderr


def test_random_erasing_sets_a_drawn_rectangle_to_the_mean():
    root = Path(__import__("tempfile").mkdtemp())
    _write_fashion(root, count=200)
    train = device_dataset("fashion-mnist", root, True, erasing=0.5)
    plain = device_dataset("fashion-mnist", root, True)
    draws = train.epoch_draws(seed=0, epoch=0)
    rows, cols, flips, top, left, height, width = draws
    x, _ = train.batch(torch.arange(200), draws)
    unerased, _ = plain.batch(torch.arange(200), (rows, cols, flips) + (top, left, torch.zeros_like(height), width))
    erased = height > 0
    assert 0.35 < erased.float().mean() < 0.65  # the probability
    area = (height * width)[erased].float() / train.size ** 2
    assert area.min() >= 0.01 and area.max() <= 0.34  # 2-33% of the image, rounded
    for i in torch.nonzero(erased).flatten().tolist():
        t, l, h, w = int(top[i]), int(left[i]), int(height[i]), int(width[i])
        assert torch.all(x[i, :, t:t + h, l:l + w] == 0)  # the mean, after normalisation
        outside = torch.ones_like(x[i], dtype=torch.bool)
        outside[:, t:t + h, l:l + w] = False
        assert torch.equal(x[i][outside], unerased[i][outside])
