"""Proof that the emulated CUDA suite can fail: deliberate defects in cuda/, one at a time, in a copy of the tree.

For each defect the script edits one line of a kernel or launcher in a copy of the repository (the copy builds
without nvcc, LEANCONV_CUDA=OFF: only the emulated kernels compile the edited source), runs
`make test-cuda-emulation` there (pytest stopping at the first failure), and records whether the suite failed and
which test caught it. A defect that a data race alone shows (a plain add where an atomic belongs) is run with the
OS-thread execution under ThreadSanitizer (`make test-cuda-emulation-tsan`). Prints a markdown table.

    python benchmarks/cuda_mutations.py [--only NAME] [--keep] > benchmarks/results/<date>-cpu-cuda-mutations.md
"""
import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Defect:
    name: str
    file: str
    old: str  # exact text in the file, replaced once
    new: str
    what: str
    target: str = "test-cuda-emulation"


DEFECTS = [
    Defect("barrier removed", "cuda/channel_passes.cuh",
           "  shared[size + slot] = second;\n  __syncthreads();\n", "  shared[size + slot] = second;\n",
           "the reduction tree's first __syncthreads (after each thread writes its slot)"),
    Defect("barrier in divergent code", "cuda/channel_passes.cuh",
           "      shared[size + slot] += shared[size + slot + half * columns];\n    }\n    __syncthreads();\n",
           "      shared[size + slot] += shared[size + slot + half * columns];\n      __syncthreads();\n    }\n",
           "the tree's per-level __syncthreads moved inside `if (row < half)`"),
    Defect("eigen tile barrier removed", "cuda/lowrank.cu",
           "        for (int v = 0; v < kMicro; ++v) acc[u][v] += a[u] * b[v];\n    }\n    __syncthreads();\n",
           "        for (int v = 0; v < kMicro; ++v) acc[u][v] += a[u] * b[v];\n    }\n",
           "the eigen conv's __syncthreads after consuming a chunk's tiles"),
    Defect("shuffle offset halved", "cuda/filter_summary.cu",
           "for (int offset = kWarp / 2; offset > 0; offset /= 2) sum += __shfl_down_sync",
           "for (int offset = kWarp / 4; offset > 0; offset /= 2) sum += __shfl_down_sync",
           "the warp-per-entry overlap-add's shuffle tree starts at 8 lanes, not 16"),
    Defect("shuffle with a partial mask", "cuda/channel_passes.cuh",
           "first += __shfl_down_sync(0xffffffffu, first, offset);",
           "first += __shfl_down_sync(0x0000ffffu, first, offset);",
           "the per-channel finish's shuffle mask names half the warp"),
    Defect("tile bound off by one", "cuda/lowrank.cu",
           "for (int e = tid; e < kChunk * kTilePixels; e += kBlockThreads) {",
           "for (int e = tid; e < kChunk * kTilePixels - 1; e += kBlockThreads) {",
           "the eigen conv leaves the last entry of its shared z tile unwritten"),
    Defect("channels_last stride swapped", "cuda/index_math.cuh",
           "return channels_last ? Coords4{n, d0, d2, d1} : Coords4{n, d2, d1, d0};",
           "return channels_last ? Coords4{n, d0, d1, d2} : Coords4{n, d2, d1, d0};",
           "Unflatten4 reads an NHWC position's width as its height"),
    Defect("bounds check dropped", "cuda/multigrid.cu",
           "        if (h < 0 || h >= g.in_h) continue;\n        for (int64_t j = 0; j < g.kernel_w; ++j) {\n"
           "          const int64_t w = q * g.stride_w - g.pad_w + j * g.dil_w;\n"
           "          if (w < 0 || w >= g.in_w) continue;",
           "        if (h < 0 || h >= g.in_h) continue;\n        for (int64_t j = 0; j < g.kernel_w; ++j) {\n"
           "          const int64_t w = q * g.stride_w - g.pad_w + j * g.dil_w;",
           "the grouped conv forward reads columns outside the image"),
    Defect("bounds check off by one", "cuda/filter_summary.cu",
           "if (row_inside && w >= 0 && w < s.in_w) {", "if (row_inside && w >= 0 && w <= s.in_w) {",
           "the shifted sum adds the value one past a row's end"),
    Defect("index narrowed to 32 bits", "cuda/generated.cu",
           "const uint64_t g = static_cast<uint64_t>(offset + j);\n    const opmath_t value",
           "const uint64_t g = static_cast<uint32_t>(offset + j);\n    const opmath_t value",
           "the generated forward's position narrowed to 32 bits"),
    Defect("grid-stride loop stops after one pass", "cuda/launch.cuh",
           "       index += int64_t(gridDim.x) * blockDim.x)", "       index += (count))",
           "every grid-stride loop ends after its first pass over the grid"),
    Defect("atomicAdd replaced by load-add-store", "cuda/generated.cu",
           "atomicAdd(acc + perm.ring_entry(g), perm.sign(g) > 0 ? v : -v);",
           "acc[perm.ring_entry(g)] += perm.sign(g) > 0 ? v : -v;",
           "the scatter backward adds without an atomic", target="test-cuda-emulation-tsan"),
    Defect("sort told one bit too few", "cuda/generated.cu",
           "const int bits = entry_bits(perm.ring_size);", "const int bits = entry_bits(perm.ring_size) - 1;",
           "the deterministic backward's radix sort ignores the top bit of the ring entries"),
    Defect("sorted result read from the wrong buffer", "cuda/generated.cu",
           "        keys.Current(), terms.Current(), int64_t(count)",
           "        pointer<key_t>(keys_a), pointer<opmath_t>(terms_a), int64_t(count)",
           "add_runs reads the sort's input buffers, not DoubleBuffer::Current()"),
    Defect("vector access without the alignment gate", "cuda/channel_passes.cuh",
           "aligned && L.spatial % V == 0,\n           partial.mutable_data_ptr<double>());",
           "L.spatial % V == 0,\n           partial.mutable_data_ptr<double>());",
           "the NCHW reduction uses 16-byte vectors on misaligned operands"),
    Defect("finish lanes stride by half a warp", "cuda/channel_passes.cuh",
           "for (int64_t chunk = lane; chunk < chunks; chunk += kWarp) {",
           "for (int64_t chunk = lane; chunk < chunks; chunk += kWarp / 2) {",
           "the per-channel finish adds some chunks twice"),
    Defect("block over the launch bounds", "cuda/channel_passes.cuh",
           "return Dims(channel_threads, kReduceThreads / channel_threads);",
           "return Dims(channel_threads, 2 * kReduceThreads / channel_threads);",
           "the NHWC reduction launches 512-thread blocks against __launch_bounds__(256)"),
]


