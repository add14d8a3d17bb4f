"""The GPU check selects the CUDA tests with `pytest -m cuda`: a CUDA case without the marker is never run on a GPU.

The marker comes from `conftest.requires_cuda` (directly, or through `conftest.DEVICES`). This test collects the
whole suite without the marker and fails on any test whose name or parameters still name CUDA, e.g. a module that
builds its own device list from `torch.cuda.is_available()`.
"""
import os
import re
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))


def collected(*arguments):
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *arguments, TESTS], capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(TESTS)), timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_every_test_that_names_cuda_carries_the_cuda_marker():
    this_file = os.path.basename(__file__)
    unmarked = [test for test in collected("-m", "not cuda")
                if re.search("cuda", test.split("::", 1)[1], re.IGNORECASE) and this_file not in test]
    assert not unmarked, ("tests that name CUDA but lack the `cuda` marker (use conftest.DEVICES or "
                          "conftest.requires_cuda):\n" + "\n".join(unmarked))


def files_with_cuda_cases():
    """The test files that ask for CUDA cases (conftest.DEVICES or conftest.requires_cuda), read from their text."""
    return {name for name in os.listdir(TESTS) if name.startswith("test_") and name.endswith(".py")
            and name != os.path.basename(__file__)
            and re.search(r"\b(DEVICES|requires_cuda)\b", open(os.path.join(TESTS, name)).read())}


def test_the_cuda_selection_holds_every_file_with_cuda_cases_and_the_multigrid_grid():
    selected = collected("-m", "cuda")
    files = {test.split("::")[0].rsplit("/", 1)[-1] for test in selected}
    expected = files_with_cuda_cases()
    assert {"test_op_contract.py", "test_module_contract.py"} <= expected  # every op and module kind, every family
    missing = sorted(expected - files)
    assert not missing, f"files with CUDA cases of which -m cuda selects none: {missing}"
    # The grouped conv's grid: 5 group widths x 2 kernels x 2 strides x 2 layouts x 4 dtypes on CUDA.
    assert sum("test_grouped_conv_matches_float64_conv2d[" in t and "cuda" in t for t in selected) == 160
