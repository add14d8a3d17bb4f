"""The CUDA architectures of an installed build: every architecture of the installed torch's CUDA build, plus PTX of
the newest (cmake/cuda_arch_list.py, which setup.py passes to CMake), unless LEANCONV_CUDA_ARCH_LIST chooses."""
import sys
import types
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cmake"))
from cuda_arch_list import cuda_arch_list  # noqa: E402


def fake_torch(flags):
    return types.SimpleNamespace(_C=types.SimpleNamespace(_cuda_getArchFlags=lambda: flags))


@pytest.fixture
def no_choice(monkeypatch):
    monkeypatch.delenv("LEANCONV_CUDA_ARCH_LIST", raising=False)


def test_an_install_covers_every_architecture_of_the_installed_torch(no_choice):
    chosen = cuda_arch_list(torch)
    flags = torch._C._cuda_getArchFlags() if hasattr(torch._C, "_cuda_getArchFlags") else ""
    wanted = sorted(int(f[3:]) for f in flags.split() if f.startswith("sm_"))
    if not wanted:
        assert chosen == ""
        return
    listed = chosen.split(";")
    assert [int(a.replace("+PTX", "").replace(".", "")) for a in listed] == wanted
    assert listed[-1].endswith("+PTX") and not any(a.endswith("+PTX") for a in listed[:-1])


def test_the_list_is_torchs_spelling_with_ptx_of_the_newest(no_choice):
    assert cuda_arch_list(fake_torch("sm_75 sm_80 sm_86 sm_90 sm_100 sm_120")) == "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
    assert cuda_arch_list(fake_torch("sm_90 sm_80 compute_90")) == "8.0;9.0+PTX"
    assert cuda_arch_list(fake_torch("")) == ""  # a CPU-only torch: CMake's default


def test_a_developer_build_may_keep_one_architecture(monkeypatch):
    monkeypatch.setenv("LEANCONV_CUDA_ARCH_LIST", "9.0")
    assert cuda_arch_list(fake_torch("sm_75 sm_80 sm_90")) == "9.0"
