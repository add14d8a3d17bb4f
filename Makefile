# Two commands do everything on a fresh machine: `make demo` (the main job) and `make test` (build + every test).
PYTHON ?= python3
BUILD_DIR ?= build/cmake
CMAKE = $(shell $(PYTHON) -c "import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, 'cmake'))")
CTEST = $(shell $(PYTHON) -c "import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, 'ctest'))")
export PYTHONPATH := $(CURDIR)/python$(if $(PYTHONPATH),:$(PYTHONPATH))
export LEANCONV_BUILD_DIR := $(CURDIR)/$(BUILD_DIR)
DATASET_DIR = /usr/share/datasets/fashion-mnist

.PHONY: all deps build test test-cpp test-python test-consumer test-wheel demo bench clean

all: build

# Python packages from PyPI, and GoogleTest's sources from Debian when this machine lacks them.
deps: .deps-stamp
.deps-stamp: requirements.txt
	$(PYTHON) -m pip install -q -r requirements.txt
	@if [ ! -f /usr/src/googletest/CMakeLists.txt ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq googletest; fi
	@touch $@

$(DATASET_DIR)/train-images-idx3-ubyte.gz:
	@if command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi

# One CMake build (driven by setup.py) of libleanconv, leanconv._C and the GoogleTest binaries.
build: deps
	LEANCONV_BUILD_TESTS=1 $(PYTHON) setup.py -q build_ext --inplace

test: build test-cpp test-python test-consumer test-wheel
	@echo "make test: all test suites passed"

test-cpp:
	$(CTEST) --test-dir $(BUILD_DIR) --output-on-failure

test-python:
	$(PYTHON) -m pytest -q tests/python

# A separate CMake project that finds the installed package the way a C++ user of a pip install would.
test-consumer:
	$(CMAKE) -S tests/consumer -B build/consumer -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import leanconv, torch; print(leanconv.cmake_prefix_path + ";" + torch.utils.cmake_prefix_path)')"
	$(CMAKE) --build build/consumer
	./build/consumer/leanconv_consumer

# The wheel a pip install builds carries the library, headers and CMake package next to _C.
test-wheel:
	rm -rf build/wheel
	$(PYTHON) -m pip wheel -q --no-build-isolation --no-deps . -w build/wheel
	$(PYTHON) tests/check_wheel.py build/wheel/leanconv-*.whl

demo: build $(DATASET_DIR)/train-images-idx3-ubyte.gz
	$(PYTHON) -m leanconv.train.demo

bench: build
	$(PYTHON) benchmarks/bench_generated.py
	$(PYTHON) benchmarks/bench_filter_summary.py
	$(PYTHON) benchmarks/bench_lowrank.py

clean:
	rm -rf build .deps-stamp python/leanconv/lib python/leanconv/include python/leanconv/share python/leanconv/_C*.so
