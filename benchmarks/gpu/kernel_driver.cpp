// Launches every CUDA kernel of leanconv at small shapes, forward and backward, in float32 and half and through
// the channels_last paths, and compares each result with the CPU kernel's. It is the program compute-sanitizer
// runs in the GPU check (benchmarks/gpu_check.sh): short, no Python, no test framework.
//
//   leanconv_cuda_driver [--list] [--group NAME]
//
// Groups: "leanconv" (leanconv's own kernels), "shared-memory" (the kernels that use shared memory: racecheck
// and synccheck), "cudnn" (the eigen conv backward, which runs through cuDNN). Exit status 1 on a mismatch.
#include <torch/torch.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "leanconv/leanconv.h"

namespace {

namespace ops = leanconv::ops;
using torch::Tensor;

struct Case {
  std::string name;
  std::vector<std::string> groups;
  // Runs the ops on `device` from the given CPU inputs; returns the results (moved to the CPU by the caller).
  std::function<std::vector<Tensor>(torch::Device, torch::ScalarType)> run;
  std::vector<torch::ScalarType> dtypes{torch::kFloat, torch::kHalf};
};

Tensor on(const Tensor& t, torch::Device device, torch::ScalarType dtype) { return t.to(device, dtype); }

std::vector<Case> cases() {
  torch::manual_seed(0);
  const auto ring = torch::randn({97}), grad24 = torch::randn({6, 4, 3, 3});
  const auto summary = torch::randn({8 * 4}), grad_weight = torch::randn({8, 8, 3, 3});
  const auto z = torch::randn({2, 6, 9, 7}), grad_y = torch::randn({2, 6, 9, 7});
  const auto x = torch::randn({2, 4, 9, 8}), basis = torch::randn({4, 3, 3, 3}), coeff = torch::randn({5, 12});
  const auto bias = torch::randn({5}), grad_eigen = torch::randn({2, 5, 9, 8});
  const auto residual = torch::randn({2, 4, 9, 8}), per_channel = torch::randn({2, 4});
  const auto gx = torch::randn({2, 16, 9, 7}), gw = torch::randn({24, 4, 3, 3}), grad_grouped = torch::randn({2, 24, 5, 4});
  const auto coarse = torch::randn({2, 8, 9, 7}), prolongation = torch::randn({16, 2, 1, 1}), scale = torch::randn({16});
  const std::vector<int64_t> one{1, 1};
  std::vector<Case> all;
  all.push_back({"generate_weights forward", {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                   return std::vector<Tensor>{ops::generate_weights(on(ring, d, t), 5, 1000, 100, {6, 4, 3, 3}, 0.3)};
                 }});
  all.push_back({"generate_weights forward, 64-bit layout crossing 2^32", {"leanconv"},
                 [=](torch::Device d, torch::ScalarType t) {
                   return std::vector<Tensor>{
                       ops::generate_weights(on(ring, d, t), 7, (int64_t(1) << 33) + 17, (int64_t(1) << 32) - 100,
                                             {216}, 1.0)};
                 }});
  for (const bool deterministic : {false, true}) {
    all.push_back({std::string("generate_weights backward, ") + (deterministic ? "deterministic" : "atomic"),
                   {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                     at::globalContext().setDeterministicAlgorithms(deterministic, false);
                     auto g = ops::generate_weights_backward(on(grad24, d, t), 97, 5, 1000, 100, 0.3);
                     at::globalContext().setDeterministicAlgorithms(false, false);
                     return std::vector<Tensor>{g};
                   }});
  }
  all.push_back({"filter_summary_weight forward and backward", {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                   return std::vector<Tensor>{ops::filter_summary_weight(on(summary, d, t), 8, 8, 3, 3, 4),
                                              ops::filter_summary_weight_backward(on(grad_weight, d, t), 32, 4)};
                 }});
  for (const bool channels_last : {false, true}) {
    const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
    all.push_back({std::string("shifted_sum forward and backward") + (channels_last ? ", channels_last" : ""),
                   {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                     const std::vector<c10::SymInt> size{9, 7};
                     return std::vector<Tensor>{
                         ops::shifted_sum(on(z, d, t).contiguous(format), 3, 3, 2, one, one, one),
                         ops::shifted_sum_backward(on(grad_y, d, t).contiguous(format), 3, 3, 2, one, one, one, size)};
                   }});
    all.push_back({std::string("eigen_conv2d forward (fused)") + (channels_last ? ", channels_last" : ""),
                   {"leanconv", "shared-memory"}, [=](torch::Device d, torch::ScalarType t) {
                     return std::vector<Tensor>{ops::eigen_conv2d(on(x, d, t).contiguous(format), on(basis, d, t),
                                                                  on(coeff, d, t), on(bias, d, t), one, one, one)};
                   }});
    all.push_back({std::string("eigen_conv2d backward") + (channels_last ? ", channels_last" : ""), {"cudnn"},
                   [=](torch::Device d, torch::ScalarType t) {
                     auto [gx, gb, gc] = ops::eigen_conv2d_backward(on(grad_eigen, d, t), on(x, d, t).contiguous(format),
                                                                    on(basis, d, t), on(coeff, d, t), one, one, one,
                                                                    {true, true, true});
                     return std::vector<Tensor>{gx, gb, gc};
                   }});
    all.push_back({std::string("batch_norm_epilogue forward and backward") + (channels_last ? ", channels_last" : ""),
                   {"leanconv", "shared-memory"}, [=](torch::Device d, torch::ScalarType t) {
                     const auto xe = on(x, d, t).contiguous(format), re = on(residual, d, t).contiguous(format);
                     const auto w = on(per_channel[0], d, torch::kFloat), b = on(per_channel[1], d, torch::kFloat);
                     auto [out, mean, invstd] = ops::batch_norm_epilogue(xe, w, b, re, true, 1e-5);
                     auto [gx, gw, gb, gr] = ops::batch_norm_epilogue_backward(re, mean, invstd, out, xe, w, mean, invstd,
                                                                               true, {true, true, true, true});
                     return std::vector<Tensor>{out, mean, invstd, gx, gw, gb, gr};
                   }});
    all.push_back({std::string("affine_epilogue forward and backward") + (channels_last ? ", channels_last" : ""),
                   {"leanconv", "shared-memory"}, [=](torch::Device d, torch::ScalarType t) {
                     const auto xe = on(x, d, t).contiguous(format);
                     const auto a = on(per_channel[0], d, torch::kFloat), c = on(per_channel[1], d, torch::kFloat);
                     const auto out = ops::affine_epilogue(xe, a, c, xe, true);
                     auto [gx, ga, gc, gr] = ops::affine_epilogue_backward(xe, out, xe, a, true, {true, true, true, true});
                     return std::vector<Tensor>{out, gx, ga, gc, gr};
                   }});
    all.push_back({std::string("grouped_conv2d forward and backward, stride 2") + (channels_last ? ", channels_last" : ""),
                   {"leanconv", "shared-memory"}, [=](torch::Device d, torch::ScalarType t) {
                     const std::vector<int64_t> two{2, 2};
                     const auto xe = on(gx, d, t).contiguous(format), we = on(gw, d, t);
                     const auto y = ops::grouped_conv2d(xe, we, on(scale.repeat({2}).narrow(0, 0, 24), d, t), two, one,
                                                        one, 4);
                     auto [gi, gwt] = ops::grouped_conv2d_backward(on(grad_grouped, d, t).contiguous(format), xe, we, two,
                                                                   one, one, 4, {true, true});
                     return std::vector<Tensor>{y, gi, gwt};
                   }});
    all.push_back({std::string("coarse_grid_correction") + (channels_last ? ", channels_last" : ""), {"leanconv"},
                   [=](torch::Device d, torch::ScalarType t) {
                     const auto fine = on(gx, d, t).contiguous(format), c = on(coarse, d, t).contiguous(format);
                     return std::vector<Tensor>{ops::coarse_grid_correction(
                         fine, c, c.mul(0.5), on(prolongation, d, t), 4, on(scale, d, torch::kFloat),
                         on(scale, d, torch::kFloat), std::nullopt, std::nullopt, true, 0.1, 1e-5, true)};
                   }});
  }
  return all;
}

bool in_group(const Case& c, const std::string& group) {
  if (group.empty()) return true;
  for (const auto& g : c.groups)
    if (g == group) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  bool list = false;
  std::string group;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--list") {
      list = true;
    } else if (arg == "--group" && i + 1 < argc) {
      group = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--list] [--group leanconv|shared-memory|cudnn]\n", argv[0]);
      return 2;
    }
  }
  const auto all = cases();
  int failures = 0, count = 0;
  const bool gpu = torch::cuda::is_available();
  for (const auto& c : all) {
    if (!in_group(c, group)) continue;
    for (const auto dtype : c.dtypes) {
      const std::string name = c.name + " [" + std::string(c10::toString(dtype)) + "]";
      ++count;
      if (list || !gpu) {
        std::printf("%s %s\n", list ? "case" : "skipped (no GPU):", name.c_str());
        continue;
      }
      try {
        const auto expected = c.run(torch::kCPU, dtype);
        const auto actual = c.run(torch::kCUDA, dtype);
        torch::cuda::synchronize();
        const double tol = dtype == torch::kHalf ? 2e-2 : 1e-4;
        bool same = expected.size() == actual.size();
        for (size_t k = 0; same && k < expected.size(); ++k) {
          same = torch::allclose(actual[k].cpu().to(torch::kFloat), expected[k].to(torch::kFloat), tol, tol);
        }
        std::printf("%s %s\n", same ? "ok" : "MISMATCH", name.c_str());
        failures += !same;
      } catch (const std::exception& e) {
        std::printf("ERROR %s: %s\n", name.c_str(), e.what());
        ++failures;
      }
    }
  }
  std::printf("%d cases, %d failed%s\n", count, failures, gpu || list ? "" : " (no GPU: nothing launched)");
  return failures ? 1 : 0;
}
