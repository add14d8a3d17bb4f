// The emulated grid: blocks one at a time, a block's threads as fibers (or OS threads) that meet at barriers and
// warp exchanges. See grid.h.
#include "grid.h"

#include "fiber.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <bit>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define LEANCONV_EMU_ASAN 1
#endif

namespace leanconv::emu {
namespace {

enum class State { kReady, kBarrier, kShuffle, kDone };

// Unwinds an OS-thread lane whose block was stopped by a report elsewhere.
struct Abandoned {};

struct Lane {
  ThreadPlace place;
  int linear = 0;
  State state = State::kReady;
  std::source_location where;
  // A pending warp exchange.
  unsigned mask = 0;
  int source = 0;
  std::size_t size = 0;
  unsigned char value[16] = {}, result[16] = {};
  // Fiber mode.
  FiberContext context;
  std::unique_ptr<char[]> stack;
};

constexpr std::size_t kFiberStack = std::size_t(256) << 10;

std::string site(const std::source_location& where) {
  const std::string file = where.file_name();
  return file.substr(file.find_last_of('/') + 1) + ":" + std::to_string(where.line());
}

std::string coordinates(const uint3& i) {
  std::ostringstream s;
  s << "(" << i.x << ", " << i.y << ", " << i.z << ")";
  return s.str();
}

class Block;
thread_local Block* tl_block = nullptr;
thread_local Lane* tl_lane = nullptr;

// One block of threads of the grid being run, and the scheduler of its fibers.
class Block {
 public:
  Block(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body, std::mt19937_64& random)
      : kernel_(kernel), grid_(grid), dim_(block), body_(body), random_(random), arena_(kMaxStaticSharedBytes) {
    const int threads = int(block.x * block.y * block.z);
    lanes_.resize(threads);
    for (int t = 0; t < threads; ++t) {
      Lane& lane = lanes_[t];
      lane.linear = t;
      lane.place.thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
      lane.place.block_dim = block;
      lane.place.grid_dim = grid;
    }
  }

  void run(uint3 block_idx) {
    for (Lane& lane : lanes_) {
      lane.place.block_idx = block_idx;
      lane.state = State::kReady;
    }
    live_ = int(lanes_.size());
    for (auto& [key, array] : shared_) std::memset(arena_.data() + array.first, 0xFF, array.second);
    if (config().execution == Execution::kThreads) {
      run_threads();
    } else {
      run_fibers();
    }
    if (!error_.empty()) {
      TORCH_CHECK(false, "leanconv CUDA emulation: ", kernel_, ", block ", coordinates(block_idx), ": ", error_);
    }
  }

  // ---- what a lane calls ----

  void barrier(std::source_location where) {
    Lane& lane = *tl_lane;
    lock_and([&] {
      lane.state = State::kBarrier;
      lane.where = where;
    });
    wait(lane);
  }

  void exchange(unsigned mask, int source, const void* value, void* result, std::size_t size,
                std::source_location where) {
    Lane& lane = *tl_lane;
    const int lane_id = lane.linear % kWarpSize, warp = lane.linear / kWarpSize;
    if (!(mask >> lane_id & 1u)) {
      report("lane " + std::to_string(lane_id) + " of warp " + std::to_string(warp) + " calls a shuffle at " +
             site(where) + " whose mask " + hex(mask) + " leaves it out");
    }
    if (source < 0 || source >= kWarpSize || !(mask >> source & 1u)) {
      report("lane " + std::to_string(lane_id) + " of warp " + std::to_string(warp) + " reads lane " +
             std::to_string(source) + " at " + site(where) + ", which is not in the mask " + hex(mask) +
             " (an undefined value)");
    }
    const int warp_lanes = std::min<int>(kWarpSize, int(lanes_.size()) - warp * kWarpSize);
    if (warp_lanes < kWarpSize && (mask >> warp_lanes) != 0) {
      report("warp " + std::to_string(warp) + " has " + std::to_string(warp_lanes) + " lanes, but the mask " +
             hex(mask) + " at " + site(where) + " names lanes beyond them");
    }
    lock_and([&] {
      lane.state = State::kShuffle;
      lane.where = where;
      lane.mask = mask;
      lane.source = source;
      lane.size = size;
      std::memcpy(lane.value, value, size);
      complete_exchange(warp, lane);
    });
    wait(lane);
    std::memcpy(result, lane.result, size);
  }

