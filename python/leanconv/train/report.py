"""python -m leanconv.train.report RUNS... [--out PNG]: accuracy against learned parameters across runs.

Each RUN is a CSV log of ``python -m leanconv.train --log-csv`` (or a folder of them); its last row gives the run's
point: final test accuracy against learned parameters (log scale), one colour per family, each point labelled with
its run's name (or its file's, where runs share a name). Prints the points as a markdown table too, with each run's
images/s as the median of its epochs'. ``--by-epoch`` draws each run's test accuracy by epoch instead. ``--out``
without an image suffix gets ``.png``.
"""
import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import Dict, List

from .._extras import exit_on_missing_extra, training_dependency

REQUIRED_COLUMNS = {"run", "family", "epoch", "test_accuracy", "images_per_s", "learned_params"}


def read_runs(paths: List[str]) -> List[Dict[str, str]]:
    """Each run's last row (its point), with ``file`` (the CSV's stem) and ``epochs`` (every row: the curve)."""
    files = []
    for path in map(Path, paths):
        if not path.exists():
            raise SystemExit(f"leanconv: {path}: no such file or folder")
        files += sorted(path.glob("*.csv")) if path.is_dir() else [path]
    runs = []
    for file in files:
        try:
            with open(file, newline="", encoding="utf-8-sig") as f:  # (a spreadsheet's save adds a byte-order mark)
                reader = csv.DictReader(f)
                missing = sorted(REQUIRED_COLUMNS - set(reader.fieldnames or ()))
                rows = list(reader)
            epochs = [dict(r, epoch=int(r["epoch"]), test_accuracy=float(r["test_accuracy"]),
                           learned_params=int(r["learned_params"]), images_per_s=float(r["images_per_s"]))
                      for r in rows] if not missing else []
        except (UnicodeDecodeError, csv.Error, ValueError, TypeError) as error:
            raise SystemExit(f"leanconv: {file} is not a training log of python -m leanconv.train --log-csv "
                             f"({type(error).__name__}: {error})") from None
        if missing:
            raise SystemExit(f"leanconv: {file} is not a training log of python -m leanconv.train --log-csv: it has "
                             f"no column {', '.join(missing)}")
        if not epochs:
            raise SystemExit(f"leanconv: {file} has no epochs logged")
        runs.append(dict(epochs[-1], file=file.stem, epochs=epochs))
    if not runs:
        raise SystemExit(f"leanconv: no CSV logs found in {', '.join(paths)}")
    names = [r["run"] for r in runs]
    for r in runs:  # runs of one name (e.g. two ranks of one family) are told apart by their files' names
        r["label"] = r["file"] if names.count(r["run"]) > 1 else r["run"]
    return runs


def pyplot():
    """matplotlib's pyplot, drawing to files only (no display needed); imported when a figure is drawn, so the
    package imports without it."""
    training_dependency("matplotlib").use("Agg")
    return training_dependency("matplotlib.pyplot")


def draw(runs: List[Dict[str, str]], out: Path) -> None:
    plt = pyplot()
    families = sorted({r["family"] for r in runs})
    colours = family_colours(plt, runs)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family in families:
        points = [r for r in runs if r["family"] == family]
        dense = family == "dense"  # the baseline every compact family is read against: a larger star
        ax.scatter([int(r["learned_params"]) for r in points], [100 * float(r["test_accuracy"]) for r in points],
                   color=colours[family], label=family + (" (baseline)" if dense else ""), s=140 if dense else 40,
                   marker="*" if dense else "o", zorder=3)
    labels = [ax.annotate(r["label"], (int(r["learned_params"]), 100 * float(r["test_accuracy"])), fontsize=7,
                          xytext=(4, 3), textcoords="offset points") for r in runs]
    ax.set_xscale("log")
    ax.set_xlabel("learned parameters")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="family")
    fig.tight_layout()
    # Where the labels fall is known only once drawn: then each that would cross another label or a point moves down
    # a row (two seeds of one model, an experiment beside its row, a long name reaching its neighbour's).
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [tuple(label.get_window_extent(renderer).extents) for label in labels]
    marker = 4 * fig.dpi / 72  # a point's marker, half its width in pixels
    points = [tuple(ax.transData.transform((int(r["learned_params"]), 100 * float(r["test_accuracy"])))) for r in runs]
    obstacles = [(x - marker, y - marker, x + marker, y + marker) for x, y in points]
    row_height = 9 * fig.dpi / 72
    for label, rows in zip(labels, label_rows(boxes, row_height, obstacles)):
        label.set_position((4, 3 - 9 * rows))
    save(fig, out)


