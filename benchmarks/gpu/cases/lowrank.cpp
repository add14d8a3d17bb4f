// The low-rank family's kernels in the kernel driver: the fused eigen conv forward, and its backward (through
// cuDNN).
#include "driver_case.h"

namespace leanconv::driver {
namespace {

void add_lowrank_cases(std::vector<Case>& all) {
  torch::manual_seed(0);
  // Eigen conv: 40 intermediate channels (3 k-chunks), 130 output channels (3 tiles), 144 pixels (3 tiles).
  const auto x = torch::randn({2, 8, 9, 8}), basis = torch::randn({8, 5, 3, 3}), coeff = torch::randn({130, 40});
  const auto bias = torch::randn({130}), grad_eigen = torch::randn({2, 130, 9, 8});
  const std::vector<int64_t> one{1, 1};
  for (const bool channels_last : {false, true}) {
    const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
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
  }
}

}  // namespace

LEANCONV_DRIVER_CASES(lowrank, add_lowrank_cases);

}  // namespace leanconv::driver
