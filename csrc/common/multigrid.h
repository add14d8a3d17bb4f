// Geometry of the small-group grouped convolution (the multigrid family's building block), shared by the CPU and
// CUDA kernels.
//
// y[n, o, p, q] = bias[o] + sum_{c < C_in/G, i, j} W[o, c, i, j] * x[n, (o / (C_out/G))*(C_in/G) + c,
//                                                                    p*sh - ph + i*dh, q*sw - pw + j*dw]
//
// G groups; output channel o reads the input channels of its group only.
#pragma once

#include <cstdint>

#include "conv_window.h"
#include "macros.h"

namespace leanconv::common {

struct GroupedConv : ConvWindow {
  int64_t batch, in_channels, out_channels, groups;

  LEANCONV_HOST_DEVICE int64_t group_in() const { return in_channels / groups; }    // input channels per group
  LEANCONV_HOST_DEVICE int64_t group_out() const { return out_channels / groups; }  // output channels per group
  LEANCONV_HOST_DEVICE int64_t filter_size() const { return group_in() * taps(); }  // one filter's weights
};

}  // namespace leanconv::common
