"""The benchmark harness every family uses.

Each benchmark is a list of rows; a row times several variants of one workload in the same run and reports
every variant as a ratio to the row's first variant (the baseline). Times are medians of repeated runs after a
warm-up, taken round-robin across the variants, with CUDA synchronised around each run; peak memory is CUDA's
allocator peak during one run of the variant, above what was allocated before it.
Results go to stdout as a markdown table and, with --out, to JSON and markdown files, which are rewritten after
every row (``parse_arguments`` starts them): a benchmark cut off at its time limit still leaves the rows it
measured.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import torch


@dataclass
class Measurement:
    variant: str
    median_ms: float
    spread_ms: float           # (p75 - p25): how noisy the median is
    ratio: float               # median / the baseline's median, same run
    peak_mib: Optional[float]  # CUDA only


@dataclass
class Row:
    benchmark: str
    workload: str
    device: str
    mode: str
    measurements: List[Measurement] = field(default_factory=list)
    notes: Dict[str, str] = field(default_factory=dict)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _summary(times: List[float]):
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return statistics.median(times), q[2] - q[0]


# The rows measured so far and where they are written (parse_arguments sets it from --out).
_progress: Dict[str, object] = {"out": None, "rows": []}


def measure_row(row: Row, variants: Dict[str, Callable[[], object]], warmup: int, repeats: int) -> Row:
    """Times the variants round-robin (one run of each per repeat), so a drift of the machine's speed during
    the row affects every variant alike and the ratios stay fair; then each variant's peak memory alone."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    _sync(row.device)
    times: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            _sync(row.device)
            times[name].append((time.perf_counter() - t0) * 1e3)
    baseline = _summary(next(iter(times.values())))[0]
    for name, fn in variants.items():
        median, spread = _summary(times[name])
        row.measurements.append(Measurement(name, median, spread, median / baseline, _peak_mib(fn, row.device)))
    _progress["rows"].append(row)
    if _progress["out"]:
        _write(_progress["rows"], _progress["out"], environment())
    return row


def module_runner(module, x, mode: str) -> Callable[[], object]:
    """One timed call of ``module``: 'forward' under no_grad, anything else forward + backward of the sum."""
    if mode == "forward":
        def run():
            with torch.no_grad():
                module(x)
        return run
    xg = x.clone().requires_grad_()

    def run():
        module(xg).sum().backward()
    return run


def saved_activation_mib(model, x) -> float:
    """MiB of the tensors autograd saves for the backward in one forward of ``model(x)`` (each storage once):
    the activation memory of a training step, on any device."""
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return total / 2**20


def _peak_mib(fn: Callable[[], object], device: str) -> Optional[float]:
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def environment() -> Dict[str, str]:
    try:
        commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                         stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    env = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
           "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
           "cpu_threads": str(torch.get_num_threads())}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
        try:
            env["driver"] = subprocess.check_output(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], text=True).strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return env


def markdown(rows: List[Row], env: Dict[str, str]) -> str:
    lines = ["Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    lines.append("| benchmark | workload | device | mode | variant | median ms | IQR ms | ratio | peak MiB |")
    lines.append("|---|---|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        for m in row.measurements:
            peak = f"{m.peak_mib:.1f}" if m.peak_mib is not None else "-"
            lines.append(f"| {row.benchmark} | {row.workload} | {row.device} | {row.mode} | {m.variant} | "
                         f"{m.median_ms:.3f} | {m.spread_ms:.3f} | {m.ratio:.2f} | {peak} |")
    notes = [(row, k, v) for row in rows for k, v in row.notes.items()]
    if notes:
        lines += ["", "Notes:"]
        lines += [f"- {row.benchmark} {row.workload} {row.device}: {k}: {v}" for row, k, v in notes]
    return "\n".join(lines)


def common_arguments(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--quick", action="store_true",
                   help="one representative shape per benchmark at the device's batch (the GPU check's mode)")
    p.add_argument("--dtypes", default="float32", help="comma-separated: float32, bfloat16, float16")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    return p


def parse_arguments(parser: argparse.ArgumentParser):
    """The parsed arguments; with --out, every row is written there as soon as it is measured."""
    args = parser.parse_args()
    _progress["out"], _progress["rows"] = args.out, []
    return args


def dtypes_of(args) -> List[torch.dtype]:
    return [getattr(torch, name) for name in args.dtypes.split(",")]


def dtype_label(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _write(rows: List[Row], out: str, env: Dict[str, str]) -> None:
    """<out>.json and <out>.md, each replaced whole (written beside, then renamed)."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    for suffix, text in ((".json", json.dumps({"environment": env, "rows": [asdict(r) for r in rows]}, indent=1)),
                         (".md", markdown(rows, env) + "\n")):
        with open(out + suffix + ".tmp", "w") as f:
            f.write(text)
        os.replace(out + suffix + ".tmp", out + suffix)


def report(rows: List[Row], out: Optional[str]) -> None:
    env = environment()
    print(markdown(rows, env))
    if out:
        _write(rows, out, env)
