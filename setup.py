"""Builds leanconv: setup.py drives the one CMake build and installs its outputs into the package.

The package then holds _C (the Python extension), lib/libleanconv.so, include/ and share/cmake/leanconv,
so a C++ program can use a pip-installed leanconv through leanconv.cmake_prefix_path.

Environment: LEANCONV_BUILD_DIR (default build/cmake), LEANCONV_BUILD_TESTS=1 to build the GoogleTest
binaries, LEANCONV_CUDA=ON|OFF|AUTO, LEANCONV_CUDA_ARCH_LIST (default: every architecture of the installed torch's
CUDA build, plus PTX of the newest; `make` keeps one for developer builds), CMAKE_BUILD_TYPE (default Release),
MAX_JOBS.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "cmake"))
from cuda_arch_list import cuda_arch_list  # noqa: E402


def cmake_executable():
    try:  # the cmake package from PyPI is newer than many systems' and knows CUDA 13
        import cmake

        return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except ImportError:
        return shutil.which("cmake") or "cmake"


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def run(self):
        # setuptools clears self.inplace while building and copies the extension afterwards; remember it.
        self.into_source = bool(self.inplace or getattr(self, "editable_mode", False))
        super().run()

    def copy_extensions_to_source(self):
        pass  # in-place builds already install into the source package

    def build_extension(self, ext):
        import torch

        # In place (developer builds, `make`): straight into the source package; otherwise into build/lib.
        if self.into_source:
            package_dir = ROOT / "python" / "leanconv"
        else:
            package_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(os.environ.get("LEANCONV_BUILD_DIR", ROOT / "build" / "cmake")).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        cmake = cmake_executable()
        args = [
            f"-DCMAKE_BUILD_TYPE={os.environ.get('CMAKE_BUILD_TYPE', 'Release')}",
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            f"-DCMAKE_INSTALL_PREFIX={package_dir}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            f"-DLEANCONV_BUILD_TESTS={'ON' if os.environ.get('LEANCONV_BUILD_TESTS') == '1' else 'OFF'}",
            f"-DLEANCONV_CUDA={os.environ.get('LEANCONV_CUDA', 'AUTO')}",
            f"-DLEANCONV_TORCH_CUDA_VERSION={torch.version.cuda or ''}",
        ]
        if os.environ.get("LEANCONV_GTEST_SOURCE_DIR"):
            args.append(f"-DLEANCONV_GTEST_SOURCE_DIR={os.environ['LEANCONV_GTEST_SOURCE_DIR']}")
        if cuda_arch_list(torch):
            args.append(f"-DLEANCONV_CUDA_ARCH_LIST={cuda_arch_list(torch)}")
        if shutil.which("ninja"):
            args.append("-GNinja")
        subprocess.check_call([cmake, "-S", str(ROOT), "-B", str(build_dir), *args])
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.check_call([cmake, "--build", str(build_dir), "--parallel", jobs])
        subprocess.check_call([cmake, "--install", str(build_dir)])


TORCH = "torch==2.11.0"
# torchvision's release for that torch (a newer one would ask pip for a newer torch).
TORCHVISION = "torchvision==0.26.0"
# The training command (python -m leanconv.train and its report): datasets and transforms, progress bars, figures.
TRAIN = [TORCHVISION, "tqdm", "matplotlib", "numpy"]
# The test suites (tests/python): pytest with its time limits, property-based fuzzing, torch.library.opcheck's
# expect tests, the references and dataset checks (numpy, scipy, pillow), and the training command they run.
TEST = ["pytest", "pytest-timeout", "hypothesis", "expecttest", "numpy", "scipy", "pillow", *TRAIN]

setup(
    name="leanconv",
    version="0.1.0",
    description="Parameter-efficient convolutions as PyTorch ops with CPU and CUDA kernels",
    package_dir={"": "python"},
    packages=find_packages("python"),
    ext_modules=[CMakeExtension("leanconv._C")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.10",
    install_requires=[TORCH],
    extras_require={"train": TRAIN, "test": sorted(set(TEST))},
    zip_safe=False,
)