def run(command, cwd, timeout, env=None):
    started = time.time()
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        return result.returncode, result.stdout + result.stderr, time.time() - started
    except subprocess.TimeoutExpired as e:
        return 124, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), \
            time.time() - started


def caught_by(output):
    """The first failing test's name, or the emulator's or compiler's first report line."""
    failed = re.findall(r"^FAILED (.+?)(?: - |$)", output, re.MULTILINE)
    if failed:
        return failed[0].split("::", 1)[-1].strip()
    report = re.search(r"(ThreadSanitizer: [^\n]+|leanconv CUDA emulation: [^\n]{0,120}|error: [^\n]{0,120})", output)
    return report.group(1) if report else "(see the log)"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="run the defects whose name contains this text")
    p.add_argument("--copy", default="/tmp/leanconv-mutants", help="where the copy of the tree goes")
    p.add_argument("--keep", action="store_true", help="keep the copy (and its build) afterwards")
    p.add_argument("--timeout", type=int, default=900, help="seconds per defect")
    args = p.parse_args()
    copy = Path(args.copy)
    if copy.exists():
        shutil.rmtree(copy)
    tracked = subprocess.check_output(["git", "ls-files", "-z"], cwd=ROOT).decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    for kept in (".deps-stamp",):
        if (ROOT / kept).exists():
            shutil.copy2(ROOT / kept, copy / kept)
    env = dict(os.environ, LEANCONV_CUDA="OFF", PYTEST_ADDOPTS="-x -p no:cacheprovider")
    make = ["make", "-s"]
    status, output, seconds = run(make + ["test-cuda-emulation"], copy, 3600, env)
    if status != 0:
        sys.exit(f"cuda_mutations: the unchanged copy does not pass make test-cuda-emulation:\n{output[-3000:]}")
    print(f"Deliberate defects in cuda/, one at a time, in a copy of the tree at commit "
          f"{subprocess.check_output(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True).strip()}; "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}. The unchanged copy passes "
          f"`make test-cuda-emulation` ({seconds:.0f} s with its build).")
    print()
    print("| defect | where | what it breaks | suite | caught by | seconds |")
    print("|---|---|---|---|---|---:|")
    missed = 0
    for defect in DEFECTS:
        if args.only and args.only not in defect.name:
            continue
        path = copy / defect.file
        original = path.read_text()
        assert original.count(defect.old) == 1, f"{defect.name}: the text to change is not found once in {defect.file}"
        path.write_text(original.replace(defect.old, defect.new))
        try:  # a defect must compile: only the suite's failure counts
            build_status, output, build_seconds = run(make + [defect.target.replace("test-", "build-")], copy,
                                                      args.timeout, env)
            status, output, seconds = (run(make + [defect.target], copy, args.timeout, env) if build_status == 0
                                       else (build_status, output, 0.0))
        finally:
            path.write_text(original)
        built = build_status == 0
        caught = built and status != 0
        missed += not caught
        verdict = "**caught**" if caught else ("did not build" if not built else "**missed**")
        print(f"| {defect.name} | `{defect.file}` | {defect.what} | `make {defect.target}` | {verdict}: "
              f"{caught_by(output) if caught else ''} | {seconds:.0f} |", flush=True)
    if not args.keep:
        shutil.rmtree(copy, ignore_errors=True)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
