// The two kinds of pass over a feature map that per-channel epilogues are made of, as the CPU and CUDA kernels
// both run them (cpu/channel_passes.h, cuda/channel_passes.cuh):
//
//   a reduction pass: per channel, ChannelSums of
//       stats:     d = x - shift[c]          -> (sum d, sum d^2)
//       gradient:  u = mask(grad, out) [*]   -> (sum u, sum u*(x - center[c])), optionally writing u
//   an affine pass:  y = act(a[c]*u + b[c]*x + c0[c] + residual), u = x or mask(grad, out)
//
// [*] mask(grad, out) = grad where out > 0 else 0, the ReLU's backward; identity without a ReLU.
//
// A feature map is (N, C, H, W) contiguous in NCHW or in channels_last (NHWC); the kernels make their operands
// contiguous in the input's suggested memory format, so both layouts run without a transposing copy.
#pragma once

#include <cstdint>
#include <type_traits>

#include "conv_epilogue.h"
#include "macros.h"

namespace leanconv::common {

// Per-channel sums of a reduction pass: first = sum of d or u, second = sum of d^2 or u*(x - center).
struct ChannelSums {
  double first = 0, second = 0;
};

struct ChannelLayout {
  int64_t batch = 0, channels = 0, spatial = 0;  // N, C, H*W
  bool channels_last = false;

