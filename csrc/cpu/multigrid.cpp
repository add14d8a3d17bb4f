// CPU kernels of the small-group grouped conv, direct: a task is one band of output rows of one group of one image.
// The group's input rows under the band go to phased buffers (cpu/phased_rows.h), the window micro-kernels
// (cpu/window_tiles.h) accumulate the group's output channels in registers, and the band is written out through
// the output's strides (channels_last needs no copies). Arithmetic in the op-math type (float for half/bfloat16).
//
// Backward: a task is one (image, group) pair, its bands in turn. It recomputes nothing: the weight gradient reads
// the phased input and the output gradient, the input gradient is the micro-kernels' adjoint. Weight-gradient sums
// go to a fixed number of chunks under deterministic algorithms, added in chunk order.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/conv_epilogue.h"
#include "common/multigrid.h"
#include "common/multigrid_checks.h"
#include "cpu/phased_rows.h"
#include "cpu/reduction_parts.h"
#include "cpu/window_tiles.h"
#include "ops/multigrid_composite.h"

namespace leanconv::cpu {
namespace {

using checks::strides_of;
using common::GroupedConv;
using common::Strides4;

// A band's buffers (the group's phased input rows and its output rows) hold about kBandElements values each, so
// they stay in L2; a band has at least one row.
constexpr int64_t kBandElements = int64_t(1) << 15;
constexpr double kMaxPhasedElements = double(int64_t(1) << 24);

struct BandPlan {
  int64_t rows, bands;

