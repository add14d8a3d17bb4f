// CUDA runs of the per-channel passes of common/channel_passes.h, written for memory bandwidth.
//
// Reductions are two-stage and deterministic. Stage one: each block adds one chunk of one channel's values (NCHW)
// or of a tile of channels (NHWC) in a fixed tree and writes the chunk's sums to its own slot. Stage two: one warp
// per channel adds its slots in a fixed order (each lane its chunks in order, then a shuffle tree) and hands the
// sums to the op's finisher (common/block_epilogue.h). The chunks come from the shape and the device's SM
// count only (about kBlocksPerSM blocks per SM), and which thread adds which value from the shape only: the same
// input gives the same bits on every run, whatever its address.
//
// Values move in 16-byte vectors (kVec = 16 / sizeof(scalar_t) values) where the layout and every pointer allow:
// NCHW when the plane size H*W is a multiple of kVec, NHWC when C is. Elsewhere the same threads read the same
// values one at a time, in the same order. NCHW offsets and the affine pass's channels come from fast dividers
// (a multiply-high per group of kVec values instead of two 64-bit divisions per value).
#pragma once

#include <ATen/ops/empty.h>

#include <algorithm>

#include "common/channel_passes.h"
#include "index_math.cuh"
#include "launch.cuh"
#include "runtime.cuh"

namespace leanconv::cuda {

using common::AffineOperands;
using common::ChannelLayout;
using common::ChannelSums;
using common::ReductionOperands;

constexpr int kReduceThreads = 256;
// Blocks per SM of a reduction: 4 x 256 threads, each with a 16-byte load in flight, keep about as many bytes in
// flight per SM as the H200's bandwidth-latency product asks (~20 KB), without slivers of work per block.
constexpr int64_t kBlocksPerSM = 4;
// A chunk gives each thread at least this many vector groups, so a block's fixed cost stays small.
constexpr int64_t kMinGroupsPerThread = 4;

inline int64_t target_blocks() {
  return kBlocksPerSM * runtime::sm_count();
}

// How many chunks `items` work items make when `wanted` are asked for: at least one, and none smaller than
// `minimum` items (unless there is only one).
inline int64_t chunk_count(int64_t items, int64_t wanted, int64_t minimum) {
  return std::clamp<int64_t>(wanted, 1, std::max<int64_t>(1, items / minimum));
}

// ---- loads of one vector group ------------------------------------------------------------------------------

// The operands of a reduction at one offset, as vectors (only those the mode reads are loaded).
template <bool kStats, bool kMask, typename scalar_t>
struct ReductionVectors {
  Vec<scalar_t> u, mask, x;

