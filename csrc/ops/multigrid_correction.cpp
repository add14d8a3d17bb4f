// The multigrid coarse-grid correction, a composite of two fused ops: the grouped prolongation conv of the coarse
// change, and the block epilogue (BatchNorm + the fine level's residual) over the fine feature map. Registered as
// CompositeImplicitAutograd: autograd, torch.compile and torch.func see the two ops, each with its own backward.
#include <ATen/ops/convolution.h>
#include <ATen/ops/sub.h>
#include <c10/core/ScalarType.h>
#include <torch/library.h>

#include <vector>

#include "common/checks.h"
#include "leanconv/ops/block_epilogue.h"
#include "leanconv/ops/multigrid.h"

namespace leanconv::ops {

at::Tensor coarse_grid_correction(const at::Tensor& fine, const at::Tensor& coarse, const at::Tensor& restricted,
                                  const at::Tensor& prolongation, int64_t groups,
                                  const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
                                  const std::optional<at::Tensor>& running_mean,
                                  const std::optional<at::Tensor>& running_var, bool training, double momentum,
                                  double eps, bool use_kernel) {
  // coarse - restricted would broadcast: refuse anything but equal shapes.
  TORCH_CHECK(coarse.sizes() == restricted.sizes(), "leanconv: coarse_grid_correction needs coarse and restricted of ",
              "one shape, got ", coarse.sizes(), " and ", restricted.sizes());
  checks::check_dim(prolongation, 4, "prolongation (C, C_coarse/groups, 1, 1)");
  TORCH_CHECK(prolongation.size(2) == 1 && prolongation.size(3) == 1,
              "leanconv: coarse_grid_correction's prolongation is a 1x1 conv weight, got shape ", prolongation.sizes());
  TORCH_CHECK(fine.dim() == 4 && coarse.dim() == 4 && fine.size(0) == coarse.size(0) &&
                  fine.size(1) == prolongation.size(0) && fine.size(2) == coarse.size(2) &&
                  fine.size(3) == coarse.size(3),
              "leanconv: coarse_grid_correction needs fine (N, C, H, W) and coarse (N, C_coarse, H, W) with C = ",
              "prolongation.size(0), got fine ", fine.sizes(), ", coarse ", coarse.sizes(), " and prolongation ",
              prolongation.sizes());
  const auto change = at::sub(coarse, restricted);
  const std::vector<int64_t> ones{1, 1}, zeros{0, 0};
  const auto prolonged = use_kernel ? grouped_conv2d(change, prolongation, std::nullopt, ones, zeros, ones, groups)
                                    : at::convolution(change, prolongation, std::nullopt, ones, zeros, ones, false,
                                                      zeros, groups);
  // Under autocast the prolongation runs in the autocast dtype: the sum is then in the promoted dtype, as
  // fine + BN(conv(...)) would be.
  const auto dtype = c10::promoteTypes(prolonged.scalar_type(), fine.scalar_type());
  return fused_batch_norm(prolonged.to(dtype), running_mean, running_var, weight, bias, fine.to(dtype), training,
                          momentum, eps, /*relu=*/false);
}

}  // namespace leanconv::ops

TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  m.def("coarse_grid_correction(Tensor fine, Tensor coarse, Tensor restricted, Tensor prolongation, int groups, "
        "Tensor? weight, Tensor? bias, Tensor(a!)? running_mean, Tensor(b!)? running_var, bool training, "
        "float momentum, float eps, bool use_kernel) -> Tensor");
}

TORCH_LIBRARY_IMPL(leanconv, CompositeImplicitAutograd, m) {
  m.impl("coarse_grid_correction", &leanconv::ops::coarse_grid_correction);
}
