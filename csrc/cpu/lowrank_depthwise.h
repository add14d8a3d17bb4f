// Vectorised depthwise micro-kernels of the eigen-filter conv, on one input channel and one tile of output rows.
//
// The input rows under the tile are first copied into a "phased" buffer: zero-padded, converted to the op-math
// type, and split by column phase, phased[f][h][u] = x[h0 + h][u*stride_w + f - pad_w]. Output column q of tap
// column j then reads phased[(j*dil_w) % stride_w][.][q + (j*dil_w) / stride_w]: contiguous for every stride and
// dilation, and never out of bounds, so the loops run over whole groups of kLanes columns with no tests.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/vectorize.h"

namespace leanconv::cpu {

// Output columns per vector step: kLanes (cpu/vectorize.h); tile rows are padded to a multiple of it.

struct DepthwiseTile {
  int64_t rows;         // output rows in the tile
  int64_t row_length;   // padded output row: ceil(out_w / kLanes) * kLanes
  int64_t in_rows;      // input rows under the tile: (rows - 1)*stride_h + (kernel_h - 1)*dil_h + 1
  int64_t phase_width;  // row length of one phase: row_length + ((kernel_w - 1)*dil_w) / stride_w
  int64_t kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w, rank;
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

  int64_t phase_plane() const { return in_rows * phase_width; }
  int64_t phased_size() const { return stride_w * phase_plane(); }
  int64_t pixels() const { return rows * row_length; }  // columns of the tile's z matrix
};

// z[r*z_stride + p*row_length + q] = sum_{i,j} basis[r*taps + i*kw + j] * (input under tap (i, j) of (p, q)),
// for the channel's R bases. basis holds ceil(R/4)*4 rows, the extra ones zero.
void depthwise_forward(const DepthwiseTile& t, const float* phased, const float* basis, float* z, int64_t z_stride);
void depthwise_forward(const DepthwiseTile& t, const double* phased, const double* basis, double* z,
                       int64_t z_stride);

// grad_basis[r*taps + tap] += sum_{p,q} gz[r*z_stride + p*row_length + q] * (input under tap of (p, q)).
// gz must be zero in the padding columns q >= out_w.
void depthwise_basis_grad(const DepthwiseTile& t, const float* phased, const float* gz, int64_t z_stride,
                          float* grad_basis);
void depthwise_basis_grad(const DepthwiseTile& t, const double* phased, const double* gz, int64_t z_stride,
                          double* grad_basis);

// grad_phased (phased layout, zeroed by the caller) += the adjoint of depthwise_forward applied to gz.
void depthwise_input_grad(const DepthwiseTile& t, const float* gz, int64_t z_stride, const float* basis,
                          float* grad_phased);
void depthwise_input_grad(const DepthwiseTile& t, const double* gz, int64_t z_stride, const double* basis,
                          double* grad_phased);

}  // namespace leanconv::cpu