  __device__ __forceinline__ ReductionVectors(const ReductionOperands<scalar_t>& op, int64_t offset) {
    u = load_vec(op.u + offset);
    if constexpr (kMask) mask = load_vec(op.mask + offset);
    if constexpr (!kStats) x = load_vec(op.x + offset);
  }
};

// Adds the kVec values at `offset` (aligned) to one channel's sums, in order, writing the masked gradient.
template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
__device__ __forceinline__ void accumulate_vector(const ReductionOperands<scalar_t>& op, int64_t offset, double base,
                                                  double& first, double& second) {
  const ReductionVectors<kStats, kMask, scalar_t> in(op, offset);
  Vec<scalar_t> written;
#pragma unroll
  for (int v = 0; v < kVec<scalar_t>; ++v) {
    written.v[v] = static_cast<scalar_t>(
        common::accumulate_terms<kStats, kMask>(in.u.v[v], in.mask.v[v], in.x.v[v], base, first, second));
  }
  if constexpr (kWrite) store_vec(op.written + offset, written);
}

// Whether every pointer a reduction reads or writes is 16-byte aligned.
template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
bool reduction_aligned(const ReductionOperands<scalar_t>& op) {
  return aligned_16(op.u) && (!kMask || aligned_16(op.mask)) && (kStats || aligned_16(op.x)) &&
         (!kWrite || aligned_16(op.written));
}

// ---- block-level fixed-order sums ---------------------------------------------------------------------------

// Sums (first, second) down each column of a block seen as `rows` x `columns` threads (rows a power of two), in a
// fixed tree; the column's sums land in its row-0 thread. `shared` holds 2 * rows * columns doubles; every thread
// of the block must call this (it synchronises).
__device__ __forceinline__ void column_tree_sum(double* shared, int row, int column, int rows, int columns,
                                                double& first, double& second) {
  const int slot = row * columns + column, size = rows * columns;
  shared[slot] = first;
  shared[size + slot] = second;
  __syncthreads();
  for (int half = rows / 2; half > 0; half /= 2) {
    if (row < half) {
      shared[slot] += shared[slot + half * columns];
      shared[size + slot] += shared[size + slot + half * columns];
    }
    __syncthreads();
  }
  first = shared[column];
  second = shared[size + column];
  __syncthreads();  // the caller may reuse `shared`
}

// ---- NCHW reduction -------------------------------------------------------------------------------------------

// Block (c, chunk) adds the kVec-value groups [chunk * groups_per_chunk, ...) of channel c's count = N*H*W values
// (in (n, h, w) order), thread t the groups t, t + 256, ...: group g starts at value m = g * kVec of plane
// n = m / (H*W), one fast division per group. Vectors when `vectorized` (H*W a multiple of kVec, aligned).
template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_nchw_kernel(ReductionOperands<scalar_t> op, ChannelLayout L, FastDivider plane_size,
                       int64_t groups_per_chunk, bool vectorized, double* partial) {
  constexpr int V = kVec<scalar_t>;
  LEANCONV_SHARED(double, shared, [2 * kReduceThreads]);
  const int64_t c = blockIdx.x, chunk = blockIdx.y, chunks = gridDim.y, count = L.count(), S = L.spatial;
  const double base = common::reduction_base<kStats>(op, L, c);
  const int64_t group_end = std::min(ceil_div(count, int64_t(V)), (chunk + 1) * groups_per_chunk);
  double first = 0, second = 0;
  for (int64_t group = chunk * groups_per_chunk + threadIdx.x; group < group_end; group += kReduceThreads) {
    const int64_t m = group * V;
    int64_t n = plane_size.div(m), s = m - n * S;
    if (vectorized) {
      accumulate_vector<kStats, kMask, kWrite>(op, (n * L.channels + c) * S + s, base, first, second);
      continue;
    }
    for (int v = 0; v < V && m + v < count; ++v) {  // the group may run over a plane's end: follow (n, s)
      common::accumulate_value<kStats, kMask, kWrite>(op, (n * L.channels + c) * S + s, base, first, second);
      if (++s == S) {
        s = 0;
        ++n;
      }
    }
  }
  column_tree_sum(shared, threadIdx.x, 0, kReduceThreads, 1, first, second);
  if (threadIdx.x == 0) {
    partial[2 * (c * chunks + chunk)] = first;
    partial[2 * (c * chunks + chunk) + 1] = second;
  }
}

// ---- NHWC reduction -------------------------------------------------------------------------------------------

// A block is channel_threads x row_threads (256 in all): thread (tx, ty) owns the kVec channels starting at
// (blockIdx.x * channel_threads + tx) * kVec and adds rows ty, ty + row_threads, ... of its chunk, so a warp reads
// whole rows of adjacent channels. Vectors when `vectorized` (C a multiple of kVec, aligned).
template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_nhwc_kernel(ReductionOperands<scalar_t> op, ChannelLayout L, int64_t rows_per_chunk, bool vectorized,
                       double* partial) {
  constexpr int V = kVec<scalar_t>;
  LEANCONV_SHARED(double, shared, [2 * kReduceThreads]);
  const int64_t C = L.channels, chunk = blockIdx.y, chunks = gridDim.y;
  const int64_t c0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  const int64_t row_end = std::min(L.count(), (chunk + 1) * rows_per_chunk);
  double base[V], first[V], second[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    base[v] = c0 + v < C ? common::reduction_base<kStats>(op, L, c0 + v) : 0.0;
    first[v] = second[v] = 0;
  }
  for (int64_t r = chunk * rows_per_chunk + threadIdx.y; r < row_end && c0 < C; r += blockDim.y) {
    const int64_t offset = r * C + c0;
    if (vectorized) {
      const ReductionVectors<kStats, kMask, scalar_t> in(op, offset);
      Vec<scalar_t> written;
#pragma unroll
      for (int v = 0; v < V; ++v) {
        written.v[v] = static_cast<scalar_t>(common::accumulate_terms<kStats, kMask>(
            in.u.v[v], in.mask.v[v], in.x.v[v], base[v], first[v], second[v]));
      }
      if constexpr (kWrite) store_vec(op.written + offset, written);
      continue;
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      if (c0 + v < C) common::accumulate_value<kStats, kMask, kWrite>(op, offset + v, base[v], first[v], second[v]);
    }
  }
#pragma unroll
  for (int v = 0; v < V; ++v) {
    column_tree_sum(shared, threadIdx.y, threadIdx.x, blockDim.y, blockDim.x, first[v], second[v]);
    if (threadIdx.y == 0 && c0 + v < C) {
      partial[2 * ((c0 + v) * chunks + chunk)] = first[v];
      partial[2 * ((c0 + v) * chunks + chunk) + 1] = second[v];
    }
  }
}

// ---- stage two: the chunks' sums per channel --------------------------------------------------------------------

// One warp per channel: lane l adds chunks l, l + 32, ... in order, then a shuffle tree adds the lanes.
template <typename Finish>
__global__ void finish_channels_kernel(const double* __restrict__ partial, int64_t chunks, int64_t channels,
                                       Finish finish) {
  constexpr int kWarp = 32;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / kWarp;
  for (int64_t c = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; c < channels; c += warps) {
    double first = 0, second = 0;
    for (int64_t chunk = lane; chunk < chunks; chunk += kWarp) {
      first += partial[2 * (c * chunks + chunk)];
      second += partial[2 * (c * chunks + chunk) + 1];
    }
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      first += __shfl_down_sync(0xffffffffu, first, offset);
      second += __shfl_down_sync(0xffffffffu, second, offset);
    }
    if (lane == 0) {
      ChannelSums sums;
      sums.first = first;
      sums.second = second;
      finish(c, sums);
    }
  }
}

