// CPU kernel of segment_conv2d, the filter-summary direct path: a 1x1 conv against the segments, then the
// shifted sum. The 1x1 conv's output z has C_out channels at the input's size (as large as the layer's output);
// stored whole it is written and read back once more than the output, and at large batches each call maps and
// page-faults it in afresh (benchmarks/NOTES.md, "Filter summary (FSNet), CPU"). Here each thread computes z
// for a band of output rows of one image (one GEMM into a buffer it reuses, sized to stay in cache) and sums
// the band's taps straight from it. Each output element is summed by one thread in the shifted sum's tap
// order: deterministic whatever the thread count. The backward is the shifted sum's adjoint, then the 1x1 conv's
// two gradients as GEMMs over fixed blocks of pixels and images, summed in a fixed order (oneDNN's 1x1 conv
// backward gives other bits at another thread count). Half and bfloat16 take the composite (oneDNN's 1x1 conv
// over the whole batch), which is faster in these types than per-image GEMMs.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>

#include "common/filter_summary.h"
#include "common/filter_summary_checks.h"
#include "cpu/filter_summary_taps.h"
#include "composite/filter_summary.h"
#include "cpu/shifted_sum.h"

namespace leanconv::cpu {
namespace {

// How many bytes of z one band holds at most: about a core's share of the last-level cache.
constexpr int64_t kBandBytes = 1 << 20;

// The input rows [first, last) that output rows [p0, p1) read, clipped to the image.
struct RowSpan {
  int64_t first, last;
};

RowSpan input_rows(const common::ShiftedSum& s, int64_t p0, int64_t p1) {
  const int64_t first = p0 * s.stride_h - s.pad_h;
  const int64_t last = (p1 - 1) * s.stride_h - s.pad_h + (s.kernel_h - 1) * s.dil_h + 1;
  const int64_t clipped_first = std::clamp<int64_t>(first, 0, s.in_h);
  return {clipped_first, std::clamp<int64_t>(last, clipped_first, s.in_h)};  // empty when the rows read only padding
}

// Output rows per band: as many as keep the band's z within kBandBytes, and few enough that a small batch still
// makes kMinTasks bands to share out. A band recomputes the (kh - 1) * dh rows its neighbour also reads, so a
// band keeps at least four times as many. The bands depend on the shapes alone, never on the thread count: each
// output element is computed the same way whatever the number of threads.
constexpr int64_t kMinTasks = 8;

int64_t rows_per_band(const common::ShiftedSum& s, int64_t batch, int64_t element_size) {
  // (Divisions, and saturating products: a stride or dilation near 2^63 must not wrap a product to zero.)
  const int64_t z_row_bytes = std::max<int64_t>(checks::saturating_mul(s.channels * s.in_w, element_size), 1);
  int64_t rows = std::max<int64_t>(kBandBytes / z_row_bytes / s.stride_h, 1);
  const int64_t wanted_bands = (kMinTasks + batch - 1) / batch;
  if (wanted_bands > 1) {
    const int64_t halo = (s.kernel_h - 1) * s.dil_h;
    rows = std::min(rows, std::max<int64_t>(checks::saturating_mul(4, halo), (s.out_h + wanted_bands - 1) / wanted_bands));
  }
  return std::clamp<int64_t>(rows, 1, std::max<int64_t>(s.out_h, 1));
}

// MKL's own thread setting for the calling thread (exported by torch's MKL build; weak, so other BLAS builds link).
extern "C" int MKL_Set_Num_Threads_Local(int threads) __attribute__((weak));

// A task's GEMMs on its own thread alone: inside a parallel region MKL runs them sequentially, but it picks its
// sequential kernels by its global thread setting (set_num_threads), so on Intel CPUs the bits of one product
// differed between 1 and 2 threads. A per-thread setting of 1 gives every thread count the same kernels.
class SequentialBlas {
 public:
  SequentialBlas() : previous_(MKL_Set_Num_Threads_Local ? MKL_Set_Num_Threads_Local(1) : 0) {}
  ~SequentialBlas() {
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(previous_);
  }
  SequentialBlas(const SequentialBlas&) = delete;
  SequentialBlas& operator=(const SequentialBlas&) = delete;

