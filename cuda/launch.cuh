// Launch helpers shared by the CUDA kernels: block size, grid size and the grid-stride loop.
#pragma once

#include <algorithm>
#include <cstdint>

namespace leanconv::cuda {

constexpr int kThreads = 256;

// Grid-stride loops: cap the grid so a huge range still launches a legal grid.
inline int64_t blocks_for(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 20));
}

}  // namespace leanconv::cuda

// for (index over [0, count)) spread over the whole grid.
#define LEANCONV_GRID_STRIDE(index, count)                                               \
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < (count); \
       index += int64_t(gridDim.x) * blockDim.x)