  void* shared(std::size_t bytes, std::size_t alignment, const char* file, int line) {
    std::lock_guard<std::mutex> hold(mutex_);
    const auto key = std::make_pair(file, line);
    auto found = shared_.find(key);
    if (found == shared_.end()) {
      const std::size_t offset = (used_ + alignment - 1) / alignment * alignment;
      if (int64_t(offset + bytes) > kMaxStaticSharedBytes) {
        report_locked("static shared memory of " + std::to_string(offset + bytes) + " bytes is over the " +
                      std::to_string(kMaxStaticSharedBytes) + " a block may declare");
      }
      used_ = offset + bytes;
      std::memset(arena_.data() + offset, 0xFF, bytes);
      found = shared_.emplace(key, std::make_pair(offset, bytes)).first;
    }
    return arena_.data() + found->second.first;
  }

  [[noreturn]] void report(const std::string& message) {
    {
      std::lock_guard<std::mutex> hold(mutex_);
      if (error_.empty()) error_ = message;
    }
    throw Abandoned{};
  }

 private:
  static std::string hex(unsigned mask) {
    std::ostringstream s;
    s << "0x" << std::hex << mask;
    return s.str();
  }

  std::string who(const Lane& lane) const { return "thread " + coordinates(lane.place.thread_idx); }

  [[noreturn]] void report_locked(const std::string& message) {
    if (error_.empty()) error_ = message;
    throw Abandoned{};
  }

  template <typename F>
  void lock_and(F&& f) {
    std::lock_guard<std::mutex> hold(mutex_);
    f();
    if (config().execution == Execution::kThreads) progress_locked();
  }

  // A lane arrived at a warp exchange: once every lane of its mask waits there, each gets its source's value.
  void complete_exchange(int warp, const Lane& arrived) {
    const int first = warp * kWarpSize;
    for (int l = 0; l < kWarpSize; ++l) {
      if (!(arrived.mask >> l & 1u)) continue;
      const Lane& other = lanes_[first + l];
      if (other.state != State::kShuffle) return;  // not there yet
      if (other.mask != arrived.mask || other.where.line() != arrived.where.line() || other.size != arrived.size) {
        error_ = "warp " + std::to_string(warp) + ": lanes meet at different shuffles (" + site(other.where) +
                 " mask " + hex(other.mask) + ", " + site(arrived.where) + " mask " + hex(arrived.mask) + ")";
        return;
      }
    }
    for (int l = 0; l < kWarpSize; ++l) {
      if (!(arrived.mask >> l & 1u)) continue;
      Lane& lane = lanes_[first + l];
      std::memcpy(lane.result, lanes_[first + lane.source].value, lane.size);
      lane.state = State::kReady;
    }
  }

  // Why a warp exchange cannot complete: the first lane that waits at a shuffle for a lane not at one.
  std::string stuck_shuffle() {
    for (const Lane& lane : lanes_) {
      if (lane.state != State::kShuffle) continue;
      const int warp = lane.linear / kWarpSize;
      for (int l = 0; l < kWarpSize; ++l) {
        if (!(lane.mask >> l & 1u)) continue;
        const Lane& other = lanes_[warp * kWarpSize + l];
        if (other.state == State::kShuffle) continue;
        return "lane " + std::to_string(lane.linear % kWarpSize) + " of warp " + std::to_string(warp) +
               " waits at the shuffle at " + site(lane.where) + " for lane " + std::to_string(l) + ", which " +
               (other.state == State::kDone ? std::string("has exited") : "waits at the barrier at " + site(other.where));
      }
    }
    return "a warp exchange cannot complete";
  }

