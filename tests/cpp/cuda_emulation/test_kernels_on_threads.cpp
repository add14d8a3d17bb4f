// Every kernel of cuda/ with one OS thread per CUDA thread (the emulation's kThreads execution), built under
// ThreadSanitizer (leanconv_cuda_emulation_tsan_tests): an access between two barriers that another thread of the
// block also makes, unordered, is a reported race; a plain add where an atomic belongs is one. Each emulated op runs
// on a small case and is compared with the CPU kernel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "emulation/grid.h"

namespace {

namespace emu = leanconv::emu;
using Stack = std::vector<c10::IValue>;

// namespace::op called boxed with `arguments`: its outputs.
std::vector<at::Tensor> call(const std::string& name, Stack arguments) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name.c_str(), "");
  op.callBoxed(&arguments);
  std::vector<at::Tensor> outputs;
  for (const auto& value : arguments) {
    if (value.isTensor()) outputs.push_back(value.toTensor());
  }
  return outputs;
}

void expect_like_the_cpu(const std::string& op, const Stack& arguments, double tolerance = 1e-5) {
  const auto expected = call("leanconv::" + op, arguments);
  const auto actual = call("leanconv_cuda_emulated::" + op, arguments);
  ASSERT_EQ(actual.size(), expected.size()) << op;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!expected[i].defined()) continue;
    EXPECT_TRUE(at::allclose(actual[i], expected[i], tolerance, tolerance)) << op << " output " << i;
  }
}

class OnThreads : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = emu::config();
    emu::config().execution = emu::Execution::kThreads;
    at::set_num_threads(1);  // no OpenMP threads (not built with the sanitizer) beside the emulated ones
    at::manual_seed(0);
  }
  void TearDown() override { emu::config() = saved_; }

 private:
  emu::Config saved_;
};

const std::vector<int64_t> kOne{1, 1};

TEST_F(OnThreads, BlockEpilogue) {
  for (const bool channels_last : {false, true}) {
    // Small (a thread per CUDA thread is slow under the sanitizer), with two chunks a channel.
    auto x = at::randn({2, 12, 24, 24});
    if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    const auto w = at::randn({12}), b = at::randn({12});
    emu::config().sm_count = 1;
    expect_like_the_cpu("batch_norm_epilogue", {x, w, b, x, true, 1e-5});
    const auto outputs = call("leanconv::batch_norm_epilogue", {x, w, b, x, true, 1e-5});
    expect_like_the_cpu("batch_norm_epilogue_backward", {x, outputs[1], outputs[2], outputs[0], x, w, outputs[1],
                                                          outputs[2], true, std::vector<bool>{true, true, true, true}});
    expect_like_the_cpu("affine_epilogue", {x, w, b, x, true});
    expect_like_the_cpu("affine_epilogue_backward", {x, x.relu(), x, w, true, std::vector<bool>{true, true, true, true}});
  }
}

TEST_F(OnThreads, FilterSummary) {
  expect_like_the_cpu("filter_summary_weight", {at::randn({32}), 8, 8, 3, 3, 4});
  expect_like_the_cpu("filter_summary_weight_backward", {at::randn({8, 8, 3, 3}), 32, 4});
  expect_like_the_cpu("filter_summary_weight_backward", {at::randn({4, 64, 3, 3}), 4, 1});  // warp per entry
  const auto z = at::randn({2, 6, 9, 7});
  expect_like_the_cpu("shifted_sum", {z, 3, 3, 2, kOne, kOne, kOne});
  expect_like_the_cpu("shifted_sum_backward", {z, 3, 3, 2, kOne, kOne, kOne, std::vector<int64_t>{9, 7}});
}

TEST_F(OnThreads, Generated) {
  const auto grad = at::randn({900});
  expect_like_the_cpu("generate_weights", {at::randn({97}), 5, 1000, 100, std::vector<int64_t>{900}, 0.3});
  expect_like_the_cpu("generate_weights_backward", {grad, 97, 5, 1000, 100, 0.3});  // atomics
  at::globalContext().setDeterministicAlgorithms(true, false);
  expect_like_the_cpu("generate_weights_backward", {grad, 97, 5, 1000, 100, 0.3});
  at::globalContext().setDeterministicAlgorithms(false, false);
}

TEST_F(OnThreads, EigenAndGroupedConvs) {
  const auto x = at::randn({2, 4, 9, 8});
  expect_like_the_cpu("eigen_conv2d", {x, at::randn({4, 5, 3, 3}), at::randn({70, 20}), at::randn({70}), kOne, kOne,
                                       kOne}, 1e-4);  // two k-chunks, two channel tiles, three pixel tiles
  const auto w = at::randn({4, 1, 3, 3});
  expect_like_the_cpu("grouped_conv2d", {x, w, at::randn({4}), kOne, kOne, kOne, 4}, 1e-4);
  expect_like_the_cpu("grouped_conv2d_backward", {at::randn({2, 4, 9, 8}), x, w, kOne, kOne, kOne, 4,
                                                  std::vector<bool>{true, true}}, 1e-4);
}

}  // namespace
