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
#include <ATen/OpMathType.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
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
  std::vector<torch::ScalarType> dtypes{torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16};
};

Tensor on(const Tensor& t, torch::Device device, torch::ScalarType dtype) { return t.to(device, dtype); }

// A copy of `t` (same device, sizes and strides) whose data starts one element into its storage: no 16-byte vector
// access may use it, so the kernels take their one-value-at-a-time paths.
Tensor misaligned(const Tensor& t) {
  auto storage = torch::empty({t.numel() + 1}, t.options());
  auto placed = storage.narrow(0, 1, t.numel()).as_strided(t.sizes(), t.strides());
  placed.copy_(t);
  return placed;
}

// The dtype of per-channel parameters for inputs of `dtype`: float for half and bfloat16, as aten's BatchNorm.
torch::ScalarType math(torch::ScalarType dtype) { return at::toOpMathType(dtype); }

std::vector<Case> cases() {
  torch::manual_seed(0);
  const auto ring = torch::randn({97}), grad24 = torch::randn({6, 4, 3, 3});
  const auto summary = torch::randn({8 * 4}), grad_weight = torch::randn({8, 8, 3, 3});
  const auto wide_grad_weight = torch::randn({8, 64, 3, 3});
  const auto wrapping_grad_weight = torch::randn({3, 40, 3, 3});
  const auto z = torch::randn({2, 6, 9, 7}), grad_y = torch::randn({2, 6, 9, 7});
  // Eigen conv: 40 intermediate channels (3 k-chunks), 130 output channels (3 tiles), 144 pixels (3 tiles).
  const auto x = torch::randn({2, 8, 9, 8}), basis = torch::randn({8, 5, 3, 3}), coeff = torch::randn({130, 40});
  const auto bias = torch::randn({130}), grad_eigen = torch::randn({2, 130, 9, 8});
  // Channel passes: 9,000 values in each of 40 channels (on an H200: 1 to 4 NCHW chunks a channel, 70 to 273 NHWC
  // row chunks).
  const auto features = torch::randn({3, 40, 60, 50}), residual = torch::randn({3, 40, 60, 50});
  const auto per_channel = torch::randn({2, 40});
  // Grouped conv, stride 2: 4 x 12 x 10 = 480 output values per weight element (2 passes of 256 threads).
  const auto gx = torch::randn({4, 16, 24, 20}), gw = torch::randn({24, 4, 3, 3}) / 6,
             grad_grouped = torch::randn({4, 24, 12, 10});
  const auto coarse = torch::randn({4, 8, 24, 20}), prolongation = torch::randn({16, 2, 1, 1}), scale = torch::randn({16});
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
    // Rings of 97 (runs of ~2 equal entries in 216 positions), 5 (runs of ~43: the 8-term steps) and 2^20 + 3 (runs
    // of 0 or 1, three radix passes), a sequence of 2^22 and one of 2^33 + 17 whose range crosses 2^32.
    all.push_back({std::string("generate_weights backward, ") + (deterministic ? "deterministic" : "atomic"),
                   {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                     at::globalContext().setDeterministicAlgorithms(deterministic, false);
                     auto g = ops::generate_weights_backward(on(grad24, d, t), 97, 5, 1000, 100, 0.3);
                     auto wide = ops::generate_weights_backward(on(grad24, d, t), 97, 5, int64_t(1) << 22, 12345, 0.3);
                     auto small_ring = ops::generate_weights_backward(on(grad24, d, t), 5, 5, 1000, 100, 0.3);
                     const int64_t big = (int64_t(1) << 20) + 3, long_total = (int64_t(1) << 33) + 17;
                     auto big_ring = ops::generate_weights_backward(on(grad24, d, t), big, 5, long_total,
                                                                    (int64_t(1) << 32) - 100, 0.3);
                     at::globalContext().setDeterministicAlgorithms(false, false);
                     return std::vector<Tensor>{g, wide, small_ring, big_ring};
                   }});
  }
  all.push_back({"filter_summary_weight forward and backward", {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                   return std::vector<Tensor>{ops::filter_summary_weight(on(summary, d, t), 8, 8, 3, 3, 4),
                                              ops::filter_summary_weight_backward(on(grad_weight, d, t), 32, 4)};
                 }});
  // K = 576 >= 32 s: one warp per summary entry; and K = 360 with s = 2: 60 unwrapped positions per entry.
  all.push_back({"filter_summary_weight backward, warp per entry", {"leanconv", "sync"},
                 [=](torch::Device d, torch::ScalarType t) {
                   return std::vector<Tensor>{
                       ops::filter_summary_weight_backward(on(wide_grad_weight, d, t), 8, 1),
                       ops::filter_summary_weight_backward(on(wrapping_grad_weight, d, t), 6, 2)};
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
    // Stride 2 and dilation 2: the backward's taps that read an input row are found by residues, not divisions.
    all.push_back({std::string("shifted_sum forward and backward, stride 2, dilation 2") +
                       (channels_last ? ", channels_last" : ""),
                   {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                     const std::vector<int64_t> two{2, 2};
                     const std::vector<c10::SymInt> size{9, 7};
                     const auto y = ops::shifted_sum(on(z, d, t).contiguous(format), 3, 3, 5, two, one, two);
                     return std::vector<Tensor>{y, ops::shifted_sum_backward(y, 3, 3, 5, two, one, two, size)};
                   }});
    all.push_back({std::string("eigen_conv2d forward (fused)") + (channels_last ? ", channels_last" : ""),
                   {"leanconv", "shared-memory", "sync"}, [=](torch::Device d, torch::ScalarType t) {
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
                     const auto xe = on(features, d, t).contiguous(format), re = on(residual, d, t).contiguous(format);
                     const auto w = on(per_channel[0], d, math(t)), b = on(per_channel[1], d, math(t));
                     auto [out, mean, invstd, var] = ops::batch_norm_epilogue(xe, w, b, re, true, 1e-5);
                     auto [gx, gw, gb, gr] = ops::batch_norm_epilogue_backward(re, mean, invstd, out, xe, w, mean, invstd,
                                                                               true, {true, true, true, true});
                     return std::vector<Tensor>{out, mean, invstd, var, gx, gw, gb, gr};
                   }});
    all.push_back({std::string("affine_epilogue forward and backward") + (channels_last ? ", channels_last" : ""),
                   {"leanconv", "shared-memory"}, [=](torch::Device d, torch::ScalarType t) {
                     const auto xe = on(features, d, t).contiguous(format);
                     const auto a = on(per_channel[0], d, math(t)), c = on(per_channel[1], d, math(t));
                     const auto out = ops::affine_epilogue(xe, a, c, xe, true);
                     auto [gx, ga, gc, gr] = ops::affine_epilogue_backward(xe, out, xe, a, true, {true, true, true, true});
                     return std::vector<Tensor>{out, gx, ga, gc, gr};
                   }});
    all.push_back({std::string("grouped_conv2d forward and backward, stride 2") + (channels_last ? ", channels_last" : ""),
                   {"leanconv", "shared-memory", "sync"}, [=](torch::Device d, torch::ScalarType t) {
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
                         fine, c, c.mul(0.5), on(prolongation, d, t), 4, on(scale, d, math(t)), on(scale, d, math(t)),
                         std::nullopt, std::nullopt, true, 0.1, 1e-5, true)};
                   }});
  }
  // The channel passes' other paths: NCHW vectors with several chunks a channel, 7x7 planes whose groups of values
  // run across planes, NHWC vectors over several channel tiles, an odd channel count with more row chunks than a
  // warp has lanes (on an H200), and operands that no 16-byte access may use.
  struct FeatureMapCase {
    std::string name;
    std::vector<int64_t> sizes;
    bool channels_last, misaligned;
  };
  const std::vector<FeatureMapCase> feature_maps{{"NCHW 4x8x64x72", {4, 8, 64, 72}, false, false},
                                                 {"NCHW 300x8x7x7", {300, 8, 7, 7}, false, false},
                                                 {"NCHW 4x8x64x72, misaligned", {4, 8, 64, 72}, false, true},
                                                 {"NHWC 2x304x20x20", {2, 304, 20, 20}, true, false},
                                                 {"NHWC 4x37x30x30", {4, 37, 30, 30}, true, false},
                                                 {"NHWC 2x304x20x20, misaligned", {2, 304, 20, 20}, true, true}};
  for (const auto& shape : feature_maps) {
    const auto values = torch::randn(shape.sizes), others = torch::randn(shape.sizes);
    const auto parameters = torch::randn({2, shape.sizes[1]});
    const auto format = shape.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
    const bool unaligned = shape.misaligned;
    all.push_back({"batch_norm_epilogue and affine_epilogue, " + shape.name, {"leanconv", "shared-memory"},
                   [=](torch::Device d, torch::ScalarType t) {
                     const auto place = [&](const Tensor& v) {
                       const auto dense = on(v, d, t).contiguous(format);
                       return unaligned ? misaligned(dense) : dense;
                     };
                     const auto xe = place(values), re = place(others);
                     const auto w = on(parameters[0], d, math(t)), b = on(parameters[1], d, math(t));
                     auto [out, mean, invstd, var] = ops::batch_norm_epilogue(xe, w, b, re, true, 1e-5);
                     auto [gx, gw, gb, gr] = ops::batch_norm_epilogue_backward(re, mean, invstd, place(out), xe, w,
                                                                               mean, invstd, true,
                                                                               {true, true, true, true});
                     const auto affine = ops::affine_epilogue(xe, w, b, re, true);
                     auto [ax, as, ac, ar] = ops::affine_epilogue_backward(re, place(affine), xe, w, true,
                                                                           {true, true, true, true});
                     return std::vector<Tensor>{out, mean, invstd, var, gx, gw, gb, gr, affine, ax, as, ac, ar};
                   }});
  }
  // Every flag set of the block-epilogue passes on small maps with two reduction chunks a channel (on an H200):
  // the affine pass with and without its scale, residual and relu, the backward's masked gradient written or not,
  // with and without the statistics' gradients. Small enough for racecheck and synccheck.
  for (const bool channels_last : {false, true}) {
    const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
    const std::vector<int64_t> sizes = channels_last ? std::vector<int64_t>{2, 40, 24, 24} : std::vector<int64_t>{2, 4, 64, 72};
    const auto values = torch::randn(sizes), others = torch::randn(sizes), parameters = torch::randn({2, sizes[1]});
    all.push_back({std::string("block-epilogue flag sets") + (channels_last ? ", channels_last" : ""),
                   {"leanconv", "shared-memory", "sync"}, [=](torch::Device d, torch::ScalarType t) {
                     std::vector<Tensor> results;
                     const auto xe = on(values, d, t).contiguous(format), re = on(others, d, t).contiguous(format);
                     const auto w = on(parameters[0], d, math(t)), b = on(parameters[1], d, math(t));
                     for (const bool relu : {false, true}) {
                       for (const bool affine : {false, true}) {
                         for (const bool with_residual : {false, true}) {
                           const auto weight = affine ? std::optional<Tensor>(w) : std::nullopt;
                           const auto bias = affine ? std::optional<Tensor>(b) : std::nullopt;
                           const auto res = with_residual ? std::optional<Tensor>(re) : std::nullopt;
                           auto [out, mean, invstd, var] = ops::batch_norm_epilogue(xe, weight, bias, res, relu, 1e-5);
                           const auto kept = relu ? std::optional<Tensor>(out) : std::nullopt;
                           const auto folded = ops::affine_epilogue(xe, weight, b, res, relu);
                           const auto folded_kept = relu ? std::optional<Tensor>(folded) : std::nullopt;
                           results.insert(results.end(), {out, mean, invstd, var, folded});
                           for (const std::array<bool, 4> mask : {std::array<bool, 4>{true, affine, true, true},
                                                                  std::array<bool, 4>{true, false, false, false},
                                                                  std::array<bool, 4>{false, affine, true, false}}) {
                             const auto stats = mask[1] ? std::optional<Tensor>(mean) : std::nullopt;
                             auto [gx, gw, gb, gr] = ops::batch_norm_epilogue_backward(
                                 re, stats, mask[1] ? std::optional<Tensor>(invstd) : std::nullopt, kept, xe, weight,
                                 mean, invstd, relu, mask);
                             auto [ax, as, ac, ar] = ops::affine_epilogue_backward(re, folded_kept, xe, weight, relu, mask);
                             for (const auto& g : {gx, gw, gb, gr, ax, as, ac, ar})
                               if (g.defined()) results.push_back(g);
                           }
                         }
                       }
                     }
                     return results;
                   }});
  }
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
