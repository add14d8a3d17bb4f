// CUDA kernels of the overlapping-segment (FSNet) ops. One thread (or, for the overlap-add of many terms, one
// warp) per output element, each summing its contributors in a fixed order: no atomics, deterministic.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>

#include "common/checks.h"
#include "common/filter_summary.h"
#include "common/filter_summary_checks.h"
#include "index_math.cuh"
#include "launch.cuh"
#include "runtime.cuh"

namespace leanconv::cuda {
namespace {

template <typename scalar_t>
__global__ void gather_filters_kernel(const scalar_t* __restrict__ summary, scalar_t* __restrict__ weight,
                                      common::SummaryLayout layout, int64_t count) {
  const int64_t taps = layout.kernel_h * layout.kernel_w;
  LEANCONV_GRID_STRIDE(k, count) {
    const int64_t t = k % taps, oc = k / taps;
    const int64_t o = oc / layout.in_channels, c = oc % layout.in_channels;
    weight[k] = summary[layout.index(o, c, t / layout.kernel_w, t % layout.kernel_w)];
  }
}

template <typename scalar_t>
__global__ void overlap_add_kernel(const scalar_t* __restrict__ grad_weight, scalar_t* __restrict__ grad_summary,
                                   common::SummaryLayout layout) {
  LEANCONV_GRID_STRIDE(l, layout.length) {
    grad_summary[l] = static_cast<scalar_t>(layout.overlap_add<at::opmath_type<scalar_t>>(grad_weight, l));
  }
}

// The overlap-add with one warp per summary entry, for entries of many terms (small s: only C_out*s entries, each
// of about K/s terms): lane p adds part p of 32 (common/filter_summary.h), then a fixed shuffle tree adds the lanes.
constexpr int kWarp = 32;
static_assert(kThreads % kWarp == 0, "a warp per entry needs blocks of whole warps");

template <typename scalar_t>
__global__ void overlap_add_warp_kernel(const scalar_t* __restrict__ grad_weight,
                                        scalar_t* __restrict__ grad_summary, common::SummaryLayout layout) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / kWarp;
  for (int64_t l = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; l < layout.length; l += warps) {
    opmath_t sum = layout.overlap_add_part<opmath_t>(grad_weight, l, lane, kWarp);
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (lane == 0) grad_summary[l] = static_cast<scalar_t>(sum);
  }
}

// The shifted sum and its adjoint read and write through strides, and each thread finds its element from its index
// in the output's memory order (NCHW or NHWC: Unflatten4, three fast divisions), so a warp touches adjacent
// columns (NCHW) or adjacent channels (NHWC) and channels_last tensors need no copies. Each element adds its taps
// in the CPU kernel's order (i, then j), so the two give the same bits; the tap's channel follows by one step
// per tap, with a wrap instead of a `%`.
struct ShiftedSumOperands {
  common::ShiftedSum s;
  common::Strides4 in, out;  // strides of the kernel's input and output tensors
  Unflatten4 unflatten;      // of the output
};

template <typename scalar_t>
__global__ void shifted_sum_cuda_kernel(const scalar_t* __restrict__ z, scalar_t* __restrict__ y,
                                        ShiftedSumOperands a, int64_t count) {
  using opmath_t = at::opmath_type<scalar_t>;
  const common::ShiftedSum& s = a.s;
  LEANCONV_GRID_STRIDE(k, count) {
    const Coords4 pos = a.unflatten(k);
    const scalar_t* image = z + pos.n * a.in.n;
    int64_t channel = pos.c;  // (o + t*step) mod M for tap t = i*kw + j
    opmath_t sum = 0;
    for (int64_t i = 0; i < s.kernel_h; ++i) {
      const int64_t h = pos.h * s.stride_h - s.pad_h + i * s.dil_h;
      const bool row_inside = h >= 0 && h < s.in_h;
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        const int64_t w = pos.w * s.stride_w - s.pad_w + j * s.dil_w;
        if (row_inside && w >= 0 && w < s.in_w) {
          sum += static_cast<opmath_t>(image[channel * a.in.c + h * a.in.h + w * a.in.w]);
        }
        channel += s.step;
        if (channel >= s.channels) channel -= s.channels;
      }
    }
    y[pos.n * a.out.n + pos.c * a.out.c + pos.h * a.out.h + pos.w * a.out.w] = static_cast<scalar_t>(sum);
  }
}

