#include "common/block_epilogue_operands.h"

#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>

namespace leanconv::common {
namespace {

using checks::defined_or_null;

at::Tensor contiguous_or_undefined(const at::Tensor* t, at::MemoryFormat format) {
  return t == nullptr ? at::Tensor() : t->contiguous(format);
}

// Outputs in the canonical strides of the memory format (what the fake kernels promise).
at::Tensor empty_feature_map(const checks::EpilogueInput& info, const at::Tensor& like) {
  return at::empty(like.sizes(), like.options().memory_format(info.memory_format));
}

at::Tensor vector_or_undefined(const at::Tensor* t) { return t == nullptr ? at::Tensor() : t->contiguous(); }

at::Tensor op_math_vector(const at::Tensor& input, int64_t channels) {
  return at::empty({channels}, input.options().dtype(at::toOpMathType(input.scalar_type())));
}

at::Tensor op_math_copy_or(const at::Tensor* t, const at::Tensor& input, int64_t channels, double fill) {
  const auto dtype = at::toOpMathType(input.scalar_type());
  if (t != nullptr) return t->to(dtype).contiguous();
  return fill == 0 ? at::zeros({channels}, input.options().dtype(dtype)) : at::ones({channels}, input.options().dtype(dtype));
}

void check_relu_output(const char* op, bool relu, const std::optional<at::Tensor>& output) {
  TORCH_CHECK(!relu || defined_or_null(output), "leanconv: ", op, " needs the forward output when relu is set");
}

}  // namespace

BatchNormEpilogueOperands prepare_batch_norm_epilogue(const at::Tensor& input, const std::optional<at::Tensor>& weight,
                                                      const std::optional<at::Tensor>& bias,
                                                      const std::optional<at::Tensor>& residual, double eps) {
  BatchNormEpilogueOperands o;
  o.info = checks::check_epilogue_operands("batch_norm_epilogue", input,
                                           {{"weight", defined_or_null(weight)}, {"bias", defined_or_null(bias)}},
                                           {{"residual", defined_or_null(residual)}});
  checks::check_epsilon(eps);
  const auto fmt = o.info.memory_format;
  const int64_t C = o.info.layout.channels;
  o.x = input.contiguous(fmt);
  o.residual = contiguous_or_undefined(defined_or_null(residual), fmt);
  o.weight = vector_or_undefined(defined_or_null(weight));
  o.bias = vector_or_undefined(defined_or_null(bias));
  o.out = empty_feature_map(o.info, o.x);
  o.mean = op_math_vector(input, C);
  o.var = op_math_vector(input, C);
  o.invstd = op_math_vector(input, C);
  o.scale = op_math_vector(input, C);
  o.shift = op_math_vector(input, C);
  return o;
}

BatchNormEpilogueBackwardOperands prepare_batch_norm_epilogue_backward(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& grad_mean,
    const std::optional<at::Tensor>& grad_invstd, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> mask) {
  constexpr const char* kOp = "batch_norm_epilogue_backward";
  check_relu_output(kOp, relu, output);
  BatchNormEpilogueBackwardOperands o;
  o.info = checks::check_epilogue_operands(
      kOp, input, {{"weight", defined_or_null(weight)}},
      {{"grad_output", &grad_output}, {"output", relu ? defined_or_null(output) : nullptr}});
  checks::check_statistic(kOp, input, mean, "mean");
  checks::check_statistic(kOp, input, invstd, "invstd");
  if (const auto* t = defined_or_null(grad_mean)) checks::check_statistic(kOp, input, *t, "grad_mean");
  if (const auto* t = defined_or_null(grad_invstd)) checks::check_statistic(kOp, input, *t, "grad_invstd");
  const auto fmt = o.info.memory_format;
  const int64_t C = o.info.layout.channels;
  o.x = input.contiguous(fmt);
  o.grad = grad_output.contiguous(fmt);
  o.output = relu ? output->contiguous(fmt) : at::Tensor();
  o.weight = vector_or_undefined(defined_or_null(weight));
  o.mean = mean.contiguous();
  o.invstd = invstd.contiguous();
  o.grad_mean = vector_or_undefined(defined_or_null(grad_mean));
  o.grad_invstd = vector_or_undefined(defined_or_null(grad_invstd));
  o.center = mean.to(at::kDouble).contiguous();
  const auto parameter_options = input.options().dtype(o.info.parameter_dtype);
  if (mask[0]) o.grad_input = empty_feature_map(o.info, o.x);
  if (mask[1]) o.grad_weight = at::empty({C}, parameter_options);
  if (mask[2]) o.grad_bias = at::empty({C}, parameter_options);
  if (mask[3]) o.grad_residual = empty_feature_map(o.info, o.x);
  o.a = op_math_vector(input, C);
  o.b = op_math_vector(input, C);
  o.c0 = op_math_vector(input, C);
  return o;
}

AffineEpilogueOperands prepare_affine_epilogue(const at::Tensor& input, const std::optional<at::Tensor>& scale,
                                               const std::optional<at::Tensor>& shift,
                                               const std::optional<at::Tensor>& residual) {
  AffineEpilogueOperands o;
  o.info = checks::check_epilogue_operands("affine_epilogue", input,
                                           {{"scale", defined_or_null(scale)}, {"shift", defined_or_null(shift)}},
                                           {{"residual", defined_or_null(residual)}});
  const auto fmt = o.info.memory_format;
  const int64_t C = o.info.layout.channels;
  o.x = input.contiguous(fmt);
  o.residual = contiguous_or_undefined(defined_or_null(residual), fmt);
  o.scale = op_math_copy_or(defined_or_null(scale), input, C, 1);
  o.shift = op_math_copy_or(defined_or_null(shift), input, C, 0);
  o.out = empty_feature_map(o.info, o.x);
  return o;
}

AffineEpilogueBackwardOperands prepare_affine_epilogue_backward(const at::Tensor& grad_output,
                                                                const std::optional<at::Tensor>& output,
                                                                const at::Tensor& input,
                                                                const std::optional<at::Tensor>& scale, bool relu,
                                                                std::array<bool, 4> mask) {
  constexpr const char* kOp = "affine_epilogue_backward";
  check_relu_output(kOp, relu, output);
  AffineEpilogueBackwardOperands o;
  o.info = checks::check_epilogue_operands(
      kOp, input, {{"scale", defined_or_null(scale)}},
      {{"grad_output", &grad_output}, {"output", relu ? defined_or_null(output) : nullptr}});
  const auto fmt = o.info.memory_format;
  const int64_t C = o.info.layout.channels;
  o.x = input.contiguous(fmt);
  o.grad = grad_output.contiguous(fmt);
  o.output = relu ? output->contiguous(fmt) : at::Tensor();
  o.scale = op_math_copy_or(defined_or_null(scale), input, C, 1);
  o.zeros = op_math_copy_or(nullptr, input, C, 0);
  const auto parameter_options = input.options().dtype(o.info.parameter_dtype);
  if (mask[0]) o.grad_input = empty_feature_map(o.info, o.x);
  if (mask[1]) o.grad_scale = at::empty({C}, parameter_options);
  if (mask[2]) o.grad_shift = at::empty({C}, parameter_options);
  if (mask[3]) o.grad_residual = empty_feature_map(o.info, o.x);
  return o;
}

}  // namespace leanconv::common
