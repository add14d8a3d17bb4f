// Overlapping-segment (FSNet) module for LibTorch programs.
#include "leanconv/nn/filter_summary.h"

#include <torch/nn/functional/conv.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>

#include "common/checks.h"
#include "leanconv/ops/filter_summary.h"

namespace leanconv::nn {

torch::Tensor fake_quantize(const torch::Tensor& x, int64_t bits, double scale) {
  TORCH_CHECK(bits >= 2 && bits <= 8, "leanconv: quant_bits must be between 2 and 8, got ", bits);
  const double qmax = static_cast<double>((int64_t(1) << (bits - 1)) - 1);
  const auto detached = x.detach();
  const auto s = scale > 0 ? torch::full({}, scale, x.options())
                           : detached.abs().amax().clamp_min(std::numeric_limits<float>::min()) / qmax;
  const auto q = torch::clamp(torch::round(detached / s), -qmax, qmax);
  return x + (q * s - x).detach();
}

FilterSummaryConv2dImpl::FilterSummaryConv2dImpl(FilterSummaryConv2dOptions options_) : options(std::move(options_)) {
  const auto& o = options;
  checks::check_conv_options(o, "FilterSummaryConv2d");
  TORCH_CHECK(o.compression() >= 1,
              "leanconv: compression must be a number >= 1 (a summary no longer than the dense filters), got ",
              o.compression());
  TORCH_CHECK(!o.quant_bits() || (*o.quant_bits() >= 2 && *o.quant_bits() <= 8),
              "leanconv: quant_bits must be between 2 and 8, got ", o.quant_bits().value_or(0));
  TORCH_CHECK(o.path() == "auto" || o.path() == "direct" || o.path() == "gather",
              "leanconv: path must be 'auto', 'direct' or 'gather', got '", o.path(), "'");
  const int64_t filter_length = o.in_channels() * (*o.kernel_size())[0] * (*o.kernel_size())[1];
  summary_stride_ = static_cast<int64_t>(std::floor(static_cast<double>(filter_length) / o.compression()));
  TORCH_CHECK(summary_stride_ >= 1, "leanconv: compression ", o.compression(),
              " is too high for filters of C_in*k*k = ", filter_length, " elements: it gives a summary stride s < 1");
  TORCH_CHECK(o.path() != "direct" || o.in_channels() % summary_stride_ == 0,
              "leanconv: the direct path needs s = ", summary_stride_, " to divide in_channels = ", o.in_channels());
  summary = register_parameter("summary", torch::empty({o.out_channels() * summary_stride_}));
  if (o.bias()) bias = register_parameter("bias", torch::empty({o.out_channels()}));
  quant_scale = register_buffer("quant_scale", torch::zeros({}));
  quant_bits = register_buffer("quant_bits", torch::tensor(o.quant_bits().value_or(0), torch::kLong));
  summary_layout = register_buffer("summary_layout", torch::tensor(expected_summary_layout(), torch::kLong));
  reset_parameters();
}

std::vector<int64_t> FilterSummaryConv2dImpl::expected_summary_layout() const {
  const auto& k = *options.kernel_size();
  return {options.out_channels(), options.in_channels(), k[0], k[1], summary_stride_};
}

void FilterSummaryConv2dImpl::load(torch::serialize::InputArchive& archive) {
  Module::load(archive);
  check_quant_bits();
  check_summary_layout();
}

void FilterSummaryConv2dImpl::check_summary_layout() const {
  const auto expected = expected_summary_layout();
  const auto stored = summary_layout.to(torch::kCPU, torch::kLong).contiguous();
  const bool same = stored.numel() == static_cast<int64_t>(expected.size()) &&
                    std::equal(expected.begin(), expected.end(), stored.data_ptr<int64_t>());
  TORCH_CHECK(same, "leanconv: the checkpoint's FilterSummaryConv2d summary has the layout (C_out, C_in, kh, kw, s) = ",
              stored, ", this layer ", c10::IntArrayRef(expected),
              ": a summary read with another layout computes other filters; build the layer with the checkpoint's "
              "geometry and compression");
}

void FilterSummaryConv2dImpl::check_quant_bits() const {
  const int64_t stored = quant_bits.item<int64_t>(), expected = options.quant_bits().value_or(0);
  TORCH_CHECK(stored == expected, "leanconv: the checkpoint's FilterSummaryConv2d is quantised to ", stored,
              " bits (0 = not quantised), this layer to ", expected, ": build it with quant_bits(", stored, ")");
}

void FilterSummaryConv2dImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const int64_t filter_length = options.in_channels() * (*options.kernel_size())[0] * (*options.kernel_size())[1];
  const double bound = 1.0 / std::sqrt(static_cast<double>(filter_length));
  summary.uniform_(-bound, bound);
  if (bias.defined()) bias.uniform_(-bound, bound);
  quant_scale.zero_();  // a new summary has no fixed quantisation scale
}

