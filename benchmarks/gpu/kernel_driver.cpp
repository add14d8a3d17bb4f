// Launches every CUDA kernel of leanconv, forward and backward, in float32, float64, half and bfloat16 and through
// the channels_last paths, and compares each result with the CPU kernel's. The GPU check runs it natively (stage 1)
// and under compute-sanitizer (stage 3): short, no Python, no test framework.
//
//   leanconv_cuda_driver [--list] [--group NAME[,NAME...]] [--float32]
//
// Groups: "leanconv" (leanconv's own kernels: memcheck and initcheck), "sync" (small shapes of every kernel with
// shared memory, a barrier or a warp shuffle: racecheck and synccheck, in float32 with --float32, so that those slow
// tools fit their budget), "shared-memory" (the kernels with shared memory at every shape), "cudnn" (the eigen conv
// backward, which runs through cuDNN: native run only, a sanitizer there would check aten, not leanconv). Exit
// status 1 on a mismatch.
//
// The shapes are small but make every loop of a kernel run at least twice, so racecheck sees the hazards carried from
// one iteration to the next: the eigen conv's k-chunks (kChunk = 16 intermediate channels), output-channel tiles (64)
// and pixel tiles (64); the grouped conv's weight-gradient loop (256 threads over batch x output pixels); the
// deterministic generated backward's runs of equal ring entries after its sort (runs of ~43 over a ring of 5, of 0
// to 2 over a ring of 2^20 + 3 with 21-bit sort keys, the 64-bit layout); the channel passes' vector and scalar paths
// (see the feature-map cases: several chunks a channel, channel tiles, more chunks than a warp's lanes in the
// per-channel finish, misaligned operands); the overlap-add's warp per entry; the shifted sum with stride 2.
// Each family's cases are in its own file, benchmarks/gpu/cases/<family>.cpp.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cases/driver_case.h"

namespace {

using leanconv::driver::Case;
using torch::Tensor;

// Every family's cases (benchmarks/gpu/cases/<family>.cpp), the families in name order.
std::vector<Case> cases() {
  auto adders = leanconv::driver::case_adders();
  std::sort(adders.begin(), adders.end());
  std::vector<Case> all;
  for (const auto& [family, add] : adders) add(all);
  return all;
}

// The largest difference, relative to the largest expected magnitude (at least 1): the CPU and the GPU sum in
// different orders and round each output once to the dtype, so it stays within tolerance(dtype).
double difference(const Tensor& actual, const Tensor& expected) {
  if (actual.sizes() != expected.sizes() || actual.scalar_type() != expected.scalar_type()) return INFINITY;
  if (expected.numel() == 0) return 0;
  const auto a = actual.to(torch::kDouble), e = expected.to(torch::kDouble);
  return (a - e).abs().max().item<double>() / std::max(1.0, e.abs().max().item<double>());
}

double tolerance(torch::ScalarType dtype) {
  return dtype == torch::kDouble ? 1e-10 : dtype == torch::kFloat ? 1e-5 : dtype == torch::kHalf ? 1e-2 : 3e-2;
}

// Whether the case belongs to one of the comma-separated `groups` (all cases when none is given).
bool in_group(const Case& c, const std::string& groups) {
  if (groups.empty()) return true;
  size_t begin = 0;
  while (begin <= groups.size()) {
    const size_t end = std::min(groups.find(',', begin), groups.size());
    const std::string wanted = groups.substr(begin, end - begin);
    for (const auto& g : c.groups)
      if (g == wanted) return true;
    begin = end + 1;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  bool list = false, float32_only = false;
  std::string group;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--list") {
      list = true;
    } else if (arg == "--group" && i + 1 < argc) {
      group = argv[++i];
    } else if (arg == "--float32") {
      float32_only = true;
    } else {
      std::fprintf(stderr, "usage: %s [--list] [--group leanconv|sync|shared-memory|cudnn[,...]] [--float32]\n",
                   argv[0]);
      return 2;
    }
  }
  const auto all = cases();
  int failures = 0, count = 0;
  const bool gpu = torch::cuda::is_available();
  for (const auto& c : all) {
    if (!in_group(c, group)) continue;
    for (const auto dtype : c.dtypes) {
      if (float32_only && dtype != torch::kFloat) continue;
      const std::string name = c.name + " [" + std::string(c10::toString(dtype)) + "]";
      ++count;
      if (list) {
        std::printf("case %s\n", name.c_str());
        continue;
      }
      try {
        // Without a GPU the CPU side still runs: the dry run checks that every case's arguments are valid.
        const auto expected = c.run(torch::kCPU, dtype);
        if (!gpu) {
          std::printf("skipped (no GPU): %s (CPU side ran)\n", name.c_str());
          continue;
        }
        const auto actual = c.run(torch::kCUDA, dtype);
        torch::cuda::synchronize();
        double worst = expected.size() == actual.size() ? 0 : INFINITY;
        for (size_t k = 0; k < std::min(expected.size(), actual.size()); ++k)
          worst = std::max(worst, difference(actual[k].cpu(), expected[k]));
        const bool same = worst <= tolerance(dtype);
        std::printf("%s %s (difference %.2g, tolerance %.2g)\n", same ? "ok" : "MISMATCH", name.c_str(), worst,
                    tolerance(dtype));
        failures += !same;
      } catch (const c10::Error& e) {
        std::printf("ERROR %s: %s\n", name.c_str(), e.what_without_backtrace());
        ++failures;
      } catch (const std::exception& e) {
        std::printf("ERROR %s: %s\n", name.c_str(), e.what());
        ++failures;
      }
    }
  }
  std::printf("%d cases, %d failed%s\n", count, failures, gpu || list ? "" : " (no GPU: CPU side only)");
  return failures ? 1 : 0;
}