// ---- launch ---------------------------------------------------------------------------------------------------

// The NHWC block shape: enough channel threads for C (a power of two up to a warp), the rest of 256 along rows.
inline Dims nhwc_block(int64_t channels, int vec) {
  int64_t channel_threads = 1;
  while (channel_threads < 32 && channel_threads * vec < channels) channel_threads *= 2;
  return Dims(channel_threads, kReduceThreads / channel_threads);
}

// Runs the reduction pass, then finish(c, sums) for every channel, on the current stream.
template <bool kStats, bool kMask, bool kWrite, typename scalar_t, typename Finish>
void reduce_and_finish(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, const at::Tensor& like,
                       const Finish& finish) {
  constexpr int V = kVec<scalar_t>;
  if (L.channels == 0) return;
  const auto stream = runtime::current_stream();
  const bool aligned = reduction_aligned<kStats, kMask, kWrite>(op);
  const int64_t count = L.count();
  if (L.channels_last) {
    const Dims block = nhwc_block(L.channels, V);
    const int64_t tiles = ceil_div(L.channels, block.x * V);
    const int64_t rows_per_chunk = std::max<int64_t>(
        1, ceil_div(count, chunk_count(count, ceil_div(target_blocks(), tiles), block.y * kMinGroupsPerThread)));
    const int64_t chunks = std::max<int64_t>(1, ceil_div(count, rows_per_chunk));
    auto partial = at::empty({L.channels, chunks, 2}, like.options().dtype(at::kDouble));
    launch(LEANCONV_KERNEL(reduce_nhwc_kernel<kStats, kMask, kWrite, scalar_t>),
           {{tiles, chunks}, block, kReduceThreads}, stream, op, L, rows_per_chunk, aligned && L.channels % V == 0,
           partial.mutable_data_ptr<double>());
    launch(LEANCONV_KERNEL(finish_channels_kernel<Finish>), {blocks_for(L.channels * 32), kThreads}, stream,
           partial.const_data_ptr<double>(), chunks, L.channels, finish);
  } else {
    const int64_t groups = ceil_div(count, V);
    const int64_t groups_per_chunk = std::max<int64_t>(
        1, ceil_div(groups, chunk_count(groups, ceil_div(target_blocks(), L.channels),
                                        kReduceThreads * kMinGroupsPerThread)));
    const int64_t chunks = std::max<int64_t>(1, ceil_div(groups, groups_per_chunk));
    auto partial = at::empty({L.channels, chunks, 2}, like.options().dtype(at::kDouble));
    launch(LEANCONV_KERNEL(reduce_nchw_kernel<kStats, kMask, kWrite, scalar_t>),
           {{L.channels, chunks}, kReduceThreads, kReduceThreads}, stream, op, L,
           FastDivider(std::max<int64_t>(1, L.spatial)), groups_per_chunk, aligned && L.spatial % V == 0,
           partial.mutable_data_ptr<double>());
    launch(LEANCONV_KERNEL(finish_channels_kernel<Finish>), {blocks_for(L.channels * 32), kThreads}, stream,
           partial.const_data_ptr<double>(), chunks, L.channels, finish);
  }
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

// ---- affine pass ----------------------------------------------------------------------------------------------

// The channel of offset i: (i / run) % C, with run = H*W (NCHW) or 1 (NHWC), by fast dividers.
struct ChannelOf {
  FastDivider run, channels;

  __device__ __forceinline__ int64_t operator()(int64_t i) const { return channels.mod(run.div(i)); }
};

// Grid-stride over groups of kVec values. A vectorised group lies in one NCHW plane (one channel) or holds kVec
// consecutive NHWC channels; otherwise each value finds its own channel.
template <bool kMask, bool kX, bool kResidual, bool kRelu, typename scalar_t, typename acc_t>
__global__ void affine_kernel(AffineOperands<scalar_t, acc_t> op, int64_t numel, ChannelOf channel_of,
                              bool channels_last, bool vectorized) {
  constexpr int V = kVec<scalar_t>;
  LEANCONV_GRID_STRIDE(group, (numel + V - 1) / V) {
    const int64_t i = group * V;
    if (vectorized) {
      const Vec<scalar_t> u = load_vec(op.u + i);
      Vec<scalar_t> mask, x, residual, y;
      if constexpr (kMask) mask = load_vec(op.mask + i);
      if constexpr (kX) x = load_vec(op.x + i);
      if constexpr (kResidual) residual = load_vec(op.residual + i);
      const int64_t c = channel_of(i);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int64_t cv = channels_last ? c + v : c;
        y.v[v] = common::affine_result<kMask, kX, kResidual, kRelu>(u.v[v], mask.v[v], x.v[v], residual.v[v], op.a[cv],
                                                                    kX ? op.b[cv] : acc_t(0), op.c0[cv]);
      }
      store_vec(op.y + i, y);
      continue;
    }
    for (int64_t k = i; k < i + V && k < numel; ++k) {
      const int64_t c = channel_of(k);
      common::affine_value<kMask, kX, kResidual, kRelu>(op, k, op.a[c], kX ? op.b[c] : acc_t(0), op.c0[c]);
    }
  }
}

