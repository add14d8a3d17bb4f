// Vectorised micro-kernels of the direct (non-GEMM) conv kernels, on one tile of output rows of one image: the
// eigen conv's depthwise stage (one input channel per filter) and the grouped conv (a group's input channels per
// filter) are the same loops, the depthwise one with a single input channel.
//
// The input rows under the tile are first copied into a "phased" buffer per input channel: zero-padded, converted
// to the op-math type, and split by column phase, phased[f][h][u] = x[h0 + h][u*stride_w + f - pad_w]. Output
// column q of tap column j then reads phased[(j*dil_w) % stride_w][.][q + (j*dil_w) / stride_w]: contiguous for
// every stride and dilation, and never out of bounds, so the loops run over whole groups of kLanes columns with no
// tests. cpu/phased_rows.h fills and empties these buffers.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/vectorize.h"

namespace leanconv::cpu {

// Filters are computed kFilterGroup at a time (their accumulators stay in registers while the taps stream
// through): the filter rows of a weight are padded with zero rows to a multiple of it. (8 at a time was measured
// 2x slower: GCC then keeps the accumulators in memory.)
constexpr int64_t kFilterGroup = 4;

inline int64_t padded_filters(int64_t filters) { return (filters + kFilterGroup - 1) / kFilterGroup * kFilterGroup; }

// Output columns per vector step: kLanes (cpu/vectorize.h); tile rows are padded to a multiple of it.
struct WindowTile {
  int64_t rows;         // output rows in the tile
  int64_t row_length;   // padded output row: ceil(out_w / kLanes) * kLanes
  int64_t in_rows;      // input rows under the tile: (rows - 1)*stride_h + (kernel_h - 1)*dil_h + 1
  int64_t phase_width;  // row length of one phase: row_length + ((kernel_w - 1)*dil_w) / stride_w
  int64_t kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w;
  int64_t filters;      // output channels computed from the tile's input channels
  // Offset in the phased buffer of tap (i, j) of output (0, 0), index i*kernel_w + j: set by set_tap_offsets.
  std::vector<int64_t> tap_offset;

  void set_tap_offsets() {
    tap_offset.resize(kernel_h * kernel_w);
    for (int64_t i = 0; i < kernel_h; ++i)
      for (int64_t j = 0; j < kernel_w; ++j) {
        const int64_t shift = j * dil_w;
        tap_offset[i * kernel_w + j] = (shift % stride_w) * phase_plane() + i * dil_h * phase_width + shift / stride_w;
      }
  }

  int64_t taps() const { return kernel_h * kernel_w; }
  int64_t phase_plane() const { return in_rows * phase_width; }
  int64_t phased_size() const { return stride_w * phase_plane(); }  // one input channel's buffer
  int64_t pixels() const { return rows * row_length; }             // columns of the tile's z matrix
};

// The operands of one call: `channels` input channels whose phased buffers lie phased_size() apart, and a weight
// of padded_filters(t.filters) rows of channels*taps values each (filter f, channel c, tap: f*channels*taps +
// c*taps + tap, the layout of a conv weight (C_out, C_in/groups, kh, kw)), the rows past t.filters zero.
//
// z[f*z_stride + p*row_length + q] = sum_{c, tap} weight[f, c, tap] * (channel c under tap of (p, q)).
void window_forward(const WindowTile& t, const float* phased, int64_t channels, const float* weight, float* z,
                    int64_t z_stride);
void window_forward(const WindowTile& t, const double* phased, int64_t channels, const double* weight, double* z,
                    int64_t z_stride);

// grad_weight[f, c, tap] += sum_{p,q} gz[f*z_stride + p*row_length + q] * (channel c under tap of (p, q)).
// gz must be zero in the padding columns q >= out_w.
void window_weight_grad(const WindowTile& t, const float* phased, int64_t channels, const float* gz, int64_t z_stride,
                        float* grad_weight);
void window_weight_grad(const WindowTile& t, const double* phased, int64_t channels, const double* gz,
                        int64_t z_stride, double* grad_weight);

// grad_phased (the channels' phased buffers, zeroed by the caller) += the adjoint of window_forward applied to gz.
void window_input_grad(const WindowTile& t, const float* gz, int64_t z_stride, int64_t channels, const float* weight,
                       float* grad_phased);
void window_input_grad(const WindowTile& t, const double* gz, int64_t z_stride, int64_t channels,
                       const double* weight, double* grad_phased);

}  // namespace leanconv::cpu
