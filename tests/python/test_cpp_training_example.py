"""The C++ training example (examples/train_fashion_mnist.cpp) on small idx files written here: for every family it
trains, evaluates, saves and reloads (same logits), its ResNet-20 has as many learned parameters as the Python
builder's, and it learns; bad data and bad flags give a one-line error, never a crash.

The binary is the in-tree build's (build/cmake/example_train_fashion_mnist) or $LEANCONV_TRAIN_EXAMPLE (make
test-consumer runs this file against the one built from the installed package)."""
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import leanconv
from leanconv.families import FAMILIES as REGISTRY
from leanconv.train.__main__ import build_model, parse_args
from test_models_and_training import _write_idx

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("LEANCONV_TRAIN_EXAMPLE",
                             ROOT / os.environ.get("LEANCONV_BUILD_DIR", "build/cmake") / "example_train_fashion_mnist"))
if not BINARY.exists():
    if os.environ.get("CI"):  # make test builds it: missing there is a failure, not a skip
        raise FileNotFoundError(f"{BINARY} was not built")
    pytest.skip(f"{BINARY} not built (LEANCONV_BUILD_TESTS=1 python setup.py build_ext --inplace)",
                allow_module_level=True)

# Each family of the registry, with its sample options as the example's flags (the same names as Python's).
FAMILIES = {name: ([part for key, value in family.sample_options.items()
                    for part in ("--" + key.replace("_", "-"), str(value))], family.sample_options)
            for name, family in REGISTRY.items()}


def _learnable_images(n: int, seed: int):
    """28x28 images whose class is where a bright bar lies (one of 5 rows, left or right half), in noise: the bars are
    5 pixels apart, more than the training crop's shift of 2, and a few steps suffice to learn them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28))
    for i, label in enumerate(labels):
        row, column = 2 + 5 * (label % 5), 2 if label < 5 else 15
        images[i, row:row + 3, column:column + 11] = 255
    return images, labels


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    for prefix, n, seed, compress in (("train", 320, 0, True), ("t10k", 100, 1, False)):  # both file forms
        images, labels = _learnable_images(n, seed)
        suffix = ".gz" if compress else ""
        _write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images.astype(np.uint8), compress)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels.astype(np.uint8), compress)
    return root


def _run(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


@pytest.mark.parametrize("family", FAMILIES)
def test_trains_saves_and_reloads_every_family(family, data_dir, tmp_path):
    flags, _ = FAMILIES[family]
    saved = tmp_path / "model.pt"
    run = _run("--data", data_dir, "--conv", family, *flags, "--epochs", 2, "--batch-size", 16, "--lr", 0.02,
               "--save", saved)
    assert run.returncode == 0, run.stdout + run.stderr
    row = re.search(r"^\| (\w+)-(\w+) \| (\d+) \| ([\d.]+)% \| saved to (.+), reloaded: same logits \|$", run.stdout,
                    re.M)
    assert row, run.stdout
    network = row.group(1)  # resnet20, or the network of a family whose unit is the block (the MGIC ResNet-20)
    assert row.group(2) == family and Path(row.group(5)) == saved and saved.stat().st_size > 0
    # The same network from python -m leanconv.train's flags: as many learned parameters.
    python_model, _ = build_model(parse_args(["--model", network, "--conv", family, *flags]), 10, 1)
    assert int(row.group(3)) == sum(p.numel() for p in python_model.parameters())
    assert float(row.group(4)) > 30, run.stdout  # chance is 10%; the bars are learnt within 40 steps
    epochs = re.findall(r"^epoch (\d+): loss ([\d.]+), test accuracy ([\d.]+)%, (\d+) images/s$", run.stdout, re.M)
    assert [e[0] for e in epochs] == ["1", "2"] and all(int(e[3]) > 0 for e in epochs)


def test_the_saved_model_loads_into_python_shapes(data_dir, tmp_path):
    """torch::save writes a TorchScript-style archive; its tensors match the Python model's parameters in shape."""
    saved = tmp_path / "dense.pt"
    assert _run("--data", data_dir, "--train-subset", 64, "--test-subset", 32, "--save", saved).returncode == 0
    archive = torch.jit.load(str(saved))
    cpp_shapes = sorted(tuple(p.shape) for p in archive.parameters())
    python_shapes = sorted(tuple(p.shape) for p in leanconv.models.resnet20(10, 1).parameters())
    assert cpp_shapes == python_shapes


@pytest.mark.parametrize("args, message", [
    (["--conv", "tensor_train"], "unknown conv family 'tensor_train'; expected one of dense"),
    (["--epochs", "many"], "--epochs takes a number"),
    (["--frobnicate", "1"], "unknown flag"),
    (["--conv", "multigrid", "--group-size", "3", "--coarsest", "2"], "not divisible by group_size = 3"),
    (["--conv", "multigrid", "--group-size", "16", "--coarsest", "16"], "one channel level"),
    (["--conv", "generated", "--ring-size", "0"], "--ring-size must be a whole count in [1, "),
    (["--conv", "generated", "--ring-size", "1.5"], "--ring-size must be a whole count in [1, "),
    (["--conv", "generated", "--ring-size", "10000000"], "or a fraction in (0, 1), got 1e+07"),
    (["--conv", "lowrank", "--rank", "0"], "rank"),
    (["--conv", "lowrank", "--rank", "1.5"], "--rank takes a whole number, got '1.5'"),
    (["--conv", "lowrank", "--rank", "two"], "--rank takes a number, got 'two'"),
    (["--conv", "generated", "--rank", "1"], "--rank is not an option of conv=generated"),
    (["--ring-size", "0.1"], "--ring-size is not an option of conv=dense"),
])
def test_bad_flags_are_one_line_errors(args, message, data_dir):
    run = _run("--data", data_dir, "--train-subset", 32, "--test-subset", 32, *args)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "Exception raised from" not in run.stderr  # no C++ backtrace


def test_missing_and_corrupt_files_are_named(data_dir, tmp_path):
    run = _run("--data", tmp_path)
    assert run.returncode == 2 and "train-images-idx3-ubyte" in run.stderr and "dataset-fashion-mnist" in run.stderr
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes((data_dir / name).read_bytes())
    full = (data_dir / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(full[:len(full) // 2])  # truncated
    run = _run("--data", tmp_path)
    assert run.returncode == 2 and "t10k-images-idx3-ubyte: the header promises" in run.stderr, run.stderr
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file at all")
    run = _run("--data", tmp_path)
    assert run.returncode == 2 and "not an idx file" in run.stderr, run.stderr


def test_the_examples_families_are_the_registrys():
    run = _run("--help")
    choices = re.search(r"--conv ([\w|]+)\]", run.stdout + run.stderr)
    assert choices, run.stdout + run.stderr
    assert set(choices.group(1).split("|")) == set(REGISTRY)
