// The CPU hot loop of the generated-weight family. Evaluated one position at a time, the Feistel network
// is a chain of dependent multiplies and cycle walking a mispredicted branch, about 150 cycles a position.
// Here positions go in blocks: one straight pass of the network over the whole block (which the compiler
// vectorises, 8 lanes with AVX2), then the values that fell outside [0, T) are compacted and walked
// again, pass after pass, each a straight loop over whole groups of lanes.
#include "cpu/generated_ring_entries.h"
#include "cpu/vectorize.h"

#include <algorithm>

#include <c10/util/Exception.h>

namespace leanconv::cpu {
namespace {

constexpr int kBlock = 512;

// Cycle walking for one block: the values at the `pending` positions listed in side 0 of the pending lists are
// outside [0, T); each pass applies the network to every listed value (a straight loop over whole groups of lanes)
// and lists those still outside, until none is. Double-buffered lists: reading one while writing the other keeps
// the compaction free of store-to-load hazards.
__attribute__((always_inline)) inline void walk_pending(const common::RingPermutation& perm, uint32_t* value,
                                                        uint32_t (&pending_value)[2][kBlock + kLanes],
                                                        int32_t (&pending_index)[2][kBlock + kLanes], int pending) {
  const uint64_t total = perm.total;
  for (int side = 0; pending > 0; side ^= 1) {
    uint32_t* walking = pending_value[side];
    const int padded = (pending + kLanes - 1) / kLanes * kLanes;  // padding lanes hold stale values
    for (int k = 0; k < padded; ++k) walking[k] = perm.feistel(walking[k]);
    int still = 0;
    for (int k = 0; k < pending; ++k) {
      const uint32_t v = walking[k];
      const int32_t i = pending_index[side][k];
      value[i] = v;
      pending_index[side ^ 1][still] = i;
      pending_value[side ^ 1][still] = v;
      still += v >= total;
    }
    pending = still;
  }
}

template <typename Entry>
__attribute__((always_inline)) inline void signed_ring_entries_32_body(const common::RingPermutation& perm,
                                                                       uint64_t first, int64_t count, Entry* out) {
  uint32_t value[kBlock];
  uint32_t negative[kBlock];
  uint32_t pending_value[2][kBlock + kLanes];  // the values still outside [0, T), for walk_pending
  int32_t pending_index[2][kBlock + kLanes];
  const uint64_t total = perm.total;
  for (int64_t base = 0; base < count; base += kBlock) {
    const int n = static_cast<int>(std::min<int64_t>(kBlock, count - base));
    const uint32_t start = static_cast<uint32_t>(first + base);
    for (int i = 0; i < n; ++i) value[i] = perm.feistel(start + static_cast<uint32_t>(i));
    int pending = 0;
    for (int i = 0; i < n; ++i) {
      pending_index[0][pending] = i;
      pending_value[0][pending] = value[i];
      pending += value[i] >= total;
    }
    walk_pending(perm, value, pending_value, pending_index, pending);
    for (int i = 0; i < n; ++i) negative[i] = perm.negative_32(start + static_cast<uint32_t>(i));
    for (int i = 0; i < n; ++i) {
      const auto m = static_cast<Entry>(perm.reduce(value[i]));
      out[base + i] = negative[i] ? ~m : m;
    }
  }
}

// One clone per instruction set, each with the body inlined and compiled for it.
LEANCONV_CPU_CLONES
void signed_ring_entries_32(const common::RingPermutation& perm, uint64_t first, int64_t count, int64_t* out) {
  signed_ring_entries_32_body(perm, first, count, out);
}

LEANCONV_CPU_CLONES
void signed_ring_entries_32(const common::RingPermutation& perm, uint64_t first, int64_t count, int32_t* out) {
  signed_ring_entries_32_body(perm, first, count, out);
}

}  // namespace

void signed_ring_entries(const common::RingPermutation& perm, uint64_t first, int64_t count, int64_t* out) {
  if (perm.fits_32_bits()) {
    signed_ring_entries_32(perm, first, count, out);
    return;
  }
  for (int64_t j = 0; j < count; ++j) {
    const auto m = static_cast<int64_t>(perm.ring_entry(first + j));
    out[j] = perm.sign(first + j) > 0 ? m : ~m;
  }
}

void signed_ring_entries(const common::RingPermutation& perm, uint64_t first, int64_t count, int32_t* out) {
  TORCH_INTERNAL_ASSERT(fits_int32_entries(perm));
  signed_ring_entries_32(perm, first, count, out);
}

}  // namespace leanconv::cpu
