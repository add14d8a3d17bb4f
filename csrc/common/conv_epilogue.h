// The fused epilogue of leanconv's conv kernels: what happens to an output value between the accumulator and
// memory, in one pass, on the CPU and on the GPU alike:
//
//   y[n, o, p, q] = act(acc * scale[o] + shift[o] + residual[n, o, p, q]),   act = identity or ReLU
//
// scale and shift are per output channel (a bias is a shift; a BatchNorm folded for inference is a scale and a
// shift), each optional, as is the residual (read through its strides, so any memory format). The eigen conv
// applies its bias through it; the block-epilogue ops (BatchNorm + residual + ReLU) compute their values with
// epilogue_value, and the multigrid correction is to be built on it.
#pragma once

#include <cstdint>

#include "conv_window.h"
#include "macros.h"

namespace leanconv::common {

// The epilogue's formula for one value: act(value*scale + shift + residual). Every kernel that ends in a
// per-channel epilogue computes its values through this (the conv kernels through Epilogue::apply, the
// block-epilogue passes of common/channel_passes.h directly).
template <typename acc_t>
LEANCONV_HOST_DEVICE acc_t epilogue_value(acc_t value, acc_t scale, acc_t shift, acc_t residual, bool relu) {
  value = value * scale + shift + residual;
  return relu && value < acc_t(0) ? acc_t(0) : value;
}

template <typename scalar_t, typename acc_t>
struct Epilogue {
  const acc_t* scale = nullptr;        // (C_out,) or none: 1
  const acc_t* shift = nullptr;        // (C_out,) or none: 0
  const scalar_t* residual = nullptr;  // (N, C_out, H, W) or none
  Strides4 residual_strides{};
  bool relu = false;

  LEANCONV_HOST_DEVICE acc_t apply(acc_t value, int64_t n, int64_t o, int64_t p, int64_t q) const {
    const acc_t r = residual == nullptr
                        ? acc_t(0)
                        : static_cast<acc_t>(residual[n * residual_strides.n + o * residual_strides.c +
                                                      p * residual_strides.h + q * residual_strides.w]);
    return epilogue_value(value, scale != nullptr ? scale[o] : acc_t(1), shift != nullptr ? shift[o] : acc_t(0), r,
                          relu);
  }

  // The same epilogue as a per-channel bias only.
  LEANCONV_HOST_DEVICE static Epilogue bias(const acc_t* b) {
    Epilogue e;
    e.shift = b;
    return e;
  }
};

}  // namespace leanconv::common