  // Why the barrier that `at_barrier` threads wait at cannot be released (a thread exited, or threads wait at
  // different barriers); empty when every live thread waits at the same one.
  std::string stuck_barrier(int at_barrier) {
    const Lane* first = nullptr;
    for (const Lane& lane : lanes_) {
      if (lane.state == State::kDone) {
        return who(lane) + " exited while " + std::to_string(at_barrier) + " threads wait at the barrier at " +
               site(std::find_if(lanes_.begin(), lanes_.end(), [](const Lane& l) {
                      return l.state == State::kBarrier;
                    })->where);
      }
      if (first == nullptr) {
        first = &lane;
      } else if (lane.where.line() != first->where.line() ||
                 std::strcmp(lane.where.file_name(), first->where.file_name()) != 0) {
        return "divergent barrier: " + who(*first) + " waits at " + site(first->where) + ", " + who(lane) + " at " +
               site(lane.where);
      }
    }
    return "";
  }

  // Nothing can run: release a barrier every live thread reached, or report why the block is stuck.
  // Returns whether threads were released.
  bool progress_locked() {
    int ready = 0, at_barrier = 0, at_shuffle = 0;
    for (const Lane& lane : lanes_) {
      ready += lane.state == State::kReady;
      at_barrier += lane.state == State::kBarrier;
      at_shuffle += lane.state == State::kShuffle;
    }
    if (ready > 0 || (at_barrier == 0 && at_shuffle == 0) || !error_.empty()) return false;
    error_ = at_shuffle > 0 ? stuck_shuffle() : stuck_barrier(at_barrier);
    if (!error_.empty()) return false;
    for (Lane& lane : lanes_) lane.state = State::kReady;
    return true;
  }

  void wait(Lane& lane) {
    if (config().execution == Execution::kThreads) {
      std::unique_lock<std::mutex> hold(mutex_);
      changed_.notify_all();
      changed_.wait(hold, [&] { return lane.state == State::kReady || !error_.empty(); });
      if (!error_.empty()) throw Abandoned{};
      return;
    }
    swap_to_scheduler(lane);
  }

  // ---- fibers ----

  static void fiber_entry() {
    Block& block = *tl_block;
    Lane& lane = *tl_lane;
#if defined(LEANCONV_EMU_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &block.scheduler_stack_, &block.scheduler_stack_size_);
#endif
    try {
      block.body_();
    } catch (const Abandoned&) {
    } catch (const std::exception& e) {
      if (block.error_.empty()) block.error_ = e.what();
    }
    lane.state = State::kDone;
    --block.live_;
    block.swap_to_scheduler(lane, /*exiting=*/true);
  }

  void swap_to_scheduler(Lane& lane, bool exiting = false) {
#if defined(LEANCONV_EMU_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(exiting ? nullptr : &fake, scheduler_stack_, scheduler_stack_size_);
    switch_fiber(lane.context, scheduler_);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    (void)exiting;
    switch_fiber(lane.context, scheduler_);
#endif
  }

  void resume(Lane& lane) {
    tl_lane = &lane;
#if defined(LEANCONV_EMU_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, lane.stack.get(), kFiberStack);
    switch_fiber(scheduler_, lane.context);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    switch_fiber(scheduler_, lane.context);
#endif
  }

  void run_fibers() {
    tl_block = this;
    for (Lane& lane : lanes_) {
      if (!lane.stack) lane.stack.reset(new char[kFiberStack]);
      start_fiber(lane.context, lane.stack.get(), kFiberStack, &Block::fiber_entry);
    }
    std::vector<int> order(lanes_.size());
    std::iota(order.begin(), order.end(), 0);
    if (config().schedule == Schedule::kReverse) std::reverse(order.begin(), order.end());
    while (error_.empty()) {
      if (config().schedule == Schedule::kRandom) std::shuffle(order.begin(), order.end(), random_);
      bool ran = false;
      for (int t : order) {
        if (lanes_[t].state != State::kReady) continue;
        ran = true;
        resume(lanes_[t]);
        if (!error_.empty()) break;
      }
      if (ran) continue;
      if (live_ == 0 || !progress_locked()) break;
    }
    tl_lane = nullptr;
    tl_block = nullptr;
  }

