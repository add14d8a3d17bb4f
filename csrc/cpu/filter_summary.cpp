// CPU kernels of the overlapping-segment (FSNet) ops: the filter gather and its overlap-add adjoint, and
// the direct path's shifted sum and its adjoint. Every output element is owned by one thread and summed in
// a fixed order: no atomics, deterministic whatever the thread count.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/filter_summary_checks.h"
#include "common/conv_window.h"
#include "common/filter_summary.h"
#include "cpu/filter_summary_taps.h"
#include "cpu/shifted_sum.h"

namespace leanconv::cpu {
namespace {

at::Tensor filter_summary_weight_kernel(const at::Tensor& summary, int64_t out_channels, int64_t in_channels,
                                        int64_t kernel_h, int64_t kernel_w, int64_t summary_stride) {
  const auto layout =
      checks::check_summary_layout(summary, out_channels, in_channels, kernel_h, kernel_w, summary_stride);
  const auto f = summary.contiguous();
  auto weight = at::empty({out_channels, in_channels, kernel_h, kernel_w}, summary.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, summary.scalar_type(), "filter_summary_weight_cpu", [&] {
    const scalar_t* src = f.const_data_ptr<scalar_t>();
    scalar_t* dst = weight.mutable_data_ptr<scalar_t>();
    const int64_t taps = kernel_h * kernel_w, length = layout.length, step = in_channels % length;
    at::parallel_for(0, out_channels * in_channels, 64, [&](int64_t begin, int64_t end) {
      for (int64_t oc = begin; oc < end; ++oc) {
        // Consecutive taps of one (filter, channel) are C_in apart in the summary: step, no division.
        int64_t index = layout.index(oc / in_channels, oc % in_channels, 0, 0);
        scalar_t* out = dst + oc * taps;
        for (int64_t t = 0; t < taps; ++t) {
          out[t] = src[index];
          index += step;
          if (index >= length) index -= length;
        }
      }
    });
  });
  return weight;
}

at::Tensor filter_summary_weight_backward_kernel(const at::Tensor& grad_weight, int64_t length,
                                                 int64_t summary_stride) {
  const auto layout = checks::check_summary_gradient(grad_weight, length, summary_stride);
  const auto g = grad_weight.contiguous();
  auto grad_summary = at::empty({length}, grad_weight.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "filter_summary_weight_backward_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* src = g.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_summary.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, length, 256, [&](int64_t begin, int64_t end) {
      for (int64_t l = begin; l < end; ++l) dst[l] = static_cast<scalar_t>(layout.overlap_add<opmath_t>(src, l));
    });
  });
  return grad_summary;
}

// Both kernels own whole planes: `planes` output planes of plane_size values, one thread each, summed by
// add_taps(plane, acc) into a zeroed op-math buffer, then stored. No atomics, the same order for any thread count.
template <typename scalar_t, typename AddTaps>
void sum_planes(int64_t planes, int64_t plane_size, scalar_t* dst, AddTaps&& add_taps) {
  using opmath_t = at::opmath_type<scalar_t>;
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    std::vector<opmath_t> acc(plane_size);
    for (int64_t plane = begin; plane < end; ++plane) {
      std::fill(acc.begin(), acc.end(), opmath_t(0));
      add_taps(plane, acc.data());
      scalar_t* out = dst + plane * plane_size;
      for (int64_t k = 0; k < plane_size; ++k) out[k] = static_cast<scalar_t>(acc[k]);
    }
  });
}

}  // namespace

// Declared in cpu/shifted_sum.h: the CPU segment conv's channels_last path ends in it.
at::Tensor shifted_sum_kernel(const at::Tensor& z_in, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                              at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto s = checks::shifted_sum_geometry(z_in, kernel_h, kernel_w, channel_step, stride, padding, dilation);
  const auto memory_format = z_in.suggest_memory_format();
  const auto z = z_in.contiguous();
  const int64_t batch = z.size(0), M = s.channels;
  auto y = at::empty({batch, M, s.out_h, s.out_w}, z.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "shifted_sum_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* src = z.const_data_ptr<scalar_t>();
    const int64_t plane_in = s.in_h * s.in_w;
    // Output plane (n, o) gathers, tap by tap, the shifted input plane it reads.
    sum_planes(batch * M, s.out_pixels(), y.mutable_data_ptr<scalar_t>(), [&](int64_t no, opmath_t* acc) {
      const int64_t n = no / M, o = no % M;
      for_each_tap(s, [&](const TapRange& r) {
        const scalar_t* plane = src + (n * M + s.source_channel(o, r.tap)) * plane_in;
        for (int64_t p = r.p0; p < r.p1; ++p) {
          const scalar_t* row = plane + (p * s.stride_h + r.dh) * s.in_w + r.dw;
          opmath_t* out_row = acc + p * s.out_w;
          for (int64_t q = r.q0; q < r.q1; ++q) out_row[q] += static_cast<opmath_t>(row[q * s.stride_w]);
        }
      });
    });
  });
  return y.contiguous(memory_format);
}

namespace {

at::Tensor shifted_sum_backward_kernel(const at::Tensor& grad_in, int64_t kernel_h, int64_t kernel_w,
                                       int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                       at::IntArrayRef dilation, at::IntArrayRef input_size) {
  const auto s = checks::shifted_sum_backward_geometry(grad_in, kernel_h, kernel_w, channel_step, stride, padding,
                                                       dilation, input_size);
  const auto memory_format = grad_in.suggest_memory_format();
  const auto dy = grad_in.contiguous();
  const int64_t batch = dy.size(0), M = s.channels;
  auto dz = at::empty({batch, M, s.in_h, s.in_w}, dy.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dy.scalar_type(), "shifted_sum_backward_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* src = dy.const_data_ptr<scalar_t>();
    const int64_t plane_out = s.out_pixels();
    // Plane (n, m) of dz adds, tap by tap, the output plane that read it.
    sum_planes(batch * M, s.in_h * s.in_w, dz.mutable_data_ptr<scalar_t>(), [&](int64_t nm, opmath_t* acc) {
      const int64_t n = nm / M, m = nm % M;
      for_each_tap(s, [&](const TapRange& r) {
        const scalar_t* plane = src + (n * M + s.reader_channel(m, r.tap)) * plane_out;
        for (int64_t p = r.p0; p < r.p1; ++p) {
          opmath_t* row = acc + (p * s.stride_h + r.dh) * s.in_w + r.dw;
          const scalar_t* grad_row = plane + p * s.out_w;
          for (int64_t q = r.q0; q < r.q1; ++q) row[q * s.stride_w] += static_cast<opmath_t>(grad_row[q]);
        }
      });
    });
  });
  return dz.contiguous(memory_format);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("filter_summary_weight", &filter_summary_weight_kernel);
  m.impl("filter_summary_weight_backward", &filter_summary_weight_backward_kernel);
  m.impl("shifted_sum", &shifted_sum_kernel);
  m.impl("shifted_sum_backward", &shifted_sum_backward_kernel);
}

}  // namespace leanconv::cpu
