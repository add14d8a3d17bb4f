// The generated family's entry in the C++ family registry: every conv of the model draws on one ParameterRing
// (leanconv.nn.GeneratedConvs with ring_scope="model").
#include <c10/util/StringUtil.h>

#include <cmath>
#include <stdexcept>

#include "leanconv/nn/conv_families.h"
#include "leanconv/nn/generated.h"

namespace leanconv::nn {
namespace {

// ring_size as leanconv.families reads it: a whole count >= 1 of ring parameters, or a fraction in (0, 1) of the
// weights the ring serves.
int64_t ring_parameters(const FamilyArguments& arguments, int64_t served_weights) {
  const double size = arguments.number("ring_size");
  if (size > 0 && size < 1) return std::max<int64_t>(1, std::llround(size * served_weights));
  if (size >= 1 && size == std::floor(size) && size <= static_cast<double>(served_weights))
    return static_cast<int64_t>(size);
  throw std::invalid_argument(c10::str("--ring-size must be a whole count in [1, ", served_weights,
                                        "] or a fraction in (0, 1), got ", size));
}

class GeneratedConvs : public FamilyConvs {
 public:
  GeneratedConvs(const FamilyArguments& arguments, int64_t served_weights)
      : ring_(ring_parameters(arguments, served_weights)) {}

  torch::nn::AnyModule conv(const ConvSite& site) override {
    return torch::nn::AnyModule(GeneratedConv2d(
        ring_, GeneratedConv2dOptions(site.in_channels, site.out_channels, site.kernel_size)
                   .stride(site.stride)
                   .padding(site.kernel_size / 2)
                   .bias(false)));
  }

  void finish(torch::nn::Module& model) override { model.register_module("ring", ring_); }

 private:
  ParameterRing ring_;
};

}  // namespace

LEANCONV_REGISTER_CONV_FAMILY(
    generated, ConvFamily{"generated",
                          {{"ring_size", "0.1", "ring parameters: a count (>= 1) or a fraction of the weights served"}},
                          [](const FamilyArguments& arguments, int64_t served_weights) {
                            return std::make_unique<GeneratedConvs>(arguments, served_weights);
                          }});

}  // namespace leanconv::nn
