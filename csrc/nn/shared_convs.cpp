// The shared family's entry in the C++ family registry: one ConvAnchor per stage and kernel size for the stage's
// C -> C convs, each use an AnchoredConv2d (leanconv.nn.SharedConvs); the width-changing and 1x1 convs stay dense.
#include <map>
#include <string>
#include <utility>

#include "leanconv/nn/conv_families.h"
#include "leanconv/nn/shared.h"

namespace leanconv::nn {
namespace {

class SharedConvs : public FamilyConvs {
 public:
  explicit SharedConvs(const FamilyArguments& arguments) : rotate_(arguments.integer("rotate")) {}

  torch::nn::AnyModule conv(const ConvSite& site) override {
    const int64_t k = site.kernel_size;
    if (site.in_channels != site.out_channels || k == 1) return {};
    auto [anchor, fresh] = anchors_.try_emplace({site.stage, k}, nullptr);
    if (fresh) anchor->second = ConvAnchor(ConvAnchorOptions(site.in_channels, k));
    return torch::nn::AnyModule(
        AnchoredConv2d(anchor->second, AnchoredConv2dOptions().stride(site.stride).rotate(rotate_)));
  }

  // Registered once, on the model, as "anchor<stage>" (with "x<k>" for a kernel size other than 3).
  void finish(torch::nn::Module& model) override {
    for (const auto& [key, anchor] : anchors_)
      model.register_module("anchor" + std::to_string(key.first) + (key.second == 3 ? "" : "x" + std::to_string(key.second)),
                            anchor);
  }

 private:
  int64_t rotate_;
  std::map<std::pair<int64_t, int64_t>, ConvAnchor> anchors_;  // by (stage, kernel size)
};

}  // namespace

LEANCONV_REGISTER_CONV_FAMILY(shared, ConvFamily{"shared",
                                                 {{"rotate", "0", "channel rotation of every anchored use"}},
                                                 [](const FamilyArguments& arguments, int64_t) {
                                                   return std::make_unique<SharedConvs>(arguments);
                                                 }});

}  // namespace leanconv::nn
