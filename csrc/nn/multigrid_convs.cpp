// The multigrid family's entry in the C++ family registry. Its unit is the block: a model of ResNet-20's layout is
// the MGIC ResNet-20, each block a MultigridBlock V-cycle (leanconv.models.mgic_resnet with widths (16, 32, 64) and
// blocks (3, 3, 3) in Python, the network the family's tables use); no single conv is replaced.
#include <c10/util/StringUtil.h>

#include "leanconv/nn/conv_families.h"
#include "leanconv/nn/multigrid.h"

namespace leanconv::nn {
namespace {

class MultigridConvs : public FamilyConvs {
 public:
  explicit MultigridConvs(const FamilyArguments& arguments)
      : group_size_(arguments.integer("group_size")), coarsest_(arguments.integer("coarsest")) {}

  torch::nn::AnyModule conv(const ConvSite&) override { return {}; }

  torch::nn::AnyModule block(int64_t in_channels, int64_t out_channels, int64_t stride) override {
    return torch::nn::AnyModule(MultigridBlock(
        MultigridBlockOptions(in_channels, out_channels).stride(stride).group_size(group_size_).coarsest(coarsest_)));
  }

 private:
  int64_t group_size_, coarsest_;
};

const MultigridBlockOptions kDefaults(1, 1);

}  // namespace

LEANCONV_REGISTER_CONV_FAMILY(
    multigrid, ConvFamily{"multigrid",
                          {{"group_size", c10::str(kDefaults.group_size()), "channels per group of the grouped convs"},
                           {"coarsest", c10::str(kDefaults.coarsest()), "the narrowest channel level"}},
                          [](const FamilyArguments& arguments, int64_t) {
                            return std::make_unique<MultigridConvs>(arguments);
                          },
                          /*compact=*/true, /*network=*/"mgic_resnet20"});

}  // namespace leanconv::nn
