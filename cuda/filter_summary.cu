// CUDA kernels of the overlapping-segment (FSNet) ops. One thread per output element, each summing its
// contributors in a fixed order: no atomics, deterministic.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/filter_summary_checks.h"
#include "launch.cuh"
#include "common/filter_summary.h"

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

template <typename scalar_t>
__global__ void shifted_sum_cuda_kernel(const scalar_t* __restrict__ z, scalar_t* __restrict__ y,
                                        common::ShiftedSum s, int64_t count) {
  using opmath_t = at::opmath_type<scalar_t>;
  LEANCONV_GRID_STRIDE(k, count) {
    const int64_t q = k % s.out_w, p = (k / s.out_w) % s.out_h, no = k / (s.out_w * s.out_h);
    const int64_t o = no % s.channels, n = no / s.channels;
    opmath_t sum = 0;
    for (int64_t i = 0; i < s.kernel_h; ++i) {
      const int64_t h = p * s.stride_h - s.pad_h + i * s.dil_h;
      if (h < 0 || h >= s.in_h) continue;
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        const int64_t w = q * s.stride_w - s.pad_w + j * s.dil_w;
        if (w < 0 || w >= s.in_w) continue;
        const int64_t m = s.source_channel(o, i * s.kernel_w + j);
        sum += static_cast<opmath_t>(z[((n * s.channels + m) * s.in_h + h) * s.in_w + w]);
      }
    }
    y[k] = static_cast<scalar_t>(sum);
  }
}

template <typename scalar_t>
__global__ void shifted_sum_backward_cuda_kernel(const scalar_t* __restrict__ dy, scalar_t* __restrict__ dz,
                                                 common::ShiftedSum s, int64_t count) {
  using opmath_t = at::opmath_type<scalar_t>;
  LEANCONV_GRID_STRIDE(k, count) {
    const int64_t w = k % s.in_w, h = (k / s.in_w) % s.in_h, nm = k / (s.in_w * s.in_h);
    const int64_t m = nm % s.channels, n = nm / s.channels;
    opmath_t sum = 0;
    for (int64_t i = 0; i < s.kernel_h; ++i) {
      const int64_t ph = h + s.pad_h - i * s.dil_h;  // = p * stride_h for the output row p that read (h, .)
      if (ph < 0 || ph % s.stride_h) continue;
      const int64_t p = ph / s.stride_h;
      if (p >= s.out_h) continue;
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        const int64_t qw = w + s.pad_w - j * s.dil_w;
        if (qw < 0 || qw % s.stride_w) continue;
        const int64_t q = qw / s.stride_w;
        if (q >= s.out_w) continue;
        const int64_t o = s.reader_channel(m, i * s.kernel_w + j);
        sum += static_cast<opmath_t>(dy[((n * s.channels + o) * s.out_h + p) * s.out_w + q]);
      }
    }
    dz[k] = static_cast<scalar_t>(sum);
  }
}

at::Tensor filter_summary_weight_kernel(const at::Tensor& summary, int64_t out_channels, int64_t in_channels,
                                        int64_t kernel_h, int64_t kernel_w, int64_t stride) {
  const auto layout = checks::check_summary_layout(summary, out_channels, in_channels, kernel_h, kernel_w, stride);
  const c10::cuda::CUDAGuard guard(summary.device());
  const auto f = summary.contiguous();
  auto weight = at::empty({out_channels, in_channels, kernel_h, kernel_w}, summary.options());
  const int64_t count = weight.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, summary.scalar_type(), "filter_summary_weight_cuda", [&] {
    gather_filters_kernel<scalar_t><<<blocks_for(count), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        f.const_data_ptr<scalar_t>(), weight.mutable_data_ptr<scalar_t>(), layout, count);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return weight;
}

at::Tensor filter_summary_weight_backward_kernel(const at::Tensor& grad_weight, int64_t length, int64_t stride) {
  const auto layout = checks::check_summary_gradient(grad_weight, length, stride);
  const c10::cuda::CUDAGuard guard(grad_weight.device());
  const auto g = grad_weight.contiguous();
  auto grad_summary = at::empty({length}, grad_weight.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "filter_summary_weight_backward_cuda", [&] {
    overlap_add_kernel<scalar_t><<<blocks_for(length), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        g.const_data_ptr<scalar_t>(), grad_summary.mutable_data_ptr<scalar_t>(), layout);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_summary;
}

at::Tensor shifted_sum_kernel(const at::Tensor& z_in, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                              at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto s = checks::shifted_sum_geometry(z_in, kernel_h, kernel_w, channel_step, stride, padding, dilation);
  const c10::cuda::CUDAGuard guard(z_in.device());
  const auto memory_format = z_in.suggest_memory_format();
  const auto z = z_in.contiguous();
  auto y = at::empty({z.size(0), s.channels, s.out_h, s.out_w}, z.options());
  const int64_t count = y.numel();
  if (count == 0) return y.contiguous(memory_format);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "shifted_sum_cuda", [&] {
    shifted_sum_cuda_kernel<scalar_t><<<blocks_for(count), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        z.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), s, count);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y.contiguous(memory_format);
}

at::Tensor shifted_sum_backward_kernel(const at::Tensor& grad_in, int64_t kernel_h, int64_t kernel_w,
                                       int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                       at::IntArrayRef dilation, at::IntArrayRef input_size) {
  const auto s = checks::shifted_sum_backward_geometry(grad_in, kernel_h, kernel_w, channel_step, stride, padding,
                                                       dilation, input_size);
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const auto memory_format = grad_in.suggest_memory_format();
  const auto dy = grad_in.contiguous();
  auto dz = at::empty({dy.size(0), s.channels, s.in_h, s.in_w}, dy.options());
  const int64_t count = dz.numel();
  if (count == 0) return dz.contiguous(memory_format);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dy.scalar_type(), "shifted_sum_backward_cuda", [&] {
    shifted_sum_backward_cuda_kernel<scalar_t><<<blocks_for(count), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        dy.const_data_ptr<scalar_t>(), dz.mutable_data_ptr<scalar_t>(), s, count);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dz.contiguous(memory_format);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CUDA, m) {
  m.impl("filter_summary_weight", &filter_summary_weight_kernel);
  m.impl("filter_summary_weight_backward", &filter_summary_weight_backward_kernel);
  m.impl("shifted_sum", &shifted_sum_kernel);
  m.impl("shifted_sum_backward", &shifted_sum_backward_kernel);
}

}  // namespace leanconv::cuda
