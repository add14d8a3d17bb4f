// What the kernel driver (benchmarks/gpu/kernel_driver.cpp) runs: cases, each a few ops on one device and dtype,
// compared with the same ops on the CPU. Each family's file here (cases/<family>.cpp, collected by CMake's glob)
// adds its kernels' cases with LEANCONV_DRIVER_CASES; the driver runs every registered family's.
#pragma once

#include <ATen/OpMathType.h>
#include <torch/torch.h>

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "leanconv/leanconv.h"

namespace leanconv::driver {

namespace ops = leanconv::ops;
using torch::Tensor;

struct Case {
  std::string name;
  std::vector<std::string> groups;
  // Runs the ops on `device` from the given CPU inputs; returns the results (moved to the CPU by the caller).
  std::function<std::vector<Tensor>(torch::Device, torch::ScalarType)> run;
  std::vector<torch::ScalarType> dtypes{torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16};
};

inline Tensor on(const Tensor& t, torch::Device device, torch::ScalarType dtype) { return t.to(device, dtype); }

// A copy of `t` (same device, sizes and strides) whose data starts one element into its storage: no 16-byte vector
// access may use it, so the kernels take their one-value-at-a-time paths.
inline Tensor misaligned(const Tensor& t) {
  auto storage = torch::empty({t.numel() + 1}, t.options());
  auto placed = storage.narrow(0, 1, t.numel()).as_strided(t.sizes(), t.strides());
  placed.copy_(t);
  return placed;
}

// The dtype of per-channel parameters for inputs of `dtype`: float for half and bfloat16, as aten's BatchNorm.
inline torch::ScalarType math(torch::ScalarType dtype) { return at::toOpMathType(dtype); }

using AddCases = void (*)(std::vector<Case>& all);

// Every family's case adder, by family name (a function-local static: the registrations run in other files' static
// initialisers, in no set order).
inline std::vector<std::pair<std::string, AddCases>>& case_adders() {
  static std::vector<std::pair<std::string, AddCases>> adders;
  return adders;
}

struct RegisterCases {
  RegisterCases(std::string family, AddCases add) { case_adders().emplace_back(std::move(family), add); }
};

}  // namespace leanconv::driver

#define LEANCONV_DRIVER_CASES(family, add) \
  static const ::leanconv::driver::RegisterCases register_##family##_driver_cases{#family, add}
