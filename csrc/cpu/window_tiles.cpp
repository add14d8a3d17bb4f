// The window micro-kernels (see window_tiles.h). Filters go in groups of G = kFilterGroup: a group's
// accumulators (G x kLanes) stay in registers while the channels and taps stream through, so each input vector is
// loaded once per group. The weight gradient takes 4 filters and up to 3 taps of a kernel row at a time (12
// accumulators), so each loaded input vector serves 3 taps and each gradient vector 3 taps too. Built for AVX2 and
// for the baseline, picked at load time.
#include "cpu/window_tiles.h"
#include "cpu/vectorize.h"

#include <algorithm>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define LEANCONV_HAVE_AVX2_KERNELS 1
#endif

namespace leanconv::cpu {
namespace {

// acc[g][l] += the taps of one channel's phased row at lanes `row` .. row + kLanes, weighted by filter g's taps of
// that channel (`ec`, filters filter_size apart).
template <int64_t G, typename T>
__attribute__((always_inline)) inline void accumulate_channel_taps(const T* row, const T* ec, int64_t taps,
                                                                   int64_t filter_size, const int64_t* offsets,
                                                                   T (&acc)[G][kLanes]) {
  for (int64_t tap = 0; tap < taps; ++tap) {
    const T* src = row + offsets[tap];
    for (int64_t g = 0; g < G; ++g) {
      const T w = ec[g * filter_size + tap];
      for (int64_t l = 0; l < kLanes; ++l) acc[g][l] += w * src[l];
    }
  }
}

template <int64_t G, typename T>
__attribute__((always_inline)) inline void forward_body(const WindowTile& t, const T* phased, int64_t channels,
                                                        const T* weight, T* z, int64_t z_stride) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  for (int64_t f0 = 0; f0 < t.filters; f0 += G) {
    const int64_t group = std::min(G, t.filters - f0);
    const T* e = weight + f0 * filter_size;
    for (int64_t p = 0; p < t.rows; ++p)
      for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
        T acc[G][kLanes] = {};
        for (int64_t c = 0; c < channels; ++c)
          accumulate_channel_taps<G>(phased + c * plane + p * t.stride_h * t.phase_width + q0, e + c * taps, taps,
                                     filter_size, t.tap_offset.data(), acc);
        for (int64_t g = 0; g < group; ++g) {
          T* dst = z + (f0 + g) * z_stride + p * t.row_length + q0;
          for (int64_t l = 0; l < kLanes; ++l) dst[l] = acc[g][l];
        }
      }
  }
}

#ifdef LEANCONV_HAVE_AVX2_KERNELS
// The float forward with AVX2 intrinsics: 4 filters x 2 vectors of 8 columns, 8 independent accumulator chains
// in registers (forward_body's arrays give the compiler 4 chains, which the FMA latency bounds at half speed).
// Named accumulators, not an array: GCC keeps an array of __m256 on the stack and pays a store and a reload per
// FMA (measured: half speed).
template <int Vectors>
__attribute__((target("avx2,fma"), always_inline)) inline void forward_step_avx2(
    const WindowTile& t, const float* row0, int64_t channels, const float* e, int64_t filter_size, int64_t plane,
    int64_t group, float* z, int64_t z_stride) {
  static_assert(Vectors == 1 || Vectors == 2, "one or two vectors of 8 columns");
  const int64_t taps = t.taps();
  const int64_t* offsets = t.tap_offset.data();
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const float *e0 = e, *e1 = e + filter_size, *e2 = e + 2 * filter_size, *e3 = e + 3 * filter_size;
  for (int64_t c = 0; c < channels; ++c) {
    const float* row = row0 + c * plane;
    for (int64_t tap = 0; tap < taps; ++tap) {
      const float* src = row + offsets[tap];
      const __m256 x = _mm256_loadu_ps(src);
      const __m256 w0 = _mm256_broadcast_ss(e0 + tap), w1 = _mm256_broadcast_ss(e1 + tap);
      const __m256 w2 = _mm256_broadcast_ss(e2 + tap), w3 = _mm256_broadcast_ss(e3 + tap);
      a0 = _mm256_fmadd_ps(w0, x, a0);
      a1 = _mm256_fmadd_ps(w1, x, a1);
      a2 = _mm256_fmadd_ps(w2, x, a2);
      a3 = _mm256_fmadd_ps(w3, x, a3);
      if constexpr (Vectors == 2) {
        const __m256 y = _mm256_loadu_ps(src + 8);
        b0 = _mm256_fmadd_ps(w0, y, b0);
        b1 = _mm256_fmadd_ps(w1, y, b1);
        b2 = _mm256_fmadd_ps(w2, y, b2);
        b3 = _mm256_fmadd_ps(w3, y, b3);
      }
    }
    e0 += taps;
    e1 += taps;
    e2 += taps;
    e3 += taps;
  }
  const __m256 first[4] = {a0, a1, a2, a3}, second[4] = {b0, b1, b2, b3};
  for (int64_t g = 0; g < group; ++g) {
    _mm256_storeu_ps(z + g * z_stride, first[g]);
    if constexpr (Vectors == 2) _mm256_storeu_ps(z + g * z_stride + 8, second[g]);
  }
}

