// CUDA kernels of the small-group grouped conv, direct and deterministic.
//
// Forward: a thread computes kMicro output channels of one group at one output pixel, so each input value it
// reads serves kMicro filters; neighbouring threads take neighbouring pixels (coalesced in NCHW) and read the same
// weights (broadcast through the cache). Backward: a thread gathers one input element's gradient from the output
// gradients of its group's filters (no atomics), and a block reduces one weight element's gradient over the batch
// and the image in a fixed order. Tensors are read and written through their strides, so channels_last needs no
// copies; arithmetic in the op-math type (float for half/bfloat16).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include "common/conv_epilogue.h"
#include "common/multigrid.h"
#include "common/multigrid_checks.h"
#include "launch.cuh"
#include "composite/multigrid.h"
#include "runtime.cuh"

namespace leanconv::cuda {
namespace {

using checks::strides_of;
using common::GroupedConv;
using common::Strides4;

constexpr int kMicro = 4;
constexpr int kReduceThreads = 256;

template <typename scalar_t>
__global__ void grouped_conv2d_forward_kernel(const scalar_t* __restrict__ x, Strides4 xs,
                                              const scalar_t* __restrict__ weight,
                                              common::Epilogue<at::opmath_type<scalar_t>> epilogue,
                                              scalar_t* __restrict__ y, Strides4 ys, GroupedConv g) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t pixels = g.out_pixels(), quads = (g.group_out() + kMicro - 1) / kMicro;
  const int64_t total = g.batch * g.groups * quads * pixels;
  LEANCONV_GRID_STRIDE(index, total) {
    const int64_t pq = index % pixels, quad = (index / pixels) % quads;
    const int64_t group = (index / (pixels * quads)) % g.groups, n = index / (pixels * quads * g.groups);
    const int64_t p = pq / g.out_w, q = pq % g.out_w;
    const int64_t f0 = quad * kMicro, o0 = group * g.group_out() + f0;
    const int filters = int(g.group_out() - f0 < kMicro ? g.group_out() - f0 : kMicro);
    acc_t acc[kMicro] = {};
    const scalar_t* x_n = x + n * xs.n + group * g.group_in() * xs.c;
    for (int64_t c = 0; c < g.group_in(); ++c) {
      common::for_each_tap_inside(g, p, q, [&](int64_t i, int64_t j, int64_t h, int64_t w) {
        const acc_t v = static_cast<acc_t>(x_n[c * xs.c + h * xs.h + w * xs.w]);
        const scalar_t* w_tap = weight + o0 * g.filter_size() + c * g.taps() + i * g.kernel_w + j;
#pragma unroll
        for (int m = 0; m < kMicro; ++m)
          if (m < filters) acc[m] += static_cast<acc_t>(w_tap[m * g.filter_size()]) * v;
      });
    }
#pragma unroll
    for (int m = 0; m < kMicro; ++m)
      if (m < filters)
        y[n * ys.n + (o0 + m) * ys.c + p * ys.h + q * ys.w] =
            static_cast<scalar_t>(epilogue.apply(acc[m], o0 + m));
  }
}

// grad_x[n, c, h, w] = sum over the group's filters o and the taps (i, j) whose output pixel (p, q) reads (h, w).
template <typename scalar_t>
__global__ void grouped_conv2d_input_grad_kernel(const scalar_t* __restrict__ gy, Strides4 gys,
                                                 const scalar_t* __restrict__ weight, scalar_t* __restrict__ gx,
                                                 Strides4 gxs, GroupedConv g) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t image = g.in_h * g.in_w, total = g.batch * g.in_channels * image;
  LEANCONV_GRID_STRIDE(index, total) {
    const int64_t hw = index % image, channel = (index / image) % g.in_channels, n = index / (image * g.in_channels);
    const int64_t h = hw / g.in_w, w = hw % g.in_w;
    const int64_t group = channel / g.group_in(), c = channel % g.group_in();
    acc_t sum = 0;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      const int64_t ph = h + g.pad_h - i * g.dil_h;
      if (ph < 0 || ph % g.stride_h != 0 || ph / g.stride_h >= g.out_h) continue;
      const int64_t p = ph / g.stride_h;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t qw = w + g.pad_w - j * g.dil_w;
        if (qw < 0 || qw % g.stride_w != 0 || qw / g.stride_w >= g.out_w) continue;
        const int64_t q = qw / g.stride_w;
        for (int64_t f = 0; f < g.group_out(); ++f) {
          const int64_t o = group * g.group_out() + f;
          sum += static_cast<acc_t>(weight[o * g.filter_size() + c * g.taps() + i * g.kernel_w + j]) *
                 static_cast<acc_t>(gy[n * gys.n + o * gys.c + p * gys.h + q * gys.w]);
        }
      }
    }
    gx[n * gxs.n + channel * gxs.c + h * gxs.h + w * gxs.w] = static_cast<scalar_t>(sum);
  }
}

