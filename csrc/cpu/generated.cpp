// CPU kernels of the generated-weight (RPG) ops.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <memory>
#include <vector>

#include "common/generated_checks.h"
#include "common/generated.h"
#include "cpu/generated_ring_entries.h"

namespace leanconv::cpu {
namespace {

constexpr int64_t kHashGrain = 4096;
constexpr int64_t kEntryChunk = 1024;  // entries decoded per step of the forward, on the stack

at::Tensor generate_weights_kernel(const at::Tensor& ring, int64_t seed, int64_t total, int64_t offset,
                                   at::IntArrayRef shape, double scale) {
  checks::check_ring(ring);
  const int64_t numel = checks::checked_numel(shape);
  checks::check_ring_range(total, offset, numel);
  const auto perm = common::make_ring_permutation(seed, total, ring.numel());
  const auto ring_c = ring.contiguous();
  auto out = at::empty(shape, ring.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ring.scalar_type(), "generate_weights_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* src = ring_c.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    const opmath_t signed_scale[2] = {static_cast<opmath_t>(scale), -static_cast<opmath_t>(scale)};
    at::parallel_for(0, numel, kHashGrain, [&](int64_t begin, int64_t end) {
      int64_t entries[kEntryChunk];
      for (int64_t chunk = begin; chunk < end; chunk += kEntryChunk) {
        const int64_t n = std::min<int64_t>(kEntryChunk, end - chunk);
        signed_ring_entries(perm, static_cast<uint64_t>(offset + chunk), n, entries);
        for (int64_t i = 0; i < n; ++i) {
          // Signs are random: select the factor by index, a branch would be mispredicted half the time.
          const auto value = static_cast<opmath_t>(src[entry_index(entries[i])]);
          dst[chunk + i] = static_cast<scalar_t>(value * signed_scale[entries[i] < 0]);
        }
      }
    });
  });
  return out;
}

// Ring entries per bucket of the reduction (2^15 floats: 128 KiB, an L2-sized slice of the ring), and positions
// per counting chunk. Both are fixed, so the summation order never depends on the thread count.
constexpr int kBucketBits = 15;
constexpr int64_t kSortChunk = int64_t(1) << 16;

// The counting sort's first pass: place[c * buckets + b] = the positions of chunk c whose entry lies in bucket b.
template <typename Entry>
void count_by_bucket(const Entry* entry, int64_t numel, int64_t chunks, int64_t buckets, std::vector<int64_t>& place) {
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* count = place.data() + c * buckets;
      for (int64_t j = c * kSortChunk, end = std::min(numel, j + kSortChunk); j < end; ++j)
        ++count[entry_index(entry[j]) >> kBucketBits];
    }
  });
}

// The counts become where each chunk's items of each bucket go (buckets in order, chunks in order within a
// bucket); returns where each bucket begins (and, last, where the last one ends).
std::vector<int64_t> bucket_places(int64_t chunks, int64_t buckets, std::vector<int64_t>& place) {
  std::vector<int64_t> bucket_begin(buckets + 1);
  int64_t running = 0;
  for (int64_t b = 0; b < buckets; ++b) {
    bucket_begin[b] = running;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t count = place[c * buckets + b];
      place[c * buckets + b] = running;
      running += count;
    }
  }
  bucket_begin[buckets] = running;
  return bucket_begin;
}

// Adds g[j] * scale * sign into a[m] for every position j, with (m, sign) from entry[j]. A counting sort by ring
// bucket first (stable: positions keep their order inside a bucket), then each bucket is reduced by one thread
// with its slice of the ring in cache. Every ring entry sums its contributions in increasing position order.
template <typename Entry, typename opmath_t, typename scalar_t>
void bucketed_reduce(const Entry* entry, const scalar_t* g, int64_t numel, int64_t ring_size, opmath_t scale,
                     opmath_t* a) {
  const int64_t buckets = ((ring_size - 1) >> kBucketBits) + 1;
  const int64_t chunks = (numel + kSortChunk - 1) / kSortChunk;
  std::vector<int64_t> place(chunks * buckets, 0);  // [chunk][bucket]
  count_by_bucket(entry, numel, chunks, buckets, place);
  const std::vector<int64_t> bucket_begin = bucket_places(chunks, buckets, place);
  std::unique_ptr<Entry[]> sorted_entry(new Entry[numel]);
  std::unique_ptr<opmath_t[]> sorted_value(new opmath_t[numel]);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* next = place.data() + c * buckets;
      for (int64_t j = c * kSortChunk, end = std::min(numel, j + kSortChunk); j < end; ++j) {
        const int64_t k = next[entry_index(entry[j]) >> kBucketBits]++;
        sorted_entry[k] = entry[j];
        sorted_value[k] = static_cast<opmath_t>(g[j]);
      }
    }
  });
  at::parallel_for(0, buckets, 1, [&](int64_t b0, int64_t b1) {
    const opmath_t signed_scale[2] = {scale, -scale};  // signs are random: select, do not branch
    for (int64_t k = bucket_begin[b0]; k < bucket_begin[b1]; ++k) {
      const Entry e = sorted_entry[k];
      a[entry_index(e)] += sorted_value[k] * signed_scale[e < 0];
    }
  });
}

// Hash every position to its signed ring entry (the expensive part, fully parallel), then reduce.
template <typename Entry>
void reduce_into_ring(const common::RingPermutation& perm, const at::Tensor& grad, int64_t offset, double scale,
                      at::Tensor& acc) {
  const int64_t numel = grad.numel();
  // Entry m with sign -1 is stored as ~m (negative), so one array carries both.
  std::unique_ptr<Entry[]> entries(new Entry[numel]);  // uninitialised: every element is written below
  Entry* entry = entries.get();
  at::parallel_for(0, numel, kHashGrain, [&](int64_t begin, int64_t end) {
    signed_ring_entries(perm, static_cast<uint64_t>(offset + begin), end - begin, entry + begin);
  });
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "generate_weights_backward_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    bucketed_reduce(entry, grad.const_data_ptr<scalar_t>(), numel, static_cast<int64_t>(perm.ring_size),
                    static_cast<opmath_t>(scale), acc.mutable_data_ptr<opmath_t>());
  });
}

at::Tensor generate_weights_backward_kernel(const at::Tensor& grad, int64_t ring_size, int64_t seed,
                                            int64_t total, int64_t offset, double scale) {
  checks::check_ring_backward(grad, ring_size, total, offset);
  const auto perm = common::make_ring_permutation(seed, total, ring_size);
  const auto grad_c = grad.contiguous();

  const auto opmath_dtype = at::toOpMathType(grad.scalar_type());
  auto acc = at::zeros({ring_size}, grad.options().dtype(opmath_dtype));
  if (fits_int32_entries(perm)) {
    reduce_into_ring<int32_t>(perm, grad_c, offset, scale, acc);
  } else {
    reduce_into_ring<int64_t>(perm, grad_c, offset, scale, acc);
  }
  return acc.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("generate_weights", &generate_weights_kernel);
  m.impl("generate_weights_backward", &generate_weights_backward_kernel);
}

}  // namespace leanconv::cpu