__attribute__((target("avx2,fma"))) void forward_avx2(const WindowTile& t, const float* phased, int64_t channels,
                                                       const float* weight, float* z, int64_t z_stride) {
  static_assert(kLanes == 8 && kFilterGroup == 4, "one AVX2 vector per kLanes columns, four filters");
  const int64_t filter_size = channels * t.taps(), plane = t.phased_size();
  for (int64_t f0 = 0; f0 < t.filters; f0 += kFilterGroup) {
    const int64_t group = std::min(kFilterGroup, t.filters - f0);
    const float* e = weight + f0 * filter_size;
    for (int64_t p = 0; p < t.rows; ++p) {
      const float* row = phased + p * t.stride_h * t.phase_width;
      float* out = z + f0 * z_stride + p * t.row_length;
      int64_t q0 = 0;
      for (; q0 + 16 <= t.row_length; q0 += 16)
        forward_step_avx2<2>(t, row + q0, channels, e, filter_size, plane, group, out + q0, z_stride);
      for (; q0 < t.row_length; q0 += 8)
        forward_step_avx2<1>(t, row + q0, channels, e, filter_size, plane, group, out + q0, z_stride);
    }
  }
}

__attribute__((target("avx2,fma"))) inline float horizontal_sum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

// One block of the AVX2 weight gradient: filters g[0..3] (their output gradients) x the taps at phased offsets
// o[0..2] of one channel's phased rows, summed over the tile's pixels into 12 named accumulators (see
// forward_step_avx2 for why not an array); the first `group` x `block` sums are added to grad_weight, filter f's
// tap j at f * filter_size + j.
__attribute__((target("avx2,fma"), always_inline)) inline void weight_grad_block_avx2(
    const WindowTile& t, const float* channel_rows, const float* const (&g)[4], const int64_t (&o)[3], int64_t group,
    int64_t block, int64_t filter_size, float* grad_weight) {
  __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00, s10 = s00, s11 = s00, s12 = s00;
  __m256 s20 = s00, s21 = s00, s22 = s00, s30 = s00, s31 = s00, s32 = s00;
  for (int64_t p = 0; p < t.rows; ++p) {
    const float* row = channel_rows + p * t.stride_h * t.phase_width;
    const int64_t r = p * t.row_length;
    for (int64_t q0 = 0; q0 < t.row_length; q0 += 8) {
      const __m256 x0 = _mm256_loadu_ps(row + o[0] + q0), x1 = _mm256_loadu_ps(row + o[1] + q0);
      const __m256 x2 = _mm256_loadu_ps(row + o[2] + q0);
      const __m256 d0 = _mm256_loadu_ps(g[0] + r + q0), d1 = _mm256_loadu_ps(g[1] + r + q0);
      const __m256 d2 = _mm256_loadu_ps(g[2] + r + q0), d3 = _mm256_loadu_ps(g[3] + r + q0);
      s00 = _mm256_fmadd_ps(d0, x0, s00);
      s01 = _mm256_fmadd_ps(d0, x1, s01);
      s02 = _mm256_fmadd_ps(d0, x2, s02);
      s10 = _mm256_fmadd_ps(d1, x0, s10);
      s11 = _mm256_fmadd_ps(d1, x1, s11);
      s12 = _mm256_fmadd_ps(d1, x2, s12);
      s20 = _mm256_fmadd_ps(d2, x0, s20);
      s21 = _mm256_fmadd_ps(d2, x1, s21);
      s22 = _mm256_fmadd_ps(d2, x2, s22);
      s30 = _mm256_fmadd_ps(d3, x0, s30);
      s31 = _mm256_fmadd_ps(d3, x1, s31);
      s32 = _mm256_fmadd_ps(d3, x2, s32);
    }
  }
  const __m256 sums[4][3] = {{s00, s01, s02}, {s10, s11, s12}, {s20, s21, s22}, {s30, s31, s32}};
  for (int64_t f = 0; f < group; ++f)
    for (int64_t j = 0; j < block; ++j) grad_weight[f * filter_size + j] += horizontal_sum(sums[f][j]);
}

