// Batched evaluation of the RPG layout on the CPU: which ring entry, with which sign, each position reads.
#pragma once

#include <cstdint>

#include "common/ring_permutation.h"

namespace leanconv::cpu {

// out[j] = m or ~m (sign -1) for position first + j, where m = pi(first + j) mod N; j in [0, count).
void signed_ring_entries(const common::RingPermutation& perm, uint64_t first, int64_t count, int64_t* out);

// Decodes an entry written by signed_ring_entries.
inline int64_t entry_index(int64_t signed_entry) { return signed_entry >= 0 ? signed_entry : ~signed_entry; }

}  // namespace leanconv::cpu
