// The buffers around the window micro-kernels (cpu/window_tiles.h): the tiles of a conv window cut into bands of
// output rows, the copies of an input channel's rows into its phased buffer and of a phased gradient back out, and
// the copies of output-gradient rows into a tile, of a tile's output rows out through the epilogue, and of a
// finished input gradient out to its tensor.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/conv_window.h"
#include "common/conv_epilogue.h"
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

// A window's output rows cut into bands of `rows` rows: every band is `full` but the last, which has the rows left.
struct BandTiles {
  int64_t rows, bands;
  WindowTile full, last;

  BandTiles(const common::ConvWindow& g, int64_t rows, int64_t filters)
      : rows(rows),
        bands((g.out_h + rows - 1) / rows),
        full(tile_of(g, rows, filters)),
        last(tile_of(g, g.out_h - (bands - 1) * rows, filters)) {}

  const WindowTile& of(int64_t band) const { return band + 1 < bands ? full : last; }
  int64_t first_row(int64_t band) const { return band * rows; }
};

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

// fill_phased for channels [0, channels) of x, their buffers t.phased_size() apart (a group's input channels).
template <typename scalar_t, typename acc_t>
void fill_phased_channels(const scalar_t* x, const common::Strides4& xs, int64_t channels,
                          const common::ConvWindow& g, const WindowTile& t, int64_t row0, acc_t* phased) {
  for (int64_t c = 0; c < channels; ++c) fill_phased(x, xs, c, g, t, row0, phased + c * t.phased_size());
}

// add_phased for channels [0, channels), their phased gradients t.phased_size() apart.
template <typename acc_t>
void add_phased_channels(const acc_t* grad_phased, int64_t channels, const common::ConvWindow& g,
                         const WindowTile& t, int64_t row0, acc_t* grad_x) {
  for (int64_t c = 0; c < channels; ++c) add_phased(grad_phased + c * t.phased_size(), c, g, t, row0, grad_x);
}

// Rows [row0, row0 + rows) of `channels` channels of one image (src at its first channel, s its strides), each
// `width` values, into a tile buffer in op-math type: channel c's row p at dst + c*channel_stride + p*row_length,
// zero from `width` to row_length (the padding columns the window kernels and GEMMs read).
template <typename scalar_t, typename acc_t>
void load_rows(const scalar_t* src, const common::Strides4& s, int64_t channels, int64_t row0, int64_t rows,
               int64_t width, acc_t* dst, int64_t channel_stride, int64_t row_length) {
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t p = 0; p < rows; ++p) {
      const scalar_t* in = src + c * s.c + (row0 + p) * s.h;
      acc_t* out = dst + c * channel_stride + p * row_length;
      for (int64_t q = 0; q < width; ++q) out[q] = static_cast<acc_t>(in[q * s.w]);
      std::fill(out + width, out + row_length, acc_t(0));
    }
  }
}

// The way back of load_rows, through the conv's epilogue (its bias): channel c's row p of a tile buffer
// (src + c*channel_stride + p*row_length, `width` values) to output channel first_channel + c, row row0 + p of one
// image (dst at the image, s its strides).
template <typename acc_t, typename scalar_t>
void store_rows(const acc_t* src, int64_t channel_stride, int64_t row_length, int64_t channels, int64_t rows,
                int64_t width, const common::Epilogue<acc_t>& epilogue, int64_t first_channel, int64_t row0,
                scalar_t* dst, const common::Strides4& s) {
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t o = first_channel + c;
    for (int64_t p = 0; p < rows; ++p) {
      const acc_t* in = src + c * channel_stride + p * row_length;
      scalar_t* out = dst + o * s.c + (row0 + p) * s.h;
      for (int64_t q = 0; q < width; ++q) out[q * s.w] = static_cast<scalar_t>(epilogue.apply(in[q], o));
    }
  }
}

// An input gradient accumulated as (channels, in_h, in_w) in op-math type (add_phased's layout), written to one
// image's channels of the gradient tensor (dst at its first channel, s its strides).
template <typename acc_t, typename scalar_t>
void store_channels(const acc_t* src, int64_t channels, const common::ConvWindow& g, scalar_t* dst,
                    const common::Strides4& s) {
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t h = 0; h < g.in_h; ++h) {
      const acc_t* in = src + (c * g.in_h + h) * g.in_w;
      scalar_t* out = dst + c * s.c + h * s.h;
      for (int64_t w = 0; w < g.in_w; ++w) out[w * s.w] = static_cast<scalar_t>(in[w]);
    }
  }
}

}  // namespace leanconv::cpu
