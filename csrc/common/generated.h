// The fixed pseudo-random layout of a generated-weight (RPG) model, computed from a seed.
//
// Position g of the model's virtual weight sequence [0, T) reads ring entry pi(g) mod N with sign s(g).
// pi is a keyed Feistel network on [0, 2^b) (b = ceil(log2 T)), restricted to [0, T) by cycle walking:
// apply the network until the value lands in [0, T). A Feistel network is a bijection whatever its round
// function, and cycle walking keeps a bijection on the subset, so pi is a bijection of [0, T) and every
// ring entry is read floor(T/N) or ceil(T/N) times. Nothing is stored: pi and s are a few
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

LEANCONV_HOST_DEVICE uint64_t mul_high(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

// Everything the kernels need to evaluate pi, pi^-1, s and the ring entry: passed to CUDA kernels by value.
struct RingPermutation {
  uint64_t total;       // T, the length of the virtual weight sequence
  uint64_t ring_size;   // N
  uint64_t mod_multiplier;  // Lemire's fastmod constant for N when T and N fit in 32 bits, else 0
  int hi_bits;          // width of the upper half of a domain element before round 0
  int lo_bits;          // width of the lower half before round 0
  uint64_t hi_mask, lo_mask;
  uint32_t round_keys[kFeistelRounds];
  uint32_t sign_key;

  template <typename Word>
  LEANCONV_HOST_DEVICE uint32_t round_function(int round, Word half) const {
    return fmix32(static_cast<uint32_t>(half) ^ round_keys[round]);
  }

  // One pass of the Feistel network over [0, 2^(hi_bits + lo_bits)). Round r maps (hi, lo) to
  // (lo, hi ^ F_r(lo)), the new lower half taking the old upper half's width, so the widths alternate;
  // the loop does the two kinds of round in pairs with their masks fixed. Word is uint32_t when the domain
  // fits 32 bits (cheaper, and it vectorises on the CPU), else uint64_t; both compute the same values.
  template <typename Word>
  LEANCONV_HOST_DEVICE Word feistel(Word x) const {
    Word hi = x >> lo_bits, lo = x & static_cast<Word>(lo_mask);
    LEANCONV_UNROLL
    for (int r = 0; r < kFeistelRounds; r += 2) {
      Word t = hi ^ (static_cast<Word>(round_function(r, lo)) & static_cast<Word>(hi_mask));
      hi = lo;
      lo = t;
      t = hi ^ (static_cast<Word>(round_function(r + 1, lo)) & static_cast<Word>(lo_mask));
      hi = lo;
      lo = t;
    }
    return (hi << lo_bits) | lo;
  }

  // Whether every domain element fits in 32 bits (T <= 2^32), so the uint32_t Feistel applies.
  LEANCONV_HOST_DEVICE bool fits_32_bits() const { return hi_bits + lo_bits <= 32; }

  // pi(g) for g in [0, T): cycle walking keeps applying the network until the value lands in [0, T).
  LEANCONV_HOST_DEVICE uint64_t permute(uint64_t g) const {
    if (fits_32_bits()) {
      uint32_t v = feistel(static_cast<uint32_t>(g));
      while (v >= total) v = feistel(v);
      return v;
    }
    uint64_t v = feistel(g);
    while (v >= total) v = feistel(v);
    return v;
  }

  // v mod N without a division when both fit in 32 bits (a hardware 64-bit division costs more than
  // the whole Feistel network).
  LEANCONV_HOST_DEVICE uint64_t reduce(uint64_t v) const {
    return mod_multiplier ? mul_high(mod_multiplier * v, ring_size) : v % ring_size;
  }

  // The ring entry that position g reads: pi(g) mod N.
  LEANCONV_HOST_DEVICE uint64_t ring_entry(uint64_t g) const { return reduce(permute(g)); }

  // s(g) in {-1, +1}: the top bit of a hash of g (1 means -1).
  LEANCONV_HOST_DEVICE int sign(uint64_t g) const {
    uint32_t h = fmix32(static_cast<uint32_t>(g) ^ sign_key);
    const uint32_t upper = static_cast<uint32_t>(g >> 32);
    if (upper != 0) h = fmix32(h ^ upper);
    return (h >> 31) ? -1 : 1;
  }

  // The same sign bit for g < 2^32, without the branch (so a loop over it vectorises).
  LEANCONV_HOST_DEVICE uint32_t negative_32(uint32_t g) const { return fmix32(g ^ sign_key) >> 31; }
};

// Host-side construction: the caller has checked 1 <= total <= kMaxRingTotal and ring_size >= 1.
inline RingPermutation make_ring_permutation(int64_t seed, int64_t total, int64_t ring_size) {
  RingPermutation p{};
  p.total = static_cast<uint64_t>(total);
  p.ring_size = static_cast<uint64_t>(ring_size);
  const bool fits_32_bits = p.total <= (uint64_t(1) << 32) && p.ring_size < (uint64_t(1) << 32);
  p.mod_multiplier = fits_32_bits && p.ring_size > 1 ? ~uint64_t(0) / p.ring_size + 1 : 0;
  int bits = 2;  // at least two bits so both halves are non-empty
  while ((uint64_t(1) << bits) < p.total) ++bits;
  p.hi_bits = bits / 2;
  p.lo_bits = bits - p.hi_bits;
  p.hi_mask = (uint64_t(1) << p.hi_bits) - 1;
  p.lo_mask = (uint64_t(1) << p.lo_bits) - 1;
  uint64_t state = static_cast<uint64_t>(seed);
  for (int r = 0; r < kFeistelRounds; ++r) p.round_keys[r] = static_cast<uint32_t>(splitmix64(state));
  p.sign_key = static_cast<uint32_t>(splitmix64(state));
  return p;
}

}  // namespace leanconv::common
