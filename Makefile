# Two commands do everything on a fresh machine: `make demo` (the main job) and `make test` (build + every test).
PYTHON ?= python3
BUILD_DIR ?= build/cmake
CMAKE = $(shell $(PYTHON) -c "import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, 'cmake'))")
CTEST = $(shell $(PYTHON) -c "import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, 'ctest'))")
export PYTHONPATH := $(CURDIR)/python$(if $(PYTHONPATH),:$(PYTHONPATH))
export LEANCONV_BUILD_DIR := $(CURDIR)/$(BUILD_DIR)
# ccache keys on paths relative to the checkout, so every clone of the repository shares the cache.
export CCACHE_BASEDIR := $(CURDIR)
# Developer builds (and the GPU pack, for the H100/H200 machines) compile the CUDA kernels for one architecture; a
# pip install builds every architecture the installed torch covers (setup.py's cuda_arch_list).
export LEANCONV_CUDA_ARCH_LIST ?= 9.0
DATASET_DIR = /usr/share/datasets/fashion-mnist

GPU_PACK ?= .gpu
GPU_PACK_LIMIT_MIB = 48

.PHONY: all deps build test test-cpp test-python test-cuda-emulation build-cuda-emulation \
  test-cuda-emulation-asan test-cuda-emulation-tsan test-cuda-emulation-sanitizers build-cuda-emulation-asan \
  build-cuda-emulation-tsan test-consumer consumer test-wheel gpu-pack test-gpu-check \
  demo bench clean

all: build

# Python packages from PyPI, and GoogleTest's sources from Debian when this machine lacks them.
deps: .deps-stamp
.deps-stamp: requirements.txt
	$(PYTHON) -m pip install -q -r requirements.txt
	@if [ ! -f /usr/src/googletest/CMakeLists.txt ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq googletest; fi
	@if ! command -v ccache >/dev/null && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq ccache; fi
	@touch $@

$(DATASET_DIR)/train-images-idx3-ubyte.gz:
	@if command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi

# One CMake build (driven by setup.py) of libleanconv, leanconv._C and the GoogleTest binaries.
build: deps
	LEANCONV_BUILD_TESTS=1 $(PYTHON) setup.py -q build_ext --inplace

test: build test-cpp test-python test-consumer test-wheel test-gpu-check
	@echo "make test: all test suites passed"

test-cpp:
	$(CTEST) --test-dir $(BUILD_DIR) --output-on-failure

test-python:
	$(PYTHON) -m pytest -q tests/python

# Every CUDA kernel of cuda/ on the CPU, under the emulated CUDA execution model (cuda/emulation/): the emulated
# suite alone (make test runs it within test-python), then the kernels it launched.
build-cuda-emulation: build
test-cuda-emulation: build-cuda-emulation
	$(PYTHON) -m pytest -q tests/python/test_cuda_emulation.py
	@echo "CUDA kernels run under emulation (launches in the suite's coverage case):" && cat $(BUILD_DIR)/cuda_emulation_coverage.txt

# The emulated kernels built under sanitizers. AddressSanitizer + UndefinedBehaviorSanitizer: the whole emulated
# suite, its runtime preloaded into Python (which is not built with it). ThreadSanitizer: a GoogleTest binary built
# with it (its runtime must start with the process), every kernel on OS threads, one per CUDA thread, so that an
# unsynchronised access between barriers, or a plain add where an atomic belongs, is a reported race.
build-cuda-emulation-asan: build
	$(CMAKE) --build $(BUILD_DIR) --target leanconv_cuda_emulated_asan
test-cuda-emulation-asan: build-cuda-emulation-asan
	LEANCONV_EMULATED_LIBRARY=libleanconv_cuda_emulated_asan.so PYTHONMALLOC=malloc \
	  LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so.6)" \
	  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/python/test_cuda_emulation.py
build-cuda-emulation-tsan: build
	$(CMAKE) --build $(BUILD_DIR) --target leanconv_cuda_emulation_tsan_tests
test-cuda-emulation-tsan: build-cuda-emulation-tsan
	TSAN_OPTIONS=halt_on_error=1:exitcode=66:report_signal_unsafe=0 $(BUILD_DIR)/tests/cpp/leanconv_cuda_emulation_tsan_tests
test-cuda-emulation-sanitizers: test-cuda-emulation-asan test-cuda-emulation-tsan

# A separate CMake project that finds the installed package the way a C++ user of a pip install would.
consumer: build
	$(CMAKE) -S tests/consumer -B build/consumer -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import leanconv, torch; print(leanconv.cmake_prefix_path + ";" + torch.utils.cmake_prefix_path)')"
	$(CMAKE) --build build/consumer

test-consumer: consumer
	./build/consumer/leanconv_consumer
	LEANCONV_TRAIN_EXAMPLE=build/consumer/train_fashion_mnist $(PYTHON) -m pytest -q \
	  tests/python/test_cpp_training_example.py -k "dense or generated or missing"

# The wheel a pip install builds carries the library, headers and CMake package next to _C, and installs into a
# fresh virtual environment with torch alone; the training command names its extra there, and runs with it.
test-wheel:
	rm -rf build/wheel
	$(PYTHON) -m pip wheel -q --no-build-isolation --no-deps . -w build/wheel
	$(PYTHON) tests/check_wheel.py build/wheel/leanconv-*.whl