// Which output coordinate read input coordinate x through tap offset tap*dilation, along one axis: the q with
// q*stride - pad + tap*dilation = x, if any. With x + pad = xq*stride + xr and tap*dilation = tq*stride + tr
// (tq, tr follow tap by tap), q = xq - tq exactly when tr = xr; no division per tap.
struct TapSteps {
  int64_t quotient, remainder;  // dilation / stride and dilation % stride
};

// The next tap's offset (dilation times its index) as a quotient and remainder by the stride, from this tap's.
__device__ __forceinline__ void next_tap(int64_t& quotient, int64_t& remainder, const TapSteps& step, int64_t stride) {
  quotient += step.quotient;
  remainder += step.remainder;
  if (remainder >= stride) {
    remainder -= stride;
    ++quotient;
  }
}

template <typename scalar_t>
__global__ void shifted_sum_backward_cuda_kernel(const scalar_t* __restrict__ dy, scalar_t* __restrict__ dz,
                                                 ShiftedSumOperands a, FastDivider stride_h, FastDivider stride_w,
                                                 TapSteps step_h, TapSteps step_w, int64_t count) {
  using opmath_t = at::opmath_type<scalar_t>;
  const common::ShiftedSum& s = a.s;
  LEANCONV_GRID_STRIDE(k, count) {
    const Coords4 pos = a.unflatten(k);  // (n, m, h, w) of dz
    const scalar_t* image = dy + pos.n * a.in.n;
    const int64_t hq = stride_h.div(pos.h + s.pad_h), hr = pos.h + s.pad_h - hq * s.stride_h;
    const int64_t wq = stride_w.div(pos.w + s.pad_w), wr = pos.w + s.pad_w - wq * s.stride_w;
    int64_t channel = pos.c;  // the reader (m - t*step) mod M of tap t
    int64_t tq_h = 0, tr_h = 0;
    opmath_t sum = 0;
    for (int64_t i = 0; i < s.kernel_h; ++i) {
      const int64_t p = hq - tq_h;
      const bool row_read = tr_h == hr && p >= 0 && p < s.out_h;
      int64_t tq_w = 0, tr_w = 0;
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        const int64_t q = wq - tq_w;
        if (row_read && tr_w == wr && q >= 0 && q < s.out_w) {
          sum += static_cast<opmath_t>(image[channel * a.in.c + p * a.in.h + q * a.in.w]);
        }
        channel -= s.step;
        if (channel < 0) channel += s.channels;
        next_tap(tq_w, tr_w, step_w, s.stride_w);
      }
      next_tap(tq_h, tr_h, step_h, s.stride_h);
    }
    dz[pos.n * a.out.n + pos.c * a.out.c + pos.h * a.out.h + pos.w * a.out.w] = static_cast<scalar_t>(sum);
  }
}

using checks::strides_of;

// An output of `sizes` with the strides the fake kernel promises: at::empty(sizes).contiguous(memory_format)
// without the copy (a tensor already contiguous in both formats keeps its NCHW strides).
at::Tensor empty_in_format(at::IntArrayRef sizes, const at::TensorOptions& options, at::MemoryFormat memory_format) {
  auto out = at::empty(sizes, options);
  return out.is_contiguous(memory_format) ? out : at::empty(sizes, options.memory_format(memory_format));
}

at::Tensor filter_summary_weight_kernel(const at::Tensor& summary, int64_t out_channels, int64_t in_channels,
                                        int64_t kernel_h, int64_t kernel_w, int64_t summary_stride) {
  const auto layout =
      checks::check_summary_layout(summary, out_channels, in_channels, kernel_h, kernel_w, summary_stride);
  const runtime::DeviceGuard guard(summary.device());
  const auto f = summary.contiguous();
  auto weight = at::empty({out_channels, in_channels, kernel_h, kernel_w}, summary.options());
  const int64_t count = weight.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, summary.scalar_type(), "filter_summary_weight_cuda", [&] {
    launch(LEANCONV_KERNEL(gather_filters_kernel<scalar_t>), {blocks_for(count), kThreads}, runtime::current_stream(),
           f.const_data_ptr<scalar_t>(), weight.mutable_data_ptr<scalar_t>(), layout, count);
  });
  return weight;
}

