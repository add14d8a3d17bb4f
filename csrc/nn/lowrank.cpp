// Low-rank (DeCEF) module for LibTorch programs.
#include "leanconv/nn/lowrank.h"

#include <ATen/ops/linalg_qr.h>
#include <torch/nn/functional/conv.h>

#include <cmath>

#include "common/checks.h"
#include "leanconv/ops/lowrank.h"

namespace leanconv::nn {

EigenConv2dImpl::EigenConv2dImpl(EigenConv2dOptions options_) : options(std::move(options_)) {
  const auto& o = options;
  checks::check_conv_options(o, "EigenConv2d");
  const int64_t taps = (*o.kernel_size())[0] * (*o.kernel_size())[1];
  TORCH_CHECK(o.rank() >= 1 && o.rank() <= taps, "leanconv: rank must be between 1 and kh*kw = ", taps, ", got ",
              o.rank());
  TORCH_CHECK(o.path() == "auto" || o.path() == "fused" || o.path() == "materialized",
              "leanconv: path must be 'auto', 'fused' or 'materialized', got '", o.path(), "'");
  basis = register_parameter("basis", torch::empty({o.in_channels(), o.rank(), (*o.kernel_size())[0],
                                                    (*o.kernel_size())[1]}));
  coeff = register_parameter("coeff", torch::empty({o.out_channels(), o.in_channels() * o.rank()}));
  if (o.bias()) bias = register_parameter("bias", torch::empty({o.out_channels()}));
  reset_parameters();
}

void EigenConv2dImpl::reset_parameters() {
  // As in Python: orthonormal bases per channel, coeff uniform in +-1/sqrt(C_in*R); the dense weight then has
  // nn.Conv2d's default variance.
  torch::NoGradGuard no_grad;
  const int64_t c_in = options.in_channels(), rank = options.rank();
  const int64_t taps = (*options.kernel_size())[0] * (*options.kernel_size())[1];
  const auto q = std::get<0>(at::linalg_qr(torch::randn({c_in, taps, rank}, torch::kFloat64)));
  basis.copy_(q.transpose(1, 2).reshape(basis.sizes()));
  const double bound = 1.0 / std::sqrt(static_cast<double>(c_in * rank));
  coeff.uniform_(-bound, bound);
  if (bias.defined()) {
    const double bias_bound = 1.0 / std::sqrt(static_cast<double>(c_in * taps));
    bias.uniform_(-bias_bound, bias_bound);
  }
}

torch::Tensor EigenConv2dImpl::weight() const { return ops::eigen_weight(basis, coeff); }

std::string EigenConv2dImpl::chosen_path(c10::DeviceType device) const {
  if (options.path() != "auto") return options.path();
  const auto& k = *options.kernel_size();
  return ops::eigen_conv2d_fused_is_cheaper(device, options.in_channels(), options.out_channels(), k[0], k[1],
                                            options.rank())
             ? "fused"
             : "materialized";
}

torch::Tensor EigenConv2dImpl::forward(const torch::Tensor& input) {
  checks::check_conv_input(input, options.in_channels(), "EigenConv2d");
  if (chosen_path(input.device().type()) == "materialized") {
    return torch::nn::functional::detail::conv2d(input, weight(), bias, options.stride(), options.padding(),
                                                 options.dilation(), 1);
  }
  const bool unbatched = input.dim() == 3;
  const auto x = unbatched ? input.unsqueeze(0) : input;
  const auto y = ops::eigen_conv2d(x, basis, coeff, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt,
                                   *options.stride(), *options.padding(), *options.dilation());
  return unbatched ? y.squeeze(0) : y;
}

int64_t EigenConv2dImpl::num_learned_params() const {
  return basis.numel() + coeff.numel() + (bias.defined() ? bias.numel() : 0);
}

int64_t EigenConv2dImpl::num_dense_params() const {
  const auto& k = *options.kernel_size();
  return options.out_channels() * options.in_channels() * k[0] * k[1] + (bias.defined() ? bias.numel() : 0);
}

void EigenConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::EigenConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", rank=" << options.rank() << ", compression="
         << static_cast<double>(num_dense_params()) / static_cast<double>(num_learned_params())
         << "x, path=" << options.path() << ")";
}

}  // namespace leanconv::nn