  LEANCONV_HOST_DEVICE int64_t count() const { return batch * spatial; }  // values per channel
  LEANCONV_HOST_DEVICE int64_t numel() const { return batch * channels * spatial; }
  // Offset of value m (of count()) of channel c: m = n*spatial + s.
  LEANCONV_HOST_DEVICE int64_t offset(int64_t c, int64_t m) const {
    return channels_last ? m * channels + c : (m / spatial) * channels * spatial + c * spatial + m % spatial;
  }
  // The channel of the value at a linear offset.
  LEANCONV_HOST_DEVICE int64_t channel_of(int64_t offset) const {
    return channels_last ? offset % channels : (offset / spatial) % channels;
  }
};

// The operands of a reduction pass. In stats mode `u` is x and `shift_source` gives each channel's shift
// (its first value); in gradient mode `u` is the gradient, `mask` the ReLU output or null, `x` and `center`
// (null: 0) give the second sum, and `written` (or null) receives the masked gradient.
template <typename scalar_t>
struct ReductionOperands {
  const scalar_t* u = nullptr;
  const scalar_t* mask = nullptr;
  const scalar_t* x = nullptr;
  const double* center = nullptr;
  scalar_t* written = nullptr;
};

// The operands of an affine pass: y = act(a[c]*u' + b[c]*x + c0[c] + residual) with u' = u masked by `mask`
// when given; a and c0 are required, b, x, residual and mask optional.
template <typename scalar_t, typename acc_t>
struct AffineOperands {
  const scalar_t* u = nullptr;
  const scalar_t* mask = nullptr;
  const acc_t* a = nullptr;
  const acc_t* b = nullptr;
  const scalar_t* x = nullptr;
  const acc_t* c0 = nullptr;
  const scalar_t* residual = nullptr;
  bool relu = false;
  scalar_t* y = nullptr;
};

// The shift of channel c in stats mode: its first value (0 for an empty channel), read the same way by the
// reduction and by the statistics that use its sums.
template <typename scalar_t>
LEANCONV_HOST_DEVICE double channel_shift(const scalar_t* x, const ChannelLayout& layout, int64_t c) {
  return layout.count() > 0 ? static_cast<double>(x[layout.offset(c, 0)]) : 0.0;
}


// The terms of one value of a reduction pass from its loaded operands (mask and x are ignored where the mode reads
// none): adds them to (first, second) and returns the gradient after the mask (what a gradient pass writes).
// `base` is the channel's shift (stats) or center (gradient).
template <bool kStats, bool kMask, typename scalar_t>
LEANCONV_HOST_DEVICE double accumulate_terms(scalar_t u_value, scalar_t mask_value, scalar_t x_value, double base,
                                             double& first, double& second) {
  if constexpr (kStats) {
    const double d = static_cast<double>(u_value) - base;
    first += d;
    second += d * d;
    return d;
  } else {
    double u = static_cast<double>(u_value);
    if constexpr (kMask) u = static_cast<double>(mask_value) > 0 ? u : 0.0;
    first += u;
    second += u * (static_cast<double>(x_value) - base);
    return u;
  }
}

// One value of a reduction pass, read at offset i: adds its terms to (first, second), writing the masked gradient
// when asked. The CPU and CUDA passes differ only in how they walk the values.
template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
LEANCONV_HOST_DEVICE void accumulate_value(const ReductionOperands<scalar_t>& op, int64_t i, double base,
                                           double& first, double& second) {
  scalar_t mask{}, x{};
  if constexpr (kMask) mask = op.mask[i];
  if constexpr (!kStats) x = op.x[i];
  const double u = accumulate_terms<kStats, kMask>(op.u[i], mask, x, base, first, second);
  if constexpr (kWrite) op.written[i] = static_cast<scalar_t>(u);
}

// The channel's base of a reduction pass: its shift in stats mode, else its center (0 without one).
template <bool kStats, typename scalar_t>
LEANCONV_HOST_DEVICE double reduction_base(const ReductionOperands<scalar_t>& op, const ChannelLayout& layout,
                                           int64_t c) {
  if constexpr (kStats) {
    return channel_shift(op.u, layout, c);
  } else {
    return op.center != nullptr ? op.center[c] : 0.0;
  }
}

// One value of an affine pass from its loaded operands and the channel's coefficients (mask, x and residual are
// ignored where absent).
template <bool kMask, bool kX, bool kResidual, bool kRelu, typename scalar_t, typename acc_t>
LEANCONV_HOST_DEVICE scalar_t affine_result(scalar_t u_value, scalar_t mask_value, scalar_t x_value,
                                            scalar_t residual_value, acc_t a, acc_t b, acc_t c0) {
  acc_t u = static_cast<acc_t>(u_value);
  if constexpr (kMask) u = static_cast<acc_t>(mask_value) > acc_t(0) ? u : acc_t(0);
  acc_t extra = kResidual ? static_cast<acc_t>(residual_value) : acc_t(0);
  if constexpr (kX) extra += b * static_cast<acc_t>(x_value);
  return static_cast<scalar_t>(epilogue_value(u, a, c0, extra, kRelu));
}

// One value of an affine pass at offset i, with the channel's coefficients.
template <bool kMask, bool kX, bool kResidual, bool kRelu, typename scalar_t, typename acc_t>
LEANCONV_HOST_DEVICE void affine_value(const AffineOperands<scalar_t, acc_t>& op, int64_t i, acc_t a, acc_t b,
                                       acc_t c0) {
  scalar_t mask{}, x{}, residual{};
  if constexpr (kMask) mask = op.mask[i];
  if constexpr (kX) x = op.x[i];
  if constexpr (kResidual) residual = op.residual[i];
  op.y[i] = affine_result<kMask, kX, kResidual, kRelu>(op.u[i], mask, x, residual, a, b, c0);
}

// Calls body(mask, x, residual, relu) with each flag as std::integral_constant<bool, ...>, so a pass compiles
// one loop per combination, without branches in its body.
template <typename Body>
void with_affine_flags(bool mask, bool x, bool residual, bool relu, Body&& body) {
  using T = std::true_type;
  using F = std::false_type;
  const auto r = [&](auto m, auto xx, auto res) { relu ? body(m, xx, res, T{}) : body(m, xx, res, F{}); };
  const auto q = [&](auto m, auto xx) { residual ? r(m, xx, T{}) : r(m, xx, F{}); };
  const auto p = [&](auto m) { x ? q(m, T{}) : q(m, F{}); };
  mask ? p(T{}) : p(F{});
}

template <typename Body>
void with_reduction_flags(bool mask, bool write, Body&& body) {
  using T = std::true_type;
  using F = std::false_type;
  if (mask) {
    write ? body(T{}, T{}) : body(T{}, F{});
  } else {
    write ? body(F{}, T{}) : body(F{}, F{});
  }
}

}  // namespace leanconv::common