torch::Tensor FilterSummaryConv2dImpl::effective_summary() const {
  if (!options.quant_bits()) return summary;
  // The C++ module reads the scale buffer here (the Python module mirrors it in an attribute instead).
  return fake_quantize(summary, *options.quant_bits(), quant_scale.item<double>());
}

torch::Tensor FilterSummaryConv2dImpl::weight() const {
  return ops::filter_summary_weight(effective_summary(), options.out_channels(), options.in_channels(),
                                    (*options.kernel_size())[0], (*options.kernel_size())[1], summary_stride_);
}

bool FilterSummaryConv2dImpl::uses_direct_path() const {
  if (options.path() != "auto") return options.path() == "direct";
  const auto& k = *options.kernel_size();
  const auto& s = *options.stride();
  if (options.in_channels() % summary_stride_ != 0 || (k[0] == 1 && k[1] == 1)) return false;
  return static_cast<double>(k[0] * k[1]) / static_cast<double>(s[0] * s[1]) >= 2;  // same rule as Python
}

torch::Tensor FilterSummaryConv2dImpl::forward(const torch::Tensor& input) {
  checks::check_conv_input(input, options.in_channels(), "FilterSummaryConv2d");
  namespace F = torch::nn::functional;
  const auto f = effective_summary();
  if (!uses_direct_path()) {
    return F::detail::conv2d(input, weight(), bias, options.stride(), options.padding(), options.dilation(), 1);
  }
  const bool unbatched = input.dim() == 3;
  const auto x = unbatched ? input.unsqueeze(0) : input;
  const auto segments =
      ops::filter_summary_weight(f, options.out_channels(), options.in_channels(), 1, 1, summary_stride_);
  auto y = ops::segment_conv2d(x, segments.flatten(1), (*options.kernel_size())[0], (*options.kernel_size())[1],
                               options.in_channels() / summary_stride_, *options.stride(), *options.padding(),
                               *options.dilation());
  if (bias.defined()) y = y + bias.view({1, -1, 1, 1}).to(y.scalar_type());
  return unbatched ? y.squeeze(0) : y;
}

int64_t FilterSummaryConv2dImpl::num_learned_params() const {
  return summary.numel() + (bias.defined() ? bias.numel() : 0);
}

int64_t FilterSummaryConv2dImpl::num_dense_params() const {
  const int64_t filter_length = options.in_channels() * (*options.kernel_size())[0] * (*options.kernel_size())[1];
  return options.out_channels() * filter_length + (bias.defined() ? bias.numel() : 0);
}

void FilterSummaryConv2dImpl::pretty_print(std::ostream& stream) const {
  const int64_t filter_length = options.in_channels() * (*options.kernel_size())[0] * (*options.kernel_size())[1];
  stream << "leanconv::nn::FilterSummaryConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", summary=" << summary.numel()
         << ", compression=" << static_cast<double>(filter_length) / summary_stride_ << "x, path=" << options.path()
         << ")";
}

}  // namespace leanconv::nn
