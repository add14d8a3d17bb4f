// CPU kernels of the block-epilogue ops: a stats pass and an affine pass forward, a gradient-reduction pass and
// an affine pass backward (the passes are in cpu/channel_passes.h, the per-channel maths in
// common/batch_norm_epilogue.h, the operands' checks and preparation in ops/epilogue_operands.h).
// Deterministic whatever the thread count.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <vector>

#include "common/batch_norm_epilogue.h"
#include "cpu/channel_passes.h"
#include "ops/epilogue_operands.h"

namespace leanconv::cpu {
namespace {

using common::ChannelSums;

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

template <typename Finish>
void finish_channels(const Finish& finish, const std::vector<ChannelSums>& sums) {
  for (int64_t c = 0; c < int64_t(sums.size()); ++c) finish(c, sums[c]);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_kernel(const at::Tensor& input,
                                                                         const std::optional<at::Tensor>& weight,
                                                                         const std::optional<at::Tensor>& bias,
                                                                         const std::optional<at::Tensor>& residual,
                                                                         bool relu, double eps) {
  auto o = ops::prepare_batch_norm_epilogue(input, weight, bias, residual, eps);
  const auto& L = o.info.layout;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "batch_norm_epilogue_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_parameter_type<scalar_t>(o.info.parameter_dtype, [&](auto param) {
      using param_t = decltype(param);
      const scalar_t* x = o.x.const_data_ptr<scalar_t>();
      std::vector<ChannelSums> sums(L.channels);
      reduce_statistics(x, L, sums.data());
      finish_channels(common::StatisticsToScaleShift<scalar_t, param_t, acc_t>{
                          x, L, eps, data_or_null<param_t>(o.weight), data_or_null<param_t>(o.bias),
                          o.mean.mutable_data_ptr<acc_t>(), o.invstd.mutable_data_ptr<acc_t>(),
                          o.scale.mutable_data_ptr<acc_t>(), o.shift.mutable_data_ptr<acc_t>()},
                      sums);
      common::AffineOperands<scalar_t, acc_t> op;
      op.u = x;
      op.a = o.scale.const_data_ptr<acc_t>();
      op.c0 = o.shift.const_data_ptr<acc_t>();
      op.residual = data_or_null<scalar_t>(o.residual);
      op.relu = relu;
      op.y = o.out.mutable_data_ptr<scalar_t>();
      affine_pass(op, L);
    });
  });
  return {o.out, o.mean, o.invstd};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_backward_kernel(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& grad_mean,
    const std::optional<at::Tensor>& grad_invstd, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> mask) {
  auto o = ops::prepare_batch_norm_epilogue_backward(grad_output, grad_mean, grad_invstd, output, input, weight, mean,
                                                     invstd, relu, mask);
  const auto& L = o.info.layout;
  if (!(mask[0] || mask[1] || mask[2] || mask[3])) return {o.grad_input, o.grad_weight, o.grad_bias, o.grad_residual};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "batch_norm_epilogue_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_parameter_type<scalar_t>(o.info.parameter_dtype, [&](auto param) {
      using param_t = decltype(param);
      common::ReductionOperands<scalar_t> reduce;
      reduce.u = o.grad.const_data_ptr<scalar_t>();
      reduce.mask = data_or_null<scalar_t>(o.output);
      reduce.x = o.x.const_data_ptr<scalar_t>();
      reduce.center = o.center.const_data_ptr<double>();
      reduce.written = mutable_data_or_null<scalar_t>(o.grad_residual);
      std::vector<ChannelSums> sums(L.channels);
      reduce_gradient(reduce, L, sums.data());
      finish_channels(common::BatchNormGradients<param_t, acc_t>{
                          double(L.count()), data_or_null<param_t>(o.weight), o.mean.const_data_ptr<acc_t>(),
                          o.invstd.const_data_ptr<acc_t>(), data_or_null<acc_t>(o.grad_mean),
                          data_or_null<acc_t>(o.grad_invstd), mutable_data_or_null<param_t>(o.grad_weight),
                          mutable_data_or_null<param_t>(o.grad_bias), o.a.mutable_data_ptr<acc_t>(),
                          o.b.mutable_data_ptr<acc_t>(), o.c0.mutable_data_ptr<acc_t>()},
                      sums);
      if (!mask[0]) return;
      // grad_x = A*gm + B*x + C, reading gm back where it was written (one tensor instead of grad and output).
      common::AffineOperands<scalar_t, acc_t> op;
      op.u = reduce.u;
      op.mask = reduce.mask;
      op.a = o.a.const_data_ptr<acc_t>();
      op.b = o.b.const_data_ptr<acc_t>();
      op.x = reduce.x;
      op.c0 = o.c0.const_data_ptr<acc_t>();
      op.y = o.grad_input.mutable_data_ptr<scalar_t>();
      affine_pass(op, L);
    });
  });
  return {o.grad_input, o.grad_weight, o.grad_bias, o.grad_residual};
}

