// The generated-weight (RPG) C++ API: forward, backward, even sampling, state_dict names, CPU vs CUDA.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <set>
#include <sstream>
#include <string>

#include "leanconv/leanconv.h"

namespace {

using leanconv::nn::GeneratedConv2d;
using leanconv::nn::GeneratedConv2dOptions;
using leanconv::nn::GeneratedLinear;
using leanconv::nn::GeneratedLinearOptions;
using leanconv::nn::ParameterRing;
using leanconv::nn::ParameterRingOptions;

std::set<std::string> keys_of(const torch::OrderedDict<std::string, torch::Tensor>& dict) {
  std::set<std::string> keys;
  for (const auto& item : dict) keys.insert(item.key());
  return keys;
}

TEST(Generated, ForwardIsDenseConvWithGeneratedWeight) {
  torch::manual_seed(0);
  ParameterRing ring(ParameterRingOptions(100).seed(3));
  GeneratedConv2d conv(ring, GeneratedConv2dOptions(4, 6, 3).padding(1).stride(2));
  auto x = torch::randn({2, 4, 9, 9});
  auto w = conv->weight();
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{6, 4, 3, 3}));
  auto expected = torch::conv2d(x, w, conv->bias, 2, 1);
  EXPECT_TRUE(torch::allclose(conv->forward(x), expected));
}

TEST(Generated, WeightsComeFromTheRingWithSignAndScale) {
  ParameterRing ring(ParameterRingOptions(50).seed(1));
  GeneratedConv2d conv(ring, GeneratedConv2dOptions(8, 8, 3).bias(false));
  auto w = conv->weight().detach().flatten();
  // Every generated weight, divided by the layer's scale, is +- some ring entry.
  auto ratio = (w / conv->scale()).abs().unsqueeze(1);
  auto distance = (ratio - ring->ring.detach().abs().unsqueeze(0)).abs().amin(1);
  EXPECT_LT(distance.max().item<double>(), 1e-6);
}

TEST(Generated, BackwardIsTheAdjointOfGenerate) {
  // <generate(r), G> == <r, backward(G)> for any r and G: checks the reduction independently of its algorithm.
  torch::manual_seed(1);
  auto r = torch::randn({37}, torch::kDouble);
  auto G = torch::randn({5, 3, 3, 3}, torch::kDouble);
  const int64_t total = 1000, offset = 123;
  auto w = leanconv::ops::generate_weights(r, 9, total, offset, {5, 3, 3, 3}, 0.7);
  auto back = leanconv::ops::generate_weights_backward(G, 37, 9, total, offset, 0.7);
  EXPECT_NEAR((w * G).sum().item<double>(), (r * back).sum().item<double>(), 1e-9);
}

TEST(Generated, AutogradReachesTheRingThroughEveryLayer) {
  torch::manual_seed(2);
  ParameterRing ring(ParameterRingOptions(64));
  GeneratedConv2d a(ring, GeneratedConv2dOptions(3, 4, 3).padding(1));
  GeneratedLinear b(ring, GeneratedLinearOptions(4, 2));
  auto x = torch::randn({2, 3, 5, 5});
  auto y = b->forward(a->forward(x).mean({2, 3})).sum();
  y.backward();
  ASSERT_TRUE(ring->ring.grad().defined());
  // The ring's gradient is the sum of each layer's adjoint applied to that layer's weight gradient.
  auto wa = a->weight().detach().requires_grad_();
  auto wb = b->weight().detach().requires_grad_();
  auto y2 = torch::linear(torch::conv2d(x, wa, a->bias, 1, 1).mean({2, 3}), wb, b->bias).sum();
  y2.backward();
  auto expected = leanconv::ops::generate_weights_backward(wa.grad(), 64, 0, ring->total(), a->offset(), a->scale()) +
                  leanconv::ops::generate_weights_backward(wb.grad(), 64, 0, ring->total(), b->offset(), b->scale());
  EXPECT_TRUE(torch::allclose(ring->ring.grad(), expected, 1e-5, 1e-6));
}

TEST(Generated, EveryRingEntryIsUsedEvenly) {
  const int64_t N = 97;
  ParameterRing ring{ParameterRingOptions(N)};
  GeneratedConv2d a(ring, GeneratedConv2dOptions(16, 16, 3));
  GeneratedConv2d b(ring, GeneratedConv2dOptions(16, 32, 1));
  {
    torch::NoGradGuard no_grad;
    ring->ring.copy_(torch::arange(1, N + 1, torch::kFloat));
  }
  auto used = torch::cat({(a->weight() / a->scale()).flatten(), (b->weight() / b->scale()).flatten()})
                  .abs().round().to(torch::kLong) - 1;
  auto counts = torch::bincount(used, {}, N);
  const int64_t T = ring->total();
  EXPECT_EQ(counts.min().item<int64_t>(), T / N);
  EXPECT_EQ(counts.max().item<int64_t>(), (T + N - 1) / N);
}

