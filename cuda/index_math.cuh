// Index helpers of the memory-bound CUDA kernels: fast division by a divisor fixed at launch, and 16-byte vector
// loads and stores.
#pragma once

#include <ATen/cuda/detail/IntegerDivider.cuh>

#include <climits>
#include <cstdint>

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
    return fits && n <= INT32_MAX ? static_cast<int64_t>(small.div(static_cast<uint32_t>(n))) : n / divisor;
  }
  __device__ __forceinline__ int64_t mod(int64_t n) const { return n - div(n) * divisor; }
};

// kVec<T> values make 16 bytes: one vector load or store where the address is 16-byte aligned.
template <typename T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

template <typename T>
struct alignas(16) Vec {
  T v[kVec<T>];
};

inline bool aligned_16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T>
__device__ __forceinline__ Vec<T> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T>*>(p);
}

template <typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T>& value) {
  *reinterpret_cast<Vec<T>*>(p) = value;
}

}  // namespace leanconv::cuda