at::Tensor affine_epilogue_kernel(const at::Tensor& input, const std::optional<at::Tensor>& scale,
                                  const std::optional<at::Tensor>& shift, const std::optional<at::Tensor>& residual,
                                  bool relu) {
  auto o = ops::prepare_affine_epilogue(input, scale, shift, residual);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "affine_epilogue_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    common::AffineOperands<scalar_t, acc_t> op;
    op.u = o.x.const_data_ptr<scalar_t>();
    op.a = o.scale.const_data_ptr<acc_t>();
    op.c0 = o.shift.const_data_ptr<acc_t>();
    op.residual = data_or_null<scalar_t>(o.residual);
    op.relu = relu;
    op.y = o.out.mutable_data_ptr<scalar_t>();
    affine_pass(op, o.info.layout);
  });
  return o.out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> affine_epilogue_backward_kernel(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& scale, bool relu, std::array<bool, 4> mask) {
  auto o = ops::prepare_affine_epilogue_backward(grad_output, output, input, scale, relu, mask);
  const auto& L = o.info.layout;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.x.scalar_type(), "affine_epilogue_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_parameter_type<scalar_t>(o.info.parameter_dtype, [&](auto param) {
      using param_t = decltype(param);
      common::ReductionOperands<scalar_t> reduce;
      reduce.u = o.grad.const_data_ptr<scalar_t>();
      reduce.mask = data_or_null<scalar_t>(o.output);
      reduce.x = o.x.const_data_ptr<scalar_t>();
      reduce.written = mutable_data_or_null<scalar_t>(o.grad_residual);
      if (mask[1] || mask[2] || mask[3]) {
        std::vector<ChannelSums> sums(L.channels);
        reduce_gradient(reduce, L, sums.data());
        finish_channels(common::AffineGradients<param_t>{mutable_data_or_null<param_t>(o.grad_scale),
                                                         mutable_data_or_null<param_t>(o.grad_shift)},
                        sums);
      }
      if (!mask[0]) return;
      common::AffineOperands<scalar_t, acc_t> op;
      op.u = o.grad_residual.defined() ? o.grad_residual.const_data_ptr<scalar_t>() : reduce.u;
      op.mask = o.grad_residual.defined() ? nullptr : reduce.mask;
      op.a = o.scale.const_data_ptr<acc_t>();
      op.c0 = o.zeros.const_data_ptr<acc_t>();
      op.y = o.grad_input.mutable_data_ptr<scalar_t>();
      affine_pass(op, L);
    });
  });
  return {o.grad_input, o.grad_scale, o.grad_shift, o.grad_residual};
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("batch_norm_epilogue", &batch_norm_epilogue_kernel);
  m.impl("batch_norm_epilogue_backward", &batch_norm_epilogue_backward_kernel);
  m.impl("affine_epilogue", &affine_epilogue_kernel);
  m.impl("affine_epilogue_backward", &affine_epilogue_backward_kernel);
}

}  // namespace leanconv::cpu
