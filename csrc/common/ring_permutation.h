// The fixed pseudo-random layout of a generated-weight (RPG) model, computed from a seed.
//
// Position g of the model's virtual weight sequence [0, T) reads ring entry pi(g) mod N with sign s(g).
// pi is a keyed Feistel network on [0, 2^b) (b = ceil(log2 T)), restricted to [0, T) by cycle walking:
// apply the network until the value lands in [0, T). A Feistel network is a bijection whatever its round
// function, and cycle walking keeps a bijection on the subset, so pi is a bijection of [0, T) and every
// ring entry is read floor(T/N) or ceil(T/N) times. Nothing is stored: pi, its inverse and s are a few
// integer operations per position, on the host and on the device alike.
//
// The halves may differ by one bit (unbalanced Feistel) so the domain is at most 2T and cycle walking takes
// fewer than two rounds of the network on average. An even number of rounds brings the halves back to
// their original widths. python/leanconv/reference/generated.py is an independent NumPy implementation
// of the same definition; the tests compare the two bit for bit.
#pragma once

#include <cstdint>

#include "macros.h"

namespace leanconv::common {

constexpr int kFeistelRounds = 4;
// Largest virtual sequence the layout supports: both halves stay within 31 bits.
constexpr int64_t kMaxRingTotal = int64_t(1) << 62;

LEANCONV_HOST_DEVICE uint32_t fmix32(uint32_t h) {
  // MurmurHash3's finaliser: full avalanche on 32 bits with two multiplies.
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

LEANCONV_HOST_DEVICE uint64_t splitmix64(uint64_t& state) {
  state += 0x9e3779b97f4a7c15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

LEANCONV_HOST_DEVICE uint64_t low_bits(uint64_t x, int bits) {
  return bits == 0 ? 0 : (x & ((uint64_t(1) << bits) - 1));
}

// Everything the kernels need to evaluate pi, pi^-1 and s: passed to CUDA kernels by value.
struct RingPermutation {
  uint64_t total;       // T, the length of the virtual weight sequence
  int hi_bits;          // width of the upper half of a domain element before round 0
  int lo_bits;          // width of the lower half before round 0
  uint32_t round_keys[kFeistelRounds];
  uint32_t sign_key;

  LEANCONV_HOST_DEVICE uint32_t round_function(int round, uint64_t half) const {
    return fmix32(static_cast<uint32_t>(half) ^ round_keys[round]);
  }

  // One pass of the Feistel network over [0, 2^(hi_bits + lo_bits)).
  LEANCONV_HOST_DEVICE uint64_t feistel(uint64_t x) const {
    int hb = hi_bits, lb = lo_bits;
    uint64_t hi = x >> lb, lo = low_bits(x, lb);
    for (int r = 0; r < kFeistelRounds; ++r) {
      const uint64_t new_lo = hi ^ low_bits(round_function(r, lo), hb);  // hb bits
      hi = lo;                                                          // lb bits
      lo = new_lo;
      const int t = hb; hb = lb; lb = t;
    }
    return (hi << lb) | lo;
  }

  LEANCONV_HOST_DEVICE uint64_t feistel_inverse(uint64_t y) const {
    // After an even number of rounds the widths are the initial ones.
    int hb = hi_bits, lb = lo_bits;
    uint64_t hi = y >> lb, lo = low_bits(y, lb);
    for (int r = kFeistelRounds - 1; r >= 0; --r) {
      // Undo: hi' = lo, lo' = hi ^ F(lo), where hi' has width hb and lo' width lb.
      const uint64_t prev_lo = hi;                                      // hb bits
      const uint64_t prev_hi = lo ^ low_bits(round_function(r, prev_lo), lb);  // lb bits
      hi = prev_hi;
      lo = prev_lo;
      const int t = hb; hb = lb; lb = t;
    }
    return (hi << lb) | lo;
  }

  // pi(g) for g in [0, T).
  LEANCONV_HOST_DEVICE uint64_t permute(uint64_t g) const {
    uint64_t v = feistel(g);
    while (v >= total) v = feistel(v);
    return v;
  }

  // pi^-1(v) for v in [0, T).
  LEANCONV_HOST_DEVICE uint64_t unpermute(uint64_t v) const {
    uint64_t g = feistel_inverse(v);
    while (g >= total) g = feistel_inverse(g);
    return g;
  }

  // s(g) in {-1, +1}.
  LEANCONV_HOST_DEVICE int sign(uint64_t g) const {
    uint32_t h = fmix32(static_cast<uint32_t>(g) ^ sign_key);
    const uint32_t upper = static_cast<uint32_t>(g >> 32);
    if (upper != 0) h = fmix32(h ^ upper);
    return (h >> 31) ? -1 : 1;
  }
};

// Host-side construction: the caller has checked 1 <= total <= kMaxRingTotal.
inline RingPermutation make_ring_permutation(int64_t seed, int64_t total) {
  RingPermutation p{};
  p.total = static_cast<uint64_t>(total);
  int bits = 2;  // at least two bits so both halves are non-empty
  while ((uint64_t(1) << bits) < p.total) ++bits;
  p.hi_bits = bits / 2;
  p.lo_bits = bits - p.hi_bits;
  uint64_t state = static_cast<uint64_t>(seed);
  for (int r = 0; r < kFeistelRounds; ++r) p.round_keys[r] = static_cast<uint32_t>(splitmix64(state));
  p.sign_key = static_cast<uint32_t>(splitmix64(state));
  return p;
}

}  // namespace leanconv::common
