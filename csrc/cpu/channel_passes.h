// CPU runs of the per-channel passes of common/channel_passes.h.
//
// Determinism: every sum has a fixed order whatever the thread count. NCHW: one thread owns a channel and
// walks its planes in order, in kReduceLanes independent op-math accumulators whose totals are added in
// double every kFlushValues values. NHWC: the rows are cut into fixed chunks (not one per thread), each chunk's per-channel op-math sums go
// to its own slot, and the slots are added in chunk order in double. (A cascade: short op-math sums, a long
// double one; the shift by the channel's first value keeps the variance's sums free of cancellation.)
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common/channel_passes.h"
#include "cpu/vectorize.h"

namespace leanconv::cpu {

using common::AffineOperands;
using common::ChannelLayout;
using common::ChannelSums;
using common::ReductionOperands;

namespace detail {

// Independent accumulators of a reduction run: 32 floats are 8 SSE / 4 AVX2 registers per sum, enough to hide
// the add latency (with 8 the loop ran at ~2 cycles per value, latency-bound; with 32 at the memory's speed).
constexpr int64_t kReduceLanes = 32;

// One contiguous run of n values of one channel (an NCHW plane) added to kReduceLanes independent op-math
// accumulators, over __restrict__ pointers so the compiler vectorises the lane loop. The caller moves the lanes
// into double every kFlushValues values (a cascade: short op-math sums, a long double one), not every run: with
// small planes (8x8) the flush would cost as much as the run.
// An AVX2 clone too: with SSE's 16 registers the two 32-lane sums do not fit, and GCC kept them on the stack (a
// store and a reload per value; the pass ran at half the affine pass's speed).
template <bool kStats, bool kMask, bool kWrite, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
LEANCONV_CPU_CLONES void reduce_run(const scalar_t* __restrict__ u, const scalar_t* __restrict__ mask,
                       const scalar_t* __restrict__ x, scalar_t* __restrict__ written, int64_t n, acc_t b,
                       acc_t* __restrict__ first, acc_t* __restrict__ second) {
  // Captured by value: a store through `written` must not make the compiler reload pointers it captured.
  const auto one = [=](int64_t i, acc_t& f, acc_t& q) {
    acc_t v = static_cast<acc_t>(u[i]);
    if constexpr (kStats) {
      v -= b;
      f += v;
      q += v * v;
    } else {
      if constexpr (kMask) v = static_cast<acc_t>(mask[i]) > acc_t(0) ? v : acc_t(0);
      if constexpr (kWrite) written[i] = static_cast<scalar_t>(v);
      f += v;
      q += v * (static_cast<acc_t>(x[i]) - b);
    }
  };
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes) {
    for (int64_t l = 0; l < kReduceLanes; ++l) one(i + l, first[l], second[l]);
  }
  for (int64_t l = 0; i < n; ++i, ++l) one(i, first[l], second[l]);
}

constexpr int64_t kFlushValues = 8192;

template <typename acc_t>
inline void flush_lanes(acc_t* first, acc_t* second, ChannelSums& sums) {
  for (int64_t l = 0; l < kReduceLanes; ++l) {
    sums.first += static_cast<double>(first[l]);
    sums.second += static_cast<double>(second[l]);
    first[l] = second[l] = acc_t(0);
  }
}

template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
void reduce_nchw(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, ChannelSums* sums) {
  using acc_t = at::opmath_type<scalar_t>;
  at::parallel_for(0, L.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const auto base = static_cast<acc_t>(common::reduction_base<kStats>(op, L, c));
      acc_t first[kReduceLanes] = {}, second[kReduceLanes] = {};
      ChannelSums total;
      int64_t pending = 0;
      for (int64_t n = 0; n < L.batch; ++n) {
        const int64_t plane = (n * L.channels + c) * L.spatial;
        reduce_run<kStats, kMask, kWrite>(op.u + plane, kMask ? op.mask + plane : nullptr,
                                          kStats ? nullptr : op.x + plane, kWrite ? op.written + plane : nullptr,
                                          L.spatial, base, first, second);
        pending += L.spatial;
        if (pending >= kFlushValues) {
          flush_lanes(first, second, total);
          pending = 0;
        }
      }
      flush_lanes(first, second, total);
      sums[c] = total;
    }
  });
}

// One row of C channels (NHWC): per-channel op-math partial sums of the chunk, vectorised along the channels.
template <bool kStats, bool kMask, bool kWrite, typename scalar_t, typename acc_t>
LEANCONV_CPU_CLONES void reduce_row(const scalar_t* __restrict__ u, const scalar_t* __restrict__ mask,
                       const scalar_t* __restrict__ x, scalar_t* __restrict__ written, const acc_t* __restrict__ base,
                       int64_t C, acc_t* __restrict__ first, acc_t* __restrict__ second) {
  for (int64_t c = 0; c < C; ++c) {
    acc_t v = static_cast<acc_t>(u[c]);
    if constexpr (kStats) {
      v -= base[c];
      first[c] += v;
      second[c] += v * v;
    } else {
      if constexpr (kMask) v = static_cast<acc_t>(mask[c]) > acc_t(0) ? v : acc_t(0);
      if constexpr (kWrite) written[c] = static_cast<scalar_t>(v);
      first[c] += v;
      second[c] += v * (static_cast<acc_t>(x[c]) - base[c]);
    }
  }
}

