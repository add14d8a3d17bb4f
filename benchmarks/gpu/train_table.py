"""The GPU training stage's table (benchmarks/gpu_train.sh), from the rows' CSV logs as they stand: per row its
learned parameters, the epochs done of those planned, the last and the best test accuracy, the gap to the dense
row's last accuracy, and images/s. Rows without a logged epoch yet say so.

    train_table.py RESULTS_DIR EPOCHS NOTE NAME|FLAGS...     (NOTE: what the rows share, the header's first line)
"""
import csv
import datetime
import os
import subprocess
import sys


def commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        pack = os.path.join(os.environ.get("PACK", ".gpu"), "COMMIT")
        return open(pack).read().strip() if os.path.exists(pack) else "unknown"


def main():
    results, epochs, note, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    logged = {}
    for row in rows:
        name = row.split("|", 1)[0]
        path = os.path.join(results, name + ".csv")
        if os.path.exists(path):
            with open(path, newline="") as f:
                logged[name] = list(csv.DictReader(f))
    dense = next((v[-1] for k, v in logged.items() if "dense" in k and v), None)
    print(f"{note}; {epochs} epochs planned; the python -m leanconv.train defaults otherwise.")
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, commit {commit()}")
    print()
    print("| row | learned params | epochs done | test accuracy | best | vs dense | images/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        name, flags = row.split("|", 1)
        epochs_logged = logged.get(name) or []
        if not epochs_logged:
            print(f"| {name} | | 0/{epochs} | no epoch logged yet (see {name}.log) | | | |")
            continue
        last = epochs_logged[-1]
        accuracy = 100 * float(last["test_accuracy"])
        best = max(100 * float(e["test_accuracy"]) for e in epochs_logged)
        gap = "" if dense is None or "dense" in name else f"{accuracy - 100 * float(dense['test_accuracy']):+.2f}"
        print(f"| {name} | {int(last['learned_params']):,} | {last['epoch']}/{epochs} | {accuracy:.2f}% | {best:.2f}% "
              f"| {gap} | {float(last['images_per_s']):.0f} |")
    print()
    print("Rows: " + "; ".join(f"`{r.split('|', 1)[0]}`: `{r.split('|', 1)[1]}`" for r in rows))


if __name__ == "__main__":
    main()
