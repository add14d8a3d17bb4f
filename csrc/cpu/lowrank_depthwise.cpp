// The depthwise micro-kernels (see lowrank_depthwise.h). Bases go in groups of kGroup: a group's accumulators
// (kGroup x kLanes) stay in registers while the taps stream through, so each input vector is loaded once
// per group. Built for AVX2 and for the baseline, picked at load time.
#include "cpu/lowrank_depthwise.h"
#include "cpu/vectorize.h"

#include <algorithm>

namespace leanconv::cpu {
namespace {

constexpr int64_t kGroup = 4;

template <typename T>
__attribute__((always_inline)) inline void forward_body(const DepthwiseTile& t, const T* phased, const T* basis, T* z,
                                                        int64_t z_stride) {
  const int64_t taps = t.kernel_h * t.kernel_w;
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t r0 = 0; r0 < t.rank; r0 += kGroup) {
    const int64_t group = std::min(kGroup, t.rank - r0);
    const T* e = basis + r0 * taps;
    for (int64_t p = 0; p < t.rows; ++p) {
      for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
        T acc[kGroup][kLanes] = {};
        const T* row = phased + p * t.stride_h * t.phase_width + q0;
        for (int64_t tap = 0; tap < taps; ++tap) {
          const T* src = row + offsets[tap];
          for (int64_t g = 0; g < kGroup; ++g) {
            const T w = e[g * taps + tap];
            for (int64_t l = 0; l < kLanes; ++l) acc[g][l] += w * src[l];
          }
        }
        for (int64_t g = 0; g < group; ++g) {
          T* dst = z + (r0 + g) * z_stride + p * t.row_length + q0;
          for (int64_t l = 0; l < kLanes; ++l) dst[l] = acc[g][l];
        }
      }
    }
  }
}

template <typename T>
__attribute__((always_inline)) inline void basis_grad_body(const DepthwiseTile& t, const T* phased, const T* gz,
                                                           int64_t z_stride, T* grad_basis) {
  const int64_t taps = t.kernel_h * t.kernel_w;
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t r0 = 0; r0 < t.rank; r0 += kGroup) {
    const int64_t group = std::min(kGroup, t.rank - r0);
    for (int64_t tap = 0; tap < taps; ++tap) {
      {
        T acc[kGroup][kLanes] = {};
        for (int64_t p = 0; p < t.rows; ++p) {
          const T* src = phased + p * t.stride_h * t.phase_width + offsets[tap];
          for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
            for (int64_t g = 0; g < kGroup; ++g) {
              // Rows past the rank read row r0 instead: a valid row whose sum is dropped below.
              const T* grad = gz + (g < group ? r0 + g : r0) * z_stride + p * t.row_length + q0;
              for (int64_t l = 0; l < kLanes; ++l) acc[g][l] += grad[l] * src[q0 + l];
            }
          }
        }
        for (int64_t g = 0; g < group; ++g) {
          T sum = 0;
          for (int64_t l = 0; l < kLanes; ++l) sum += acc[g][l];
          grad_basis[(r0 + g) * taps + tap] += sum;
        }
      }
    }
  }
}

template <typename T>
__attribute__((always_inline)) inline void input_grad_body(const DepthwiseTile& t, const T* gz, int64_t z_stride,
                                                           const T* basis, T* grad_phased) {
  const int64_t taps = t.kernel_h * t.kernel_w;
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t r0 = 0; r0 < t.rank; r0 += kGroup) {
    const int64_t group = std::min(kGroup, t.rank - r0);
    const T* e = basis + r0 * taps;  // zero rows past the rank
    for (int64_t p = 0; p < t.rows; ++p) {
      for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
        T grad[kGroup][kLanes];
        for (int64_t g = 0; g < kGroup; ++g) {
          // Rows past the rank are zero (not 0 * a neighbour's value, which is NaN for an infinite one).
          const T* src = gz + (g < group ? r0 + g : r0) * z_stride + p * t.row_length + q0;
          for (int64_t l = 0; l < kLanes; ++l) grad[g][l] = g < group ? src[l] : T(0);
        }
        T* row = grad_phased + p * t.stride_h * t.phase_width + q0;
        for (int64_t tap = 0; tap < taps; ++tap) {
          T* dst = row + offsets[tap];
          T sum[kLanes] = {};
          for (int64_t g = 0; g < kGroup; ++g) {
            const T w = e[g * taps + tap];
            for (int64_t l = 0; l < kLanes; ++l) sum[l] += w * grad[g][l];
          }
          for (int64_t l = 0; l < kLanes; ++l) dst[l] += sum[l];
        }
      }
    }
  }
}

}  // namespace

LEANCONV_CPU_CLONES void depthwise_forward(const DepthwiseTile& t, const float* phased, const float* basis, float* z,
                                           int64_t z_stride) {
  forward_body(t, phased, basis, z, z_stride);
}
LEANCONV_CPU_CLONES void depthwise_forward(const DepthwiseTile& t, const double* phased, const double* basis,
                                           double* z, int64_t z_stride) {
  forward_body(t, phased, basis, z, z_stride);
}
LEANCONV_CPU_CLONES void depthwise_basis_grad(const DepthwiseTile& t, const float* phased, const float* gz,
                                              int64_t z_stride, float* grad_basis) {
  basis_grad_body(t, phased, gz, z_stride, grad_basis);
}
LEANCONV_CPU_CLONES void depthwise_basis_grad(const DepthwiseTile& t, const double* phased, const double* gz,
                                              int64_t z_stride, double* grad_basis) {
  basis_grad_body(t, phased, gz, z_stride, grad_basis);
}
LEANCONV_CPU_CLONES void depthwise_input_grad(const DepthwiseTile& t, const float* gz, int64_t z_stride,
                                              const float* basis, float* grad_phased) {
  input_grad_body(t, gz, z_stride, basis, grad_phased);
}
LEANCONV_CPU_CLONES void depthwise_input_grad(const DepthwiseTile& t, const double* gz, int64_t z_stride,
                                              const double* basis, double* grad_phased) {
  input_grad_body(t, gz, z_stride, basis, grad_phased);
}

}  // namespace leanconv::cpu