TEST(Generated, StateDictNames) {
  ParameterRing ring(ParameterRingOptions(10));
  GeneratedConv2d conv(ring, GeneratedConv2dOptions(2, 2, 1));
  EXPECT_EQ(keys_of(ring->named_parameters()), (std::set<std::string>{"ring"}));
  EXPECT_EQ(keys_of(ring->named_buffers()), (std::set<std::string>{"seed", "total"}));
  // The layer does not own the ring: its state is only its bias and its offset.
  EXPECT_EQ(keys_of(conv->named_parameters()), (std::set<std::string>{"bias"}));
  EXPECT_EQ(keys_of(conv->named_buffers()), (std::set<std::string>{"offset"}));
  EXPECT_EQ(ring->total_buffer.item<int64_t>(), 4);
}

// A model whose rings and layers are saved and loaded the C++ way.
struct TwoLayerNet : torch::nn::Module {
  explicit TwoLayerNet(int64_t seed) {
    ring = register_module("ring", ParameterRing(ParameterRingOptions(20).seed(seed)));
    first = register_module("first", GeneratedConv2d(ring, GeneratedConv2dOptions(2, 3, 3)));
    second = register_module("second", GeneratedConv2d(ring, GeneratedConv2dOptions(3, 4, 1)));
  }
  ParameterRing ring{nullptr};
  GeneratedConv2d first{nullptr}, second{nullptr};
};

TEST(Generated, LoadAdoptsTheSavedLayout) {
  auto saved = std::make_shared<TwoLayerNet>(7);
  std::stringstream archive;
  torch::save(saved, archive);
  auto loaded = std::make_shared<TwoLayerNet>(1);  // another seed: another permutation until loaded
  EXPECT_FALSE(torch::equal(loaded->second->weight(), saved->second->weight()));
  torch::load(loaded, archive);
  EXPECT_EQ(loaded->ring->seed(), 7);
  EXPECT_TRUE(torch::equal(loaded->second->weight(), saved->second->weight()));
}

TEST(Generated, CorruptedOffsetIsRefusedOnLoad) {
  auto saved = std::make_shared<TwoLayerNet>(7);
  saved->second->offset_buffer.fill_(std::numeric_limits<int64_t>::max() - 1);
  std::stringstream archive;
  torch::save(saved, archive);
  auto loaded = std::make_shared<TwoLayerNet>(7);
  EXPECT_THROW(torch::load(loaded, archive), c10::Error);
}

TEST(Generated, ClearErrors) {
  ParameterRing ring(ParameterRingOptions(10));
  EXPECT_THROW(ring->generate(0, {2, 2}, 1.0), c10::Error);  // no layer yet
  GeneratedConv2d conv(ring, GeneratedConv2dOptions(3, 4, 3));
  EXPECT_THROW(conv->forward(torch::randn({1, 5, 8, 8})), c10::Error);              // channels
  EXPECT_THROW(conv->forward(torch::randn({8, 8})), c10::Error);                    // rank
  EXPECT_THROW(conv->forward(torch::randn({1, 3, 8, 8}, torch::kDouble)), c10::Error);  // dtype
  EXPECT_THROW(ParameterRing(ParameterRingOptions(0)), c10::Error);
  EXPECT_THROW(leanconv::ops::generate_weights(torch::randn({2, 2}), 0, 10, 0, {2}, 1.0), c10::Error);
  try {
    conv->forward(torch::randn({1, 5, 8, 8}));
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expects 3 input channels, got 5"), std::string::npos);
  }
}

TEST(Generated, CpuAndCudaAgree_CUDA) {
  torch::manual_seed(3);
  ParameterRing ring(ParameterRingOptions(1000).seed(5));
  GeneratedConv2d conv(ring, GeneratedConv2dOptions(32, 64, 3).padding(1));
  auto x = torch::randn({2, 32, 8, 8});
  auto cpu_out = conv->forward(x);
  cpu_out.sum().backward();
  auto cpu_grad = ring->ring.grad().clone();
  ring->ring.mutable_grad() = torch::Tensor();
  ring->to(torch::kCUDA);
  conv->to(torch::kCUDA);
  auto cuda_out = conv->forward(x.cuda());
  cuda_out.sum().backward();
  EXPECT_TRUE(torch::allclose(cuda_out.cpu(), cpu_out, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(ring->ring.grad().cpu(), cpu_grad, 1e-4, 1e-4));
}

}  // namespace