def label_rows(boxes: List[tuple], row_height: float, obstacles: List[tuple] = ()) -> List[int]:
    """For each label's box (x0, y0, x1, y1, in pixels, y up) where it is first put, how many rows of row_height
    below it the label goes: the fewest that keep it clear of the labels placed before it and of the obstacles (the
    points)."""
    def overlap(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    placed, rows = list(obstacles), []
    for x0, y0, x1, y1 in boxes:
        row = 0
        while row < 12 and any(overlap((x0, y0 - row * row_height, x1, y1 - row * row_height), b) for b in placed):
            row += 1
        placed.append((x0, y0 - row * row_height, x1, y1 - row * row_height))
        rows.append(row)
    return rows


def save(fig, out: Path) -> None:
    plt = pyplot()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
    except OSError as error:
        raise SystemExit(f"leanconv: cannot write {out}: {error.strerror or error}") from None
    finally:
        plt.close(fig)


def checked_out(text: str) -> Path:
    """The picture's path: an image suffix added where it has none (the file written is the file named); an empty
    path or a folder is refused before any work."""
    if not text.strip():
        raise SystemExit("leanconv: --out needs a file name, e.g. --out accuracy.png")
    out = Path(text)
    if text.endswith(("/", "\\")) or out.is_dir():
        raise SystemExit(f"leanconv: --out {text} is a folder: name the picture's file, e.g. {out / 'accuracy.png'}")
    if out.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        out = out.with_name(out.name + ".png")
    if out.is_dir():
        raise SystemExit(f"leanconv: --out {out} is a folder: name the picture's file")
    return out


LINE_STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v"]


def family_colours(plt, runs: List[Dict[str, str]]) -> Dict[str, tuple]:
    """One colour a family, the same in both pictures."""
    return {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(sorted({r["family"] for r in runs}))}


def run_styles(runs: List[Dict[str, str]]) -> List[tuple]:
    """Each run's (line style, marker) within its family's colour: the runs of one family (seeds, experiments) are
    told apart by these, distinct for up to 20 runs a family."""
    seen: Dict[str, int] = {}
    styles = []
    for r in runs:
        k = seen.get(r["family"], 0)
        seen[r["family"]] = k + 1
        styles.append((LINE_STYLES[k % len(LINE_STYLES)], MARKERS[k % len(MARKERS)]))
    return styles


def draw_curves(runs: List[Dict[str, str]], out: Path) -> None:
    """Test accuracy by epoch, a line per run, coloured by family. Beside it, where runs have 4 epochs or more, the
    second half of the epochs on their own scale: where the runs end, which the first epochs' swings would squash."""
    plt = pyplot()
    last = max(int(e["epoch"]) for r in runs for e in r["epochs"])
    zoom_from = last // 2 + 1 if last >= 4 else None
    fig, axes = plt.subplots(1, 2 if zoom_from else 1, figsize=(12 if zoom_from else 7, 4.5), squeeze=False)
    colours = family_colours(plt, runs)
    for ax, first in zip(axes[0], [1, zoom_from]):
        for r, (line, marker) in zip(runs, run_styles(runs)):
            epochs = [e for e in r["epochs"] if int(e["epoch"]) >= first]
            ax.plot([int(e["epoch"]) for e in epochs], [100 * float(e["test_accuracy"]) for e in epochs],
                    color=colours[r["family"]], linestyle=line, marker=marker, markersize=3,
                    label=f"{r['label']} ({int(r['learned_params']):,})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
    if zoom_from:
        axes[0][1].set_title(f"epochs {zoom_from}-{last}", fontsize=9)
    axes[0][-1].legend(fontsize=7, title="run (learned parameters)", title_fontsize=7, loc="upper left",
                       bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    save(fig, out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m leanconv.train.report", description=__doc__)
    p.add_argument("runs", nargs="+", help="CSV logs or folders of them")
    p.add_argument("--out", default="accuracy_vs_parameters.png")
    p.add_argument("--by-epoch", action="store_true", help="draw test accuracy by epoch, a line per run")
    args = p.parse_args(argv)
    out = checked_out(args.out)
    runs = read_runs(args.runs)
    with exit_on_missing_extra():
        (draw_curves if args.by_epoch else draw)(runs, out)
    # A run's speed is the median of its epochs': one epoch slowed by other work (or a pause and --resume) moves it
    # little, where the last epoch's alone could be anything.
    print("| run | family | learned params | test accuracy | images/s (median of epochs) |\n|---|---|---:|---:|---:|")
    for r in runs:
        speed = statistics.median(e["images_per_s"] for e in r["epochs"])
        print(f"| {r['label']} | {r['family']} | {int(r['learned_params']):,} | {100 * float(r['test_accuracy']):.2f}% "
              f"| {speed:.0f} |")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
