// CUDA kernels of the low-rank (DeCEF) eigen-filter conv.
//
// Forward, fused: a block owns a tile of kTileO output channels x kTilePixels output pixels (pixels counted over
// the whole batch, so small late-stage images fill a tile). It walks the C_in*R intermediate channels in
// chunks of kChunk: the depthwise stage writes the chunk's z (kChunk x kTilePixels) into shared memory, the
// chunk of coeff goes beside it, and every thread accumulates a 4 x 4 register tile of outputs. z never
// leaves shared memory. Input and output are read and written through their strides, so channels_last needs
// no copy. Arithmetic in the op-math type (float for half/bfloat16).
//
// Backward: the same recomputation, in batch chunks through cuDNN: for each chunk the depthwise stage is
// recomputed, the 1x1 stage's backward gives grad_coeff and the intermediate's gradient, and the depthwise
// backward gives grad_input and grad_basis. Memory is bounded by the chunk, not the batch.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>

#include "common/lowrank_checks.h"
#include "common/conv_epilogue.h"
#include "common/lowrank.h"
#include "launch.cuh"
#include "composite/lowrank.h"
#include "runtime.cuh"

namespace leanconv::cuda {
namespace {

using common::EigenConv;
using common::Strides4;
using checks::strides_of;

constexpr int kTileO = 64, kTilePixels = 64, kChunk = 16, kBlockThreads = 256;
constexpr int kMicro = 4;  // each thread: kMicro output channels x kMicro pixels
static_assert((kTileO / kMicro) * (kTilePixels / kMicro) == kBlockThreads, "one register tile per thread");

// One intermediate value: the depthwise window sum of basis filter `cr` over its input channel at output `pixel`
// (pixels counted over the batch).
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
__device__ __forceinline__ acc_t depthwise_value(const scalar_t* __restrict__ x, const Strides4& xs,
                                                 const scalar_t* __restrict__ basis, const EigenConv& g, int64_t cr,
                                                 int64_t pixel) {
  const int64_t out_pixels = g.out_pixels(), n = pixel / out_pixels, pq = pixel % out_pixels;
  const int64_t p = pq / g.out_w, q = pq % g.out_w;
  const scalar_t* x_c = x + n * xs.n + (cr / g.rank) * xs.c;
  const scalar_t* e_cr = basis + cr * g.taps();
  acc_t sum = 0;
  common::for_each_tap_inside(g, p, q, [&](int64_t i, int64_t j, int64_t h, int64_t w) {
    sum += static_cast<acc_t>(e_cr[i * g.kernel_w + j]) * static_cast<acc_t>(x_c[h * xs.h + w * xs.w]);
  });
  return sum;
}

// The depthwise stage for intermediate channels [k0, k0 + kChunk) and the tile's pixels, into shared memory (zero
// past the last channel or pixel).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void depthwise_chunk(acc_t (&z_tile)[kChunk][kTilePixels], const scalar_t* __restrict__ x,
                                                const Strides4& xs, const scalar_t* __restrict__ basis,
                                                const EigenConv& g, int64_t k0, int64_t pixel0) {
  const int64_t total_pixels = g.batch * g.out_pixels(), mid = g.mid_channels();
  for (int e = threadIdx.x; e < kChunk * kTilePixels; e += kBlockThreads) {
    const int kk = e / kTilePixels, pp = e % kTilePixels;
    const int64_t cr = k0 + kk, pixel = pixel0 + pp;
    z_tile[kk][pp] = cr < mid && pixel < total_pixels ? depthwise_value(x, xs, basis, g, cr, pixel) : acc_t(0);
  }
}

// coeff[o0 .. o0 + kTileO, k0 .. k0 + kChunk) into shared memory, read along its contiguous C_in*R axis.
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void coeff_chunk(acc_t (&coeff_tile)[kChunk][kTileO], const scalar_t* __restrict__ coeff,
                                            const EigenConv& g, int64_t k0, int64_t o0) {
  const int64_t mid = g.mid_channels();
  for (int e = threadIdx.x; e < kChunk * kTileO; e += kBlockThreads) {
    const int kk = e % kChunk, oo = e / kChunk;
    const int64_t cr = k0 + kk, o = o0 + oo;
    coeff_tile[kk][oo] = (cr < mid && o < g.out_channels) ? static_cast<acc_t>(coeff[o * mid + cr]) : acc_t(0);
  }
}

// The thread's register tile += its kMicro channels of the coeff chunk times its kMicro pixels of the z chunk.
template <typename acc_t>
__device__ __forceinline__ void accumulate_chunk(acc_t (&acc)[kMicro][kMicro],
                                                 const acc_t (&z_tile)[kChunk][kTilePixels],
                                                 const acc_t (&coeff_tile)[kChunk][kTileO], int tx, int ty) {
#pragma unroll
  for (int kk = 0; kk < kChunk; ++kk) {
    acc_t a[kMicro], b[kMicro];
#pragma unroll
    for (int m = 0; m < kMicro; ++m) {
      a[m] = coeff_tile[kk][ty * kMicro + m];
      b[m] = z_tile[kk][tx + m * (kTilePixels / kMicro)];
    }
#pragma unroll
    for (int u = 0; u < kMicro; ++u)
#pragma unroll
      for (int v = 0; v < kMicro; ++v) acc[u][v] += a[u] * b[v];
  }
}

// The register tile through the epilogue (bias, BatchNorm, activation) into y, skipping what lies past the edges.
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void store_tile(const acc_t (&acc)[kMicro][kMicro],
                                           const common::Epilogue<acc_t>& epilogue, scalar_t* __restrict__ y,
                                           const Strides4& ys, const EigenConv& g, int64_t pixel0, int64_t o0, int tx,
                                           int ty) {
  const int64_t out_pixels = g.out_pixels(), total_pixels = g.batch * out_pixels;
#pragma unroll
  for (int v = 0; v < kMicro; ++v) {
    const int64_t pixel = pixel0 + tx + v * (kTilePixels / kMicro);
    if (pixel >= total_pixels) continue;
    const int64_t n = pixel / out_pixels, pq = pixel % out_pixels, p = pq / g.out_w, q = pq % g.out_w;
#pragma unroll
    for (int u = 0; u < kMicro; ++u) {
      const int64_t o = o0 + ty * kMicro + u;
      if (o >= g.out_channels) continue;
      y[n * ys.n + o * ys.c + p * ys.h + q * ys.w] = static_cast<scalar_t>(epilogue.apply(acc[u][v], o));
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kBlockThreads)
    eigen_conv2d_forward_kernel(const scalar_t* __restrict__ x, Strides4 xs, const scalar_t* __restrict__ basis,
                                const scalar_t* __restrict__ coeff,
                                common::Epilogue<at::opmath_type<scalar_t>> epilogue,
                                scalar_t* __restrict__ y, Strides4 ys, EigenConv g) {
  using acc_t = at::opmath_type<scalar_t>;
  LEANCONV_SHARED(acc_t, z_tile, [kChunk][kTilePixels]);
  LEANCONV_SHARED(acc_t, coeff_tile, [kChunk][kTileO]);
  const int64_t pixel0 = int64_t(blockIdx.x) * kTilePixels, o0 = int64_t(blockIdx.y) * kTileO;
  // Each thread's register tile: channels o0 + ty*kMicro + a, pixels pixel0 + tx + b*(kTilePixels/kMicro)
  // (strided pixels keep the output writes of neighbouring threads adjacent).
  const int tx = threadIdx.x % (kTilePixels / kMicro), ty = threadIdx.x / (kTilePixels / kMicro);
  acc_t acc[kMicro][kMicro] = {};
  for (int64_t k0 = 0; k0 < g.mid_channels(); k0 += kChunk) {
    depthwise_chunk(z_tile, x, xs, basis, g, k0, pixel0);
    coeff_chunk(coeff_tile, coeff, g, k0, o0);
    __syncthreads();
    accumulate_chunk(acc, z_tile, coeff_tile, tx, ty);
    __syncthreads();  // the next chunk overwrites the tiles
  }
  store_tile(acc, epilogue, y, ys, g, pixel0, o0, tx, ty);
}

at::Tensor eigen_conv2d_cuda(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                             const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation) {
  const auto g = checks::eigen_conv_geometry(input, basis, coeff, bias, stride, padding, dilation);
  runtime::DeviceGuard guard(input.device());
  auto output = at::empty({g.batch, g.out_channels, g.out_h, g.out_w},
                          input.options().memory_format(input.suggest_memory_format()));
  if (output.numel() == 0) return output;
  const auto basis_c = basis.contiguous(), coeff_c = coeff.contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  // The epilogue reads the bias in the accumulation type.
  const auto bias_acc = has_bias ? bias->to(at::toOpMathType(input.scalar_type())).contiguous() : at::Tensor();
  const int64_t pixel_tiles = (g.batch * g.out_pixels() + kTilePixels - 1) / kTilePixels;
  const int64_t channel_tiles = (g.out_channels + kTileO - 1) / kTileO;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "eigen_conv2d_cuda", [&] {
    launch(LEANCONV_KERNEL(eigen_conv2d_forward_kernel<scalar_t>),
           {{pixel_tiles, channel_tiles}, kBlockThreads, kBlockThreads}, runtime::current_stream(),
           input.const_data_ptr<scalar_t>(), strides_of(input), basis_c.const_data_ptr<scalar_t>(),
           coeff_c.const_data_ptr<scalar_t>(),
           common::Epilogue<at::opmath_type<scalar_t>>::bias(
               has_bias ? bias_acc.const_data_ptr<at::opmath_type<scalar_t>>() : nullptr),
           output.mutable_data_ptr<scalar_t>(), strides_of(output), g);
  });
  return output;
}

// Images per backward chunk: the recomputed intermediate and its gradient stay under kChunkElements each.
constexpr int64_t kChunkElements = int64_t(1) << 24;

std::tuple<at::Tensor, at::Tensor, at::Tensor> eigen_conv2d_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, std::array<bool, 3> output_mask) {
  const auto g = checks::eigen_conv_backward_geometry(grad_output, input, basis, coeff, stride, padding, dilation);
  runtime::DeviceGuard guard(input.device());
  // The cuDNN calls below must run in the operands' dtype even when called inside an autocast region.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const bool need_input = output_mask[0], need_basis = output_mask[1], need_coeff = output_mask[2];
  const int64_t chunk = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, g.mid_channels() * g.out_pixels()));
  at::Tensor grad_input =
      need_input ? at::empty(input.sizes(), input.options().memory_format(input.suggest_memory_format())) : at::Tensor();
  // Chunk sums accumulate in the op-math type (float for half/bfloat16).
  const auto acc_options = basis.options().dtype(at::toOpMathType(basis.scalar_type()));
  at::Tensor grad_basis = need_basis ? at::zeros(basis.sizes(), acc_options) : at::Tensor();
  at::Tensor grad_coeff = need_coeff ? at::zeros(coeff.sizes(), acc_options) : at::Tensor();
  for (int64_t n0 = 0; n0 < g.batch; n0 += chunk) {
    const int64_t count = std::min(chunk, g.batch - n0);
    auto [grad_x, grad_b, grad_c] = composite::eigen_conv2d_backward_composite(
        grad_output.narrow(0, n0, count), input.narrow(0, n0, count), basis, coeff, stride, padding, dilation,
        output_mask);
    if (need_input) grad_input.narrow(0, n0, count).copy_(grad_x);
    if (need_basis) grad_basis.add_(grad_b);
    if (need_coeff) grad_coeff.add_(grad_c);
  }
  if (need_basis) grad_basis = grad_basis.to(basis.scalar_type()).contiguous();
  if (need_coeff) grad_coeff = grad_coeff.to(coeff.scalar_type()).contiguous();
  return {grad_input, grad_basis, grad_coeff};
}

}  // namespace

LEANCONV_CUDA_KERNELS(m) {
  m.impl("eigen_conv2d", &eigen_conv2d_cuda);
  m.impl("eigen_conv2d_backward", &eigen_conv2d_backward_cuda);
}

}  // namespace leanconv::cuda
