// The maths of the fused block epilogue (docs/shared.md), shared by the CPU and CUDA kernels.
//
// Forward, per channel c over its M = N*H*W values:
//   training:  mean = E[x], var = Var[x] (biased), invstd = 1/sqrt(var + eps), then the epilogue with
//              scale = weight*invstd and shift = bias - mean*scale;
//   eval/folded: the epilogue with the given scale and shift;
//   out = act(x*scale + shift + residual), act = identity or ReLU (common/conv_epilogue.h).
//
// Backward, with gm = grad_out masked by out > 0 when act is ReLU (PyTorch's threshold_backward):
//   grad_residual = gm, grad_bias = sum gm, grad_weight = invstd * sum gm*(x - mean),
//   grad_x = A*gm + B*x + C per channel, which folds BatchNorm's backward and the gradients that reach the
//   mean and invstd outputs themselves (so those outputs are differentiable too):
//     A = w*invstd
//     B = -(w*invstd^3 * sum gm*(x - mean) + grad_invstd*invstd^3) / M
//     C = (grad_mean - w*invstd * sum gm) / M - B*mean
//   In eval mode A = scale, B = C = 0, grad_scale = sum gm*x, grad_shift = sum gm.
//
// Statistics are sums of values shifted by one value of the channel, accumulated in double: the shift removes
// the cancellation of E[x^2] - E[x]^2 when |mean| >> std, the double the rounding of long sums.
#pragma once

#include <cmath>
#include <cstdint>

#include "channel_passes.h"
#include "macros.h"

namespace leanconv::common {

// var is an output too: the running variance is updated from it, not rebuilt from invstd, whose rounding would
// swamp a variance far below eps (1/invstd^2 - eps cancels).
struct BatchNormStatistics {
  double mean, var, invstd;

  // From the sums of d = x - shift and d^2 over `count` values; count 0 gives mean 0, var 0.
  LEANCONV_HOST_DEVICE static BatchNormStatistics from_shifted_sums(double count, double shift, ChannelSums s,
                                                                    double eps) {
    if (count <= 0) return {0.0, 0.0, 1.0 / ::sqrt(eps)};
    const double mean_shifted = s.first / count;
    double var = s.second / count - mean_shifted * mean_shifted;
    if (var < 0) var = 0;  // rounding
    return {shift + mean_shifted, var, 1.0 / ::sqrt(var + eps)};
  }
};

// The per-channel coefficients of grad_x = A*gm + B*x + C (see the file comment).
struct InputGradientCoefficients {
  double a, b, c;

  // sums.first = sum gm, sums.second = sum gm*(x - mean).
  LEANCONV_HOST_DEVICE static InputGradientCoefficients batch_norm(double count, double weight, double mean,
                                                                   double invstd, ChannelSums sums, double grad_mean,
                                                                   double grad_invstd) {
    if (count <= 0) return {0, 0, 0};
    const double invstd3 = invstd * invstd * invstd;
    const double b = -(weight * invstd3 * sums.second + grad_invstd * invstd3) / count;
    const double c = (grad_mean - weight * invstd * sums.first) / count - b * mean;
    return {weight * invstd, b, c};
  }
};


// What a kernel does with each channel's sums, the same on the CPU (a loop over channels) and on the GPU (one
// thread per channel). Optional pointers are null when absent.

// Training forward: the statistics from the stats sums, and the epilogue's scale and shift from them.
template <typename scalar_t, typename param_t, typename acc_t>
struct StatisticsToScaleShift {
  const scalar_t* x;
  ChannelLayout layout;
  double eps;
  const param_t* weight;
  const param_t* bias;
  acc_t* mean;
  acc_t* var;
  acc_t* invstd;
  acc_t* scale;
  acc_t* shift;

  LEANCONV_HOST_DEVICE void operator()(int64_t c, ChannelSums sums) const {
    const auto s = BatchNormStatistics::from_shifted_sums(double(layout.count()), channel_shift(x, layout, c), sums, eps);
    mean[c] = static_cast<acc_t>(s.mean);
    var[c] = static_cast<acc_t>(s.var);
    invstd[c] = static_cast<acc_t>(s.invstd);
    const double w = weight ? static_cast<double>(weight[c]) : 1.0, b = bias ? static_cast<double>(bias[c]) : 0.0;
    scale[c] = static_cast<acc_t>(w * s.invstd);
    shift[c] = static_cast<acc_t>(b - s.mean * w * s.invstd);
  }
};

// Training backward: from (sum gm, sum gm*(x - mean)) the parameter gradients and grad_x's coefficients.
template <typename param_t, typename acc_t>
struct BatchNormGradients {
  double count;
  const param_t* weight;
  const acc_t* mean;
  const acc_t* invstd;
  const acc_t* grad_mean;
  const acc_t* grad_invstd;
  param_t* grad_weight;
  param_t* grad_bias;
  acc_t* a;
  acc_t* b;
  acc_t* c0;

  LEANCONV_HOST_DEVICE void operator()(int64_t c, ChannelSums sums) const {
    const double w = weight ? static_cast<double>(weight[c]) : 1.0, is = static_cast<double>(invstd[c]);
    if (grad_weight) grad_weight[c] = static_cast<param_t>(is * sums.second);
    if (grad_bias) grad_bias[c] = static_cast<param_t>(sums.first);
    if (a == nullptr) return;
    const auto k = InputGradientCoefficients::batch_norm(
        count, w, static_cast<double>(mean[c]), is, sums, grad_mean ? static_cast<double>(grad_mean[c]) : 0.0,
        grad_invstd ? static_cast<double>(grad_invstd[c]) : 0.0);
    a[c] = static_cast<acc_t>(k.a);
    b[c] = static_cast<acc_t>(k.b);
    c0[c] = static_cast<acc_t>(k.c);
  }
};

// Eval backward: grad_scale = sum gm*x, grad_shift = sum gm.
template <typename param_t>
struct AffineGradients {
  param_t* grad_scale;
  param_t* grad_shift;

  LEANCONV_HOST_DEVICE void operator()(int64_t c, ChannelSums sums) const {
    if (grad_scale) grad_scale[c] = static_cast<param_t>(sums.second);
    if (grad_shift) grad_shift[c] = static_cast<param_t>(sums.first);
  }
};

}  // namespace leanconv::common
