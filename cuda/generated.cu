// CUDA kernels of the generated-weight (RPG) ops. One thread per generated weight in the forward; the
// backward either scatters with atomics (fast) or, when deterministic algorithms are requested, gives
// each ring entry its own thread that walks the inverse permutation over its contributors in a fixed order.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/generated_checks.h"
#include "launch.cuh"
#include "common/generated.h"

namespace leanconv::cuda {
namespace {

template <typename scalar_t>
__global__ void generate_kernel(const scalar_t* __restrict__ ring, scalar_t* __restrict__ out,
                                common::RingPermutation perm, int64_t offset, int64_t numel,
                                at::opmath_type<scalar_t> scale) {
  using opmath_t = at::opmath_type<scalar_t>;
  LEANCONV_GRID_STRIDE(j, numel) {
    const uint64_t g = static_cast<uint64_t>(offset + j);
    const opmath_t value = static_cast<opmath_t>(ring[perm.ring_entry(g)]);
    out[j] = static_cast<scalar_t>(perm.sign(g) > 0 ? scale * value : -scale * value);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void scatter_backward_kernel(const scalar_t* __restrict__ grad, acc_t* __restrict__ acc,
                                        common::RingPermutation perm, int64_t offset, int64_t numel) {
  LEANCONV_GRID_STRIDE(j, numel) {
    const uint64_t g = static_cast<uint64_t>(offset + j);
    const acc_t v = static_cast<acc_t>(grad[j]);
    atomicAdd(acc + perm.ring_entry(g), perm.sign(g) > 0 ? v : -v);
  }
}

// Ring entry m collects the positions v = m, m + N, m + 2N, ... < T of the permuted sequence; the
// position that lands on v is pi^-1(v), which contributes when it lies in this call's range. When the ring
// is small next to T, one thread per entry would leave the GPU idle, so `parts` threads share an entry:
// part p takes the candidates k = p, p + parts, ... and writes its own partial sum, and a second kernel
// adds the partials in order p = 0, 1, ... Every sum has a fixed order: the result is deterministic.
template <typename scalar_t, typename acc_t>
__global__ void gather_backward_kernel(const scalar_t* __restrict__ grad, acc_t* __restrict__ partial,
                                       common::RingPermutation perm, int64_t offset, int64_t numel,
                                       int64_t parts) {
  const int64_t ring_size = static_cast<int64_t>(perm.ring_size);
  LEANCONV_GRID_STRIDE(idx, ring_size * parts) {
    const int64_t m = idx % ring_size, part = idx / ring_size;
    acc_t sum = 0;
    for (uint64_t v = m + part * perm.ring_size; v < perm.total; v += parts * perm.ring_size) {
      const uint64_t g = perm.unpermute(v);
      const int64_t j = static_cast<int64_t>(g) - offset;
      if (j < 0 || j >= numel) continue;
      const acc_t x = static_cast<acc_t>(grad[j]);
      sum += perm.sign(g) > 0 ? x : -x;
    }
    partial[idx] = sum;
  }
}

template <typename acc_t>
__global__ void sum_parts_kernel(const acc_t* __restrict__ partial, acc_t* __restrict__ acc, int64_t ring_size,
                                 int64_t parts) {
  LEANCONV_GRID_STRIDE(m, ring_size) {
    acc_t sum = 0;
    for (int64_t part = 0; part < parts; ++part) sum += partial[part * ring_size + m];
    acc[m] = sum;
  }
}

at::Tensor generate_weights_kernel(const at::Tensor& ring, int64_t seed, int64_t total, int64_t offset,
                                   at::IntArrayRef shape, double scale) {
  checks::check_ring(ring);
  const int64_t numel = checks::checked_numel(shape);
  checks::check_ring_range(total, offset, numel);
  const c10::cuda::CUDAGuard guard(ring.device());
  const auto perm = common::make_ring_permutation(seed, total, ring.numel());
  const auto ring_c = ring.contiguous();
  auto out = at::empty(shape, ring.options());
  if (numel == 0) return out;
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ring.scalar_type(), "generate_weights_cuda", [&] {
    generate_kernel<scalar_t><<<blocks_for(numel), kThreads, 0, stream>>>(
        ring_c.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), perm, offset, numel, static_cast<at::opmath_type<scalar_t>>(scale));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor generate_weights_backward_kernel(const at::Tensor& grad, int64_t ring_size, int64_t seed,
                                            int64_t total, int64_t offset, double scale) {
  checks::check_ring_backward(grad, ring_size, total, offset);
  const int64_t numel = grad.numel();
  const c10::cuda::CUDAGuard guard(grad.device());
  const auto perm = common::make_ring_permutation(seed, total, ring_size);
  const auto grad_c = grad.contiguous();
  const auto opmath_dtype = at::toOpMathType(grad.scalar_type());
  auto acc = at::zeros({ring_size}, grad.options().dtype(opmath_dtype));
  if (numel == 0) return acc.to(grad.scalar_type());
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "generate_weights_backward_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    if (deterministic) {
      // Enough threads to fill the GPU (about 2^20), but no more parts than candidates per entry.
      const int64_t candidates = (total + ring_size - 1) / ring_size;
      const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(candidates, (int64_t(1) << 20) / ring_size));
      auto partial = parts == 1 ? acc : at::empty({parts * ring_size}, acc.options());
      gather_backward_kernel<scalar_t, opmath_t><<<blocks_for(parts * ring_size), kThreads, 0, stream>>>(
          grad_c.const_data_ptr<scalar_t>(), partial.mutable_data_ptr<opmath_t>(), perm, offset, numel, parts);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (parts > 1) {
        sum_parts_kernel<opmath_t><<<blocks_for(ring_size), kThreads, 0, stream>>>(
            partial.const_data_ptr<opmath_t>(), acc.mutable_data_ptr<opmath_t>(), ring_size, parts);
      }
    } else {
      scatter_backward_kernel<scalar_t, opmath_t><<<blocks_for(numel), kThreads, 0, stream>>>(
          grad_c.const_data_ptr<scalar_t>(), acc.mutable_data_ptr<opmath_t>(), perm, offset, numel);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  acc.mul_(scale);
  return acc.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CUDA, m) {
  m.impl("generate_weights", &generate_weights_kernel);
  m.impl("generate_weights_backward", &generate_weights_backward_kernel);
}

}  // namespace leanconv::cuda
