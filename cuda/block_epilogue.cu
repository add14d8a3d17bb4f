// CUDA kernels of the block-epilogue ops: common/block_epilogue_kernels.h over the CUDA passes (cuda/channel_passes.cuh),
// whose per-channel finish runs on the device. Deterministic: every sum has a fixed order.
#include "channel_passes.cuh"
#include "runtime.cuh"
#include "common/block_epilogue_kernels.h"

namespace leanconv::cuda {
namespace {

struct CudaPasses {
  using DeviceGuard = runtime::DeviceGuard;

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

}  // namespace

LEANCONV_CUDA_KERNELS(m) {
  namespace kernels = common::block_epilogue_kernels;
  m.impl("batch_norm_epilogue", &kernels::batch_norm_epilogue<CudaPasses>);
  m.impl("batch_norm_epilogue_backward", &kernels::batch_norm_epilogue_backward<CudaPasses>);
  m.impl("affine_epilogue", &kernels::affine_epilogue<CudaPasses>);
  m.impl("affine_epilogue_backward", &kernels::affine_epilogue_backward<CudaPasses>);
}

}  // namespace leanconv::cuda
