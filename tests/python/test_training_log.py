"""The training command line's CSV log (a row per epoch, appended on resume), the final table's throughput column,
and the report's PNG of accuracy against learned parameters across runs."""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leanconv.train import checkpoint as checkpoints
from leanconv.train.loop import LOG_COLUMNS
from leanconv.train.report import main as report_main
from test_datasets import _write_fashion

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "python")}


def _train(data, log, conv, *extra):
    return subprocess.run([sys.executable, "-m", "leanconv.train", "--dataset", "fashion-mnist", "--data", str(data),
                           "--model", "resnet20", "--conv", conv, "--epochs", "2", "--batch-size", "16",
                           "--workers", "0", "--log-csv", str(log), *extra], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=600, check=True)


def test_logs_and_report(tmp_path, capsys):
    data = tmp_path / "data"
    _write_fashion(data, count=48)
    logs = tmp_path / "logs"
    dense = _train(data, logs / "dense.csv", "dense")
    _train(data, logs / "generated.csv", "generated", "--ring-size", "0.1")
    assert "| images/s |" in dense.stdout and "| resnet20-dense |" in dense.stdout
    with open(logs / "dense.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and list(rows[0]) == LOG_COLUMNS
    for r in rows:
        assert 0 <= float(r["test_accuracy"]) <= 1 and float(r["images_per_s"]) > 0 and float(r["train_loss"]) > 0
        assert float(r["peak_memory_mib"]) > 0 and int(r["learned_params"]) == int(r["dense_params"])
    assert float(rows[1]["lr"]) < float(rows[0]["lr"])  # the schedule's decay
    png = tmp_path / "report.png"
    report_main([str(logs), "--out", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    shutil.copy(logs / "dense.csv", logs / "dense-again.csv")  # two runs of one name: labelled by their files
    report_main([str(logs), "--out", str(png)])
    points = capsys.readouterr().out
    assert "| dense | dense |" in points and "| dense-again | dense |" in points
    assert "| resnet20-generated | generated |" in points
    with pytest.raises(SystemExit, match="no CSV logs"):
        report_main([str(tmp_path / "data"), "--out", str(png)])


def test_mixed_precision_channels_last_and_label_smoothing_train(tmp_path):
    data = tmp_path / "data"
    _write_fashion(data, count=32)
    for conv in ("multigrid", "lowrank"):
        options = ["--group-size", "8", "--coarsest", "8"] if conv == "multigrid" else []
        flagged = _train(data, tmp_path / f"{conv}.csv", conv, "--amp", "bf16", "--channels-last",
                         "--label-smoothing", "0.1", "--seed", "3", *options)
        _train(data, tmp_path / f"{conv}-plain.csv", conv, "--seed", "3", *options)
        assert f"| resnet20-{conv} |" in flagged.stdout
        losses = {name: [float(row["train_loss"]) for row in csv.DictReader(open(tmp_path / f"{name}.csv"))]
                  for name in (conv, f"{conv}-plain")}
        # Both runs trained every epoch to a finite loss near each other (bfloat16 and smoothing change the numbers,
        # not the training), and the flags took effect: the same seed gives another loss.
        assert all(len(run) == 2 and all(0 < loss < 10 for loss in run) for run in losses.values()), losses
        flagged_loss, plain_loss = losses[conv][0], losses[f"{conv}-plain"][0]
        assert flagged_loss != plain_loss and abs(flagged_loss - plain_loss) < 0.5 * plain_loss, losses


def test_weight_decay_stays_off_batch_norm_and_biases():
    import leanconv
    from leanconv.train.loop import parameter_groups

    model = leanconv.models.resnet20(conv="generated")
    decay, rest = parameter_groups(model, 5e-4)
    decayed = {id(p) for p in decay["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 5e-4 and rest["weight_decay"] == 0.0
    assert all(names[id(p)].endswith(("bias",)) or ".bn" in names[id(p)] or "stem.1" in names[id(p)]
               for p in rest["params"])
    assert any(names[i] == "rings.model.ring" for i in decayed) and any(names[i] == "fc.weight" for i in decayed)
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_a_module_can_keep_its_coefficients_free_of_weight_decay():
    """timm's convention: a module's no_weight_decay() names parameters (relative to it) to leave undecayed."""
    import torch
    from torch import nn

    import leanconv
    from leanconv.train.loop import parameter_groups

    class Scaled(nn.Module):  # a conv with a learned per-channel scale that its method keeps free of decay
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, bias=False)
            self.scale = nn.Parameter(torch.ones(4, 1, 1))

        def no_weight_decay(self):
            return {"scale"}

    model = nn.Sequential(leanconv.models.resnet20(conv="lowrank"), Scaled())
    decay, rest = parameter_groups(model, 5e-4)
    assert any(p is model[1].scale for p in rest["params"]) and any(p is model[1].conv.weight for p in decay["params"])
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))
    Scaled.no_weight_decay = lambda self: {"gain"}
    with pytest.raises(ValueError, match=r"no_weight_decay\(\) names parameters it does not have: \['gain'\]"):
        parameter_groups(model, 5e-4)


@pytest.mark.parametrize("schedule,check", [
    ("step", lambda lrs: lrs == pytest.approx([0.01, 0.001, 0.001])),  # x0.1 after steps 3 and 6 of 9
    ("cosine", lambda lrs: lrs[0] > lrs[1] > lrs[2] == pytest.approx(0.0, abs=1e-9)),
])
def test_schedules(tmp_path, schedule, check):
    data = tmp_path / "data"
    _write_fashion(data, count=48)  # 3 steps an epoch at batch 16: one milestone per epoch
    log = tmp_path / "run.csv"
    subprocess.run([sys.executable, "-m", "leanconv.train", "--dataset", "fashion-mnist", "--data", str(data),
                    "--model", "resnet20", "--epochs", "3", "--batch-size", "16", "--workers", "0", "--schedule",
                    schedule, "--log-csv", str(log)], cwd=REPO, env=ENV, capture_output=True, text=True,
                   timeout=600, check=True)
    with open(log, newline="") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]  # the rate after each epoch
    assert len(lrs) == 3 and check(lrs), lrs


def test_compiled_training_matches_eager(tmp_path):
    data = tmp_path / "data"
    _write_fashion(data, count=32)
    import torch

    finals = []
    for extra in ([], ["--compile"]):
        path = tmp_path / f"run{len(finals)}.pt"
        subprocess.run([sys.executable, "-m", "leanconv.train", "--dataset", "fashion-mnist", "--data", str(data),
                        "--model", "resnet20", "--conv", "lowrank", "--epochs", "1", "--batch-size", "16",
                        "--workers", "0", "--checkpoint", str(path), *extra], cwd=REPO, env=ENV, capture_output=True,
                       text=True, timeout=900, check=True)
        finals.append(checkpoints.load(path)["model"])
    for key in finals[0]:
        torch.testing.assert_close(finals[1][key], finals[0][key], rtol=1e-3, atol=1e-4)


def test_labels_that_would_cross_go_on_rows_of_their_own():
    from leanconv.train.report import label_rows

    # Label boxes (x0, y0, x1, y1) in pixels as first drawn, 9 px a row: two seeds of one model (one box over the
    # other), a long name reaching over its right neighbour's label, and one far from all.
    seed0, seed1 = (100, 200, 180, 209), (100, 198, 180, 207)
    long_name, neighbour = (300, 150, 460, 159), (380, 147, 440, 156)
    far = (600, 20, 650, 29)
    assert label_rows([seed0, seed1, long_name, neighbour, far], 9) == [0, 1, 0, 1, 0]
    # A third seed goes below both; a label over a point (an obstacle) moves off it.
    assert label_rows([seed0, seed1, seed1], 9) == [0, 1, 2]
    assert label_rows([far], 9, obstacles=[(620, 22, 628, 30)]) == [1]
    spread = [(100 * k, 30 * k, 100 * k + 60, 30 * k + 9) for k in range(6)]  # apart in both: one row each
    assert label_rows(spread, 9) == [0] * 6


def test_the_points_give_each_runs_median_speed_over_its_epochs(tmp_path, capsys):
    # The last epoch of this run was slowed (a pause, other work): the table must not report it as the run's speed.
    header = ",".join(LOG_COLUMNS)
    speeds = [150.0, 149.0, 151.0, 12.0]
    lines = [header] + [",".join({"run": "r", "family": "dense", "epoch": str(e + 1), "train_loss": "0.5",
                                  "test_accuracy": "0.9", "lr": "0.1", "images_per_s": str(speed),
                                  "peak_memory_mib": "10", "learned_params": "100", "dense_params": "100"}[c]
                                 for c in LOG_COLUMNS) for e, speed in enumerate(speeds)]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    report_main([str(tmp_path / "r.csv"), "--out", str(tmp_path / "r.png")])
    assert "| r | dense | 100 | 90.00% | 150 |" in capsys.readouterr().out


def test_runs_of_one_family_differ_in_style_and_the_epoch_picture_is_drawn(tmp_path):
    from leanconv.train.report import run_styles

    runs = [{"family": f} for f in ["dense", "lowrank", "dense", "lowrank", "lowrank"] + ["shared"] * 20]
    styles = run_styles(runs)
    for family in ("dense", "lowrank", "shared"):
        mine = [style for run, style in zip(runs, styles) if run["family"] == family]
        assert len(set(mine)) == len(mine)  # seeds and experiments of one colour still tell apart
    header = ",".join(LOG_COLUMNS)
    for name, epochs in (("short", 2), ("long", 6)):  # the second half on its own scale only from 4 epochs on
        lines = [header] + [",".join({"run": name, "family": "dense", "epoch": str(e), "train_loss": "0.5",
                                      "test_accuracy": str(0.5 + e / 20), "lr": "0.1", "images_per_s": "100",
                                      "peak_memory_mib": "10", "learned_params": "100", "dense_params": "100"}[c]
                                     for c in LOG_COLUMNS) for e in range(1, epochs + 1)]
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
        png = tmp_path / f"{name}.png"
        report_main([str(tmp_path / f"{name}.csv"), "--by-epoch", "--out", str(png)])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    assert Image.open(tmp_path / "long.png").width > 1.5 * Image.open(tmp_path / "short.png").width
