"""The accuracy-budget table (benchmarks/train_budget_fashion_mnist.sh), from the rows' CSV logs as they stand.

Rows that differ only in their seed (NAME-s0, NAME-s1, ...) are one line: the mean test accuracy of the seeds that
finished, with its spread (half the range); a row still training shows its epochs done. Each line gives the learned
parameters, the multiply-adds of one forward pass of a 1x32x32 image (benchmarks/bench_models.forward_macs), the
test accuracy after the last epoch, the gap to dense's mean, and the CPU images/s (the median over its epochs of the
training throughput, one thread, beside the other rows).

    budget_table.py RESULTS_DIR EPOCHS ROWS_FILE
"""
import csv
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_models import forward_macs  # noqa: E402
from leanconv.train.__main__ import build_model, parse_args  # noqa: E402


def rows_of(path):
    with open(path) as f:
        return [line.strip().split("|", 1) for line in f if line.strip() and not line.lstrip().startswith("#")]


def log_of(results, name):
    path = os.path.join(results, name + ".csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def macs_of(flags):
    args = parse_args(flags.split())
    model, _ = build_model(args, num_classes=10, in_channels=1)
    return forward_macs(model.eval(), torch.zeros(1, 1, 32, 32))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main():
    results, epochs, rows_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    groups = {}  # the row without its seed -> [(name, flags)]
    for name, flags in rows_of(rows_file):
        groups.setdefault(re.sub(r"-s\d+$", "", name), []).append((name, flags))
    lines = []
    for group, members in groups.items():
        logs = [(name, log_of(results, name)) for name, _ in members]
        finished = [log for _, log in logs if len(log) >= epochs]
        accuracies = [100 * float(log[epochs - 1]["test_accuracy"]) for log in finished]
        throughput = [float(e["images_per_s"]) for _, log in logs for e in log[:epochs]]
        learned = next((int(log[0]["learned_params"]) for _, log in logs if log), None)
        lines.append(dict(group=group, seeds=len(members), logs=logs, accuracies=accuracies, learned=learned,
                          macs=macs_of(members[0][1]), throughput=throughput))
    dense = next((l for l in lines if "dense" in l["group"]), None)
    dense_mean = statistics.mean(dense["accuracies"]) if dense and dense["accuracies"] else None
    dense_params = dense["learned"] if dense else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"Fashion-MNIST (28x28 padded to 32x32), all 60,000 training images, test set 10,000, {epochs} epochs, "
          "the python -m leanconv.train defaults (SGD + Nesterov, one-cycle to 0.1, weight decay 5e-4, batch 128).")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, one thread a row, two rows at a time; torch {torch.__version__}; "
          f"table made {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} at commit {commit}.")
    print()
    print("| row | seeds | learned params | fewer than dense | multiply-adds / image | test accuracy | vs dense "
          "| CPU images/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for l in lines:
        if l["accuracies"]:
            mean = statistics.mean(l["accuracies"])
            spread = (max(l["accuracies"]) - min(l["accuracies"])) / 2
            accuracy = f"{mean:.2f}%" + (f" ± {spread:.2f}" if len(l["accuracies"]) > 1 else "")
            gap = "" if l is dense or dense_mean is None else f"{mean - dense_mean:+.2f}"
        else:
            accuracy, gap = "", ""
        unfinished = [f"{name}: {len(log)}/{epochs} epochs" for name, log in l["logs"] if len(log) < epochs]
        if unfinished:
            accuracy = (accuracy + " " if accuracy else "") + "(" + "; ".join(unfinished) + ")"
        ratio = f"{dense_params / l['learned']:.1f}x" if dense_params and l["learned"] else ""
        learned = f"{l['learned']:,}" if l["learned"] else ""
        speed = f"{statistics.median(l['throughput']):.0f}" if l["throughput"] else ""
        print(f"| {l['group']} | {len(l['accuracies'])}/{l['seeds']} | {learned} | {ratio} | {l['macs'] / 1e6:.1f} M "
              f"| {accuracy} | {gap} | {speed} |")


if __name__ == "__main__":
    main()
