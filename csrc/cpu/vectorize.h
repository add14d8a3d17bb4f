// CPU vectorisation helpers shared by the kernels: AVX2 clones of the hot functions, picked at load time, and
// the lane width the vector loops are written for.
#pragma once

#include <cstdint>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define LEANCONV_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LEANCONV_CPU_CLONES
#endif

namespace leanconv::cpu {

// Eight float lanes (AVX2): loops run over whole groups of kLanes, with no scalar remainder loop.
constexpr int64_t kLanes = 8;

}  // namespace leanconv::cpu
