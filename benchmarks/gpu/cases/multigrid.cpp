// The multigrid family's kernels in the kernel driver: the grouped conv forward and backward, and the coarse-grid
// correction.
#include "driver_case.h"

namespace leanconv::driver {
namespace {

void add_multigrid_cases(std::vector<Case>& all) {
  torch::manual_seed(0);
  // Grouped conv, stride 2: 4 x 12 x 10 = 480 output values per weight element (2 passes of 256 threads).
  const auto gx = torch::randn({4, 16, 24, 20}), gw = torch::randn({24, 4, 3, 3}) / 6,
             grad_grouped = torch::randn({4, 24, 12, 10});
  const auto coarse = torch::randn({4, 8, 24, 20}), prolongation = torch::randn({16, 2, 1, 1}), scale = torch::randn({16});
  const std::vector<int64_t> one{1, 1};
  for (const bool channels_last : {false, true}) {
    const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
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
}

}  // namespace

LEANCONV_DRIVER_CASES(multigrid, add_multigrid_cases);

}  // namespace leanconv::driver
