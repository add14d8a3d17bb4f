// CUDA kernels of the generated-weight (RPG) ops. One thread per generated weight in the forward; the
// backward either scatters with atomics (fast) or, when deterministic algorithms are requested, sorts the
// call's positions by ring entry and adds each entry's terms in position order, as the CPU kernel does.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#if defined(__CUDACC__)
#include <cub/device/device_radix_sort.cuh>
#endif

#include <algorithm>
#include <cstdlib>

#include "common/generated.h"
#include "common/generated_checks.h"
#include "launch.cuh"
#include "runtime.cuh"

namespace leanconv::cuda {
namespace {

template <typename scalar_t>
__global__ void generate_kernel(const scalar_t* __restrict__ ring, scalar_t* __restrict__ out,
                                common::RingPermutation perm, int64_t offset, int64_t numel,
                                at::opmath_type<scalar_t> scale) {
  using opmath_t = at::opmath_type<scalar_t>;
  LEANCONV_GRID_STRIDE(j, numel) {
    const uint64_t g = static_cast<uint64_t>(offset + j);
    const opmath_t value = static_cast<opmath_t>(ring[perm.ring_entry(g)]);
    out[j] = static_cast<scalar_t>(perm.sign(g) > 0 ? scale * value : -scale * value);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void scatter_backward_kernel(const scalar_t* __restrict__ grad, acc_t* __restrict__ acc,
                                        common::RingPermutation perm, int64_t offset, int64_t numel) {
  LEANCONV_GRID_STRIDE(j, numel) {
    const uint64_t g = static_cast<uint64_t>(offset + j);
    const acc_t v = static_cast<acc_t>(grad[j]);
    atomicAdd(acc + perm.ring_entry(g), perm.sign(g) > 0 ? v : -v);
  }
}

// The deterministic backward (torch.use_deterministic_algorithms) adds up each ring entry's terms in the CPU
// kernel's order (csrc/cpu/generated.cpp): increasing position, starting from 0, each term g * (+-scale)
// rounded on its own. The call's positions are cut into chunks of at most kSortChunk; per chunk, one kernel
// writes every position's ring entry and term, a stable radix sort by entry groups each entry's terms while
// keeping their position order, and one thread per run of equal entries adds the run onto the entry's sum.
// The work is O(numel) hashes and a sort of numel keys: nothing depends on the whole sequence's length T.
// Chunks go in position order, so an entry's sum continues from one chunk to the next in the same order.
constexpr int64_t kSortChunk = int64_t(1) << 24;

// Products and sums rounded on their own: nvcc would otherwise fuse `sum + v * s` into one FMA (a single
// rounding), which the CPU kernel does not do, and the two would differ in the last bit.
__device__ __forceinline__ float product_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double product_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float sum_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double sum_rn(double a, double b) { return __dadd_rn(a, b); }

template <typename scalar_t, typename key_t, typename opmath_t>
__global__ void signed_terms_kernel(const scalar_t* __restrict__ grad, common::RingPermutation perm,
                                    uint64_t first, int64_t count, opmath_t scale, key_t* __restrict__ entry,
                                    opmath_t* __restrict__ term) {
  LEANCONV_GRID_STRIDE(j, count) {
    const uint64_t g = first + static_cast<uint64_t>(j);
    entry[j] = static_cast<key_t>(perm.ring_entry(g));
    term[j] = product_rn(static_cast<opmath_t>(grad[j]), perm.sign(g) > 0 ? scale : -scale);
  }
}

// Terms a run's thread adds per step of a long run: the entries are sorted, so entry[i + kRunStep - 1] == m says
// the whole step belongs to the run, one check whose loads do not wait on the adds (a small ring's runs are long).
constexpr int kRunStep = 8;

// After the sort: the first thread of each run of equal entries adds the run, in order, onto acc[entry].
template <typename key_t, typename opmath_t>
__global__ void add_runs_kernel(const key_t* __restrict__ entry, const opmath_t* __restrict__ term, int64_t count,
                                opmath_t* __restrict__ acc) {
  LEANCONV_GRID_STRIDE(k, count) {
    const key_t m = entry[k];
    if (k > 0 && entry[k - 1] == m) continue;  // inside a run: its first thread adds it
    opmath_t sum = acc[m];
    int64_t i = k;
    for (; i + kRunStep <= count && entry[i + kRunStep - 1] == m; i += kRunStep) {
#pragma unroll
      for (int step = 0; step < kRunStep; ++step) sum = sum_rn(sum, term[i + step]);
    }
    for (; i < count && entry[i] == m; ++i) sum = sum_rn(sum, term[i]);
    acc[m] = sum;
  }
}

// Device scratch of `count` values of T from PyTorch's caching allocator (ordered on the current stream).
template <typename T>
at::Tensor scratch(int64_t count, const at::Tensor& like) {
  return at::empty({count * static_cast<int64_t>(sizeof(T))}, like.options().dtype(at::kByte));
}

template <typename T>
T* pointer(at::Tensor& bytes) {
  return static_cast<T*>(bytes.mutable_data_ptr());
}

// Bits of the largest ring entry, N - 1: the sort looks at no others (fewer radix passes for small rings).
inline int entry_bits(uint64_t ring_size) {
  int bits = 1;
  while (bits < 64 && ((ring_size - 1) >> bits) != 0) ++bits;
  return bits;
}

// A test hook: LEANCONV_TEST_WIDE_SORT_KEYS=1 sorts by 64-bit keys on any ring; otherwise only rings of over 2^32
// entries (an accumulator of at least 16 GiB) take that instantiation.
bool wide_sort_keys(uint64_t ring_size) {
  const char* forced = std::getenv("LEANCONV_TEST_WIDE_SORT_KEYS");
  return ring_size > (uint64_t(1) << 32) || (forced != nullptr && forced[0] == '1');
}

// A test hook: LEANCONV_TEST_SORT_CHUNK=n sorts chunks of n positions, so that tests of a few thousand positions run
// the chunk loop several times.
int64_t sort_chunk() {
  const char* forced = std::getenv("LEANCONV_TEST_SORT_CHUNK");
  return forced != nullptr && std::atoll(forced) > 0 ? std::min<int64_t>(std::atoll(forced), kSortChunk) : kSortChunk;
}

template <typename key_t, typename scalar_t, typename opmath_t>
void sorted_backward(const at::Tensor& grad, const common::RingPermutation& perm, int64_t offset, opmath_t scale,
                     at::Tensor& acc) {
  const int64_t numel = grad.numel(), chunk = sort_chunk(), capacity = std::min(numel, chunk);
  const auto stream = runtime::current_stream();
  auto keys_a = scratch<key_t>(capacity, grad), keys_b = scratch<key_t>(capacity, grad);
  auto terms_a = scratch<opmath_t>(capacity, grad), terms_b = scratch<opmath_t>(capacity, grad);
  const int bits = entry_bits(perm.ring_size);
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  for (int64_t begin = 0; begin < numel; begin += chunk) {
    const int count = static_cast<int>(std::min(chunk, numel - begin));
    launch(LEANCONV_KERNEL(signed_terms_kernel<scalar_t, key_t, opmath_t>), {blocks_for(count), kThreads}, stream,
           g + begin, perm, static_cast<uint64_t>(offset + begin), int64_t(count), scale, pointer<key_t>(keys_a),
           pointer<opmath_t>(terms_a));
    cub::DoubleBuffer<key_t> keys(pointer<key_t>(keys_a), pointer<key_t>(keys_b));
    cub::DoubleBuffer<opmath_t> terms(pointer<opmath_t>(terms_a), pointer<opmath_t>(terms_b));
    size_t temp_bytes = 0;
    LEANCONV_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys, terms, count, 0, bits, stream));
    auto temp = scratch<char>(static_cast<int64_t>(std::max<size_t>(temp_bytes, 1)), grad);
    LEANCONV_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.mutable_data_ptr(), temp_bytes, keys, terms, count, 0, bits,
                                                   stream));
    launch(LEANCONV_KERNEL(add_runs_kernel<key_t, opmath_t>), {blocks_for(count), kThreads}, stream,
           keys.Current(), terms.Current(), int64_t(count), acc.mutable_data_ptr<opmath_t>());
  }
}

