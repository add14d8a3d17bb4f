// CUDA kernels of the block-epilogue ops: ops/epilogue_kernels.h over the CUDA passes (cuda/channel_passes.cuh),
// whose per-channel finish runs on the device. Deterministic: every sum has a fixed order.
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "channel_passes.cuh"
#include "ops/epilogue_kernels.h"

namespace leanconv::cuda {
namespace {

struct CudaPasses {
  template <typename scalar_t, typename Finish>
  static void reduce_statistics(const scalar_t* x, const ChannelLayout& L, const at::Tensor& like,
                                const Finish& finish) {
    cuda::reduce_statistics(x, L, like, finish);
  }

  template <typename scalar_t, typename Finish>
  static void reduce_gradient(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, const at::Tensor& like,
                              const Finish& finish) {
    cuda::reduce_gradient(op, L, like, finish);
  }

  template <typename scalar_t, typename acc_t>
  static void affine_pass(const AffineOperands<scalar_t, acc_t>& op, const ChannelLayout& L) {
    cuda::affine_pass(op, L);
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_cuda(const at::Tensor& input,
                                                                       const std::optional<at::Tensor>& weight,
                                                                       const std::optional<at::Tensor>& bias,
                                                                       const std::optional<at::Tensor>& residual,
                                                                       bool relu, double eps) {
  c10::cuda::CUDAGuard guard(input.device());
  return ops::epilogue_kernels::batch_norm_epilogue<CudaPasses>(input, weight, bias, residual, relu, eps);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_norm_epilogue_backward_cuda(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& grad_mean,
    const std::optional<at::Tensor>& grad_invstd, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& weight, const at::Tensor& mean, const at::Tensor& invstd, bool relu,
    std::array<bool, 4> mask) {
  c10::cuda::CUDAGuard guard(input.device());
  return ops::epilogue_kernels::batch_norm_epilogue_backward<CudaPasses>(grad_output, grad_mean, grad_invstd, output,
                                                                         input, weight, mean, invstd, relu, mask);
}

at::Tensor affine_epilogue_cuda(const at::Tensor& input, const std::optional<at::Tensor>& scale,
                                const std::optional<at::Tensor>& shift, const std::optional<at::Tensor>& residual,
                                bool relu) {
  c10::cuda::CUDAGuard guard(input.device());
  return ops::epilogue_kernels::affine_epilogue<CudaPasses>(input, scale, shift, residual, relu);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> affine_epilogue_backward_cuda(
    const at::Tensor& grad_output, const std::optional<at::Tensor>& output, const at::Tensor& input,
    const std::optional<at::Tensor>& scale, bool relu, std::array<bool, 4> mask) {
  c10::cuda::CUDAGuard guard(input.device());
  return ops::epilogue_kernels::affine_epilogue_backward<CudaPasses>(grad_output, output, input, scale, relu, mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CUDA, m) {
  m.impl("batch_norm_epilogue", &batch_norm_epilogue_cuda);
  m.impl("batch_norm_epilogue_backward", &batch_norm_epilogue_backward_cuda);
  m.impl("affine_epilogue", &affine_epilogue_cuda);
  m.impl("affine_epilogue_backward", &affine_epilogue_backward_cuda);
}

}  // namespace leanconv::cuda
