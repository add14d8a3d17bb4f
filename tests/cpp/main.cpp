// Runs every test; those whose names end in _CUDA only when a GPU is present.
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Listing shows every test, so a machine without a GPU can still list the _CUDA cases a GPU would run.
  if (!torch::cuda::is_available() && !::testing::GTEST_FLAG(list_tests)) {
    const std::string filter = ::testing::GTEST_FLAG(filter);
    ::testing::GTEST_FLAG(filter) = filter + (filter.find('-') == std::string::npos ? "-" : ":") + "*_CUDA";
  }
  // The _CUDA cases compare float32 results with the CPU kernels at float32 tolerances; cuDNN's default TF32
  // (10-bit mantissa) in the convolutions leanconv calls would dominate those differences. pytest does the same
  // (tests/python/conftest.py); users keep PyTorch's defaults.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  return RUN_ALL_TESTS();
}
