// CUDA runs of the per-channel passes of common/channel_passes.h.
//
// Reductions are two-stage and deterministic: each block sums one chunk of one channel's values (NCHW: 256
// threads along the channel's values; NHWC: 32 channels x 8 rows, so a warp reads 32 adjacent channels) in a
// fixed tree, writes the chunk's sums to its own slot, and a second kernel adds the slots in chunk order, one
// thread per channel, handing each channel's sums to the op's finisher (common/batch_norm_epilogue.h).
// The affine pass is a grid-stride elementwise kernel.
#pragma once

#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>

#include "common/channel_passes.h"
#include "launch.cuh"

namespace leanconv::cuda {

using common::AffineOperands;
using common::ChannelLayout;
using common::ChannelSums;
using common::ReductionOperands;

constexpr int kReduceThreads = 256;
constexpr int kTileChannels = 32, kTileRows = 8;  // NHWC block: kTileChannels x kTileRows threads
constexpr int64_t kMaxChunks = 4096;

// Values of a channel per chunk: at least `minimum`, and few enough chunks for a legal grid.
inline int64_t values_per_chunk(int64_t count, int64_t minimum) {
  return std::max<int64_t>(minimum, (count + kMaxChunks - 1) / kMaxChunks);
}

template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_nchw_kernel(ReductionOperands<scalar_t> op, ChannelLayout L, int64_t per_chunk, double* partial) {
  __shared__ double first_sh[kReduceThreads], second_sh[kReduceThreads];
  const int64_t c = blockIdx.x, chunk = blockIdx.y;
  const double base = common::reduction_base<kStats>(op, L, c);
  const int64_t begin = chunk * per_chunk, end = std::min(L.count(), begin + per_chunk);
  double first = 0, second = 0;
  for (int64_t m = begin + threadIdx.x; m < end; m += kReduceThreads) {
    common::accumulate_value<kStats, kMask, kWrite>(op, L.offset(c, m), base, first, second);
  }
  first_sh[threadIdx.x] = first;
  second_sh[threadIdx.x] = second;
  __syncthreads();
  for (int half = kReduceThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      first_sh[threadIdx.x] += first_sh[threadIdx.x + half];
      second_sh[threadIdx.x] += second_sh[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    partial[2 * (chunk * L.channels + c)] = first_sh[0];
    partial[2 * (chunk * L.channels + c) + 1] = second_sh[0];
  }
}

template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
__global__ void __launch_bounds__(kTileChannels* kTileRows)
    reduce_nhwc_kernel(ReductionOperands<scalar_t> op, ChannelLayout L, int64_t per_chunk, double* partial) {
  __shared__ double first_sh[kTileRows][kTileChannels], second_sh[kTileRows][kTileChannels];
  const int64_t c = int64_t(blockIdx.x) * kTileChannels + threadIdx.x, chunk = blockIdx.y;
  const int64_t begin = chunk * per_chunk, end = std::min(L.count(), begin + per_chunk);
  double first = 0, second = 0;
  if (c < L.channels) {
    const double base = common::reduction_base<kStats>(op, L, c);
    for (int64_t m = begin + threadIdx.y; m < end; m += kTileRows) {
      common::accumulate_value<kStats, kMask, kWrite>(op, m * L.channels + c, base, first, second);
    }
  }
  first_sh[threadIdx.y][threadIdx.x] = first;
  second_sh[threadIdx.y][threadIdx.x] = second;
  __syncthreads();
  if (threadIdx.y == 0 && c < L.channels) {
    for (int r = 1; r < kTileRows; ++r) {
      first += first_sh[r][threadIdx.x];
      second += second_sh[r][threadIdx.x];
    }
    partial[2 * (chunk * L.channels + c)] = first;
    partial[2 * (chunk * L.channels + c) + 1] = second;
  }
}

template <typename Finish>
__global__ void finish_channels_kernel(const double* partial, int64_t chunks, int64_t channels, Finish finish) {
  LEANCONV_GRID_STRIDE(c, channels) {
    ChannelSums sums;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      sums.first += partial[2 * (chunk * channels + c)];
      sums.second += partial[2 * (chunk * channels + c) + 1];
    }
    finish(c, sums);
  }
}

// Runs the reduction pass, then finish(c, sums) for every channel, on the current stream.
template <bool kStats, bool kMask, bool kWrite, typename scalar_t, typename Finish>
void reduce_and_finish(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, const at::Tensor& like,
                       const Finish& finish) {
  if (L.channels == 0) return;
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t per_chunk = L.channels_last ? values_per_chunk(L.count(), 256) : values_per_chunk(L.count(), 8192);
  const int64_t chunks = std::max<int64_t>(1, (L.count() + per_chunk - 1) / per_chunk);
  auto partial = at::empty({chunks, L.channels, 2}, like.options().dtype(at::kDouble));
  if (L.channels_last) {
    const dim3 grid((L.channels + kTileChannels - 1) / kTileChannels, chunks), block(kTileChannels, kTileRows);
    reduce_nhwc_kernel<kStats, kMask, kWrite><<<grid, block, 0, stream>>>(op, L, per_chunk,
                                                                          partial.mutable_data_ptr<double>());
  } else {
    const dim3 grid(L.channels, chunks);
    reduce_nchw_kernel<kStats, kMask, kWrite><<<grid, kReduceThreads, 0, stream>>>(op, L, per_chunk,
                                                                                  partial.mutable_data_ptr<double>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  finish_channels_kernel<<<blocks_for(L.channels), kThreads, 0, stream>>>(partial.const_data_ptr<double>(), chunks,
                                                                          L.channels, finish);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, typename Finish>
void reduce_statistics(const scalar_t* x, const ChannelLayout& L, const at::Tensor& like, const Finish& finish) {
  ReductionOperands<scalar_t> op;
  op.u = x;
  reduce_and_finish<true, false, false>(op, L, like, finish);
}

template <typename scalar_t, typename Finish>
void reduce_gradient(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, const at::Tensor& like,
                     const Finish& finish) {
  common::with_reduction_flags(op.mask != nullptr, op.written != nullptr, [&](auto mask, auto write) {
    reduce_and_finish<false, decltype(mask)::value, decltype(write)::value>(op, L, like, finish);
  });
}

template <bool kMask, bool kX, bool kResidual, bool kRelu, typename scalar_t, typename acc_t>
__global__ void affine_kernel(AffineOperands<scalar_t, acc_t> op, ChannelLayout L) {
  LEANCONV_GRID_STRIDE(i, L.numel()) {
    const int64_t c = L.channel_of(i);
    common::affine_value<kMask, kX, kResidual, kRelu>(op, i, op.a[c], kX ? op.b[c] : acc_t(0), op.c0[c]);
  }
}

template <typename scalar_t, typename acc_t>
void affine_pass(const AffineOperands<scalar_t, acc_t>& op, const ChannelLayout& L) {
  if (L.numel() == 0) return;
  common::with_affine_flags(op.mask != nullptr, op.x != nullptr, op.residual != nullptr, op.relu,
                            [&](auto mask, auto x, auto residual, auto relu) {
                              affine_kernel<decltype(mask)::value, decltype(x)::value, decltype(residual)::value,
                                            decltype(relu)::value>
                                  <<<blocks_for(L.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(op, L);
                            });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace leanconv::cuda
