// Batched evaluation of the RPG layout on the CPU: which ring entry, with which sign, each position reads.
#pragma once

#include <cstdint>

#include "common/generated.h"

namespace leanconv::cpu {

// out[j] = m or ~m (sign -1) for position first + j, where m = pi(first + j) mod N; j in [0, count).
void signed_ring_entries(const common::RingPermutation& perm, uint64_t first, int64_t count, int64_t* out);

// Whether the 32-bit form below applies: T <= 2^32 and N <= 2^31 (so ~m fits an int32).
inline bool fits_int32_entries(const common::RingPermutation& perm) {
  return perm.fits_32_bits() && perm.ring_size <= (uint64_t(1) << 31);
}

// The same in half the memory, when fits_int32_entries(perm).
void signed_ring_entries(const common::RingPermutation& perm, uint64_t first, int64_t count, int32_t* out);

// Decodes an entry written by signed_ring_entries.
template <typename Entry>
inline Entry entry_index(Entry signed_entry) { return signed_entry >= 0 ? signed_entry : ~signed_entry; }

}  // namespace leanconv::cpu