at::Tensor generate_weights_kernel(const at::Tensor& ring, int64_t seed, int64_t total, int64_t offset,
                                   at::IntArrayRef shape, double scale) {
  checks::check_ring(ring);
  const int64_t numel = checks::checked_numel(shape);
  checks::check_ring_range(total, offset, numel);
  const runtime::DeviceGuard guard(ring.device());
  const auto perm = common::make_ring_permutation(seed, total, ring.numel());
  const auto ring_c = ring.contiguous();
  auto out = at::empty(shape, ring.options());
  if (numel == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ring.scalar_type(), "generate_weights_cuda", [&] {
    launch(LEANCONV_KERNEL(generate_kernel<scalar_t>), {blocks_for(numel), kThreads}, runtime::current_stream(),
           ring_c.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), perm, offset, numel,
           static_cast<at::opmath_type<scalar_t>>(scale));
  });
  return out;
}

at::Tensor generate_weights_backward_kernel(const at::Tensor& grad, int64_t ring_size, int64_t seed,
                                            int64_t total, int64_t offset, double scale) {
  checks::check_ring_backward(grad, ring_size, total, offset);
  const int64_t numel = grad.numel();
  const runtime::DeviceGuard guard(grad.device());
  const auto perm = common::make_ring_permutation(seed, total, ring_size);
  const auto grad_c = grad.contiguous();
  const auto opmath_dtype = at::toOpMathType(grad.scalar_type());
  auto acc = at::zeros({ring_size}, grad.options().dtype(opmath_dtype));
  if (numel == 0) return acc.to(grad.scalar_type());
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "generate_weights_backward_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    if (deterministic) {
      // Each term carries its scale, as on the CPU, so the two give the same bits.
      const auto scale_opmath = static_cast<opmath_t>(scale);
      if (wide_sort_keys(perm.ring_size)) {
        sorted_backward<uint64_t, scalar_t>(grad_c, perm, offset, scale_opmath, acc);
      } else {
        sorted_backward<uint32_t, scalar_t>(grad_c, perm, offset, scale_opmath, acc);
      }
    } else {
      launch(LEANCONV_KERNEL(scatter_backward_kernel<scalar_t, opmath_t>), {blocks_for(numel), kThreads},
             runtime::current_stream(), grad_c.const_data_ptr<scalar_t>(), acc.mutable_data_ptr<opmath_t>(), perm,
             offset, numel);
      acc.mul_(scale);
    }
  });
  return acc.to(grad.scalar_type());
}

}  // namespace

LEANCONV_CUDA_KERNELS(m) {
  m.impl("generate_weights", &generate_weights_kernel);
  m.impl("generate_weights_backward", &generate_weights_backward_kernel);
}

}  // namespace leanconv::cuda
