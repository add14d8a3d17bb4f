// The low-rank family's entry in the C++ family registry: an EigenConv2d for every k x k conv, k > 1
// (leanconv.nn.LowrankConvs with one rank for the model); a rank above k*k is the full rank k*k.
#include <algorithm>

#include "leanconv/nn/conv_families.h"
#include "leanconv/nn/lowrank.h"

namespace leanconv::nn {
namespace {

class LowrankConvs : public FamilyConvs {
 public:
  explicit LowrankConvs(const FamilyArguments& arguments) : rank_(arguments.integer("rank")) {}

  torch::nn::AnyModule conv(const ConvSite& site) override {
    const int64_t k = site.kernel_size;
    if (k == 1) return {};
    return torch::nn::AnyModule(EigenConv2d(
        EigenConv2dOptions(site.in_channels, site.out_channels, k, std::min(rank_, k * k))
            .stride(site.stride)
            .padding(k / 2)
            .bias(false)));
  }

 private:
  int64_t rank_;
};

}  // namespace

LEANCONV_REGISTER_CONV_FAMILY(lowrank, ConvFamily{"lowrank",
                                                  {{"rank", "4", "basis filters per input channel"}},
                                                  [](const FamilyArguments& arguments, int64_t) {
                                                    return std::make_unique<LowrankConvs>(arguments);
                                                  }});

}  // namespace leanconv::nn