 private:
  int previous_;
};

// Calls f(begin, end) on ranges of [0, count) on the intra-op threads, below autograd (worker threads do not
// inherit the caller's dispatch state, and the GEMMs in f are kernel internals). With more than one thread it
// always runs inside a parallel region, also for a single task: a BLAS call made outside one would split its
// product over the threads itself, and its bits then depend on the thread count.
template <typename F>
void for_task_ranges(int64_t count, const F& f) {
  at::parallel_for(0, std::max<int64_t>(count, 2), 1, [&](int64_t begin, int64_t end) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const SequentialBlas one_thread;
    if (begin < count) f(begin, std::min(end, count));
  });
}

// Adds tap (r.dh, r.dw) of output rows [p0, p1) from z channel `plane`, whose row 0 is input row `first_row`,
// to `out`, output row p0 of one output plane.
template <typename scalar_t>
void add_tap(const common::ShiftedSum& s, const TapRange& r, const scalar_t* plane, int64_t first_row, int64_t p0,
             int64_t p1, scalar_t* out) {
  for (int64_t p = std::max(p0, r.p0); p < std::min(p1, r.p1); ++p) {
    const scalar_t* row = plane + (p * s.stride_h + r.dh - first_row) * s.in_w + r.dw;
    scalar_t* out_row = out + (p - p0) * s.out_w;
    if (s.stride_w == 1) {
      for (int64_t q = r.q0; q < r.q1; ++q) out_row[q] += row[q];
    } else {
      for (int64_t q = r.q0; q < r.q1; ++q) out_row[q] += row[q * s.stride_w];
    }
  }
}

// The cases the banded kernel below does not take, answered otherwise: an empty input (zeros), channels_last (one
// GEMM and the shifted sum) and half / bfloat16 (the composite, on oneDNN's 1x1 conv). Empty for the banded kernel.
std::optional<at::Tensor> segment_conv2d_elsewhere(const common::ShiftedSum& s, const at::Tensor& input,
                                                   const at::Tensor& segments_in, int64_t channel_step,
                                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                                   at::IntArrayRef dilation) {
  if (input.numel() == 0) {
    // No input values: zeros, in the input's layout unless the output is empty (its strides may not fit then).
    auto y = at::zeros({input.size(0), s.channels, s.out_h, s.out_w}, input.options());
    return y.numel() == 0 ? y : y.contiguous(input.suggest_memory_format());
  }
  if (input.suggest_memory_format() == at::MemoryFormat::ChannelsLast && input.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    // channels_last: z is one GEMM over the pixels in the same layout; the shifted sum follows it.
    const auto z = at::mm(input.permute({0, 2, 3, 1}).reshape({-1, input.size(1)}), segments_in.t())
                       .view({input.size(0), s.in_h, s.in_w, s.channels})
                       .permute({0, 3, 1, 2});
    return shifted_sum_kernel(z, s.kernel_h, s.kernel_w, channel_step, stride, padding, dilation);
  }
  if (at::isReducedFloatingType(input.scalar_type())) {  // oneDNN's half / bfloat16 1x1 conv over the whole batch
    return composite::segment_conv2d_composite(input, segments_in, s.kernel_h, s.kernel_w, channel_step, stride,
                                               padding, dilation);
  }
  return std::nullopt;
}

// Output rows [p0, p1) of image n, every output channel: z = segments x (the input rows they read), into the
// task's buffer `z`, then each output plane is the sum of its taps' shifted z rows.
template <typename scalar_t>
void segment_conv2d_band(const common::ShiftedSum& s, const at::Tensor& x, const at::Tensor& segments, int64_t n,
                         int64_t p0, int64_t p1, at::Tensor& z, scalar_t* out) {
  const int64_t C = x.size(1), M = s.channels, plane_in = s.in_h * s.in_w;
  const auto rows = input_rows(s, p0, p1);
  const int64_t pixels = (rows.last - rows.first) * s.in_w;
  auto z_band = z.narrow(1, 0, pixels);
  if (pixels > 0) {
    // x[n, :, first:last, :] as a (C_in, pixels) matrix whose rows are planes apart.
    const auto x_band = x.as_strided({C, pixels}, {plane_in, 1}, x.storage_offset() + n * C * plane_in + rows.first * s.in_w);
    at::mm_out(z_band, segments, x_band);
  }
  const scalar_t* z_data = z_band.const_data_ptr<scalar_t>();
  const int64_t z_stride = z_band.stride(0);
  for (int64_t o = 0; o < M; ++o) {
    scalar_t* dst = out + ((n * M + o) * s.out_h + p0) * s.out_w;
    std::fill(dst, dst + (p1 - p0) * s.out_w, scalar_t(0));
    for_each_tap(s, [&](const TapRange& r) {
      add_tap(s, r, z_data + s.source_channel(o, r.tap) * z_stride, rows.first, p0, p1, dst);
    });
  }
}

at::Tensor segment_conv2d_kernel(const at::Tensor& input, const at::Tensor& segments_in, int64_t kernel_h,
                                 int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto s =
      checks::segment_conv2d_geometry(input, segments_in, kernel_h, kernel_w, channel_step, stride, padding, dilation);
  if (auto answered = segment_conv2d_elsewhere(s, input, segments_in, channel_step, stride, padding, dilation))
    return *answered;
  const auto segments = segments_in.contiguous();
  const auto x = input.contiguous();
  const int64_t batch = input.size(0);
  auto y = at::empty({batch, s.channels, s.out_h, s.out_w}, x.options());
  // The output in bands of rows, one task an image's band, so that a band's z stays in cache.
  const int64_t band_rows = rows_per_band(s, batch, x.element_size());
  const int64_t bands = (s.out_h + band_rows - 1) / band_rows;
  const int64_t z_rows = std::min(
      s.in_h, checks::saturating_add(checks::saturating_mul(band_rows, s.stride_h), (s.kernel_h - 1) * s.dil_h));
  // float and double only (half and bfloat16 were answered elsewhere): the sums run in the output itself.
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "segment_conv2d_cpu", [&] {
    scalar_t* out = y.mutable_data_ptr<scalar_t>();
    for_task_ranges(batch * bands, [&](int64_t begin, int64_t end) {
      auto z = at::empty({s.channels, z_rows * s.in_w}, x.options());
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / bands, p0 = (task % bands) * band_rows;
        segment_conv2d_band(s, x, segments, n, p0, std::min(p0 + band_rows, s.out_h), z, out);
      }
    });
  });
  return y;
}

