// The window micro-kernels (see window_tiles.h). Filters go in groups of G = kFilterGroup: a group's
// accumulators (G x kLanes) stay in registers while the channels and taps stream through, so each input vector is
// loaded once per group. The weight gradient takes 4 filters and up to 3 taps of a kernel row at a time (12
// accumulators), so each loaded input vector serves 3 taps and each gradient vector 3 taps too. Built for AVX2 and
// for the baseline, picked at load time.
#include "cpu/window_tiles.h"
#include "cpu/vectorize.h"

#include <algorithm>

namespace leanconv::cpu {
namespace {

template <int64_t G, typename T>
__attribute__((always_inline)) inline void forward_body(const WindowTile& t, const T* phased, int64_t channels,
                                                        const T* weight, T* z, int64_t z_stride) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t f0 = 0; f0 < t.filters; f0 += G) {
    const int64_t group = std::min(G, t.filters - f0);
    const T* e = weight + f0 * filter_size;
    for (int64_t p = 0; p < t.rows; ++p) {
      for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
        T acc[G][kLanes] = {};
        for (int64_t c = 0; c < channels; ++c) {
          const T* row = phased + c * plane + p * t.stride_h * t.phase_width + q0;
          const T* ec = e + c * taps;
          for (int64_t tap = 0; tap < taps; ++tap) {
            const T* src = row + offsets[tap];
            for (int64_t g = 0; g < G; ++g) {
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

constexpr int64_t kGradFilters = kFilterGroup, kGradTaps = 3;

template <typename T>
__attribute__((always_inline)) inline void weight_grad_body(const WindowTile& t, const T* phased, int64_t channels,
                                                            const T* gz, int64_t z_stride, T* grad_weight) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t f0 = 0; f0 < t.filters; f0 += kGradFilters) {
    const int64_t group = std::min(kGradFilters, t.filters - f0);
    // Rows past the filter count read row f0 instead: a valid row whose sums are dropped below.
    const T* grad_rows[kGradFilters];
    for (int64_t g = 0; g < kGradFilters; ++g) grad_rows[g] = gz + (g < group ? f0 + g : f0) * z_stride;
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t tap0 = 0; tap0 < taps; tap0 += kGradTaps) {
        const int64_t block = std::min(kGradTaps, taps - tap0);
        // Offsets of the block's taps; a block shorter than kGradTaps repeats its first tap (sums dropped).
        int64_t offset[kGradTaps];
        for (int64_t j = 0; j < kGradTaps; ++j) offset[j] = offsets[tap0 + (j < block ? j : 0)];
        T acc[kGradFilters][kGradTaps][kLanes] = {};
        for (int64_t p = 0; p < t.rows; ++p) {
          const T* row = phased + c * plane + p * t.stride_h * t.phase_width;
          for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
            T src[kGradTaps][kLanes];
            for (int64_t j = 0; j < kGradTaps; ++j)
              for (int64_t l = 0; l < kLanes; ++l) src[j][l] = row[offset[j] + q0 + l];
            for (int64_t g = 0; g < kGradFilters; ++g) {
              const T* grad = grad_rows[g] + p * t.row_length + q0;
              for (int64_t j = 0; j < kGradTaps; ++j)
                for (int64_t l = 0; l < kLanes; ++l) acc[g][j][l] += grad[l] * src[j][l];
            }
          }
        }
        for (int64_t g = 0; g < group; ++g)
          for (int64_t j = 0; j < block; ++j) {
            T sum = 0;
            for (int64_t l = 0; l < kLanes; ++l) sum += acc[g][j][l];
            grad_weight[(f0 + g) * filter_size + c * taps + tap0 + j] += sum;
          }
      }
    }
  }
}

template <int64_t G, typename T>
__attribute__((always_inline)) inline void input_grad_body(const WindowTile& t, const T* gz, int64_t z_stride,
                                                           int64_t channels, const T* weight, T* grad_phased) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t f0 = 0; f0 < t.filters; f0 += G) {
    const int64_t group = std::min(G, t.filters - f0);
    const T* e = weight + f0 * filter_size;  // zero rows past the filter count
    for (int64_t p = 0; p < t.rows; ++p) {
      for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
        T grad[G][kLanes];
        for (int64_t g = 0; g < G; ++g) {
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
            for (int64_t g = 0; g < G; ++g) {
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
  forward_body<kFilterGroup>(t, phased, channels, weight, z, z_stride);
}
LEANCONV_CPU_CLONES void window_forward(const WindowTile& t, const double* phased, int64_t channels,
                                        const double* weight, double* z, int64_t z_stride) {
  forward_body<kFilterGroup>(t, phased, channels, weight, z, z_stride);
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
  input_grad_body<kFilterGroup>(t, gz, z_stride, channels, weight, grad_phased);
}
LEANCONV_CPU_CLONES void window_input_grad(const WindowTile& t, const double* gz, int64_t z_stride, int64_t channels,
                                           const double* weight, double* grad_phased) {
  input_grad_body<kFilterGroup>(t, gz, z_stride, channels, weight, grad_phased);
}

}  // namespace leanconv::cpu
