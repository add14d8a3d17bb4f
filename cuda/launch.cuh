// Launch helpers shared by the CUDA kernels: block size, grid size, the grid-stride loop, and the one launch
// function every kernel goes through, which checks CUDA's limits on the int64 sizes before anything narrows.
#pragma once

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "runtime.cuh"

namespace leanconv::cuda {

constexpr int kThreads = 256;
static_assert(kThreads % 32 == 0, "blocks are whole warps: the full-mask shuffles rely on it");

// Grid-stride loops: cap the grid so a huge range still launches a legal grid (the emulation lowers the cap, so
// that small tests run every grid-stride loop more than once).
inline int64_t blocks_for(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, runtime::grid_stride_blocks()));
}

// Grid or block dimensions, in int64 so that a size is checked before it becomes CUDA's unsigned.
struct Dims {
  int64_t x = 1, y = 1, z = 1;
  Dims(int64_t x_ = 1, int64_t y_ = 1, int64_t z_ = 1) : x(x_), y(y_), z(z_) {}
  int64_t count() const { return x * y * z; }
};

struct LaunchShape {
  Dims grid, block;
  int64_t max_block_threads = 1024;  // the kernel's __launch_bounds__, where it has one
};

// What CUDA refuses (cudaErrorInvalidConfiguration) or what would silently truncate, refused with the kernel's name.
inline void check_launch(const char* kernel, const LaunchShape& s) {
  const Dims &g = s.grid, &b = s.block;
  TORCH_CHECK(b.x >= 1 && b.y >= 1 && b.z >= 1 && g.x >= 1 && g.y >= 1 && g.z >= 1, "leanconv: launch of ", kernel,
              ": an empty grid or block (grid ", g.x, "x", g.y, "x", g.z, ", block ", b.x, "x", b.y, "x", b.z, ")");
  TORCH_CHECK(b.x <= 1024 && b.y <= 1024 && b.z <= 64 && b.count() <= 1024, "leanconv: launch of ", kernel,
              ": a block of ", b.x, "x", b.y, "x", b.z, " threads is over CUDA's 1,024");
  TORCH_CHECK(b.count() <= s.max_block_threads, "leanconv: launch of ", kernel, ": a block of ", b.count(),
              " threads is over the kernel's __launch_bounds__ of ", s.max_block_threads);
  TORCH_CHECK(g.x <= (int64_t(1) << 31) - 1, "leanconv: launch of ", kernel, ": grid.x = ", g.x,
              " is over CUDA's 2^31 - 1");
  TORCH_CHECK(g.y <= 65535 && g.z <= 65535, "leanconv: launch of ", kernel, ": grid.y = ", g.y, ", grid.z = ", g.z,
              " (CUDA allows 65,535 at most)");
}

// Launches `kernel` (named `name` in errors and in the emulation's coverage) on `stream` after check_launch.
template <typename... Params, typename... Args>
void launch(const char* name, void (*kernel)(Params...), const LaunchShape& shape, runtime::Stream stream,
            Args&&... args) {
  check_launch(name, shape);
  const dim3 grid(unsigned(shape.grid.x), unsigned(shape.grid.y), unsigned(shape.grid.z));
  const dim3 block(unsigned(shape.block.x), unsigned(shape.block.y), unsigned(shape.block.z));
#if defined(__CUDACC__)
  kernel<<<grid, block, 0, stream>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
#else
  (void)stream;
  emu::run_grid(name, grid, block, [&] { kernel(args...); });
#endif
}

}  // namespace leanconv::cuda

// The kernel argument of launch(): its name (with the template arguments as written) and its address.
#define LEANCONV_KERNEL(...) #__VA_ARGS__, &__VA_ARGS__

// for (index over [0, count)) spread over the whole grid.
#define LEANCONV_GRID_STRIDE(index, count)                                               \
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < (count); \
       index += int64_t(gridDim.x) * blockDim.x)
