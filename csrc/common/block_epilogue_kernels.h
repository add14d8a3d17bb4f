// The block-epilogue ops' kernels, written once over a backend that runs the passes: cpu/channel_passes.h
// (CpuPasses) or cuda/channel_passes.cuh (CudaPasses). A backend provides
//   reduce_statistics(x, layout, like, finish)   the stats pass, then finish(c, sums) for every channel
//   reduce_gradient(operands, layout, like, finish)
//   affine_pass(operands, layout)
//   DeviceGuard                                  constructed from the input's device for the whole op
// The operands come checked and prepared from common/block_epilogue_operands.h, the per-channel maths from
// common/block_epilogue.h.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <array>
#include <optional>
#include <tuple>

#include "common/block_epilogue.h"
#include "common/block_epilogue_operands.h"

namespace leanconv::common::block_epilogue_kernels {

template <typename T>
const T* data_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

template <typename T>
T* mutable_data_or_null(const at::Tensor& t) {
  return t.defined() ? t.mutable_data_ptr<T>() : nullptr;
}

// Calls body(param_t{}) with param_t the per-channel tensors' C++ type: scalar_t, or float beside a reduced input.
template <typename scalar_t, typename Body>
void with_parameter_type(at::ScalarType dtype, Body&& body) {
  if (dtype == c10::CppTypeToScalarType<scalar_t>::value) {
    body(scalar_t{});
  } else {
    body(float{});
  }
}

// A backward's gradient reduction: sums of gm = grad masked by output > 0 (when given) and of gm*(x - center),
// writing gm into `written` (the residual's gradient) when defined.
template <typename scalar_t>
common::ReductionOperands<scalar_t> gradient_reduction(const at::Tensor& grad, const at::Tensor& output,
                                                       const at::Tensor& x, const double* center,
                                                       const at::Tensor& written) {
  common::ReductionOperands<scalar_t> reduce;
  reduce.u = grad.const_data_ptr<scalar_t>();
  reduce.mask = data_or_null<scalar_t>(output);
  reduce.x = x.const_data_ptr<scalar_t>();
  reduce.center = center;
  reduce.written = mutable_data_or_null<scalar_t>(written);
  return reduce;
}

// grad_x = a*gm + b*x + c0 per channel (b null: no x term), gm recomputed from the reduction's grad and mask.
template <typename scalar_t, typename acc_t>
common::AffineOperands<scalar_t, acc_t> input_gradient(const common::ReductionOperands<scalar_t>& reduce,
                                                       const acc_t* a, const acc_t* b, const acc_t* c0,
                                                       const at::Tensor& grad_input) {
  common::AffineOperands<scalar_t, acc_t> op;
  op.u = reduce.u;
  op.mask = reduce.mask;
  op.a = a;
  op.b = b;
  op.x = b != nullptr ? reduce.x : nullptr;
  op.c0 = c0;
  op.y = grad_input.mutable_data_ptr<scalar_t>();
  return op;
}

template <typename Passes>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue(const at::Tensor& input,
                                                                  const std::optional<at::Tensor>& weight,
                                                                  const std::optional<at::Tensor>& bias,
                                                                  const std::optional<at::Tensor>& residual, bool relu,
                                                                  double eps) {
  auto o = prepare_batch_norm_epilogue(input, weight, bias, residual, eps);
  const typename Passes::DeviceGuard guard(input.device());  // after prepare_*'s same-device checks
  const auto& L = o.info.layout;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "batch_norm_epilogue", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_parameter_type<scalar_t>(o.info.parameter_dtype, [&](auto param) {
      using param_t = decltype(param);
      const scalar_t* x = o.x.const_data_ptr<scalar_t>();
      Passes::reduce_statistics(x, L, o.x,
                                common::StatisticsToScaleShift<scalar_t, param_t, acc_t>{
                                    x, L, eps, data_or_null<param_t>(o.weight), data_or_null<param_t>(o.bias),
                                    o.mean.mutable_data_ptr<acc_t>(), o.var.mutable_data_ptr<acc_t>(),
                                    o.invstd.mutable_data_ptr<acc_t>(),
                                    o.scale.mutable_data_ptr<acc_t>(), o.shift.mutable_data_ptr<acc_t>()});
      common::AffineOperands<scalar_t, acc_t> op;
      op.u = x;
      op.a = o.scale.const_data_ptr<acc_t>();
      op.c0 = o.shift.const_data_ptr<acc_t>();
      op.residual = data_or_null<scalar_t>(o.residual);
      op.relu = relu;
      op.y = o.out.mutable_data_ptr<scalar_t>();
      Passes::affine_pass(op, L);
    });
  });
  return {o.out, o.mean, o.invstd, o.var};
}

