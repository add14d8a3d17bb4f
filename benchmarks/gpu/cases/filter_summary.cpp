// The filter-summary family's kernels in the kernel driver: the summary's weight forward and backward, and the
// shifted sum of the direct path.
#include "driver_case.h"

namespace leanconv::driver {
namespace {

void add_filter_summary_cases(std::vector<Case>& all) {
  torch::manual_seed(0);
  const auto summary = torch::randn({8 * 4}), grad_weight = torch::randn({8, 8, 3, 3});
  const auto wide_grad_weight = torch::randn({8, 64, 3, 3});
  const auto wrapping_grad_weight = torch::randn({3, 40, 3, 3});
  const auto z = torch::randn({2, 6, 9, 7}), grad_y = torch::randn({2, 6, 9, 7});
  const std::vector<int64_t> one{1, 1};
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
  }
}

}  // namespace

LEANCONV_DRIVER_CASES(filter_summary, add_filter_summary_cases);

}  // namespace leanconv::driver
