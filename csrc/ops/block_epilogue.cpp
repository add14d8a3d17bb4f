// Schemas and public C++ entry points of the block-epilogue ops (leanconv/ops/block_epilogue.h), and fused_batch_norm,
// the F.batch_norm-shaped composition of them with the running-statistics update (an op too, so Python calls the
// same code: torch.ops.leanconv.fused_batch_norm).
//
// No autocast policy: like aten's batch_norm the ops run in their input's dtype (float32 parameters are accepted
// beside a float16 or bfloat16 input), so under autocast they take the conv's half-precision output as it is.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/rsqrt.h>
#include <c10/core/GradMode.h>
#include <torch/library.h>

#include <cmath>

#include "leanconv/ops/block_epilogue.h"

namespace leanconv::ops {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue(const at::Tensor& input,
                                                                  const std::optional<at::Tensor>& weight,
                                                                  const std::optional<at::Tensor>& bias,
                                                                  const std::optional<at::Tensor>& residual, bool relu,
                                                                  double eps) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::batch_norm_epilogue", "")
                       .typed<decltype(batch_norm_epilogue)>();
  return op.call(input, weight, bias, residual, relu, eps);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_backward(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& grad_mean,
    const std::optional<at::Tensor>& grad_invstd, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::batch_norm_epilogue_backward", "")
                       .typed<decltype(batch_norm_epilogue_backward)>();
  return op.call(grad_output, grad_mean, grad_invstd, output, input, weight, mean, invstd, relu, output_mask);
}

at::Tensor affine_epilogue(const at::Tensor& input, const std::optional<at::Tensor>& scale,
                           const std::optional<at::Tensor>& shift, const std::optional<at::Tensor>& residual,
                           bool relu) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::affine_epilogue", "")
                       .typed<decltype(affine_epilogue)>();
  return op.call(input, scale, shift, residual, relu);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> affine_epilogue_backward(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& scale, bool relu, std::array<bool, 4> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::affine_epilogue_backward", "")
                       .typed<decltype(affine_epilogue_backward)>();
  return op.call(grad_output, output, input, scale, relu, output_mask);
}

namespace {

// Each per-channel tensor (running statistics, weight, bias) (C,) floating point on the input's device: named,
// not aten's broadcast message (the eval path combines them before any kernel checks them).
void check_per_channel(const at::Tensor& input, const at::Tensor& t, const char* name) {
  const int64_t channels = input.dim() >= 2 ? input.size(1) : -1;
  TORCH_CHECK(t.dim() == 1 && t.size(0) == channels, "leanconv: fused_batch_norm's ", name, " must have shape (",
              channels, ",) (one value per channel of the input), got ", t.sizes());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "leanconv: fused_batch_norm's ", name,
              " must be floating point, got ", t.scalar_type());
  TORCH_CHECK(t.device() == input.device(), "leanconv: fused_batch_norm's ", name, " must be on the input's device (",
              input.device(), "), got ", t.device());
}

// The op's argument checks: both running statistics or neither, a positive eps, and every per-channel tensor.
void check_fused_batch_norm_arguments(const at::Tensor& input, const std::optional<at::Tensor>& running_mean,
                                      const std::optional<at::Tensor>& running_var,
                                      const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
                                      double eps) {
  const bool has_mean = running_mean.has_value() && running_mean->defined();
  const bool has_var = running_var.has_value() && running_var->defined();
  TORCH_CHECK(has_mean == has_var, "leanconv: fused_batch_norm needs both running_mean and running_var, or neither");
  TORCH_CHECK(std::isfinite(eps) && eps > 0, "leanconv: fused_batch_norm's eps must be a positive number, got ", eps);
  if (has_mean) {
    check_per_channel(input, *running_mean, "running_mean");
    check_per_channel(input, *running_var, "running_var");
  }
  if (weight.has_value() && weight->defined()) check_per_channel(input, *weight, "weight");
  if (bias.has_value() && bias->defined()) check_per_channel(input, *bias, "bias");
}

// Batch statistics: the epilogue normalises by them and, when training with running statistics and a non-empty
// batch, the running statistics move towards them.
at::Tensor batch_statistics_epilogue(const at::Tensor& input, const std::optional<at::Tensor>& running_mean,
                                     const std::optional<at::Tensor>& running_var,
                                     const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
                                     const std::optional<at::Tensor>& residual, bool training, double momentum,
                                     double eps, bool relu) {
  // nn.BatchNorm2d's rule: one value per channel is an error; an empty batch gives an empty output and leaves
  // the running statistics alone.
  const int64_t values = input.dim() == 4 ? input.size(0) * input.size(2) * input.size(3) : 2;
  TORCH_CHECK(!training || values != 1,
              "leanconv: fused_batch_norm expected more than 1 value per channel when training, got input of shape ",
              input.sizes());
  auto [out, mean, invstd, var] = batch_norm_epilogue(input, weight, bias, residual, relu, eps);
  const bool has_running = running_mean.has_value() && running_mean->defined();
  if (training && has_running && values > 0) {
    at::NoGradGuard no_grad;
    const double count = double(input.size(0)) * double(input.size(2)) * double(input.size(3));
    // The unbiased batch variance, as nn.BatchNorm2d's running_var takes it.
    const auto batch_var = var.detach().to(running_var->scalar_type()) * (count / (count - 1));
    running_mean->mul_(1 - momentum).add_(mean.detach().to(running_mean->scalar_type()), momentum);
    running_var->mul_(1 - momentum).add_(batch_var, momentum);
  }
  return out;
}

// The op's implementation (CompositeImplicitAutograd: autograd, torch.compile and torch.func see the two ops).
at::Tensor fused_batch_norm_composite(const at::Tensor& input, const std::optional<at::Tensor>& running_mean,
                                      const std::optional<at::Tensor>& running_var,
                                      const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
                                      const std::optional<at::Tensor>& residual, bool training, double momentum,
                                      double eps, bool relu) {
  check_fused_batch_norm_arguments(input, running_mean, running_var, weight, bias, eps);
  const bool has_running = running_mean.has_value() && running_mean->defined();
  if (training || !has_running)
    return batch_statistics_epilogue(input, running_mean, running_var, weight, bias, residual, training, momentum,
                                     eps, relu);
  // Eval: the running statistics folded into a per-channel scale and shift (differentiable in weight and bias).
  auto scale = at::rsqrt(*running_var + eps);
  if (weight.has_value() && weight->defined()) scale = scale * *weight;
  auto shift = -*running_mean * scale;
  if (bias.has_value() && bias->defined()) shift = shift + *bias;
  return affine_epilogue(input, scale, shift, residual, relu);
}

}  // namespace

