// The phased input buffers of the window micro-kernels (cpu/window_tiles.h): the tile of a conv window, and the
// copies of an input channel's rows into its phased buffer and of a phased gradient back out.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/conv_window.h"
#include "cpu/window_tiles.h"

namespace leanconv::cpu {

// An output row padded to whole vectors of kLanes columns.
inline int64_t padded_row_length(const common::ConvWindow& g) { return (g.out_w + kLanes - 1) / kLanes * kLanes; }

// The tile of `rows` output rows of window g, computing `filters` output channels.
inline WindowTile tile_of(const common::ConvWindow& g, int64_t rows, int64_t filters) {
  WindowTile t{};
  t.rows = rows;
  t.row_length = padded_row_length(g);
  t.in_rows = (rows - 1) * g.stride_h + (g.kernel_h - 1) * g.dil_h + 1;
  t.phase_width = t.row_length + ((g.kernel_w - 1) * g.dil_w) / g.stride_w;
  t.kernel_h = g.kernel_h;
  t.kernel_w = g.kernel_w;
  t.stride_h = g.stride_h;
  t.stride_w = g.stride_w;
  t.dil_h = g.dil_h;
  t.dil_w = g.dil_w;
  t.filters = filters;
  t.set_tap_offsets();
  return t;
}

// Elements of one channel's phased buffer for a tile of `rows` rows, estimated in double: a dilated kernel
// spanning far more than the image (valid when the padding is as large) would need more than exists, and the
// sizes themselves may overflow int64.
inline double phased_elements(const common::ConvWindow& g, int64_t rows) {
  const double in_rows = double(rows - 1) * g.stride_h + double(g.kernel_h - 1) * g.dil_h + 1;
  const double phase_width = double(padded_row_length(g)) + double(g.kernel_w - 1) * g.dil_w / g.stride_w;
  return double(g.stride_w) * in_rows * phase_width;
}

// The tile's input rows of channel c of one image (x points at the image, xs its strides), zero-padded, in
// op-math type, split by column phase. row0 is the tile's first output row.
template <typename scalar_t, typename acc_t>
void fill_phased(const scalar_t* x, const common::Strides4& xs, int64_t c, const common::ConvWindow& g,
                 const WindowTile& t, int64_t row0, acc_t* phased) {
  const int64_t h0 = row0 * g.stride_h - g.pad_h;
  for (int64_t f = 0; f < g.stride_w; ++f) {
    for (int64_t hr = 0; hr < t.in_rows; ++hr) {
      acc_t* dst = phased + f * t.phase_plane() + hr * t.phase_width;
      const int64_t h = h0 + hr;
      if (h < 0 || h >= g.in_h) {
        std::fill(dst, dst + t.phase_width, acc_t(0));
        continue;
      }
      const scalar_t* src = x + c * xs.c + h * xs.h;
      for (int64_t u = 0; u < t.phase_width; ++u) {
        const int64_t w = u * g.stride_w + f - g.pad_w;
        dst[u] = (w >= 0 && w < g.in_w) ? static_cast<acc_t>(src[w * xs.w]) : acc_t(0);
      }
    }
  }
}

// The adjoint of fill_phased: adds a phased gradient into channel c of a gradient laid out (C, in_h, in_w).
template <typename acc_t>
void add_phased(const acc_t* grad_phased, int64_t c, const common::ConvWindow& g, const WindowTile& t, int64_t row0,
                acc_t* grad_x) {
  const int64_t h0 = row0 * g.stride_h - g.pad_h;
  for (int64_t f = 0; f < g.stride_w; ++f) {
    for (int64_t hr = 0; hr < t.in_rows; ++hr) {
      const int64_t h = h0 + hr;
      if (h < 0 || h >= g.in_h) continue;
      const acc_t* src = grad_phased + f * t.phase_plane() + hr * t.phase_width;
      acc_t* dst = grad_x + (c * g.in_h + h) * g.in_w;
      for (int64_t u = 0; u < t.phase_width; ++u) {
        const int64_t w = u * g.stride_w + f - g.pad_w;
        if (w >= 0 && w < g.in_w) dst[w] += src[u];
      }
    }
  }
}

}  // namespace leanconv::cpu
