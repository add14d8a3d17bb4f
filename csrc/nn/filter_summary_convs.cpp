// The filter-summary family's entry in the C++ family registry: a FilterSummaryConv2d for every k x k conv whose
// filters are long enough for the compression (leanconv.nn.FilterSummaryConvs); shorter ones stay dense.
#include <c10/util/StringUtil.h>

#include "leanconv/nn/conv_families.h"
#include "leanconv/nn/filter_summary.h"

namespace leanconv::nn {
namespace {

class FilterSummaryConvs : public FamilyConvs {
 public:
  explicit FilterSummaryConvs(const FamilyArguments& arguments) : compression_(arguments.number("compression")) {}

  torch::nn::AnyModule conv(const ConvSite& site) override {
    const int64_t k = site.kernel_size;
    if (k == 1 || site.in_channels * k * k < compression_) return {};
    return torch::nn::AnyModule(FilterSummaryConv2d(FilterSummaryConv2dOptions(site.in_channels, site.out_channels, k)
                                                        .stride(site.stride)
                                                        .padding(k / 2)
                                                        .bias(false)
                                                        .compression(compression_)));
  }

 private:
  double compression_;
};

}  // namespace

LEANCONV_REGISTER_CONV_FAMILY(filter_summary,
                              ConvFamily{"filter_summary",
                                         {{"compression", c10::str(FilterSummaryConv2dOptions(1, 1, 1).compression()),
                                           "C_in*k*k / s: dense filter elements per summary element"}},
                                         [](const FamilyArguments& arguments, int64_t) {
                                           return std::make_unique<FilterSummaryConvs>(arguments);
                                         }});

}  // namespace leanconv::nn
