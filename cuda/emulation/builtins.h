// The CUDA names a kernel uses, for the host compiler: the execution-space keywords, the thread coordinates, the
// barrier, warp shuffles, atomics and the rounding intrinsics, each on the emulated execution model of grid.h.
// Included by cuda/runtime.cuh in the emulated build only (LEANCONV_CUDA_EMULATION).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <source_location>

#include "grid.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

using dim3 = leanconv::emu::dim3;
using uint3 = leanconv::emu::uint3;

#define threadIdx (::leanconv::emu::this_thread().thread_idx)
#define blockIdx (::leanconv::emu::this_thread().block_idx)
#define blockDim (::leanconv::emu::this_thread().block_dim)
#define gridDim (::leanconv::emu::this_thread().grid_dim)

constexpr int warpSize = leanconv::emu::kWarpSize;

inline void __syncthreads(std::source_location where = std::source_location::current()) {
  leanconv::emu::sync_threads(where);
}

namespace leanconv::emu {
template <typename T>
T shuffle(unsigned mask, T value, int source, std::source_location where) {
  static_assert(sizeof(T) <= 16, "a shuffled value is at most 16 bytes");
  T result;
  warp_exchange(mask, source, &value, &result, sizeof(T), where);
  return result;
}

inline int lane_id() {
  const ThreadPlace& t = this_thread();
  const int64_t linear = t.thread_idx.x + int64_t(t.block_dim.x) * (t.thread_idx.y + int64_t(t.block_dim.y) * t.thread_idx.z);
  return int(linear % kWarpSize);
}

// CUDA's segments: a shuffle of `width` lanes (a power of two up to 32) stays within its lane's segment.
inline void check_width(int width) {
  if (width < 1 || width > kWarpSize || (width & (width - 1)) != 0) {
    fail("shuffle width " + std::to_string(width) + " is not a power of two up to 32");
  }
}
}  // namespace leanconv::emu

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              std::source_location where = std::source_location::current()) {
  leanconv::emu::check_width(width);
  const int lane = leanconv::emu::lane_id();
  return leanconv::emu::shuffle(mask, var, lane / width * width + src_lane % width, where);
}

template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   std::source_location where = std::source_location::current()) {
  leanconv::emu::check_width(width);
  const int lane = leanconv::emu::lane_id();
  const int source = lane % width + int(delta) < width ? lane + int(delta) : lane;
  return leanconv::emu::shuffle(mask, var, source, where);
}

template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 std::source_location where = std::source_location::current()) {
  leanconv::emu::check_width(width);
  const int lane = leanconv::emu::lane_id();
  const int source = lane % width >= int(delta) ? lane - int(delta) : lane;
  return leanconv::emu::shuffle(mask, var, source, where);
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  std::source_location where = std::source_location::current()) {
  leanconv::emu::check_width(width);
  const int lane = leanconv::emu::lane_id();
  const int source = lane ^ lane_mask;
  return leanconv::emu::shuffle(mask, var, source / width == lane / width ? source : lane, where);
}

// Atomics: correct under the OS-thread execution, and visible to ThreadSanitizer.
inline float atomicAdd(float* address, float value) { return std::atomic_ref<float>(*address).fetch_add(value); }
inline double atomicAdd(double* address, double value) { return std::atomic_ref<double>(*address).fetch_add(value); }

// Rounded on their own: the emulated translation units are compiled with -ffp-contract=off, so no FMA forms.
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((uint64_t(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)((unsigned __int128)a * b >> 64);
}

// A __shared__ array of the kernel's block: LEANCONV_SHARED(double, sums, [512]) declares `sums`.
#define LEANCONV_SHARED(type, name, dims)                                                     \
  using name##_array_t = type dims;                                                          \
  name##_array_t& name = *static_cast<name##_array_t*>(::leanconv::emu::block_shared(       \
      sizeof(name##_array_t), alignof(name##_array_t), __FILE__, __LINE__))