  explicit BandPlan(const GroupedConv& g) {
    const int64_t per_row = std::max(g.group_in() * int64_t(phased_elements(g, 2) - phased_elements(g, 1)),
                                     g.group_out() * padded_row_length(g));
    rows = std::clamp<int64_t>(kBandElements / std::max<int64_t>(per_row, 1), 1, std::max<int64_t>(g.out_h, 1));
    bands = (g.out_h + rows - 1) / rows;
  }
};

bool band_buffers_fit(const GroupedConv& g) {
  return double(g.group_in()) * phased_elements(g, BandPlan(g).rows) <= kMaxPhasedElements;
}

// weight as (groups, filters padded by padded_filters, C_in/groups * taps) in op-math type, the extra rows zero.
at::Tensor padded_weight(const at::Tensor& weight, const GroupedConv& g, at::ScalarType acc_type) {
  auto padded = at::zeros({g.groups, padded_filters(g.group_out()), g.filter_size()}, weight.options().dtype(acc_type));
  padded.narrow(1, 0, g.group_out()).copy_(weight.detach().reshape({g.groups, g.group_out(), g.filter_size()}));
  return padded;
}

at::Tensor grouped_conv2d_kernel(const at::Tensor& input, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto g = checks::grouped_conv_geometry(input, weight, bias, stride, padding, dilation, groups);
  auto output = at::empty({g.batch, g.out_channels, g.out_h, g.out_w},
                          input.options().memory_format(input.suggest_memory_format()));
  if (output.numel() == 0) return output;
  if (!band_buffers_fit(g)) return ops::grouped_conv2d_composite(input, weight, bias, stride, padding, dilation, groups);
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const auto weight_acc = padded_weight(weight, g, acc_type);
  const bool has_bias = bias.has_value() && bias->defined();
  const auto bias_acc = has_bias ? bias->detach().to(acc_type).contiguous() : at::Tensor();
  const BandPlan plan(g);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_conv2d_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const Strides4 xs = strides_of(input), ys = strides_of(output);
    const scalar_t* x_ptr = input.const_data_ptr<scalar_t>();
    const acc_t* w_ptr = weight_acc.const_data_ptr<acc_t>();
    const int64_t w_group = weight_acc.stride(0);
    const auto epilogue =
        common::Epilogue<scalar_t, acc_t>::bias(has_bias ? bias_acc.const_data_ptr<acc_t>() : nullptr);
    scalar_t* y_ptr = output.mutable_data_ptr<scalar_t>();
    const int64_t tasks = g.batch * g.groups * plan.bands;
    at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
      const auto full = tile_of(g, plan.rows, g.group_out());
      const auto last = tile_of(g, g.out_h - (plan.bands - 1) * plan.rows, g.group_out());
      std::vector<acc_t> phased(g.group_in() * full.phased_size()), z(g.group_out() * full.pixels());
      for (int64_t index = begin; index < end; ++index) {
        const int64_t band = index % plan.bands, group = (index / plan.bands) % g.groups;
        const int64_t n = index / (plan.bands * g.groups), row0 = band * plan.rows;
        const auto& t = band + 1 < plan.bands ? full : last;
        const scalar_t* x_n = x_ptr + n * xs.n + group * g.group_in() * xs.c;
        for (int64_t c = 0; c < g.group_in(); ++c) fill_phased(x_n, xs, c, g, t, row0, phased.data() + c * t.phased_size());
        window_forward(t, phased.data(), g.group_in(), w_ptr + group * w_group, z.data(), t.pixels());
        for (int64_t f = 0; f < g.group_out(); ++f) {
          const int64_t o = group * g.group_out() + f;
          for (int64_t p = 0; p < t.rows; ++p) {
            const acc_t* src = z.data() + f * t.pixels() + p * t.row_length;
            scalar_t* dst = y_ptr + n * ys.n + o * ys.c + (row0 + p) * ys.h;
            for (int64_t q = 0; q < g.out_w; ++q)
              dst[q * ys.w] = static_cast<scalar_t>(epilogue.apply(src[q], n, o, row0 + p, q));
          }
        }
      }
    });
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward_kernel(const at::Tensor& grad_output,
                                                                  const at::Tensor& input, const at::Tensor& weight,
                                                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                                                  at::IntArrayRef dilation, int64_t groups,
                                                                  std::array<bool, 2> output_mask) {
  const auto g = checks::grouped_conv_backward_geometry(grad_output, input, weight, stride, padding, dilation, groups);
  if (g.batch > 0 && !band_buffers_fit(g)) {
    return ops::grouped_conv2d_backward_composite(grad_output, input, weight, stride, padding, dilation, groups,
                                                  output_mask);
  }
  // With stride 1 the input gradient is itself a grouped conv, of the output gradient with the flipped, transposed
  // filters: the forward kernel computes it, at the forward's speed. Other strides take the micro-kernels' adjoint.
  const bool input_by_forward = output_mask[0] && g.stride_h == 1 && g.stride_w == 1 &&
                                g.pad_h <= (g.kernel_h - 1) * g.dil_h && g.pad_w <= (g.kernel_w - 1) * g.dil_w;
  const bool need_input = output_mask[0] && !input_by_forward, need_weight = output_mask[1];
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const BandPlan plan(g);
  const int64_t items = g.batch * g.groups;  // (image, group) pairs
  const int64_t parts = reduction_parts(items);
  auto grad_weight_parts = need_weight ? at::zeros({parts, g.groups, padded_filters(g.group_out()), g.filter_size()},
                                                   weight.options().dtype(acc_type))
                                       : at::Tensor();
  auto grad_input =
      need_input ? at::empty(input.sizes(), input.options().memory_format(input.suggest_memory_format())) : at::Tensor();
  if (items > 0 && (need_input || need_weight)) {
    const auto weight_acc = padded_weight(weight, g, acc_type);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_conv2d_backward_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const Strides4 xs = strides_of(input), gys = strides_of(grad_output);
      const Strides4 gxs = need_input ? strides_of(grad_input) : xs;
      const scalar_t* x_ptr = input.const_data_ptr<scalar_t>();
      const scalar_t* gy_ptr = grad_output.const_data_ptr<scalar_t>();
      const acc_t* w_ptr = weight_acc.const_data_ptr<acc_t>();
      const int64_t w_group = weight_acc.stride(0);
      scalar_t* gx_ptr = need_input ? grad_input.mutable_data_ptr<scalar_t>() : nullptr;
      acc_t* grad_w_ptr = need_weight ? grad_weight_parts.mutable_data_ptr<acc_t>() : nullptr;
      const int64_t grad_w_part = need_weight ? grad_weight_parts.stride(0) : 0;
      at::parallel_for(0, parallel_tasks(parts), 1, [&](int64_t part_begin, int64_t part_end) {
        const auto full = tile_of(g, plan.rows, g.group_out());
        const auto last = tile_of(g, g.out_h - (plan.bands - 1) * plan.rows, g.group_out());
        std::vector<acc_t> phased(need_weight ? g.group_in() * full.phased_size() : 0);
        std::vector<acc_t> grad_phased(need_input ? g.group_in() * full.phased_size() : 0);
        std::vector<acc_t> gz(g.group_out() * full.pixels());
        std::vector<acc_t> gx(need_input ? g.group_in() * g.in_h * g.in_w : 0);
        for (int64_t part = part_begin; part < std::min(part_end, parts); ++part) {
          acc_t* grad_w = need_weight ? grad_w_ptr + part * grad_w_part : nullptr;
          for (int64_t item = part * items / parts; item < (part + 1) * items / parts; ++item) {
            const int64_t n = item / g.groups, group = item % g.groups;
            const scalar_t* x_n = x_ptr + n * xs.n + group * g.group_in() * xs.c;
            std::fill(gx.begin(), gx.end(), acc_t(0));
            for (int64_t band = 0; band < plan.bands; ++band) {
              const int64_t row0 = band * plan.rows;
              const auto& t = band + 1 < plan.bands ? full : last;
              // The band's output gradient, zero in the padding columns.
              for (int64_t f = 0; f < g.group_out(); ++f)
                for (int64_t p = 0; p < t.rows; ++p) {
                  const scalar_t* src = gy_ptr + n * gys.n + (group * g.group_out() + f) * gys.c + (row0 + p) * gys.h;
                  acc_t* dst = gz.data() + f * t.pixels() + p * t.row_length;
                  for (int64_t q = 0; q < g.out_w; ++q) dst[q] = static_cast<acc_t>(src[q * gys.w]);
                  std::fill(dst + g.out_w, dst + t.row_length, acc_t(0));
                }
              if (need_weight) {
                for (int64_t c = 0; c < g.group_in(); ++c)
                  fill_phased(x_n, xs, c, g, t, row0, phased.data() + c * t.phased_size());
                window_weight_grad(t, phased.data(), g.group_in(), gz.data(), t.pixels(), grad_w + group * w_group);
              }
              if (need_input) {
                std::fill(grad_phased.begin(), grad_phased.end(), acc_t(0));
                window_input_grad(t, gz.data(), t.pixels(), g.group_in(), w_ptr + group * w_group, grad_phased.data());
                for (int64_t c = 0; c < g.group_in(); ++c)
                  add_phased(grad_phased.data() + c * t.phased_size(), c, g, t, row0, gx.data());
              }
            }
            if (!need_input) continue;
            for (int64_t c = 0; c < g.group_in(); ++c)
              for (int64_t h = 0; h < g.in_h; ++h) {
                const acc_t* src = gx.data() + (c * g.in_h + h) * g.in_w;
                scalar_t* dst = gx_ptr + n * gxs.n + (group * g.group_in() + c) * gxs.c + h * gxs.h;
                for (int64_t w = 0; w < g.in_w; ++w) dst[w * gxs.w] = static_cast<scalar_t>(src[w]);
              }
          }
        }
      });
    });
  }
  at::Tensor grad_weight;
  if (need_weight) {
    grad_weight = in_order_sum(grad_weight_parts).narrow(1, 0, g.group_out()).reshape(weight.sizes());
    grad_weight = grad_weight.to(weight.scalar_type()).contiguous();
  }
  if (need_input && items == 0) grad_input.zero_();
  if (input_by_forward) {
    // w_t[group*G_in + c, f, i, j] = w[group*G_out + f, c, kh-1-i, kw-1-j].
    const auto w_t = weight.detach()
                         .view({g.groups, g.group_out(), g.group_in(), g.kernel_h, g.kernel_w})
                         .transpose(1, 2)
                         .flip({3, 4})
                         .reshape({g.in_channels, g.group_out(), g.kernel_h, g.kernel_w});
    const std::vector<int64_t> ones{1, 1}, dilation{g.dil_h, g.dil_w};
    const std::vector<int64_t> padding{(g.kernel_h - 1) * g.dil_h - g.pad_h, (g.kernel_w - 1) * g.dil_w - g.pad_w};
    grad_input = grouped_conv2d_kernel(grad_output, w_t, std::nullopt, ones, padding, dilation, g.groups);
    // The input's memory format, as the other path (and the fake kernel) gives.
    grad_input = grad_input.contiguous(input.suggest_memory_format());
  }
  return {grad_input, grad_weight};
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("grouped_conv2d", &grouped_conv2d_kernel);
  m.impl("grouped_conv2d_backward", &grouped_conv2d_backward_kernel);
}

}  // namespace leanconv::cpu
