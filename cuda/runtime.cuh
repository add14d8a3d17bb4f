// The CUDA runtime as the launchers and kernels of cuda/ see it, in either build of the same sources:
// - nvcc (the library's CUDA kernels): ATen's CUDA context, streams, guards and error checks, cub, and the kernels'
//   registration under the CUDA dispatch key;
// - the host compiler with LEANCONV_CUDA_EMULATION (tests): the emulated execution model (cuda/emulation/), whose
//   kernels run on CPU tensors and register as the leanconv_cuda_emulated ops (cuda/emulation/library.h).
// Launchers use only what is declared here (and cuda/launch.cuh), never the CUDA API directly.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace leanconv::cuda::runtime {
using Stream = cudaStream_t;
using DeviceGuard = c10::cuda::CUDAGuard;
inline Stream current_stream() { return at::cuda::getCurrentCUDAStream(); }
inline int64_t sm_count() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }
// The most blocks a grid-stride loop's grid has.
constexpr int64_t grid_stride_blocks() { return int64_t(1) << 20; }
}  // namespace leanconv::cuda::runtime

// A __shared__ array of the kernel's block.
#define LEANCONV_SHARED(type, name, dims) __shared__ type name dims
// Registers the file's ops for CUDA tensors: LEANCONV_CUDA_KERNELS(m) { m.impl("op", &kernel); }
#define LEANCONV_CUDA_KERNELS(m) TORCH_LIBRARY_IMPL(leanconv, CUDA, m)
#define LEANCONV_CUDA_CHECK(...) C10_CUDA_CHECK(__VA_ARGS__)
#define LEANCONV_CUDA_LAUNCH_CHECK() C10_CUDA_KERNEL_LAUNCH_CHECK()

#elif defined(LEANCONV_CUDA_EMULATION)

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include "emulation/builtins.h"
#include "emulation/cub.h"
#include "emulation/library.h"

namespace leanconv::cuda::runtime {
using Stream = cudaStream_t;
// The emulated kernels run on CPU tensors: there is no device to select.
struct DeviceGuard {
  explicit DeviceGuard(c10::Device device) {
    TORCH_CHECK(device.is_cpu(), "leanconv CUDA emulation: the emulated kernels take CPU tensors, not ", device);
  }
};
inline Stream current_stream() { return nullptr; }
inline int64_t sm_count() { return emu::config().sm_count; }
inline int64_t grid_stride_blocks() { return emu::config().grid_stride_blocks; }
}  // namespace leanconv::cuda::runtime

#define LEANCONV_CUDA_CHECK(...)                                                                   \
  TORCH_CHECK((__VA_ARGS__) == cudaSuccess, "leanconv CUDA emulation: ", #__VA_ARGS__, " failed")
#define LEANCONV_CUDA_LAUNCH_CHECK() ((void)0)

#else
#error "cuda/ compiles with nvcc, or with the host compiler and LEANCONV_CUDA_EMULATION"
#endif