  // ---- OS threads ----

  void run_threads() {
    std::vector<std::thread> threads;
    threads.reserve(lanes_.size());
    for (Lane& lane : lanes_) {
      threads.emplace_back([this, &lane] {
        tl_block = this;
        tl_lane = &lane;
        try {
          body_();
        } catch (const Abandoned&) {
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> hold(mutex_);
          if (error_.empty()) error_ = e.what();
        }
        std::lock_guard<std::mutex> hold(mutex_);
        lane.state = State::kDone;
        --live_;
        progress_locked();
        changed_.notify_all();
      });
    }
    for (auto& thread : threads) thread.join();
  }

  const char* kernel_;
  dim3 grid_, dim_;
  const std::function<void()>& body_;
  std::mt19937_64& random_;
  std::vector<Lane> lanes_;
  int live_ = 0;
  std::string error_;
  std::mutex mutex_;
  std::condition_variable changed_;
  FiberContext scheduler_;
  const void* scheduler_stack_ = nullptr;
  std::size_t scheduler_stack_size_ = 0;
  // Shared arrays by declaration site: (offset, bytes) in the arena.
  std::map<std::pair<const char*, int>, std::pair<std::size_t, std::size_t>> shared_;
  std::vector<unsigned char> arena_;
  std::size_t used_ = 0;
};

std::mutex g_launches_mutex;
std::map<std::string, int64_t>& launches() {
  static std::map<std::string, int64_t> counts;
  return counts;
}

Lane& current_lane() {
  TORCH_CHECK(tl_lane != nullptr, "leanconv CUDA emulation: a device built-in called outside a kernel");
  return *tl_lane;
}

}  // namespace

Config& config() {
  static Config value;
  return value;
}

const ThreadPlace& this_thread() { return current_lane().place; }

void run_grid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body) {
  uint64_t launch_number;
  {
    std::lock_guard<std::mutex> hold(g_launches_mutex);
    launch_number = uint64_t(++launches()[kernel]);
  }
  std::mt19937_64 random(config().seed * 0x9E3779B97F4A7C15ull + launch_number);
  const int64_t blocks = int64_t(grid.x) * grid.y * grid.z;
  std::vector<int64_t> order(blocks);
  std::iota(order.begin(), order.end(), 0);
  if (config().schedule == Schedule::kReverse) std::reverse(order.begin(), order.end());
  if (config().schedule == Schedule::kRandom) std::shuffle(order.begin(), order.end(), random);
  Block runner(kernel, grid, block, body, random);
  for (const int64_t b : order) {
    runner.run(uint3{unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / (int64_t(grid.x) * grid.y))});
  }
}

void sync_threads(std::source_location where) {
  current_lane();
  tl_block->barrier(where);
}

void warp_exchange(unsigned mask, int source, const void* value, void* result, std::size_t size,
                   std::source_location where) {
  current_lane();
  tl_block->exchange(mask, source, value, result, size, where);
}

void* block_shared(std::size_t bytes, std::size_t alignment, const char* file, int line) {
  current_lane();
  return tl_block->shared(bytes, alignment, file, line);
}

void fail(const std::string& message) {
  current_lane();
  tl_block->report(message);
}

void check_vector_alignment(const void* address, const char* what) {
  if (reinterpret_cast<uintptr_t>(address) % 16 != 0) {
    std::ostringstream s;
    s << "misaligned 16-byte " << what << " at " << address << " (a GPU faults: cudaErrorMisalignedAddress)";
    fail(s.str());
  }
}

std::string launched_kernels() {
  std::lock_guard<std::mutex> hold(g_launches_mutex);
  std::ostringstream s;
  for (const auto& [name, count] : launches()) s << name << ": " << count << "\n";
  return s.str();
}

}  // namespace leanconv::emu
