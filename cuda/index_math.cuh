// Index helpers of the memory-bound CUDA kernels: fast division by a divisor fixed at launch, and 16-byte vector
// loads and stores.
#pragma once

#include <c10/macros/Macros.h>
#include <ATen/cuda/detail/IntegerDivider.cuh>

#include <climits>
#include <cstdint>
#include <cstring>

#include "runtime.cuh"

namespace leanconv::cuda {

__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// n / d and n % d for 0 <= n by a multiply-high and a shift (ATen's IntDivider) while n < 2^31, by a division
// above (a 64-bit division is ~70 instructions; the branch is uniform in practice). Built on the host.
struct FastDivider {
  at::cuda::detail::IntDivider<uint32_t> small;  // valid when `fits` (divisor < 2^31)
  int64_t divisor = 1;
  bool fits = false;

  FastDivider() = default;
  explicit FastDivider(int64_t d) : divisor(d), fits(d >= 1 && d <= INT32_MAX) {
    if (fits) small = at::cuda::detail::IntDivider<uint32_t>(static_cast<uint32_t>(d));
  }

  __device__ __forceinline__ int64_t div(int64_t n) const {
#if defined(LEANCONV_CUDA_EMULATION)
    if (n < 0) emu::fail("FastDivider::div of a negative value (" + std::to_string(n) + ")");
#endif
    return fits && n <= INT32_MAX ? static_cast<int64_t>(small.div(static_cast<uint32_t>(n))) : n / divisor;
  }
  __device__ __forceinline__ int64_t mod(int64_t n) const { return n - div(n) * divisor; }
};

// The coordinates of an element of a 4-D (N, C, H, W) tensor.
struct Coords4 {
  int64_t n, c, h, w;
};

// The coordinates of the k-th element of a 4-D tensor in its memory order, NCHW (w fastest, then h, c, n) or NHWC
// (c fastest, then w, h, n): three fast divisions by the sizes of the three fastest dimensions.
struct Unflatten4 {
  FastDivider fastest, second, third;
  bool channels_last = false;

  Unflatten4(int64_t channels, int64_t height, int64_t width, bool channels_last)
      : fastest(channels_last ? channels : width),
        second(channels_last ? width : height),
        third(channels_last ? height : channels),
        channels_last(channels_last) {}

  __device__ __forceinline__ Coords4 operator()(int64_t k) const {
    const int64_t a = fastest.div(k), b = second.div(a), n = third.div(b);
    const int64_t d0 = k - a * fastest.divisor, d1 = a - b * second.divisor, d2 = b - n * third.divisor;
    return channels_last ? Coords4{n, d0, d2, d1} : Coords4{n, d2, d1, d0};
  }
};

// kVec<T> values make 16 bytes: one vector load or store where the address is 16-byte aligned.
template <typename T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

template <typename T>
struct alignas(16) Vec {
  T v[kVec<T>] = {};  // lanes a pass does not load are still defined values
};

inline bool aligned_16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// A GPU faults on a 16-byte access whose address is not a multiple of 16; the emulation reports it.
template <typename T>
__device__ __forceinline__ Vec<T> load_vec(const T* p) {
#if defined(LEANCONV_CUDA_EMULATION)
  emu::check_vector_alignment(p, "load");
  Vec<T> value;
  std::memcpy(static_cast<void*>(&value), p, sizeof(value));
  return value;
#else
  return *reinterpret_cast<const Vec<T>*>(p);
#endif
}

template <typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T>& value) {
#if defined(LEANCONV_CUDA_EMULATION)
  emu::check_vector_alignment(p, "store");
  std::memcpy(static_cast<void*>(p), &value, sizeof(value));
#else
  *reinterpret_cast<Vec<T>*>(p) = value;
#endif
}

}  // namespace leanconv::cuda
