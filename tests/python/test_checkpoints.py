"""Checkpoints: a run killed with SIGKILL mid-epoch and resumed ends with the same bits as an uninterrupted run
(deterministic mode, CPU, the augmented Fashion-MNIST-format data written here); a truncated checkpoint is reported
and the previous one used; no usable checkpoint is a clear error."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from leanconv.train import checkpoint as checkpoints
from test_datasets import _write_fashion

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "python"), "OMP_NUM_THREADS": "2"}


def _command(data: Path, path: Path, *extra):
    return [sys.executable, "-m", "leanconv.train", "--dataset", "fashion-mnist", "--data", str(data), "--model",
            "resnet20", "--conv", "multigrid", "--group-size", "8", "--coarsest", "8", "--epochs", "2",
            "--batch-size", "8", "--workers", "0", "--deterministic", "--checkpoint", str(path), *extra]


def _final_model(path: Path):
    return checkpoints.load(path)["model"]


def test_a_killed_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    data = tmp_path / "data"
    _write_fashion(data, count=96)  # 12 steps an epoch
    reference = tmp_path / "reference.pt"
    subprocess.run(_command(data, reference), env=ENV, cwd=REPO, check=True, capture_output=True, timeout=600)

    interrupted = tmp_path / "interrupted.pt"
    process = subprocess.Popen(_command(data, interrupted, "--checkpoint-every", "1"), env=ENV, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if interrupted.exists():
            try:
                state = checkpoints.load(interrupted)
            except Exception:
                continue  # (only while the file is being replaced: the rename is atomic, the read is not)
            if state["epoch"] == 0 and state["step"] >= 3 or state["epoch"] == 1:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed_at = (state["epoch"], state["step"])
                break
        time.sleep(0.01)
    assert killed_at is not None, "the run ended before it could be killed mid-training"
    state = checkpoints.load(interrupted)
    assert (state["epoch"], state["step"]) != (2, 0)  # it was stopped before the end
    subprocess.run(_command(data, interrupted, "--checkpoint-every", "1", "--resume"), env=ENV, cwd=REPO,
                   check=True, capture_output=True, timeout=600)
    expected, actual = _final_model(reference), _final_model(interrupted)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_a_truncated_checkpoint_is_reported_and_the_previous_one_used(tmp_path, capsys):
    path = tmp_path / "run.pt"
    checkpoints.save(path, {"epoch": 1, "step": 0, "model": {"w": torch.ones(3)}})
    checkpoints.save(path, {"epoch": 2, "step": 0, "model": {"w": torch.full((3,), 2.0)}})
    assert checkpoints.load(path)["epoch"] == 2
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a crash of the disk, not of the writer: the rename was atomic
    state = checkpoints.load(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert "unusable" in capsys.readouterr().err
    checkpoints.previous_path(path).write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError, match="no usable checkpoint"):
        checkpoints.load(path)
    assert checkpoints.load(tmp_path / "none.pt") is None