at::Tensor filter_summary_weight_backward_kernel(const at::Tensor& grad_weight, int64_t length,
                                                 int64_t summary_stride) {
  const auto layout = checks::check_summary_gradient(grad_weight, length, summary_stride);
  const runtime::DeviceGuard guard(grad_weight.device());
  const auto g = grad_weight.contiguous();
  auto grad_summary = at::empty({length}, grad_weight.options());
  // A warp per entry once entries have a warp's worth of terms (about K/s each); the choice depends on the shape
  // only, so the result's bits do too.
  const bool warp_per_entry = layout.filter_length() >= kWarp * layout.summary_stride;
  const auto stream = runtime::current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "filter_summary_weight_backward_cuda", [&] {
    if (warp_per_entry) {
      launch(LEANCONV_KERNEL(overlap_add_warp_kernel<scalar_t>), {blocks_for(length * kWarp), kThreads}, stream,
             g.const_data_ptr<scalar_t>(), grad_summary.mutable_data_ptr<scalar_t>(), layout);
    } else {
      launch(LEANCONV_KERNEL(overlap_add_kernel<scalar_t>), {blocks_for(length), kThreads}, stream,
             g.const_data_ptr<scalar_t>(), grad_summary.mutable_data_ptr<scalar_t>(), layout);
    }
  });
  return grad_summary;
}

at::Tensor shifted_sum_kernel(const at::Tensor& z_in, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                              at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto s = checks::shifted_sum_geometry(z_in, kernel_h, kernel_w, channel_step, stride, padding, dilation);
  const runtime::DeviceGuard guard(z_in.device());
  const auto memory_format = z_in.suggest_memory_format();
  const auto z = z_in.contiguous(memory_format);  // a no-op for NCHW and channels_last inputs
  auto y = empty_in_format({z.size(0), s.channels, s.out_h, s.out_w}, z.options(), memory_format);
  const int64_t count = y.numel();
  if (count == 0) return y;
  const ShiftedSumOperands a{s, strides_of(z), strides_of(y),
                             Unflatten4(s.channels, s.out_h, s.out_w, memory_format == at::MemoryFormat::ChannelsLast)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "shifted_sum_cuda", [&] {
    launch(LEANCONV_KERNEL(shifted_sum_cuda_kernel<scalar_t>), {blocks_for(count), kThreads},
           runtime::current_stream(), z.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), a, count);
  });
  return y;
}

at::Tensor shifted_sum_backward_kernel(const at::Tensor& grad_in, int64_t kernel_h, int64_t kernel_w,
                                       int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                       at::IntArrayRef dilation, at::IntArrayRef input_size) {
  const auto s = checks::shifted_sum_backward_geometry(grad_in, kernel_h, kernel_w, channel_step, stride, padding,
                                                       dilation, input_size);
  const runtime::DeviceGuard guard(grad_in.device());
  const auto memory_format = grad_in.suggest_memory_format();
  const auto dy = grad_in.contiguous(memory_format);
  auto dz = empty_in_format({dy.size(0), s.channels, s.in_h, s.in_w}, dy.options(), memory_format);
  const int64_t count = dz.numel();
  if (count == 0) return dz;
  const ShiftedSumOperands a{s, strides_of(dy), strides_of(dz),
                             Unflatten4(s.channels, s.in_h, s.in_w, memory_format == at::MemoryFormat::ChannelsLast)};
  const TapSteps step_h{s.dil_h / s.stride_h, s.dil_h % s.stride_h};
  const TapSteps step_w{s.dil_w / s.stride_w, s.dil_w % s.stride_w};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dy.scalar_type(), "shifted_sum_backward_cuda", [&] {
    launch(LEANCONV_KERNEL(shifted_sum_backward_cuda_kernel<scalar_t>), {blocks_for(count), kThreads},
           runtime::current_stream(), dy.const_data_ptr<scalar_t>(), dz.mutable_data_ptr<scalar_t>(), a,
           FastDivider(s.stride_h), FastDivider(s.stride_w), step_h, step_w, count);
  });
  return dz;
}

}  // namespace

LEANCONV_CUDA_KERNELS(m) {
  m.impl("filter_summary_weight", &filter_summary_weight_kernel);
  m.impl("filter_summary_weight_backward", &filter_summary_weight_backward_kernel);
  m.impl("shifted_sum", &shifted_sum_kernel);
  m.impl("shifted_sum_backward", &shifted_sum_backward_kernel);
}

}  // namespace leanconv::cuda