// One block per weight element (o, c, i, j): the sum over images and output pixels, in a fixed order.
template <typename scalar_t>
__global__ void __launch_bounds__(kReduceThreads)
    grouped_conv2d_weight_grad_kernel(const scalar_t* __restrict__ gy, Strides4 gys, const scalar_t* __restrict__ x,
                                      Strides4 xs, scalar_t* __restrict__ grad_weight, GroupedConv g) {
  using acc_t = at::opmath_type<scalar_t>;
  LEANCONV_SHARED(acc_t, partial, [kReduceThreads]);
  const int64_t element = blockIdx.x;
  const int64_t tap = element % g.taps(), c = (element / g.taps()) % g.group_in(), o = element / g.filter_size();
  const int64_t i = tap / g.kernel_w, j = tap % g.kernel_w, group = o / g.group_out();
  const int64_t channel = group * g.group_in() + c, pixels = g.out_pixels(), total = g.batch * pixels;
  acc_t sum = 0;
  for (int64_t index = threadIdx.x; index < total; index += kReduceThreads) {
    const int64_t n = index / pixels, pq = index % pixels, p = pq / g.out_w, q = pq % g.out_w;
    const int64_t h = p * g.stride_h - g.pad_h + i * g.dil_h, w = q * g.stride_w - g.pad_w + j * g.dil_w;
    if (h < 0 || h >= g.in_h || w < 0 || w >= g.in_w) continue;
    sum += static_cast<acc_t>(gy[n * gys.n + o * gys.c + p * gys.h + q * gys.w]) *
           static_cast<acc_t>(x[n * xs.n + channel * xs.c + h * xs.h + w * xs.w]);
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kReduceThreads / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) grad_weight[element] = static_cast<scalar_t>(partial[0]);
}

at::Tensor grouped_conv2d_cuda(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto g = checks::grouped_conv_geometry(input, weight, bias, stride, padding, dilation, groups);
  runtime::DeviceGuard guard(input.device());
  auto output = at::empty({g.batch, g.out_channels, g.out_h, g.out_w},
                          input.options().memory_format(input.suggest_memory_format()));
  if (output.numel() == 0) return output;
  const auto weight_c = weight.contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  const auto bias_acc = has_bias ? bias->to(at::toOpMathType(input.scalar_type())).contiguous() : at::Tensor();
  const int64_t total = g.batch * g.groups * ((g.group_out() + kMicro - 1) / kMicro) * g.out_pixels();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_conv2d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    launch(LEANCONV_KERNEL(grouped_conv2d_forward_kernel<scalar_t>), {blocks_for(total), kThreads},
           runtime::current_stream(), input.const_data_ptr<scalar_t>(), strides_of(input),
           weight_c.const_data_ptr<scalar_t>(),
           common::Epilogue<acc_t>::bias(has_bias ? bias_acc.const_data_ptr<acc_t>() : nullptr),
           output.mutable_data_ptr<scalar_t>(), strides_of(output), g);
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward_cuda(const at::Tensor& grad_output,
                                                                const at::Tensor& input, const at::Tensor& weight,
                                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                                at::IntArrayRef dilation, int64_t groups,
                                                                std::array<bool, 2> output_mask) {
  const auto g = checks::grouped_conv_backward_geometry(grad_output, input, weight, stride, padding, dilation, groups);
  runtime::DeviceGuard guard(input.device());
  at::Tensor grad_input, grad_weight;
  const auto weight_c = weight.contiguous();
  const auto stream = runtime::current_stream();
  if (output_mask[0]) {
    grad_input = at::empty(input.sizes(), input.options().memory_format(input.suggest_memory_format()));
    if (grad_input.numel() > 0) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_conv2d_input_grad", [&] {
        launch(LEANCONV_KERNEL(grouped_conv2d_input_grad_kernel<scalar_t>), {blocks_for(grad_input.numel()), kThreads},
               stream, grad_output.const_data_ptr<scalar_t>(), strides_of(grad_output),
               weight_c.const_data_ptr<scalar_t>(), grad_input.mutable_data_ptr<scalar_t>(), strides_of(grad_input), g);
      });
    }
  }
  if (output_mask[1]) {
    grad_weight = at::empty(weight.sizes(), weight.options());
  }
  if (output_mask[1] && grad_weight.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_conv2d_weight_grad", [&] {
      launch(LEANCONV_KERNEL(grouped_conv2d_weight_grad_kernel<scalar_t>),
             {weight.numel(), kReduceThreads, kReduceThreads}, stream, grad_output.const_data_ptr<scalar_t>(),
             strides_of(grad_output), input.const_data_ptr<scalar_t>(), strides_of(input),
             grad_weight.mutable_data_ptr<scalar_t>(), g);
    });
  }
  return {grad_input, grad_weight};
}

}  // namespace

LEANCONV_CUDA_KERNELS(m) {
  m.impl("grouped_conv2d", &grouped_conv2d_cuda);
  m.impl("grouped_conv2d_backward", &grouped_conv2d_backward_cuda);
}

}  // namespace leanconv::cuda
