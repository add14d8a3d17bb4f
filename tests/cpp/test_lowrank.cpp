// The DeCEF C++ API: both paths against the dense conv built from the module's weight, gradients against a
// reference conv, the fused op's errors, state_dict names, and CUDA against CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <string>

#include "leanconv/leanconv.h"

namespace {

using leanconv::nn::EigenConv2d;
using leanconv::nn::EigenConv2dOptions;

// The dense weight by plain loops, independent of the module's bmm.
torch::Tensor reference_weight(const torch::Tensor& basis, const torch::Tensor& coeff) {
  const int64_t c_in = basis.size(0), rank = basis.size(1), c_out = coeff.size(0);
  auto w = torch::zeros({c_out, c_in, basis.size(2), basis.size(3)}, basis.options());
  for (int64_t o = 0; o < c_out; ++o)
    for (int64_t i = 0; i < c_in; ++i)
      for (int64_t r = 0; r < rank; ++r) w[o][i] += coeff[o][i * rank + r] * basis[i][r];
  return w;
}

TEST(Eigen, BothPathsEqualTheDenseConv) {
  torch::manual_seed(0);
  for (const std::string path : {"fused", "materialized"}) {
    EigenConv2d layer(EigenConv2dOptions(5, 7, 3, 4).stride(2).padding(1).path(path));
    layer->to(torch::kDouble);
    auto x = torch::randn({2, 5, 9, 8}, torch::kDouble);
    torch::NoGradGuard no_grad;
    auto expected = torch::conv2d(x, reference_weight(layer->basis, layer->coeff), layer->bias, 2, 1);
    EXPECT_TRUE(torch::allclose(layer->forward(x), expected, 1e-10, 1e-10)) << path;
    EXPECT_TRUE(torch::allclose(layer->weight(), reference_weight(layer->basis, layer->coeff), 1e-12, 1e-12));
  }
}

TEST(Eigen, FusedGradientsMatchTheDenseConv) {
  torch::manual_seed(1);
  EigenConv2d fused(EigenConv2dOptions(6, 8, 3, 3).padding(1).dilation(2).path("fused"));
  fused->to(torch::kDouble);
  auto x = torch::randn({3, 6, 10, 10}, torch::kDouble).requires_grad_();
  fused->forward(x).square().sum().backward();
  auto x_ref = x.detach().clone().requires_grad_();
  auto basis = fused->basis.detach().clone().requires_grad_();
  auto coeff = fused->coeff.detach().clone().requires_grad_();
  auto bias = fused->bias.detach().clone().requires_grad_();
  torch::conv2d(x_ref, reference_weight(basis, coeff), bias, 1, 1, 2).square().sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(fused->basis.grad(), basis.grad(), 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(fused->coeff.grad(), coeff.grad(), 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(fused->bias.grad(), bias.grad(), 1e-9, 1e-9));
}

TEST(Eigen, StateDictNamesAndCounts) {
  EigenConv2d layer(EigenConv2dOptions(16, 32, 3, 4));
  std::set<std::string> names;
  for (const auto& item : layer->named_parameters()) names.insert(item.key());
  EXPECT_EQ(names, (std::set<std::string>{"basis", "coeff", "bias"}));
  EXPECT_EQ(layer->num_learned_params(), 16 * 4 * 9 + 32 * 64 + 32);
  EXPECT_EQ(layer->num_dense_params(), 32 * 16 * 9 + 32);
}

TEST(Eigen, BadArgumentsAreRefused) {
  EXPECT_THROW(EigenConv2d(EigenConv2dOptions(4, 4, 3, 10)), c10::Error);
  EXPECT_THROW(EigenConv2d(EigenConv2dOptions(4, 4, 3, 2).path("fast")), c10::Error);
  auto x = torch::randn({1, 4, 6, 6});
  EXPECT_THROW(leanconv::ops::eigen_conv2d(x, torch::randn({3, 2, 3, 3}), torch::randn({4, 6}), std::nullopt, {1, 1},
                                           {1, 1}, {1, 1}),
               c10::Error);
  EXPECT_THROW(leanconv::ops::eigen_conv2d(x, torch::randn({4, 2, 3, 3}), torch::randn({4, 7}), std::nullopt, {1, 1},
                                           {1, 1}, {1, 1}),
               c10::Error);
}

TEST(Eigen, CpuAndCudaAgree_CUDA) {
  torch::manual_seed(2);
  EigenConv2d layer(EigenConv2dOptions(20, 70, 3, 4).padding(1).path("fused"));
  auto x = torch::randn({3, 20, 13, 11});
  auto y_cpu = layer->forward(x);
  layer->to(torch::kCUDA);
  auto y_gpu = layer->forward(x.cuda()).cpu();
  EXPECT_TRUE(torch::allclose(y_gpu, y_cpu, 1e-4, 1e-4));
}

}  // namespace
