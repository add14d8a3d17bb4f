// CPU runs of the per-channel passes of common/channel_passes.h.
//
// Determinism: every sum has a fixed order whatever the thread count. NCHW: one thread owns a channel and
// walks its planes in order, in kLanes independent double accumulators combined in a fixed order. NHWC: the
// rows are cut into fixed chunks (not one per thread), each chunk's per-channel sums go to its own slot, and the
// slots are added in chunk order.
#pragma once

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

template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
void reduce_nchw(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, ChannelSums* sums) {
  at::parallel_for(0, L.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const double base = common::reduction_base<kStats>(op, L, c);
      double first[kLanes] = {}, second[kLanes] = {};
      double first_tail = 0, second_tail = 0;
      for (int64_t n = 0; n < L.batch; ++n) {
        const int64_t plane = (n * L.channels + c) * L.spatial;
        int64_t s = 0;
        for (; s + kLanes <= L.spatial; s += kLanes) {
          for (int64_t l = 0; l < kLanes; ++l) {
            common::accumulate_value<kStats, kMask, kWrite>(op, plane + s + l, base, first[l], second[l]);
          }
        }
        for (; s < L.spatial; ++s) common::accumulate_value<kStats, kMask, kWrite>(op, plane + s, base, first_tail, second_tail);
      }
      ChannelSums total{first_tail, second_tail};
      for (int64_t l = 0; l < kLanes; ++l) {
        total.first += first[l];
        total.second += second[l];
      }
      sums[c] = total;
    }
  });
}

template <bool kStats, bool kMask, bool kWrite, typename scalar_t>
void reduce_nhwc(const ReductionOperands<scalar_t>& op, const ChannelLayout& L, ChannelSums* sums) {
  const int64_t C = L.channels, rows = L.count();
  const int64_t rows_per_chunk = std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1));
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  std::vector<double> base(C), partial(2 * C * std::max<int64_t>(chunks, 1), 0.0);
  for (int64_t c = 0; c < C; ++c) base[c] = common::reduction_base<kStats>(op, L, c);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      double* first = partial.data() + 2 * C * chunk;
      double* second = first + C;
      const int64_t row_end = std::min(rows, (chunk + 1) * rows_per_chunk);
      for (int64_t r = chunk * rows_per_chunk; r < row_end; ++r) {
        for (int64_t c = 0; c < C; ++c) common::accumulate_value<kStats, kMask, kWrite>(op, r * C + c, base[c], first[c], second[c]);
      }
    }
  });
  for (int64_t c = 0; c < C; ++c) sums[c] = {};
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const double* first = partial.data() + 2 * C * chunk;
    for (int64_t c = 0; c < C; ++c) {
      sums[c].first += first[c];
      sums[c].second += first[C + c];
    }
  }
}

template <bool kMask, bool kX, bool kResidual, bool kRelu, typename scalar_t, typename acc_t>
void affine(const AffineOperands<scalar_t, acc_t>& op, const ChannelLayout& L) {
  const int64_t C = L.channels, S = L.spatial;
  if (L.channels_last) {
    at::parallel_for(0, L.count(), std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t c = 0; c < C; ++c) {
          common::affine_value<kMask, kX, kResidual, kRelu>(op, r * C + c, op.a[c], kX ? op.b[c] : acc_t(0), op.c0[c]);
        }
      }
    });
  } else {
    at::parallel_for(0, L.batch * C, std::max<int64_t>(1, 16384 / std::max<int64_t>(S, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t c = plane % C;
        const acc_t a = op.a[c], b = kX ? op.b[c] : acc_t(0), c0 = op.c0[c];
        for (int64_t s = plane * S; s < (plane + 1) * S; ++s) common::affine_value<kMask, kX, kResidual, kRelu>(op, s, a, b, c0);
      }
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