# Everything a GPU window runs, built here (benchmarks/gpu_check.sh and gpu_train.sh say how they are used): the op
# library with the sm_90 kernels, the C++ binaries and Fashion-MNIST's idx files. Python there loads the library
# without the extension (LEANCONV_LIBRARY).
gpu-pack: build consumer $(DATASET_DIR)/train-images-idx3-ubyte.gz
	@$(PYTHON) -c "import leanconv, sys; sys.exit(0 if leanconv.compiled_with_cuda() else 'gpu-pack: this build has no CUDA kernels (is nvcc on the PATH?)')"
	rm -rf $(GPU_PACK) && mkdir -p $(GPU_PACK)/lib $(GPU_PACK)/bin $(GPU_PACK)/data/fashion-mnist
	@# One file, under its SONAME (what the binaries ask for; Python loads it by path): no links, which a copy to
	@# another machine may not keep.
	cp -L python/leanconv/lib/libleanconv.so.0 $(GPU_PACK)/lib/
	cp $(DATASET_DIR)/*-idx?-ubyte.gz $(GPU_PACK)/data/fashion-mnist/
	cp $(BUILD_DIR)/tests/cpp/leanconv_tests $(BUILD_DIR)/example_tiny_generated_net $(BUILD_DIR)/leanconv_cuda_driver \
	  build/consumer/leanconv_consumer $(GPU_PACK)/bin/
	@echo "$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$$(git diff --quiet HEAD 2>/dev/null || echo '+changes')" > $(GPU_PACK)/COMMIT
	@size=$$(du -sm $(GPU_PACK) | cut -f1); echo "gpu-pack: $(GPU_PACK) holds $$(du -sh $(GPU_PACK) | cut -f1) ($$(ls $(GPU_PACK)/lib $(GPU_PACK)/bin | grep -v : | tr '\n' ' '))"; \
	  [ $$size -le $(GPU_PACK_LIMIT_MIB) ] || { echo "gpu-pack: over $(GPU_PACK_LIMIT_MIB) MiB"; exit 1; }

# The GPU check without a GPU: its CUDA stages say "skipped: no GPU", the rest of its plumbing runs. Both dry runs
# run in a copy of the checkout as a window receives it (no ignored path: no build/, no extension), with the pack.
WINDOW_TREE = build/window-tree
IN_WINDOW_TREE = cd $(WINDOW_TREE) && PACK=$(abspath $(GPU_PACK)) PYTHON=$(PYTHON)
test-gpu-check: gpu-pack
	bash benchmarks/gpu/window_tree.sh $(WINDOW_TREE)
	rm -rf build/gpu-check-dry
	$(IN_WINDOW_TREE) bash benchmarks/gpu_check.sh $(abspath build/gpu-check-dry)
	@# What comes back from a GPU window: at most 8 files; results.md with a row for each of the four stages.
	@[ $$(ls build/gpu-check-dry | wc -l) -le 8 ] && [ $$(grep -c '^| [1-4]\. ' build/gpu-check-dry/results.md) -eq 4 ] \
	  && tar -tzf build/gpu-check-dry/logs.tar.gz | grep -q smoke.log
	@# A run cut short after its first stage still leaves its results.
	rm -rf build/gpu-check-partial
	$(IN_WINDOW_TREE) GPU_CHECK_STAGES=1 bash benchmarks/gpu_check.sh $(abspath build/gpu-check-partial) > /dev/null
	@[ $$(grep -c '^| [1-4]\. ' build/gpu-check-partial/results.md) -eq 1 ] && echo "test-gpu-check: dry run complete"
	@# The training stage: one tiny epoch of every row on the CPU, its table, logs and curves.
	rm -rf build/gpu-train-dry
	$(IN_WINDOW_TREE) bash benchmarks/gpu_train.sh --dry-run $(abspath build/gpu-train-dry) > $(abspath build/gpu-train-dry.log) 2>&1 || { cat build/gpu-train-dry.log; exit 1; }
	@rows=$$(bash -c 'source benchmarks/fashion_mnist_rows.sh; echo $${#FAMILY_ROWS[@]}'); \
	  [ $$(grep -c ' 1/1 | ' build/gpu-train-dry/table.md) -eq $$rows ] && [ -s build/gpu-train-dry/accuracy.png ] \
	  && [ $$(tar -tzf build/gpu-train-dry/rows.tar.gz | grep -c '\.csv$$') -eq $$rows ] \
	  && [ $$(ls build/gpu-train-dry | wc -l) -le 8 ] && echo "test-gpu-check: training dry run complete" \
	  || { cat build/gpu-train-dry.log build/gpu-train-dry/table.md; exit 1; }

demo: build $(DATASET_DIR)/train-images-idx3-ubyte.gz
	$(PYTHON) -m leanconv.train.demo

# Every family's benchmark (the registry, leanconv.families, names them), then the models' training steps.
bench: build
	@for script in $$($(PYTHON) -c 'from leanconv.families import benchmarks; print(" ".join(benchmarks()))'); do \
	  echo "== benchmarks/$$script"; $(PYTHON) benchmarks/$$script || exit 1; done
	@echo "== benchmarks/bench_models.py"; $(PYTHON) benchmarks/bench_models.py

clean:
	rm -rf build .deps-stamp $(GPU_PACK) python/leanconv/lib python/leanconv/include python/leanconv/share python/leanconv/_C*.so