// The float weight gradient with AVX2 intrinsics, in blocks of 4 filters x 3 taps of a kernel row; a row of fewer
// taps repeats its first and drops the extra sums, a group of fewer filters repeats its first.
__attribute__((target("avx2,fma"))) void weight_grad_avx2(const WindowTile& t, const float* phased, int64_t channels,
                                                           const float* gz, int64_t z_stride, float* grad_weight) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t f0 = 0; f0 < t.filters; f0 += 4) {
    const int64_t group = std::min<int64_t>(4, t.filters - f0);
    const float* const g[4] = {gz + f0 * z_stride, gz + (group > 1 ? f0 + 1 : f0) * z_stride,
                               gz + (group > 2 ? f0 + 2 : f0) * z_stride, gz + (group > 3 ? f0 + 3 : f0) * z_stride};
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t tap0 = 0; tap0 < taps; tap0 += 3) {
        const int64_t block = std::min<int64_t>(3, taps - tap0);
        const int64_t o[3] = {offsets[tap0], offsets[tap0 + (block > 1 ? 1 : 0)], offsets[tap0 + (block > 2 ? 2 : 0)]};
        weight_grad_block_avx2(t, phased + c * plane, g, o, group, block, filter_size,
                               grad_weight + f0 * filter_size + c * taps + tap0);
      }
  }
}

bool has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}
#endif

constexpr int64_t kGradFilters = kFilterGroup, kGradTaps = 3;

// One block of the weight gradient: kGradFilters filters (their output gradient rows) x kGradTaps taps at phased
// offsets `offset` of one channel's phased rows, summed over the tile's pixels lane by lane; the first `group` x
// `block` sums are added to grad_weight, filter f's tap j at f * filter_size + j.
template <typename T>
__attribute__((always_inline)) inline void weight_grad_block(const WindowTile& t, const T* channel_rows,
                                                             const T* const* grad_rows,
                                                             const int64_t (&offset)[kGradTaps], int64_t group,
                                                             int64_t block, int64_t filter_size, T* grad_weight) {
  T acc[kGradFilters][kGradTaps][kLanes] = {};
  for (int64_t p = 0; p < t.rows; ++p) {
    const T* row = channel_rows + p * t.stride_h * t.phase_width;
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
      grad_weight[g * filter_size + j] += sum;
    }
}

template <typename T>
__attribute__((always_inline)) inline void weight_grad_body(const WindowTile& t, const T* phased, int64_t channels,
                                                            const T* gz, int64_t z_stride, T* grad_weight) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  const int64_t* offsets = t.tap_offset.data();
  for (int64_t f0 = 0; f0 < t.filters; f0 += kGradFilters) {
    const int64_t group = std::min(kGradFilters, t.filters - f0);
    // Rows past the filter count read row f0 instead: a valid row whose sums are dropped.
    const T* grad_rows[kGradFilters];
    for (int64_t g = 0; g < kGradFilters; ++g) grad_rows[g] = gz + (g < group ? f0 + g : f0) * z_stride;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t tap0 = 0; tap0 < taps; tap0 += kGradTaps) {
        const int64_t block = std::min(kGradTaps, taps - tap0);
        // Offsets of the block's taps; a block shorter than kGradTaps repeats its first tap (sums dropped).
        int64_t offset[kGradTaps];
        for (int64_t j = 0; j < kGradTaps; ++j) offset[j] = offsets[tap0 + (j < block ? j : 0)];
        weight_grad_block(t, phased + c * plane, grad_rows, offset, group, block, filter_size,
                          grad_weight + f0 * filter_size + c * taps + tap0);
      }
  }
}

// The output gradients of filters f0 .. f0 + G at lanes q0 .. q0 + kLanes of output row p; rows past the filter
// count are zero (not 0 * a neighbour's value, which is NaN for an infinite one).
template <int64_t G, typename T>
__attribute__((always_inline)) inline void load_gradient_lanes(const WindowTile& t, const T* gz, int64_t z_stride,
                                                               int64_t f0, int64_t group, int64_t p, int64_t q0,
                                                               T (&grad)[G][kLanes]) {
  for (int64_t g = 0; g < G; ++g) {
    const T* src = gz + (g < group ? f0 + g : f0) * z_stride + p * t.row_length + q0;
    for (int64_t l = 0; l < kLanes; ++l) grad[g][l] = g < group ? src[l] : T(0);
  }
}

// One channel's phased input gradient at those lanes: each tap's row (at its phased offset from `row`) += the G
// filters' weights of that tap (`ec`, filters filter_size apart) times their gradients.
template <int64_t G, typename T>
__attribute__((always_inline)) inline void add_channel_taps(const T (&grad)[G][kLanes], const T* ec, int64_t taps,
                                                            int64_t filter_size, const int64_t* offsets, T* row) {
  for (int64_t tap = 0; tap < taps; ++tap) {
    T sum[kLanes] = {};
    for (int64_t g = 0; g < G; ++g) {
      const T w = ec[g * filter_size + tap];
      for (int64_t l = 0; l < kLanes; ++l) sum[l] += w * grad[g][l];
    }
    T* dst = row + offsets[tap];
    for (int64_t l = 0; l < kLanes; ++l) dst[l] += sum[l];
  }
}

