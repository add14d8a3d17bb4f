#include "composite/block_epilogue.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/gt.h>
#include <ATen/ops/mean.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros_like.h>

namespace leanconv::composite {
namespace {

at::Tensor per_channel(const at::Tensor& t) { return t.view({1, -1, 1, 1}); }

// The ReLU's backward mask (output > 0) applied to g; the mask carries no derivative.
at::Tensor masked(const at::Tensor& g, const at::Tensor& output, bool relu) {
  return relu ? g * at::gt(output.detach(), 0).to(g.scalar_type()) : g;
}

at::Tensor cast_like(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() && t.scalar_type() != like.scalar_type() ? t.to(like.scalar_type()) : t;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_backward_composite(
    const at::Tensor& grad_output, const at::Tensor& grad_mean, const at::Tensor& grad_invstd, const at::Tensor& output,
    const at::Tensor& input, const at::Tensor& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> mask) {
  const double count = double(input.size(0)) * double(input.size(2)) * double(input.size(3));
  const auto gm = masked(grad_output, output, relu);
  const auto centered = input - per_channel(mean);
  const auto sum_gm = gm.sum({0, 2, 3});
  const auto sum_gm_centered = (gm * centered).sum({0, 2, 3});
  at::Tensor grad_input, grad_weight, grad_bias, grad_residual;
  if (mask[0]) {
    const auto w_invstd = weight.defined() ? weight * invstd : invstd;
    auto b = w_invstd * invstd * invstd * sum_gm_centered;
    if (grad_invstd.defined()) b = b + grad_invstd * invstd * invstd * invstd;
    auto c = -w_invstd * sum_gm;
    if (grad_mean.defined()) c = c + grad_mean;
    grad_input = cast_like(per_channel(w_invstd) * gm - per_channel(b / count) * centered + per_channel(c / count),
                           input);
  }
  if (mask[1]) grad_weight = cast_like(invstd * sum_gm_centered, mean);
  if (mask[2]) grad_bias = cast_like(sum_gm, mean);
  if (mask[3]) grad_residual = gm;
  return {grad_input, grad_weight, grad_bias, grad_residual};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> affine_epilogue_backward_composite(
    const at::Tensor& grad_output, const at::Tensor& output, const at::Tensor& input, const at::Tensor& scale,
    bool relu, std::array<bool, 4> mask) {
  const auto gm = masked(grad_output, output, relu);
  at::Tensor grad_input, grad_scale, grad_shift, grad_residual;
  if (mask[0]) grad_input = scale.defined() ? cast_like(gm * per_channel(scale), input) : gm;
  if (mask[1]) grad_scale = (gm * input).sum({0, 2, 3});
  if (mask[2]) grad_shift = gm.sum({0, 2, 3});
  if (mask[3]) grad_residual = gm;
  return {grad_input, grad_scale, grad_shift, grad_residual};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_tangent(
    const at::Tensor& dx, const at::Tensor& dw, const at::Tensor& db, const at::Tensor& dr, const at::Tensor& output,
    const at::Tensor& input, const at::Tensor& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu) {
  const auto centered = input - per_channel(mean);
  const auto xhat = centered * per_channel(invstd);
  at::Tensor dmean = at::zeros_like(mean), dinvstd = at::zeros_like(invstd);
  at::Tensor dpre = at::zeros_like(output);
  if (dx.defined()) {
    // d mean = E[dx]; d invstd = -invstd^3 * E[(x - mean) dx] (E[x - mean] = 0); d xhat by the product rule.
    dmean = cast_like(dx.mean({0, 2, 3}), mean);
    dinvstd = cast_like(-invstd * invstd * invstd * (centered * dx).mean({0, 2, 3}), invstd);
    const auto dxhat = (dx - per_channel(dmean)) * per_channel(invstd) + centered * per_channel(dinvstd);
    dpre = dpre + (weight.defined() ? per_channel(weight) * dxhat : dxhat);
  }
  if (dw.defined()) dpre = dpre + per_channel(dw) * xhat;
  if (db.defined()) dpre = dpre + per_channel(db);
  if (dr.defined()) dpre = dpre + dr;
  return {cast_like(masked(dpre, output, relu), output), dmean, dinvstd};
}

at::Tensor affine_epilogue_tangent(const at::Tensor& dx, const at::Tensor& dscale, const at::Tensor& dshift,
                                   const at::Tensor& dr, const at::Tensor& output, const at::Tensor& input,
                                   const at::Tensor& scale, bool relu) {
  at::Tensor dpre = at::zeros_like(output);
  if (dx.defined()) dpre = dpre + (scale.defined() ? dx * per_channel(scale) : dx);
  if (dscale.defined()) dpre = dpre + input * per_channel(dscale);
  if (dshift.defined()) dpre = dpre + per_channel(dshift);
  if (dr.defined()) dpre = dpre + dr;
  return cast_like(masked(dpre, output, relu), output);
}

}  // namespace leanconv::composite
