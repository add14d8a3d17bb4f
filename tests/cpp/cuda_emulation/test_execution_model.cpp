// The emulated CUDA execution model (cuda/emulation/) against small kernels that keep or break its rules: each rule
// a GPU's sanitizers enforce is reported here, with the kernel's name, and kept rules give the right results in every
// schedule and in both executions (fibers and OS threads).
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "index_math.cuh"
#include "launch.cuh"

namespace {

using leanconv::cuda::launch;
using leanconv::cuda::LaunchShape;
namespace emu = leanconv::emu;

constexpr int kBlock = 64;

// Each thread writes its slot, then reads its neighbour's: right only with the barrier between.
template <bool kBarrier>
__global__ void neighbour_kernel(float* out) {
  LEANCONV_SHARED(float, slots, [kBlock]);
  slots[threadIdx.x] = float(threadIdx.x);
  if (kBarrier) __syncthreads();
  out[blockIdx.x * kBlock + threadIdx.x] = slots[(threadIdx.x + 1) % kBlock];
}

__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void early_exit_kernel(float* out) {
  if (threadIdx.x >= 16) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Lane sums by a shuffle tree over `lanes` lanes (a full warp when 32), for a block of `threads`.
__global__ void warp_sum_kernel(const double* in, double* out, unsigned mask, int lanes) {
  double value = in[threadIdx.x];
  if (threadIdx.x % 32 >= unsigned(lanes)) return;
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(mask, value, offset);
  if (threadIdx.x % 32 == 0) out[threadIdx.x / 32] = value;
}

__global__ void large_shared_kernel(float* out) {
  LEANCONV_SHARED(float, big, [13000]);
  big[threadIdx.x] = 1;
  out[0] = big[0];
}

__global__ void vector_kernel(const float* in, float* out) {
  const auto v = leanconv::cuda::load_vec(in);
  leanconv::cuda::store_vec(out, v);
}

__global__ void atomic_count_kernel(double* total, int64_t n) {
  LEANCONV_GRID_STRIDE(i, n) { atomicAdd(total, 1.0); }
}

struct Settings {
  emu::Schedule schedule;
  emu::Execution execution;
};

class Model : public ::testing::TestWithParam<Settings> {
 protected:
  void SetUp() override {
    saved_ = emu::config();
    emu::config().schedule = GetParam().schedule;
    emu::config().execution = GetParam().execution;
    emu::config().seed = 17;
  }
  void TearDown() override { emu::config() = saved_; }

 private:
  emu::Config saved_;
};

std::string failure_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

TEST_P(Model, BarrierOrdersSharedMemory) {
  std::vector<float> out(3 * kBlock, -1);
  launch(LEANCONV_KERNEL(neighbour_kernel<true>), LaunchShape{3, kBlock}, nullptr, out.data());
  for (int i = 0; i < 3 * kBlock; ++i) EXPECT_EQ(out[i], float((i % kBlock + 1) % kBlock)) << i;
}

TEST_P(Model, DivergentBarrierIsReported) {
  std::vector<float> out(kBlock);
  const auto message = failure_of([&] { launch(LEANCONV_KERNEL(divergent_barrier_kernel), LaunchShape{1, kBlock}, nullptr, out.data()); });
  EXPECT_NE(message.find("divergent_barrier_kernel"), std::string::npos) << message;
  EXPECT_NE(message.find("divergent barrier"), std::string::npos) << message;
}

TEST_P(Model, ThreadExitingWhileOthersWaitIsReported) {
  std::vector<float> out(kBlock);
  const auto message = failure_of([&] { launch(LEANCONV_KERNEL(early_exit_kernel), LaunchShape{1, kBlock}, nullptr, out.data()); });
  EXPECT_NE(message.find("exited while"), std::string::npos) << message;
}

TEST_P(Model, FullWarpShuffleSums) {
  std::vector<double> in(kBlock), out(2, 0);
  for (int i = 0; i < kBlock; ++i) in[i] = i;
  launch(LEANCONV_KERNEL(warp_sum_kernel), LaunchShape{1, kBlock}, nullptr, in.data(), out.data(), 0xffffffffu, 32);
  EXPECT_EQ(out[0], 31 * 32 / 2);
  EXPECT_EQ(out[1], (32 + 63) * 32 / 2);
}

TEST_P(Model, ShuffleMaskLaneThatExitedIsReported) {
  std::vector<double> in(kBlock), out(2, 0);
  const auto message = failure_of([&] {
    launch(LEANCONV_KERNEL(warp_sum_kernel), LaunchShape{1, kBlock}, nullptr, in.data(), out.data(), 0xffffffffu, 16);
  });
  EXPECT_NE(message.find("has exited"), std::string::npos) << message;
}

TEST_P(Model, ShuffleReadingOutsideItsMaskIsReported) {
  std::vector<double> in(kBlock), out(2, 0);
  const auto message = failure_of([&] {
    launch(LEANCONV_KERNEL(warp_sum_kernel), LaunchShape{1, kBlock}, nullptr, in.data(), out.data(), 0x0000ffffu, 16);
  });
  EXPECT_NE(message.find("not in the mask"), std::string::npos) << message;
}

TEST_P(Model, AtomicsCountEveryAdd) {
  double total = 0;
  // 256 threads, each adding about four times (the grid-stride loop wraps).
  launch(LEANCONV_KERNEL(atomic_count_kernel), LaunchShape{2, 128}, nullptr, &total, int64_t(1000));
  EXPECT_EQ(total, 1000);
}

const Settings kSettings[] = {{emu::Schedule::kForward, emu::Execution::kFibers},
                              {emu::Schedule::kReverse, emu::Execution::kFibers},
                              {emu::Schedule::kRandom, emu::Execution::kFibers},
                              {emu::Schedule::kForward, emu::Execution::kThreads}};

std::string settings_name(const ::testing::TestParamInfo<Settings>& info) {
  const char* schedules[] = {"Forward", "Reverse", "Random"};
  return std::string(schedules[int(info.param.schedule)]) +
         (info.param.execution == emu::Execution::kThreads ? "Threads" : "Fibers");
}

INSTANTIATE_TEST_SUITE_P(Schedules, Model, ::testing::ValuesIn(kSettings), settings_name);

TEST(Emulation, MissingBarrierReadsPoisonedSharedMemory) {
  // Forward and reverse schedules: thread t reads slot t+1 before thread t+1 wrote it (forward) or after (reverse);
  // shared memory starts as NaN, so at least one schedule shows the missing barrier.
  const auto saved = emu::config();
  bool wrong = false;
  for (const auto schedule : {emu::Schedule::kForward, emu::Schedule::kReverse, emu::Schedule::kRandom}) {
    emu::config().schedule = schedule;
    std::vector<float> out(kBlock);
    launch(LEANCONV_KERNEL(neighbour_kernel<false>), LaunchShape{1, kBlock}, nullptr, out.data());
    for (int i = 0; i < kBlock; ++i) wrong |= !(out[i] == float((i + 1) % kBlock));
  }
  emu::config() = saved;
  EXPECT_TRUE(wrong);
}

TEST(Emulation, StaticSharedMemoryOver48KiBIsReported) {
  std::vector<float> out(1);
  const auto message = failure_of([&] { launch(LEANCONV_KERNEL(large_shared_kernel), LaunchShape{1, 32}, nullptr, out.data()); });
  EXPECT_NE(message.find("large_shared_kernel"), std::string::npos) << message;
  EXPECT_NE(message.find("shared memory"), std::string::npos) << message;
}

TEST(Emulation, MisalignedVectorAccessIsReported) {
  alignas(16) float in[12] = {}, out[12] = {};
  EXPECT_EQ(failure_of([&] { launch(LEANCONV_KERNEL(vector_kernel), LaunchShape{1, 1}, nullptr, in, out); }), "");
  const auto message = failure_of([&] { launch(LEANCONV_KERNEL(vector_kernel), LaunchShape{1, 1}, nullptr, in + 1, out); });
  EXPECT_NE(message.find("misaligned 16-byte load"), std::string::npos) << message;
}

TEST(Emulation, LaunchLimitsAreCheckedBeforeNarrowing) {
  std::vector<float> out(1);
  const auto too_wide = failure_of([&] {
    launch(LEANCONV_KERNEL(neighbour_kernel<true>), LaunchShape{{int64_t(1) << 32}, kBlock}, nullptr, out.data());
  });
  EXPECT_NE(too_wide.find("neighbour_kernel<true>"), std::string::npos) << too_wide;
  EXPECT_NE(too_wide.find("grid.x"), std::string::npos) << too_wide;
  const auto over_bounds = failure_of([&] {
    launch(LEANCONV_KERNEL(neighbour_kernel<true>), LaunchShape{1, 128, 64}, nullptr, out.data());
  });
  EXPECT_NE(over_bounds.find("__launch_bounds__"), std::string::npos) << over_bounds;
}

TEST(Emulation, RadixSortFollowsCubsContract) {
  std::vector<uint32_t> keys{5, 3, 5, 1, 7, 3}, keys_alt(6);
  std::vector<float> values{0, 1, 2, 3, 4, 5}, values_alt(6);
  cub::DoubleBuffer<uint32_t> k(keys.data(), keys_alt.data());
  cub::DoubleBuffer<float> v(values.data(), values_alt.data());
  size_t bytes = 0;
  ASSERT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, bytes, k, v, 6, 0, 3), cudaSuccess);
  std::vector<char> temp(bytes);
  for (int call = 0; call < 2; ++call) {  // the result lands in either buffer: read it through Current()
    ASSERT_EQ(cub::DeviceRadixSort::SortPairs(temp.data(), bytes, k, v, 6, 0, 3), cudaSuccess);
    EXPECT_EQ(std::vector<uint32_t>(k.Current(), k.Current() + 6), (std::vector<uint32_t>{1, 3, 3, 5, 5, 7}));
  }
  // Stable: equal keys keep their order; bits 0-2 only: 9 (0b1001) sorts as 1.
  std::vector<uint32_t> more{9, 2, 1}, more_alt(3);
  std::vector<float> payload{0, 1, 2}, payload_alt(3);
  cub::DoubleBuffer<uint32_t> mk(more.data(), more_alt.data());
  cub::DoubleBuffer<float> mv(payload.data(), payload_alt.data());
  ASSERT_EQ(cub::DeviceRadixSort::SortPairs(temp.data(), bytes, mk, mv, 3, 0, 3), cudaSuccess);
  EXPECT_EQ(std::vector<float>(mv.Current(), mv.Current() + 3), (std::vector<float>{0, 2, 1}));
}

}  // namespace
