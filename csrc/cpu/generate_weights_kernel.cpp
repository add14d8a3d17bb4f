// CPU kernels of the generated-weight (RPG) ops.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <memory>

#include "common/checks.h"
#include "common/ring_permutation.h"
#include "cpu/ring_entries.h"

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

// Two passes, deterministic whatever the thread count: (1) hash every position to its signed ring entry
// (the expensive part, fully parallel); (2) each thread owns a slice of the ring and adds the gradient
// entries that land in it in increasing position order, so every ring entry sums in one fixed order.
template <typename Entry>
void reduce_into_ring(const common::RingPermutation& perm, const at::Tensor& grad, int64_t offset, double scale,
                      at::Tensor& acc) {
  const int64_t numel = grad.numel();
  const auto ring_size = static_cast<int64_t>(perm.ring_size);
  // Entry m with sign -1 is stored as ~m (negative), so one array carries both.
  std::unique_ptr<Entry[]> entries(new Entry[numel]);  // uninitialised: every element is written below
  Entry* entry = entries.get();
  at::parallel_for(0, numel, kHashGrain, [&](int64_t begin, int64_t end) {
    signed_ring_entries(perm, static_cast<uint64_t>(offset + begin), end - begin, entry + begin);
  });
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "generate_weights_backward_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    opmath_t* a = acc.mutable_data_ptr<opmath_t>();
    // At most four ring slices: each slice rescans the entries, so more slices cost more than they save.
    const int64_t slice = std::max<int64_t>(1, (ring_size + 3) / 4);
    at::parallel_for(0, ring_size, slice, [&](int64_t begin, int64_t end) {
      // Branch-free: entries outside this slice add into scratch slots (signs and slices are random, a
      // branch would be mispredicted); several slots, so the discarded adds form no dependency chain.
      constexpr int kScratch = 16;
      opmath_t scratch[kScratch] = {};
      const opmath_t signed_scale[2] = {static_cast<opmath_t>(scale), -static_cast<opmath_t>(scale)};
      for (int64_t j = 0; j < numel; ++j) {
        const Entry e = entry[j];
        const Entry m = entry_index(e);
        opmath_t* target = (m >= begin && m < end) ? a + m : scratch + (j & (kScratch - 1));
        *target += static_cast<opmath_t>(g[j]) * signed_scale[e < 0];
      }
    });
  });
}

at::Tensor generate_weights_backward_kernel(const at::Tensor& grad, int64_t ring_size, int64_t seed,
                                            int64_t total, int64_t offset, double scale) {
  checks::check_floating(grad, "grad");
  TORCH_CHECK(ring_size > 0, "leanconv: ring_size must be positive, got ", ring_size);
  const int64_t numel = grad.numel();
  checks::check_ring_range(total, offset, numel);
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
