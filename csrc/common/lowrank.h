// Geometry of the low-rank (DeCEF) eigen-filter convolution, shared by the CPU and CUDA kernels.
//
// y[n, o, p, q] = bias[o] + sum_{c, r} A[o, c*R + r] * z[n, c*R + r, p, q]
// z[n, c*R + r, p, q] = sum_{i, j} E[c, r, i, j] * x[n, c, p*sh - ph + i*dh, q*sw - pw + j*dw]
//
// z is the depthwise stage's output (C_in*R channels); the kernels compute it tile by tile and never keep it.
#pragma once

#include <cstdint>

#include "conv_window.h"
#include "macros.h"

namespace leanconv::common {

struct EigenConv : ConvWindow {
  int64_t batch, in_channels, rank, out_channels;

  LEANCONV_HOST_DEVICE int64_t mid_channels() const { return in_channels * rank; }
};

}  // namespace leanconv::common
