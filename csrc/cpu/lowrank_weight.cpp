// CPU kernels of the materialised path's weight: weight[o, c, t] = sum_r coeff[o, c*R + r] * basis[c, r, t] and
// its two gradients. The weights are small (C_out*C_in*k^2) and the work is a few multiply-adds per element:
// what matters is doing it in one pass per tensor instead of aten's permutes, copies and batched GEMMs of
// R-sized products (several ops per layer and step). Each output element is summed by one thread in a fixed
// order: deterministic whatever the thread count.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "common/lowrank_checks.h"

namespace leanconv::cpu {
namespace {

// Rows of the outer loop a thread takes at once: the loops are short, so chunks of ~4K multiply-adds.
int64_t grain_for(int64_t work_per_row) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(work_per_row, 1)); }

at::Tensor eigen_weight_kernel(const at::Tensor& basis_in, const at::Tensor& coeff_in) {
  const auto w = checks::eigen_weight_sizes(basis_in, coeff_in);
  const auto basis = basis_in.contiguous(), coeff = coeff_in.contiguous();
  auto weight = at::empty({w.out_channels, w.in_channels, basis.size(2), basis.size(3)}, basis.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, basis.scalar_type(), "eigen_weight_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* b = basis.const_data_ptr<scalar_t>();
    const scalar_t* a = coeff.const_data_ptr<scalar_t>();
    scalar_t* out = weight.mutable_data_ptr<scalar_t>();
    const int64_t C = w.in_channels, R = w.rank, T = w.taps;
    at::parallel_for(0, w.out_channels, grain_for(C * R * T), [&](int64_t begin, int64_t end) {
      std::vector<opmath_t> acc(T);
      for (int64_t o = begin; o < end; ++o) {
        for (int64_t c = 0; c < C; ++c) {
          std::fill(acc.begin(), acc.end(), opmath_t(0));
          for (int64_t r = 0; r < R; ++r) {
            const opmath_t factor = a[(o * C + c) * R + r];
            const scalar_t* row = b + (c * R + r) * T;
            for (int64_t t = 0; t < T; ++t) acc[t] += factor * static_cast<opmath_t>(row[t]);
          }
          scalar_t* dst = out + (o * C + c) * T;
          for (int64_t t = 0; t < T; ++t) dst[t] = static_cast<scalar_t>(acc[t]);
        }
      }
    });
  });
  return weight;
}

// grad_basis[c, r, t] = sum_o coeff[o, c*R + r] * grad[o, c, t], o in order: one input channel a row.
template <typename scalar_t>
void eigen_basis_grad(const checks::EigenWeightSizes& w, const scalar_t* grad, const scalar_t* coeff, scalar_t* out) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t O = w.out_channels, C = w.in_channels, R = w.rank, T = w.taps;
  at::parallel_for(0, C, grain_for(O * R * T), [&](int64_t begin, int64_t end) {
    std::vector<opmath_t> acc(R * T);
    for (int64_t c = begin; c < end; ++c) {
      std::fill(acc.begin(), acc.end(), opmath_t(0));
      for (int64_t o = 0; o < O; ++o) {
        const scalar_t* grad_row = grad + (o * C + c) * T;
        for (int64_t r = 0; r < R; ++r) {
          const opmath_t factor = coeff[(o * C + c) * R + r];
          for (int64_t t = 0; t < T; ++t) acc[r * T + t] += factor * static_cast<opmath_t>(grad_row[t]);
        }
      }
      for (int64_t k = 0; k < R * T; ++k) out[c * R * T + k] = static_cast<scalar_t>(acc[k]);
    }
  });
}

// grad_coeff[o, c*R + r] = sum_t grad[o, c, t] * basis[c, r, t], t in order: one output channel a row.
template <typename scalar_t>
void eigen_coeff_grad(const checks::EigenWeightSizes& w, const scalar_t* grad, const scalar_t* basis, scalar_t* out) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t C = w.in_channels, R = w.rank, T = w.taps;
  at::parallel_for(0, w.out_channels, grain_for(C * R * T), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o)
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* grad_row = grad + (o * C + c) * T;
        for (int64_t r = 0; r < R; ++r) {
          const scalar_t* basis_row = basis + (c * R + r) * T;
          opmath_t sum = 0;
          for (int64_t t = 0; t < T; ++t) sum += static_cast<opmath_t>(grad_row[t]) * static_cast<opmath_t>(basis_row[t]);
          out[(o * C + c) * R + r] = static_cast<scalar_t>(sum);
        }
      }
  });
}

std::tuple<at::Tensor, at::Tensor> eigen_weight_backward_kernel(const at::Tensor& grad_in, const at::Tensor& basis_in,
                                                                const at::Tensor& coeff_in,
                                                                std::array<bool, 2> output_mask) {
  const auto w = checks::eigen_weight_backward_sizes(grad_in, basis_in, coeff_in);
  const auto grad = grad_in.contiguous(), basis = basis_in.contiguous(), coeff = coeff_in.contiguous();
  at::Tensor grad_basis = output_mask[0] ? at::empty(basis.sizes(), basis.options()) : at::Tensor();
  at::Tensor grad_coeff = output_mask[1] ? at::empty(coeff.sizes(), coeff.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, basis.scalar_type(), "eigen_weight_backward_cpu", [&] {
    if (output_mask[0])
      eigen_basis_grad(w, grad.const_data_ptr<scalar_t>(), coeff.const_data_ptr<scalar_t>(),
                       grad_basis.mutable_data_ptr<scalar_t>());
    if (output_mask[1])
      eigen_coeff_grad(w, grad.const_data_ptr<scalar_t>(), basis.const_data_ptr<scalar_t>(),
                       grad_coeff.mutable_data_ptr<scalar_t>());
  });
  return {grad_basis, grad_coeff};
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("eigen_weight", &eigen_weight_kernel);
  m.impl("eigen_weight_backward", &eigen_weight_backward_kernel);
}

}  // namespace leanconv::cpu
