"""The GPU check's plumbing, which a GPU window cannot afford to find broken: a test stage cut off at its limit still
names what it ran and where it stopped, the shards split the CUDA tests exactly, and a benchmark leaves every row it
measured before being stopped."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))

import harness  # noqa: E402
import summarize  # noqa: E402

CUT_OFF = """$ python -m pytest -v -m cuda tests/python
============================= test session starts ==============================
collecting ... collected 1015 items / 677 deselected / 338 selected

tests/python/test_op_contract.py::test_cuda_matches_cpu[generate_weights-0-float64] PASSED [  0%]
tests/python/test_op_contract.py::test_cuda_matches_cpu[generate_weights-1-float64] FAILED [  1%]
tests/python/test_op_contract.py::test_cuda_matches_cpu[shifted_sum-0-float32] SKIPPED (x) [  1%]
tests/python/test_speed_paths.py::test_generated[one entry, one run-cuda] PASSED [  2%]
tests/python/test_speed_paths.py::test_generated[two entries, one run-cuda] FAILED [  2%]
tests/python/test_op_contract.py::test_cuda_gradcheck_and_gradgradcheck[eigen_conv2d-2] """

FINISHED = """tests/python/test_lowrank.py::test_cuda_matches_cpu[1] PASSED [ 50%]
tests/python/test_lowrank.py::test_cuda_matches_cpu[2] FAILED [100%]
tests/python/test_lowrank.py::test_cuda_paths[rank 5, channels_last] FAILED [100%]
=========================== short test summary info ============================
FAILED tests/python/test_lowrank.py::test_cuda_matches_cpu[2] - AssertionError: Tensor-likes are not close!
FAILED tests/python/test_lowrank.py::test_cuda_paths[rank 5, channels_last] - RuntimeError: CUDA error
======================== 2 failed, 1 passed in 3.21s ========================
"""


def test_a_cut_off_shard_names_its_outcomes_and_the_test_it_was_in(tmp_path):
    (tmp_path / "pytest0.log").write_text(CUT_OFF)
    (tmp_path / "pytest1.log").write_text(FINISHED)
    text = summarize.failures(str(tmp_path))
    assert "pytest0: 2 passed, 2 failed, 0 errors, 1 skipped; CUT OFF" in text
    assert "test_cuda_matches_cpu[generate_weights-1-float64] (failed)" in text
    assert "test_generated[two entries, one run-cuda] (failed)" in text  # an id with spaces, whole
    assert "test_cuda_gradcheck_and_gradgradcheck[eigen_conv2d-2] (cut off" in text
    assert "pytest1: 1 passed, 2 failed, 0 errors, 0 skipped" in text and "pytest1: 1 passed, 2 failed, 0 errors, " \
        "0 skipped; CUT OFF" not in text
    assert "test_cuda_paths[rank 5, channels_last] (failed): RuntimeError: CUDA error" in text
    assert "test_lowrank.py::test_cuda_matches_cpu[2] (failed): AssertionError: Tensor-likes are not close!" in text


INTERRUPTED = """$ python -m pytest -v -m cuda tests/python
collecting ... collected 4484 items / 1 error / 4077 deselected / 407 selected

==================================== ERRORS ====================================
_____________ ERROR collecting tests/python/test_cuda_emulation.py _____________
E   RuntimeError: build/cmake/libleanconv_cuda_emulated.so is not built
=========================== short test summary info ============================
ERROR tests/python/test_cuda_emulation.py - RuntimeError: build/cmake/libleanconv_cuda_emulated.so is not built
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
======================== 4077 deselected, 1 error in 12.53s ========================
"""


def test_a_module_that_fails_to_import_is_named_and_its_shard_counts_as_not_run(tmp_path):
    # pytest stops a shard at a collection error: it must not read as a dry run's selection, nor as no failure.
    (tmp_path / "pytest0.log").write_text(INTERRUPTED)
    (tmp_path / "pytest1.log").write_text(INTERRUPTED.replace("-v ", "-q --collect-only "))
    text = summarize.failures(str(tmp_path))
    for shard in ("pytest0", "pytest1"):
        assert f"{shard}: COLLECTION ERROR in tests/python/test_cuda_emulation.py: no test of this shard ran" in text
    assert "selected (dry run)" not in text and "None." not in text
    assert "- pytest tests/python/test_cuda_emulation.py (collection error): RuntimeError: build/cmake/" in text


def test_the_shards_split_the_selection_exactly():
    def selected(shard):
        env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
        if shard:
            env["LEANCONV_TEST_SHARD"] = shard
        out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                              "tests/python/test_cuda_paths.py"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        return [line for line in out.stdout.splitlines() if "::" in line]

    everything = selected(None)
    shards = [selected(f"{k}/3") for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(everything) and all(shards)
    assert len(set(sum(shards, []))) == len(everything)


def test_a_benchmark_writes_each_row_as_it_is_measured(tmp_path, monkeypatch):
    out = tmp_path / "bench"
    monkeypatch.setattr(sys, "argv", ["bench", "--out", str(out), "--repeats", "2", "--warmup", "0"])
    args = harness.parse_arguments(harness.common_arguments("test"))
    harness.measure_row(harness.Row("first", "w", "cpu", "forward"), {"a": lambda: None, "b": lambda: None},
                        args.warmup, args.repeats)
    assert "| first | w | cpu | forward | a |" in (tmp_path / "bench.md").read_text()  # before any report()
    harness.measure_row(harness.Row("second", "w", "cpu", "forward"), {"a": lambda: None}, 0, 2)
    text = (tmp_path / "bench.md").read_text()
    assert "| first |" in text and "| second |" in text and "second" in (tmp_path / "bench.json").read_text()