at::Tensor fused_batch_norm(const at::Tensor& input, const std::optional<at::Tensor>& running_mean,
                            const std::optional<at::Tensor>& running_var, const std::optional<at::Tensor>& weight,
                            const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& residual,
                            bool training, double momentum, double eps, bool relu) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::fused_batch_norm", "")
                       .typed<decltype(fused_batch_norm)>();
  return op.call(input, running_mean, running_var, weight, bias, residual, training, momentum, eps, relu);
}

}  // namespace leanconv::ops

TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  m.def("batch_norm_epilogue(Tensor input, Tensor? weight, Tensor? bias, Tensor? residual, bool relu, float eps) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("batch_norm_epilogue_backward(Tensor grad_output, Tensor? grad_mean, Tensor? grad_invstd, Tensor? output, "
        "Tensor input, Tensor? weight, Tensor mean, Tensor invstd, bool relu, bool[4] output_mask) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("affine_epilogue(Tensor input, Tensor? scale, Tensor? shift, Tensor? residual, bool relu) -> Tensor");
  m.def("affine_epilogue_backward(Tensor grad_output, Tensor? output, Tensor input, Tensor? scale, bool relu, "
        "bool[4] output_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("fused_batch_norm(Tensor input, Tensor(a!)? running_mean, Tensor(b!)? running_var, Tensor? weight, "
        "Tensor? bias, Tensor? residual, bool training, float momentum, float eps, bool relu) -> Tensor");
}

TORCH_LIBRARY_IMPL(leanconv, CompositeImplicitAutograd, m) {
  m.impl("fused_batch_norm", &leanconv::ops::fused_batch_norm_composite);
}
