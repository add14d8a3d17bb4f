// The fused epilogue of leanconv's kernels: what happens to an output value between the accumulator and memory,
// in one pass, on the CPU and on the GPU alike:
//
//   y[n, o, p, q] = act(acc * scale[o] + shift[o] + residual[n, o, p, q]),   act = identity or ReLU
//
// The block-epilogue ops (BatchNorm + residual + ReLU, on which the multigrid correction is built) take every
// term; the conv kernels (the eigen conv and the grouped conv) end in a bias only.
#pragma once

#include <cstdint>

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

// The conv kernels' epilogue: a per-channel bias, or none.
template <typename acc_t>
struct Epilogue {
  const acc_t* shift = nullptr;  // (C_out,) or none: 0

  LEANCONV_HOST_DEVICE acc_t apply(acc_t value, int64_t o) const {
    return epilogue_value(value, acc_t(1), shift != nullptr ? shift[o] : acc_t(0), acc_t(0), false);
  }

  LEANCONV_HOST_DEVICE static Epilogue bias(const acc_t* b) {
    Epilogue e;
    e.shift = b;
    return e;
  }
};

}  // namespace leanconv::common