template <int64_t G, typename T>
__attribute__((always_inline)) inline void input_grad_body(const WindowTile& t, const T* gz, int64_t z_stride,
                                                           int64_t channels, const T* weight, T* grad_phased) {
  const int64_t taps = t.taps(), filter_size = channels * taps, plane = t.phased_size();
  for (int64_t f0 = 0; f0 < t.filters; f0 += G) {
    const int64_t group = std::min(G, t.filters - f0);
    const T* e = weight + f0 * filter_size;  // zero rows past the filter count
    for (int64_t p = 0; p < t.rows; ++p)
      for (int64_t q0 = 0; q0 < t.row_length; q0 += kLanes) {
        T grad[G][kLanes];
        load_gradient_lanes<G>(t, gz, z_stride, f0, group, p, q0, grad);
        for (int64_t c = 0; c < channels; ++c)
          add_channel_taps<G>(grad, e + c * taps, taps, filter_size, t.tap_offset.data(),
                              grad_phased + c * plane + p * t.stride_h * t.phase_width + q0);
      }
  }
}

}  // namespace

namespace {
LEANCONV_CPU_CLONES void window_forward_generic(const WindowTile& t, const float* phased, int64_t channels,
                                                const float* weight, float* z, int64_t z_stride) {
  forward_body<kFilterGroup>(t, phased, channels, weight, z, z_stride);
}
}  // namespace

void window_forward(const WindowTile& t, const float* phased, int64_t channels, const float* weight, float* z,
                    int64_t z_stride) {
#ifdef LEANCONV_HAVE_AVX2_KERNELS
  if (has_avx2_fma()) return forward_avx2(t, phased, channels, weight, z, z_stride);
#endif
  window_forward_generic(t, phased, channels, weight, z, z_stride);
}
LEANCONV_CPU_CLONES void window_forward(const WindowTile& t, const double* phased, int64_t channels,
                                        const double* weight, double* z, int64_t z_stride) {
  forward_body<kFilterGroup>(t, phased, channels, weight, z, z_stride);
}
namespace {
LEANCONV_CPU_CLONES void window_weight_grad_generic(const WindowTile& t, const float* phased, int64_t channels,
                                                    const float* gz, int64_t z_stride, float* grad_weight) {
  weight_grad_body(t, phased, channels, gz, z_stride, grad_weight);
}
}  // namespace

void window_weight_grad(const WindowTile& t, const float* phased, int64_t channels, const float* gz, int64_t z_stride,
                        float* grad_weight) {
#ifdef LEANCONV_HAVE_AVX2_KERNELS
  if (has_avx2_fma()) return weight_grad_avx2(t, phased, channels, gz, z_stride, grad_weight);
#endif
  window_weight_grad_generic(t, phased, channels, gz, z_stride, grad_weight);
}
LEANCONV_CPU_CLONES void window_weight_grad(const WindowTile& t, const double* phased, int64_t channels,
                                            const double* gz, int64_t z_stride, double* grad_weight) {
  weight_grad_body(t, phased, channels, gz, z_stride, grad_weight);
}
// One or two filters (the low-rank conv's depthwise stage at rank 1 or 2) take a body of their width: the
// four-filter body would spend three or two of its four multiply-adds a tap on zero rows.
template <typename T>
__attribute__((always_inline)) inline void input_grad_any(const WindowTile& t, const T* gz, int64_t z_stride,
                                                          int64_t channels, const T* weight, T* grad_phased) {
  if (t.filters == 1) return input_grad_body<1>(t, gz, z_stride, channels, weight, grad_phased);
  if (t.filters == 2) return input_grad_body<2>(t, gz, z_stride, channels, weight, grad_phased);
  input_grad_body<kFilterGroup>(t, gz, z_stride, channels, weight, grad_phased);
}
LEANCONV_CPU_CLONES void window_input_grad(const WindowTile& t, const float* gz, int64_t z_stride, int64_t channels,
                                           const float* weight, float* grad_phased) {
  input_grad_any(t, gz, z_stride, channels, weight, grad_phased);
}
LEANCONV_CPU_CLONES void window_input_grad(const WindowTile& t, const double* gz, int64_t z_stride, int64_t channels,
                                           const double* weight, double* grad_phased) {
  input_grad_any(t, gz, z_stride, channels, weight, grad_phased);
}

}  // namespace leanconv::cpu
