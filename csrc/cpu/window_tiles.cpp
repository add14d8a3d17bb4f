// The window micro-kernels (see window_tiles.h). Filters go in groups of kFilterGroup: a group's accumulators
// (kFilterGroup x kLanes) stay in registers while the channels and taps stream through, so each input vector is
// loaded once per group. Built for AVX2 and for the baseline, picked at load time.
#include "cpu/window_tiles.h"
#include "cpu/vectorize.h"

#include <algorithm>

namespace leanconv::cpu {
namespace {

constexpr int64_t kGroup = kFilterGroup;

template <typename T>
__attribute__((always_inline)) inline void forward_body(const WindowTile& t, const T* phased, int64_t channels,
                                                        const T* weight, T* z, int64_t z_stride) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t f0 = 0; f0 < t.filters; f0 += kGroup) {
    const int64_t group = std::min(kGroup, t.filters - f0);
    const T* e = weight + f0 * filter_size;
    for (int64_t p = 0; p < t.rows; ++p) {
      for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
        T acc[kGroup][kLanes] = {};
        for (int64_t c = 0; c < channels; ++c) {
          const T* row = phased + c * plane + p * t.stride_h * t.phase_width + q0;
          const T* ec = e + c * taps;
          for (int64_t tap = 0; tap < taps; ++tap) {
            const T* src = row + offsets[tap];
            for (int64_t g = 0; g < kGroup; ++g) {
              const T w = ec[g * filter_size + tap];
              for (int64_t l = 0; l < kLanes; ++l) acc[g][l] += w * src[l];
            }
          }
        }
        for (int64_t g = 0; g < group; ++g) {
          T* dst = z + (f0 + g) * z_stride + p * t.row_length + q0;
          for (int64_t l = 0; l < kLanes; ++l) dst[l] = acc[g][l];
        }
      }
    }
  }
}

template <typename T>
__attribute__((always_inline)) inline void weight_grad_body(const WindowTile& t, const T* phased, int64_t channels,
                                                            const T* gz, int64_t z_stride, T* grad_weight) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t f0 = 0; f0 < t.filters; f0 += kGroup) {
    const int64_t group = std::min(kGroup, t.filters - f0);
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t tap = 0; tap < taps; ++tap) {
        T acc[kGroup][kLanes] = {};
        for (int64_t p = 0; p < t.rows; ++p) {
          const T* src = phased + c * plane + p * t.stride_h * t.phase_width + offsets[tap];
          for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
            for (int64_t g = 0; g < kGroup; ++g) {
              // Rows past the filter count read row f0 instead: a valid row whose sum is dropped below.
              const T* grad = gz + (g < group ? f0 + g : f0) * z_stride + p * t.row_length + q0;
              for (int64_t l = 0; l < kLanes; ++l) acc[g][l] += grad[l] * src[q0 + l];
            }
          }
        }
        for (int64_t g = 0; g < group; ++g) {
          T sum = 0;
          for (int64_t l = 0; l < kLanes; ++l) sum += acc[g][l];
          grad_weight[(f0 + g) * filter_size + c * taps + tap] += sum;
        }
      }
    }
  }
}

template <typename T>
__attribute__((always_inline)) inline void input_grad_body(const WindowTile& t, const T* gz, int64_t z_stride,
                                                           int64_t channels, const T* weight, T* grad_phased) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t f0 = 0; f0 < t.filters; f0 += kGroup) {
    const int64_t group = std::min(kGroup, t.filters - f0);
    const T* e = weight + f0 * filter_size;  // zero rows past the filter count
    for (int64_t p = 0; p < t.rows; ++p) {
      for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
        T grad[kGroup][kLanes];
        for (int64_t g = 0; g < kGroup; ++g) {
          // Rows past the filter count are zero (not 0 * a neighbour's value, which is NaN for an infinite one).
          const T* src = gz + (g < group ? f0 + g : f0) * z_stride + p * t.row_length + q0;
          for (int64_t l = 0; l < kLanes; ++l) grad[g][l] = g < group ? src[l] : T(0);
        }
        for (int64_t c = 0; c < channels; ++c) {
          T* row = grad_phased + c * plane + p * t.stride_h * t.phase_width + q0;
          const T* ec = e + c * taps;
          for (int64_t tap = 0; tap < taps; ++tap) {
            T* dst = row + offsets[tap];
            T sum[kLanes] = {};
            for (int64_t g = 0; g < kGroup; ++g) {
              const T w = ec[g * filter_size + tap];
              for (int64_t l = 0; l < kLanes; ++l) sum[l] += w * grad[g][l];
            }
            for (int64_t l = 0; l < kLanes; ++l) dst[l] += sum[l];
          }
        }
      }
    }
  }
}

}  // namespace

LEANCONV_CPU_CLONES void window_forward(const WindowTile& t, const float* phased, int64_t channels,
                                        const float* weight, float* z, int64_t z_stride) {
  forward_body(t, phased, channels, weight, z, z_stride);
}
LEANCONV_CPU_CLONES void window_forward(const WindowTile& t, const double* phased, int64_t channels,
                                        const double* weight, double* z, int64_t z_stride) {
  forward_body(t, phased, channels, weight, z, z_stride);
}
LEANCONV_CPU_CLONES void window_weight_grad(const WindowTile& t, const float* phased, int64_t channels,
                                            const float* gz, int64_t z_stride, float* grad_weight) {
  weight_grad_body(t, phased, channels, gz, z_stride, grad_weight);
}
LEANCONV_CPU_CLONES void window_weight_grad(const WindowTile& t, const double* phased, int64_t channels,
                                            const double* gz, int64_t z_stride, double* grad_weight) {
  weight_grad_body(t, phased, channels, gz, z_stride, grad_weight);
}
LEANCONV_CPU_CLONES void window_input_grad(const WindowTile& t, const float* gz, int64_t z_stride, int64_t channels,
                                           const float* weight, float* grad_phased) {
  input_grad_body(t, gz, z_stride, channels, weight, grad_phased);
}
LEANCONV_CPU_CLONES void window_input_grad(const WindowTile& t, const double* gz, int64_t z_stride, int64_t channels,
                                           const double* weight, double* grad_phased) {
  input_grad_body(t, gz, z_stride, channels, weight, grad_phased);
}

}  // namespace leanconv::cpu
