// Index maths of the overlapping-segment (FSNet) family, shared by the CPU and CUDA kernels.
//
// A layer's filters are windows of one learned vector f of length L = C_out * s:
//   weight[o, c, i, j] = f[(o*s + (i*kw + j)*C_in + c) mod L]
// (tap-major, channel-innermost). When s divides C_in, filter o's channel vector at tap t is the circular
// segment g_m = f[m*s : m*s + C_in] with m = (o + t*C_in/s) mod C_out, so the layer is a 1x1 conv against
// the C_out segments followed by a shifted sum over the taps (see shifted_sum_* below).
#pragma once

#include <cstdint>

#include "conv_window.h"
#include "macros.h"

namespace leanconv::common {

struct SummaryLayout {
  int64_t out_channels;
  int64_t in_channels;
  int64_t kernel_h;
  int64_t kernel_w;
  int64_t summary_stride;  // s
  int64_t length;  // L = out_channels * s

  LEANCONV_HOST_DEVICE int64_t filter_length() const { return in_channels * kernel_h * kernel_w; }

  // The summary index of weight[o, c, i, j].
  LEANCONV_HOST_DEVICE int64_t index(int64_t o, int64_t c, int64_t i, int64_t j) const {
    return (o * summary_stride + (i * kernel_w + j) * in_channels + c) % length;
  }

  // Overlap-add of a weight gradient into summary entry l, in a fixed order: every unwrapped position
  // u = l, l + L, ... below (C_out - 1)*s + K, and for each the filters o whose window [o*s, o*s + K) holds it,
  // from the last such filter back to the first (so the element e = u - o*s grows by s each step, and its
  // tap and channel follow without a division).
  template <typename acc_t, typename scalar_t>
  LEANCONV_HOST_DEVICE acc_t overlap_add(const scalar_t* grad_weight, int64_t l) const {
    const int64_t K = filter_length();
    const int64_t taps = kernel_h * kernel_w;
    const int64_t last = (out_channels - 1) * summary_stride + K;  // one past the largest unwrapped position
    const int64_t stride_taps = summary_stride / in_channels, stride_channels = summary_stride % in_channels;
    acc_t sum = 0;
    for (int64_t u = l; u < last; u += length) {
      const int64_t o_first = u - K + 1 <= 0 ? 0 : (u - K + summary_stride) / summary_stride;  // ceil((u - K + 1) / s)
      int64_t o = u / summary_stride;
      if (o > out_channels - 1) o = out_channels - 1;
      if (o < o_first) continue;
      const int64_t e = u - o * summary_stride;
      int64_t t = e / in_channels, c = e - t * in_channels;
      for (; o >= o_first; --o) {
        sum += static_cast<acc_t>(grad_weight[(o * in_channels + c) * taps + t]);
        t += stride_taps;
        c += stride_channels;
        if (c >= in_channels) {
          c -= in_channels;
          ++t;
        }
      }
    }
    return sum;
  }

  // The share of part p of `parts` in overlap_add: for each unwrapped position u, the filters that hold it counted
  // down from the last, taking every parts-th from the p-th (e advances by parts*s, its tap and channel follow
  // without a division). Summing the parts of 0..parts-1 covers every term once; parts = 1 is overlap_add's order.
  template <typename acc_t, typename scalar_t>
  LEANCONV_HOST_DEVICE acc_t overlap_add_part(const scalar_t* grad_weight, int64_t l, int64_t part,
                                              int64_t parts) const {
    const int64_t K = filter_length();
    const int64_t taps = kernel_h * kernel_w;
    const int64_t last = (out_channels - 1) * summary_stride + K;
    const int64_t jump = parts * summary_stride, jump_taps = jump / in_channels, jump_channels = jump % in_channels;
    acc_t sum = 0;
    for (int64_t u = l; u < last; u += length) {
      const int64_t o_first = u - K + 1 <= 0 ? 0 : (u - K + summary_stride) / summary_stride;
      int64_t o = u / summary_stride;
      if (o > out_channels - 1) o = out_channels - 1;
      o -= part;
      if (o < o_first) continue;
      const int64_t e = u - o * summary_stride;
      int64_t t = e / in_channels, c = e - t * in_channels;
      for (; o >= o_first; o -= parts) {
        sum += static_cast<acc_t>(grad_weight[(o * in_channels + c) * taps + t]);
        t += jump_taps;
        c += jump_channels;
        if (c >= in_channels) {
          c -= in_channels;
          ++t;
        }
      }
    }
    return sum;
  }
};

// The shifted sum of the direct path: y[n, o, p, q] = sum over taps (i, j) of
// z[n, (o + (i*kw + j)*step) mod M, p*sh - ph + i*dh, q*sw - pw + j*dw] (zero outside z), M = z's channels.
struct ShiftedSum : ConvWindow {
  int64_t channels;  // M = C_out
  int64_t step;      // C_in / s, the segment shift from one tap to the next

  LEANCONV_HOST_DEVICE int64_t source_channel(int64_t o, int64_t t) const { return (o + t * step) % channels; }

  // The adjoint: the output channel that reads z channel m at tap t.
  LEANCONV_HOST_DEVICE int64_t reader_channel(int64_t m, int64_t t) const {
    const int64_t shift = (t * step) % channels;
    return (m - shift + channels) % channels;
  }
};

}  // namespace leanconv::common
