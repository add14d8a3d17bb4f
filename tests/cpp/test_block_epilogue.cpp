// The block epilogue from C++: fused_batch_norm against torch::batch_norm + add + ReLU (values, gradients,
// running statistics) in training and eval, channels_last kept, and the CUDA kernels against the CPU's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "leanconv/ops/block_epilogue.h"

namespace {

torch::Tensor plain_tail(const torch::Tensor& x, const torch::Tensor& rm, const torch::Tensor& rv,
                         const torch::Tensor& w, const torch::Tensor& b, const torch::Tensor& residual, bool training) {
  return torch::relu(torch::batch_norm(x, w, b, rm, rv, training, 0.1, 1e-5, false) + residual);
}

void expect_fused_equals_plain(torch::Device device, torch::MemoryFormat format) {
  torch::manual_seed(0);
  const auto options = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  const auto x = (torch::randn({4, 5, 6, 7}, options) * 2 + 1).contiguous(format);
  const auto residual = torch::randn_like(x);
  const auto w = torch::rand({5}, options) + 0.5, b = torch::randn({5}, options);
  auto rm = torch::zeros({5}, options), rv = torch::ones({5}, options);
  auto rm_plain = rm.clone(), rv_plain = rv.clone();
  for (const bool training : {true, false}) {
    const auto xs = x.clone().requires_grad_(), xp = x.clone().requires_grad_();
    const auto ws = w.clone().requires_grad_(), wp = w.clone().requires_grad_();
    const auto fused = leanconv::ops::fused_batch_norm(xs, rm, rv, ws, b, residual, training, 0.1, 1e-5, true);
    const auto plain = plain_tail(xp, rm_plain, rv_plain, wp, b, residual, training);
    EXPECT_TRUE(torch::allclose(fused, plain, 1e-10, 1e-10)) << "training " << training;
    EXPECT_TRUE(fused.is_contiguous(format));
    const auto grad = torch::randn_like(plain);
    fused.backward(grad);
    plain.backward(grad);
    EXPECT_TRUE(torch::allclose(xs.grad(), xp.grad(), 1e-9, 1e-9)) << "training " << training;
    EXPECT_TRUE(torch::allclose(ws.grad(), wp.grad(), 1e-9, 1e-9)) << "training " << training;
    EXPECT_TRUE(torch::allclose(rm, rm_plain, 1e-12, 1e-12) && torch::allclose(rv, rv_plain, 1e-12, 1e-12));
  }
}

TEST(BlockEpilogue, FusedBatchNormIsBatchNormAddRelu) {
  expect_fused_equals_plain(torch::kCPU, torch::MemoryFormat::Contiguous);
  expect_fused_equals_plain(torch::kCPU, torch::MemoryFormat::ChannelsLast);
}

TEST(BlockEpilogue, FusedBatchNormIsBatchNormAddRelu_CUDA) {
  expect_fused_equals_plain(torch::kCUDA, torch::MemoryFormat::Contiguous);
  expect_fused_equals_plain(torch::kCUDA, torch::MemoryFormat::ChannelsLast);
}

TEST(BlockEpilogue, CudaKernelsEqualTheCpuKernels_CUDA) {
  for (const auto format : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
    const auto x = torch::randn({8, 40, 9, 9}, torch::kFloat32).contiguous(format);
    const auto r = torch::randn_like(x), w = torch::randn({40}), b = torch::randn({40});
    const auto cpu = leanconv::ops::batch_norm_epilogue(x, w, b, r, true, 1e-5);
    const auto gpu = leanconv::ops::batch_norm_epilogue(x.cuda(), w.cuda(), b.cuda(), r.cuda(), true, 1e-5);
    EXPECT_TRUE(torch::allclose(std::get<0>(gpu).cpu(), std::get<0>(cpu), 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(std::get<1>(gpu).cpu(), std::get<1>(cpu), 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(std::get<2>(gpu).cpu(), std::get<2>(cpu), 1e-4, 1e-5));
    EXPECT_TRUE(torch::allclose(std::get<3>(gpu).cpu(), std::get<3>(cpu), 1e-4, 1e-6));
  }
}

TEST(BlockEpilogue, ClearErrors) {
  const auto x = torch::randn({2, 3, 4, 4});
  EXPECT_THROW(leanconv::ops::batch_norm_epilogue(x, torch::ones({4}), std::nullopt, std::nullopt, false, 1e-5),
               c10::Error);
  EXPECT_THROW(leanconv::ops::fused_batch_norm(torch::randn({1, 3, 1, 1}), std::nullopt, std::nullopt, std::nullopt,
                                               std::nullopt, std::nullopt, true, 0.1, 1e-5, false),
               c10::Error);
}

}  // namespace