template <typename scalar_t, typename acc_t>
void affine_pass(const AffineOperands<scalar_t, acc_t>& op, const ChannelLayout& L) {
  constexpr int V = kVec<scalar_t>;
  if (L.numel() == 0) return;
  const bool aligned = aligned_16(op.u) && aligned_16(op.y) && (op.mask == nullptr || aligned_16(op.mask)) &&
                       (op.x == nullptr || aligned_16(op.x)) && (op.residual == nullptr || aligned_16(op.residual));
  const bool vectorized = aligned && (L.channels_last ? L.channels % V == 0 : L.spatial % V == 0);
  const ChannelOf channel_of{FastDivider(L.channels_last ? 1 : L.spatial), FastDivider(L.channels)};
  common::with_affine_flags(op.mask != nullptr, op.x != nullptr, op.residual != nullptr, op.relu,
                            [&](auto mask, auto x, auto residual, auto relu) {
                              launch(LEANCONV_KERNEL(affine_kernel<decltype(mask)::value, decltype(x)::value,
                                                                   decltype(residual)::value, decltype(relu)::value,
                                                                   scalar_t, acc_t>),
                                     {blocks_for(ceil_div(L.numel(), V)), kThreads}, runtime::current_stream(), op,
                                     L.numel(), channel_of, L.channels_last, vectorized);
                            });
}

}  // namespace leanconv::cuda