template <typename Passes>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_backward(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& grad_mean,
    const std::optional<at::Tensor>& grad_invstd, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> mask) {
  auto o = prepare_batch_norm_epilogue_backward(grad_output, grad_mean, grad_invstd, output, input, weight, mean,
                                                invstd, relu, mask);
  const typename Passes::DeviceGuard guard(input.device());
  const auto& L = o.info.layout;
  if (!(mask[0] || mask[1] || mask[2] || mask[3])) return {o.grad_input, o.grad_weight, o.grad_bias, o.grad_residual};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "batch_norm_epilogue_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_parameter_type<scalar_t>(o.info.parameter_dtype, [&](auto param) {
      using param_t = decltype(param);
      const auto reduce = gradient_reduction<scalar_t>(o.grad, o.output, o.x, o.center.const_data_ptr<double>(),
                                                       o.grad_residual);
      Passes::reduce_gradient(reduce, L, o.x,
                              common::BatchNormGradients<param_t, acc_t>{
                                  double(L.count()), data_or_null<param_t>(o.weight), o.mean.const_data_ptr<acc_t>(),
                                  o.invstd.const_data_ptr<acc_t>(), data_or_null<acc_t>(o.grad_mean),
                                  data_or_null<acc_t>(o.grad_invstd), mutable_data_or_null<param_t>(o.grad_weight),
                                  mutable_data_or_null<param_t>(o.grad_bias), o.a.mutable_data_ptr<acc_t>(),
                                  o.b.mutable_data_ptr<acc_t>(), o.c0.mutable_data_ptr<acc_t>()});
      if (!mask[0]) return;
      // grad_x = A*gm + B*x + C, gm recomputed from grad and output (one read more than reading the written gm
      // back; on the CPU no slower within this machine's noise, and it is the only way without a residual).
      Passes::affine_pass(input_gradient(reduce, o.a.const_data_ptr<acc_t>(), o.b.const_data_ptr<acc_t>(),
                                         o.c0.const_data_ptr<acc_t>(), o.grad_input),
                          L);
    });
  });
  return {o.grad_input, o.grad_weight, o.grad_bias, o.grad_residual};
}

template <typename Passes>
at::Tensor affine_epilogue(const at::Tensor& input, const std::optional<at::Tensor>& scale,
                           const std::optional<at::Tensor>& shift, const std::optional<at::Tensor>& residual,
                           bool relu) {
  auto o = prepare_affine_epilogue(input, scale, shift, residual);
  const typename Passes::DeviceGuard guard(input.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "affine_epilogue", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    common::AffineOperands<scalar_t, acc_t> op;
    op.u = o.x.const_data_ptr<scalar_t>();
    op.a = o.scale.const_data_ptr<acc_t>();
    op.c0 = o.shift.const_data_ptr<acc_t>();
    op.residual = data_or_null<scalar_t>(o.residual);
    op.relu = relu;
    op.y = o.out.mutable_data_ptr<scalar_t>();
    Passes::affine_pass(op, o.info.layout);
  });
  return o.out;
}

template <typename Passes>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> affine_epilogue_backward(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& scale, bool relu, std::array<bool, 4> mask) {
  auto o = prepare_affine_epilogue_backward(grad_output, output, input, scale, relu, mask);
  const typename Passes::DeviceGuard guard(input.device());
  const auto& L = o.info.layout;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "affine_epilogue_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_parameter_type<scalar_t>(o.info.parameter_dtype, [&](auto param) {
      using param_t = decltype(param);
      const auto reduce = gradient_reduction<scalar_t>(o.grad, o.output, o.x, nullptr, o.grad_residual);
      if (mask[1] || mask[2] || mask[3]) {
        Passes::reduce_gradient(reduce, L, o.x,
                                common::AffineGradients<param_t>{mutable_data_or_null<param_t>(o.grad_scale),
                                                                 mutable_data_or_null<param_t>(o.grad_shift)});
      }
      if (!mask[0]) return;
      Passes::affine_pass(input_gradient<scalar_t, acc_t>(reduce, o.scale.const_data_ptr<acc_t>(), nullptr,
                                                          o.zeros.const_data_ptr<acc_t>(), o.grad_input),
                          L);
    });
  });
  return {o.grad_input, o.grad_scale, o.grad_shift, o.grad_residual};
}

}  // namespace leanconv::common::block_epilogue_kernels
