// The emulated kernels' schemas, and the C API the tests configure the emulated device through (ctypes).
#include "library.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <string>

#include "grid.h"
#include "launch.cuh"

namespace leanconv::emu {

std::string emulated_schema(const char* name) {
  const auto op = c10::Dispatcher::singleton().findSchema({std::string("leanconv::") + name, ""});
  TORCH_CHECK(op.has_value(), "leanconv CUDA emulation: no op leanconv::", name, " (is libleanconv loaded?)");
  std::string schema = c10::toString(op->schema());
  TORCH_INTERNAL_ASSERT(schema.rfind("leanconv::", 0) == 0, schema);
  return schema.substr(std::strlen("leanconv::"));
}

}  // namespace leanconv::emu

extern "C" {

// sm_count: the device's SMs (the reductions' chunking); schedule: 0 forward, 1 reverse, 2 random (seeded);
// execution: 0 fibers, 1 OS threads; grid_stride_blocks: the grid-stride loops' grid cap.
void leanconv_emulation_configure(int64_t sm_count, int schedule, uint64_t seed, int execution,
                                  int64_t grid_stride_blocks) {
  auto& c = leanconv::emu::config();
  c.sm_count = sm_count;
  c.grid_stride_blocks = grid_stride_blocks;
  c.schedule = static_cast<leanconv::emu::Schedule>(schedule);
  c.seed = seed;
  c.execution = static_cast<leanconv::emu::Execution>(execution);
}

// The launch check of cuda/launch.cuh on these dimensions: its message, or "" when CUDA would take the launch.
int64_t leanconv_emulation_check_launch(const char* kernel, int64_t gx, int64_t gy, int64_t gz, int64_t bx,
                                        int64_t by, int64_t bz, int64_t max_block_threads, char* out,
                                        int64_t capacity) {
  std::string message;
  try {
    leanconv::cuda::check_launch(kernel, {{gx, gy, gz}, {bx, by, bz}, max_block_threads});
  } catch (const c10::Error& e) {
    message = e.what_without_backtrace();
  }
  const int64_t n = std::min<int64_t>(int64_t(message.size()), capacity - 1);
  std::memcpy(out, message.data(), n);
  out[n] = '\0';
  return int64_t(message.size());
}

// "kernel: launches" lines of every kernel launched so far; returns the length written (at most capacity - 1).
int64_t leanconv_emulation_launched_kernels(char* out, int64_t capacity) {
  const std::string text = leanconv::emu::launched_kernels();
  const int64_t n = std::min<int64_t>(int64_t(text.size()), capacity - 1);
  std::memcpy(out, text.data(), n);
  out[n] = '\0';
  return int64_t(text.size());
}

}