template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
void reduce_nhwc(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, ChannelSums* sums) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = L.channels, rows = L.count();
  // Chunks of about 16K values: short enough for op-math partial sums, fixed whatever the thread count.
  const int64_t rows_per_chunk = std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1));
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  std::vector<acc_t> base(C);
  std::vector<double> partial(2 * C * std::max<int64_t>(chunks, 1), 0.0);
  for (int64_t c = 0; c < C; ++c) base[c] = static_cast<acc_t>(common::reduction_base<kStats>(op, L, c));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> first(C), second(C);
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      std::fill(first.begin(), first.end(), acc_t(0));
      std::fill(second.begin(), second.end(), acc_t(0));
      const int64_t row_end = std::min(rows, (chunk + 1) * rows_per_chunk);
      for (int64_t r = chunk * rows_per_chunk; r < row_end; ++r) {
        const int64_t o = r * C;
        reduce_row<kStats, kMask, kWrite>(op.u + o, kMask ? op.mask + o : nullptr, kStats ? nullptr : op.x + o,
                                          kWrite ? op.written + o : nullptr, base.data(), C, first.data(),
                                          second.data());
      }
      double* slot = partial.data() + 2 * C * chunk;
      for (int64_t c = 0; c < C; ++c) {
        slot[c] = static_cast<double>(first[c]);
        slot[C + c] = static_cast<double>(second[c]);
      }
    }
  });
  for (int64_t c = 0; c < C; ++c) sums[c] = {};
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const double* slot = partial.data() + 2 * C * chunk;
    for (int64_t c = 0; c < C; ++c) {
      sums[c].first += slot[c];
      sums[c].second += slot[C + c];
    }
  }
}

// y[i] = act(a*u'[i] + b*x[i] + c0 + residual[i]) over one run, with per-element or per-run coefficients.
template <bool kMask, bool kX, bool kResidual, bool kRelu, bool kPerElement, typename scalar_t, typename acc_t>
LEANCONV_CPU_CLONES void affine_run(const scalar_t* __restrict__ u, const scalar_t* __restrict__ mask,
                       const scalar_t* __restrict__ x, const scalar_t* __restrict__ residual,
                       const acc_t* __restrict__ a, const acc_t* __restrict__ b, const acc_t* __restrict__ c0,
                       scalar_t* __restrict__ y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = kPerElement ? i : 0;
    acc_t v = static_cast<acc_t>(u[i]);
    if constexpr (kMask) v = static_cast<acc_t>(mask[i]) > acc_t(0) ? v : acc_t(0);
    acc_t extra = kResidual ? static_cast<acc_t>(residual[i]) : acc_t(0);
    if constexpr (kX) extra += b[k] * static_cast<acc_t>(x[i]);
    y[i] = static_cast<scalar_t>(common::epilogue_value(v, a[k], c0[k], extra, kRelu));
  }
}

template <bool kMask, bool kX, bool kResidual, bool kRelu, typename scalar_t, typename acc_t>
void affine(const AffineOperands<scalar_t, acc_t>& op, const ChannelLayout& L) {
  const int64_t C = L.channels, S = L.spatial;
  const auto at_offset = [](const scalar_t* p, bool present, int64_t o) { return present ? p + o : nullptr; };
  const auto run = [&](auto per_element, int64_t o, int64_t c, int64_t n) {
    affine_run<kMask, kX, kResidual, kRelu, decltype(per_element)::value>(
        op.u + o, at_offset(op.mask, kMask, o), at_offset(op.x, kX, o), at_offset(op.residual, kResidual, o),
        op.a + c, kX ? op.b + c : nullptr, op.c0 + c, op.y + o, n);
  };
  if (L.channels_last) {
    at::parallel_for(0, L.count(), std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t r = begin; r < end; ++r) run(std::true_type{}, r * C, 0, C);
                     });
  } else {
    at::parallel_for(0, L.batch * C, std::max<int64_t>(1, 16384 / std::max<int64_t>(S, 1)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t plane = begin; plane < end; ++plane) run(std::false_type{}, plane * S, plane % C, S);
                     });
  }
}

}  // namespace detail

// Per-channel sums of x - shift and its square (stats) into sums[C].
template <typename scalar_t>
void reduce_statistics(const scalar_t* x, const ChannelLayout& L, ChannelSums* sums) {
  ReductionOperands<scalar_t> op;
  op.u = x;
  L.channels_last ? detail::reduce_nhwc<true, false, false>(op, L, sums)
                  : detail::reduce_nchw<true, false, false>(op, L, sums);
}

// Per-channel sums of the masked gradient and of its product with x - center, writing it when asked.
template <typename scalar_t>
void reduce_gradient(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, ChannelSums* sums) {
  common::with_reduction_flags(op.mask != nullptr, op.written != nullptr, [&](auto mask, auto write) {
    constexpr bool kMask = decltype(mask)::value, kWrite = decltype(write)::value;
    L.channels_last ? detail::reduce_nhwc<false, kMask, kWrite>(op, L, sums)
                    : detail::reduce_nchw<false, kMask, kWrite>(op, L, sums);
  });
}

// y = act(a[c]*u' + b[c]*x + c0[c] + residual), each optional term compiled in only when present.
template <typename scalar_t, typename acc_t>
void affine_pass(const AffineOperands<scalar_t, acc_t>& op, const ChannelLayout& L) {
  common::with_affine_flags(op.mask != nullptr, op.x != nullptr, op.residual != nullptr, op.relu,
                            [&](auto mask, auto x, auto residual, auto relu) {
                              detail::affine<decltype(mask)::value, decltype(x)::value, decltype(residual)::value,
                                             decltype(relu)::value>(op, L);
                            });
}

}  // namespace leanconv::cpu
