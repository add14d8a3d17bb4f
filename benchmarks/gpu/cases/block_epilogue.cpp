// The block epilogue's kernels in the kernel driver (the infrastructure the shared and multigrid blocks use): the
// BatchNorm and affine epilogues, forward and backward, on every path of the channel passes and every flag set.
#include "driver_case.h"

#include <array>
#include <optional>

namespace leanconv::driver {
namespace {

// Both epilogues forward and backward, with residual and relu, in both layouts.
void add_layout_cases(std::vector<Case>& all) {
  // Channel passes: 9,000 values in each of 40 channels (on an H200: 1 to 4 NCHW chunks a channel, 70 to 273 NHWC
  // row chunks).
  const auto features = torch::randn({3, 40, 60, 50}), residual = torch::randn({3, 40, 60, 50});
  const auto per_channel = torch::randn({2, 40});
  for (const bool channels_last : {false, true}) {
    const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
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
  }
}

void add_feature_map_cases(std::vector<Case>& all) {
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
}

void add_flag_set_cases(std::vector<Case>& all) {
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
}

void add_block_epilogue_cases(std::vector<Case>& all) {
  torch::manual_seed(0);
  add_layout_cases(all);
  add_feature_map_cases(all);
  add_flag_set_cases(all);
}

}  // namespace

LEANCONV_DRIVER_CASES(block_epilogue, add_block_epilogue_cases);

}  // namespace leanconv::driver
