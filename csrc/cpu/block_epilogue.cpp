// CPU kernels of the block-epilogue ops: common/block_epilogue_kernels.h over the CPU passes (cpu/channel_passes.h).
// Deterministic whatever the thread count.
#include <torch/library.h>

#include <vector>

#include "cpu/channel_passes.h"
#include "common/block_epilogue_kernels.h"

namespace leanconv::cpu {
namespace {

// The passes as common/block_epilogue_kernels.h calls them: the reductions' per-channel finish runs on the host.
struct CpuPasses {
  struct DeviceGuard {
    explicit DeviceGuard(c10::Device) {}
  };

  template <typename scalar_t, typename Finish>
  static void reduce_statistics(const scalar_t* x, const ChannelLayout& L, const at::Tensor&, const Finish& finish) {
    std::vector<ChannelSums> sums(L.channels);
    cpu::reduce_statistics(x, L, sums.data());
    for (int64_t c = 0; c < L.channels; ++c) finish(c, sums[c]);
  }

  template <typename scalar_t, typename Finish>
  static void reduce_gradient(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, const at::Tensor&,
                              const Finish& finish) {
    std::vector<ChannelSums> sums(L.channels);
    cpu::reduce_gradient(op, L, sums.data());
    for (int64_t c = 0; c < L.channels; ++c) finish(c, sums[c]);
  }

  template <typename scalar_t, typename acc_t>
  static void affine_pass(const AffineOperands<scalar_t, acc_t>& op, const ChannelLayout& L) {
    cpu::affine_pass(op, L);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  namespace kernels = common::block_epilogue_kernels;
  m.impl("batch_norm_epilogue", &kernels::batch_norm_epilogue<CpuPasses>);
  m.impl("batch_norm_epilogue_backward", &kernels::batch_norm_epilogue_backward<CpuPasses>);
  m.impl("affine_epilogue", &kernels::affine_epilogue<CpuPasses>);
  m.impl("affine_epilogue_backward", &kernels::affine_epilogue_backward<CpuPasses>);
}

}  // namespace leanconv::cpu