// Images a weight-gradient partial sums, one after the other: a fixed grouping, so the result does not depend
// on the thread count, and the partials take a 1/kImagesPerPartial of a per-image buffer.
constexpr int64_t kImagesPerPartial = 8;

// grad_segments[m, c] = sum_n sum_pixels grad_z[n, m, pixel] * input[n, c, pixel] (float or double): each group
// of kImagesPerPartial images accumulates its GEMMs into its own partial, and the partials are added in group order.
at::Tensor segments_gradient(const at::Tensor& grad_z, const at::Tensor& input) {
  const auto gz = grad_z.contiguous(), x = input.contiguous();
  const int64_t batch = x.size(0), C = x.size(1), M = gz.size(1), pixels = x.size(2) * x.size(3);
  const int64_t groups = (batch + kImagesPerPartial - 1) / kImagesPerPartial;
  auto partials = at::zeros({groups, M, C}, x.options());
  for_task_ranges(groups, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      auto partial = partials[g];
      for (int64_t n = g * kImagesPerPartial; n < std::min(batch, (g + 1) * kImagesPerPartial); ++n) {
        partial.addmm_(gz[n].view({M, pixels}), x[n].view({C, pixels}).t());
      }
    }
  });
  auto total = partials[0].clone();
  for (int64_t g = 1; g < groups; ++g) total.add_(partials[g]);
  return total;
}

// Pixels of one image an input-gradient GEMM covers: a fixed split, so the result does not depend on the thread
// count, fine enough that a single image still makes work for several threads.
constexpr int64_t kPixelsPerTask = 4096;

// grad_input[n, :, pixels] = segments^T grad_z[n, :, pixels]: one GEMM per image and block of pixels, each output
// element computed by one of them.
at::Tensor input_gradient(const at::Tensor& grad_z, const at::Tensor& input, const at::Tensor& segments) {
  const auto gz = grad_z.contiguous();
  const auto transposed = segments.t().contiguous();
  const int64_t batch = input.size(0), C = input.size(1), M = gz.size(1), pixels = input.size(2) * input.size(3);
  auto grad_input = at::empty({batch, C, input.size(2), input.size(3)}, input.options());
  const int64_t blocks = (pixels + kPixelsPerTask - 1) / kPixelsPerTask;
  for_task_ranges(batch * blocks, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / blocks, first = (task % blocks) * kPixelsPerTask;
      const int64_t count = std::min(kPixelsPerTask, pixels - first);
      auto out = grad_input[n].view({C, pixels}).narrow(1, first, count);
      at::mm_out(out, transposed, gz[n].view({M, pixels}).narrow(1, first, count));
    }
  });
  return grad_input.contiguous(input.suggest_memory_format());
}

std::tuple<at::Tensor, at::Tensor> segment_conv2d_backward_kernel(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h,
    int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    std::array<bool, 2> output_mask) {
  if (at::isReducedFloatingType(input.scalar_type())) {  // oneDNN's half / bfloat16 1x1 conv backward
    return composite::segment_conv2d_backward_composite(grad_output, input, segments, kernel_h, kernel_w, channel_step,
                                                  stride, padding, dilation, output_mask);
  }
  const auto grad_z = composite::segment_conv2d_grad_z(grad_output, input, segments, kernel_h, kernel_w, channel_step,
                                                 stride, padding, dilation);
  at::Tensor grad_input, grad_segments;
  const bool empty = input.numel() == 0;
  if (output_mask[0]) grad_input = empty ? at::zeros_like(input) : input_gradient(grad_z, input, segments);
  if (output_mask[1]) grad_segments = empty ? at::zeros_like(segments) : segments_gradient(grad_z, input);
  return {grad_input, grad_segments};
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("segment_conv2d", &segment_conv2d_kernel);
  m.impl("segment_conv2d_backward", &segment_conv2d_backward_kernel);
}

}  // namespace leanconv::cpu
