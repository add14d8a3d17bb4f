// The CUDA execution model, emulated on the CPU: a grid of blocks, each block's threads interleaved at its barriers
// and warp exchanges, per-block shared memory, and the reports a GPU's sanitizers would give (divergent or abandoned
// barriers, a warp exchange a lane never reaches, shared memory over its limit).
//
// Each CUDA thread of a block runs as a fiber on the calling OS thread (kFibers), or as an OS thread of its own
// (kThreads: real concurrency between barriers, for ThreadSanitizer). A fiber runs until it reaches a barrier or a
// warp exchange, or returns; which ready thread runs next is the schedule (forward, reverse or seeded random), so a
// missing barrier changes what a thread reads. Blocks run one at a time, in the schedule's order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <source_location>
#include <string>

namespace leanconv::emu {

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

enum class Schedule : int { kForward = 0, kReverse = 1, kRandom = 2 };
enum class Execution : int { kFibers = 0, kThreads = 1 };

// What the emulated device is and how its blocks run; set by the tests (cuda/emulation/library.cpp's C API).
struct Config {
  int64_t sm_count = 132;
  Schedule schedule = Schedule::kForward;
  uint64_t seed = 0;
  Execution execution = Execution::kFibers;
  // The grid-stride loops' grid cap (the GPU build's is 2^20 blocks): a few blocks make every such loop wrap.
  int64_t grid_stride_blocks = 3;
};
Config& config();

// Where the running thread is in the grid.
struct ThreadPlace {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
const ThreadPlace& this_thread();

constexpr int kWarpSize = 32;
constexpr int64_t kMaxStaticSharedBytes = 48 * 1024;

// Runs `body` for every thread of `grid` x `block` (dimensions already checked against CUDA's limits). A report
// from inside the kernel stops the grid and is thrown here as a c10::Error naming `kernel`.
void run_grid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body);

// __syncthreads(): waits until every thread of the block reaches the same barrier.
void sync_threads(std::source_location where);

// The rendezvous of a __shfl_*_sync: every lane of `mask` gives `size` bytes at `value` and receives those of lane
// `source` (of the same warp) in `result`.
void warp_exchange(unsigned mask, int source, const void* value, void* result, std::size_t size,
                   std::source_location where);

// The block's instance of the __shared__ array declared at file:line (poisoned with 0xFF bytes, a NaN in every
// floating type, when the block starts).
void* block_shared(std::size_t bytes, std::size_t alignment, const char* file, int line);

// A report from inside a kernel (a misaligned vector access, a bad shuffle): ends the grid with this message.
[[noreturn]] void fail(const std::string& message);

// 16-byte vector accesses fault on a GPU when the address is not a multiple of 16.
void check_vector_alignment(const void* address, const char* what);

// Kernels launched since the library was loaded: "name: launches" lines, for the coverage list.
std::string launched_kernels();

}  // namespace leanconv::emu
