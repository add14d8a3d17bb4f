// The geometry of a 2-D convolution window and the in-image part of a tap, shared by every direct
// (non-GEMM) conv kernel.
#pragma once

#include <cstdint>

#include "macros.h"

namespace leanconv::common {

// Kernel size, stride, padding and dilation of a 2-D window sliding over an in_h x in_w input, and the
// out_h x out_w positions it takes. Each family's geometry extends it with its channel layout.
struct ConvWindow {
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int64_t in_h, in_w, out_h, out_w;

  LEANCONV_HOST_DEVICE int64_t taps() const { return kernel_h * kernel_w; }
  LEANCONV_HOST_DEVICE int64_t out_pixels() const { return out_h * out_w; }
};

// Calls tap(i, j, h, w) for each tap (i, j) of output pixel (p, q) that reads inside the image, (h, w) being the
// input pixel it reads, in tap order: the window walk of the direct one-pixel-a-thread kernels.
template <typename Tap>
LEANCONV_HOST_DEVICE void for_each_tap_inside(const ConvWindow& g, int64_t p, int64_t q, const Tap& tap) {
  for (int64_t i = 0; i < g.kernel_h; ++i) {
    const int64_t h = p * g.stride_h - g.pad_h + i * g.dil_h;
    if (h < 0 || h >= g.in_h) continue;
    for (int64_t j = 0; j < g.kernel_w; ++j) {
      const int64_t w = q * g.stride_w - g.pad_w + j * g.dil_w;
      if (w < 0 || w >= g.in_w) continue;
      tap(i, j, h, w);
    }
  }
}

// Element strides of a 4-D (N, C, H, W) tensor in any memory format: kernels that index through them read and
// write channels_last tensors without copies.
struct Strides4 {
  int64_t n, c, h, w;
};

// The output range [first, last) of one axis whose input coordinate first*stride + offset .. lies in [0, in):
// the taps of a row or column that fall inside the image, so the inner loops need no bounds test.
LEANCONV_HOST_DEVICE void valid_output_range(int64_t offset, int64_t stride, int64_t in, int64_t out,
                                                    int64_t& first, int64_t& last) {
  // first: smallest q with q*stride + offset >= 0; last: one past the largest with q*stride + offset < in.
  // (ceil(-offset / stride) without adding stride - 1 first: with a stride near 2^63 that sum wraps.)
  first = offset >= 0 ? 0 : -offset / stride + (-offset % stride != 0);
  last = in - offset <= 0 ? 0 : (in - offset - 1) / stride + 1;
  if (last > out) last = out;
  if (last < first) last = first;
}

}  // namespace leanconv::common
