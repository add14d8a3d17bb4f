// CPU kernels of the small-group grouped conv, direct: a task is one band of output rows of one group of one image.
// The group's input rows under the band go to phased buffers (cpu/phased_rows.h), the window micro-kernels
// (cpu/window_tiles.h) accumulate the group's output channels in registers, and the band is written out through
// the output's strides (channels_last needs no copies). Arithmetic in the op-math type (float for half/bfloat16).
//
// 1x1 convs at stride 1 on NCHW take cpu/grouped_pointwise.h instead (no phased copies).
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
#include "cpu/grouped_pointwise.h"
#include "cpu/phased_rows.h"
#include "cpu/reduction_parts.h"
#include "cpu/window_tiles.h"
#include "composite/multigrid.h"

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

// What the forward's bands read and write: the input and output through their strides, the padded weight in the
// op-math type (a group's filters weight_group apart), the bias through the epilogue.
template <typename scalar_t, typename acc_t>
struct GroupedForwardOperands {
  const scalar_t* x;
  Strides4 xs;
  const acc_t* weight;
  int64_t weight_group;
  common::Epilogue<acc_t> epilogue;
  scalar_t* y;
  Strides4 ys;
};

// Task `index` of the forward, one row band of one group of one image: the group's input channels phased, the
// window micro-kernels into z, z's rows through the epilogue into the output.
template <typename scalar_t, typename acc_t>
void grouped_forward_band(const GroupedConv& g, const BandPlan& plan, const BandTiles& tiles,
                          const GroupedForwardOperands<scalar_t, acc_t>& op, int64_t index, acc_t* phased, acc_t* z) {
  const int64_t band = index % plan.bands, group = (index / plan.bands) % g.groups;
  const int64_t n = index / (plan.bands * g.groups), row0 = tiles.first_row(band);
  const auto& t = tiles.of(band);
  const scalar_t* x_n = op.x + n * op.xs.n + group * g.group_in() * op.xs.c;
  fill_phased_channels(x_n, op.xs, g.group_in(), g, t, row0, phased);
  window_forward(t, phased, g.group_in(), op.weight + group * op.weight_group, z, t.pixels());
  store_rows(z, t.pixels(), t.row_length, g.group_out(), t.rows, g.out_w, op.epilogue, group * g.group_out(), row0,
             op.y + n * op.ys.n, op.ys);
}

at::Tensor grouped_conv2d_kernel(const at::Tensor& input, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto g = checks::grouped_conv_geometry(input, weight, bias, stride, padding, dilation, groups);
  auto output = at::empty({g.batch, g.out_channels, g.out_h, g.out_w},
                          input.options().memory_format(input.suggest_memory_format()));
  if (output.numel() == 0) return output;
  if (grouped_pointwise_applies(g, input)) return grouped_pointwise_forward(input, weight, bias, g);
  if (!band_buffers_fit(g)) return composite::grouped_conv2d_composite(input, weight, bias, stride, padding, dilation, groups);
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const auto weight_acc = padded_weight(weight, g, acc_type);
  const bool has_bias = bias.has_value() && bias->defined();
  const auto bias_acc = has_bias ? bias->detach().to(acc_type).contiguous() : at::Tensor();
  const BandPlan plan(g);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_conv2d_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const GroupedForwardOperands<scalar_t, acc_t> op{
        input.const_data_ptr<scalar_t>(), strides_of(input), weight_acc.const_data_ptr<acc_t>(), weight_acc.stride(0),
        common::Epilogue<acc_t>::bias(has_bias ? bias_acc.const_data_ptr<acc_t>() : nullptr),
        output.mutable_data_ptr<scalar_t>(), strides_of(output)};
    const BandTiles tiles(g, plan.rows, g.group_out());
    at::parallel_for(0, g.batch * g.groups * plan.bands, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> phased(g.group_in() * tiles.full.phased_size()), z(g.group_out() * tiles.full.pixels());
      for (int64_t index = begin; index < end; ++index)
        grouped_forward_band(g, plan, tiles, op, index, phased.data(), z.data());
    });
  });
  return output;
}

// ---- backward ------------------------------------------------------------------------------------------------

// What every chunk of one backward call reads and writes.
template <typename scalar_t, typename acc_t>
struct GroupedBackwardOperands {
  const GroupedConv& g;
  const BandTiles& tiles;
  bool need_input, need_weight;
  const scalar_t* x;
  Strides4 xs;
  const scalar_t* grad_y;
  Strides4 gys;
  scalar_t* grad_x;  // null when the input gradient is not asked for (or comes from the forward kernel)
  Strides4 gxs;
  const acc_t* weight;  // padded_weight: a group's filters weight_group apart
  int64_t weight_group;
  acc_t* grad_weight_parts;  // null when the weight gradient is not asked for
  int64_t grad_weight_part;  // elements per part
};

// A task's working buffers, sized for a full band: the group's phased input channels and their gradients, the
// band's output gradient, and the group's input gradient over the whole image.
template <typename acc_t>
struct GroupedBackwardBuffers {
  std::vector<acc_t> phased, grad_phased, gz, gx;

  template <typename scalar_t>
  explicit GroupedBackwardBuffers(const GroupedBackwardOperands<scalar_t, acc_t>& op) {
    const auto& g = op.g;
    phased.resize(op.need_weight ? g.group_in() * op.tiles.full.phased_size() : 0);
    grad_phased.resize(op.need_input ? g.group_in() * op.tiles.full.phased_size() : 0);
    gz.resize(g.group_out() * op.tiles.full.pixels());
    gx.resize(op.need_input ? g.group_in() * g.in_h * g.in_w : 0);
  }
};

// One band of image n's group: the band's output gradient (zero in the padding columns), then the weight gradient
// against the phased input and the input gradient by the micro-kernels' adjoint.
template <typename scalar_t, typename acc_t>
void backward_band(const GroupedBackwardOperands<scalar_t, acc_t>& op, int64_t n, int64_t group, int64_t band,
                   GroupedBackwardBuffers<acc_t>& b, acc_t* grad_weight) {
  const auto& g = op.g;
  const auto& t = op.tiles.of(band);
  const int64_t row0 = op.tiles.first_row(band);
  load_rows(op.grad_y + n * op.gys.n + group * g.group_out() * op.gys.c, op.gys, g.group_out(), row0, t.rows,
            g.out_w, b.gz.data(), t.pixels(), t.row_length);
  if (op.need_weight) {
    fill_phased_channels(op.x + n * op.xs.n + group * g.group_in() * op.xs.c, op.xs, g.group_in(), g, t, row0,
                         b.phased.data());
    window_weight_grad(t, b.phased.data(), g.group_in(), b.gz.data(), t.pixels(), grad_weight + group * op.weight_group);
  }
  if (op.need_input) {
    std::fill(b.grad_phased.begin(), b.grad_phased.end(), acc_t(0));
    window_input_grad(t, b.gz.data(), t.pixels(), g.group_in(), op.weight + group * op.weight_group,
                      b.grad_phased.data());
    add_phased_channels(b.grad_phased.data(), g.group_in(), g, t, row0, b.gx.data());
  }
}

// One (image, group) pair, band by band; its input gradient collects in b.gx and is stored once complete.
template <typename scalar_t, typename acc_t>
void backward_item(const GroupedBackwardOperands<scalar_t, acc_t>& op, int64_t item, GroupedBackwardBuffers<acc_t>& b,
                   acc_t* grad_weight) {
  const auto& g = op.g;
  const int64_t n = item / g.groups, group = item % g.groups;
  std::fill(b.gx.begin(), b.gx.end(), acc_t(0));
  for (int64_t band = 0; band < op.tiles.bands; ++band) backward_band(op, n, group, band, b, grad_weight);
  if (!op.need_input) return;
  store_channels(b.gx.data(), g.group_in(), g, op.grad_x + n * op.gxs.n + group * g.group_in() * op.gxs.c, op.gxs);
}

// The (image, group) pairs go to `parts` chunks, each with its own partial sum of the weight gradient; a task
// runs its chunks in turn, with one set of buffers.
template <typename scalar_t, typename acc_t>
void backward_parts(const GroupedBackwardOperands<scalar_t, acc_t>& op, int64_t parts) {
  const int64_t items = op.g.batch * op.g.groups;
  at::parallel_for(0, parallel_tasks(parts), 1, [&](int64_t part_begin, int64_t part_end) {
    GroupedBackwardBuffers<acc_t> buffers(op);
    for (int64_t part = part_begin; part < std::min(part_end, parts); ++part) {
      acc_t* grad_weight = op.need_weight ? op.grad_weight_parts + part * op.grad_weight_part : nullptr;
      for (int64_t item = part * items / parts; item < (part + 1) * items / parts; ++item) {
        backward_item(op, item, buffers, grad_weight);
      }
    }
  });
}

// With stride 1 (and padding no wider than the kernel) the input gradient is itself a grouped conv, of the output
// gradient with the flipped, transposed filters: the forward kernel computes it, at the forward's speed. Other
// strides take the micro-kernels' adjoint.
bool input_grad_is_a_forward(const GroupedConv& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_h <= (g.kernel_h - 1) * g.dil_h &&
         g.pad_w <= (g.kernel_w - 1) * g.dil_w;
}

at::Tensor input_grad_by_forward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                                 const GroupedConv& g) {
  // w_t[group*G_in + c, f, i, j] = w[group*G_out + f, c, kh-1-i, kw-1-j].
  const auto w_t = weight.detach()
                       .view({g.groups, g.group_out(), g.group_in(), g.kernel_h, g.kernel_w})
                       .transpose(1, 2)
                       .flip({3, 4})
                       .reshape({g.in_channels, g.group_out(), g.kernel_h, g.kernel_w});
  const std::vector<int64_t> ones{1, 1}, dilation{g.dil_h, g.dil_w};
  const std::vector<int64_t> padding{(g.kernel_h - 1) * g.dil_h - g.pad_h, (g.kernel_w - 1) * g.dil_w - g.pad_w};
  const auto grad_input = grouped_conv2d_kernel(grad_output, w_t, std::nullopt, ones, padding, dilation, g.groups);
  // The input's memory format, as the other path (and the fake kernel) gives.
  return grad_input.contiguous(input.suggest_memory_format());
}

// The partial sums added in chunk order, without the padding filters, in the weight's dtype.
at::Tensor summed_weight_grad(const at::Tensor& parts, const GroupedConv& g, const at::Tensor& weight) {
  const auto grad_weight = in_order_sum(parts).narrow(1, 0, g.group_out()).reshape(weight.sizes());
  return grad_weight.to(weight.scalar_type()).contiguous();
}

// The banded backward: grad_input where need_input, the weight gradient where need_weight (each undefined
// otherwise), every (image, group) pair's bands in reduction_parts chunks whose partial weight sums add in order.
std::tuple<at::Tensor, at::Tensor> banded_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                   const at::Tensor& weight, const GroupedConv& g, bool need_input,
                                                   bool need_weight) {
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const int64_t items = g.batch * g.groups;  // (image, group) pairs
  const int64_t parts = reduction_parts(items);
  auto grad_weight_parts = need_weight ? at::zeros({parts, g.groups, padded_filters(g.group_out()), g.filter_size()},
                                                   weight.options().dtype(acc_type))
                                       : at::Tensor();
  auto grad_input =
      need_input ? at::empty(input.sizes(), input.options().memory_format(input.suggest_memory_format())) : at::Tensor();
  if (items > 0 && (need_input || need_weight)) {
    const auto weight_acc = padded_weight(weight, g, acc_type);
    const BandTiles tiles(g, BandPlan(g).rows, g.group_out());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_conv2d_backward_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      backward_parts(GroupedBackwardOperands<scalar_t, acc_t>{
          .g = g, .tiles = tiles, .need_input = need_input, .need_weight = need_weight,
          .x = input.const_data_ptr<scalar_t>(), .xs = strides_of(input),
          .grad_y = grad_output.const_data_ptr<scalar_t>(), .gys = strides_of(grad_output),
          .grad_x = need_input ? grad_input.mutable_data_ptr<scalar_t>() : nullptr,
          .gxs = need_input ? strides_of(grad_input) : Strides4{},
          .weight = weight_acc.const_data_ptr<acc_t>(), .weight_group = weight_acc.stride(0),
          .grad_weight_parts = need_weight ? grad_weight_parts.mutable_data_ptr<acc_t>() : nullptr,
          .grad_weight_part = need_weight ? grad_weight_parts.stride(0) : 0}, parts);
    });
  }
  if (need_input && items == 0) grad_input.zero_();
  return {grad_input, need_weight ? summed_weight_grad(grad_weight_parts, g, weight) : at::Tensor()};
}

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward_kernel(const at::Tensor& grad_output,
                                                                  const at::Tensor& input, const at::Tensor& weight,
                                                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                                                  at::IntArrayRef dilation, int64_t groups,
                                                                  std::array<bool, 2> output_mask) {
  const auto g = checks::grouped_conv_backward_geometry(grad_output, input, weight, stride, padding, dilation, groups);
  if (g.batch > 0 && !band_buffers_fit(g)) {
    return composite::grouped_conv2d_backward_composite(grad_output, input, weight, stride, padding, dilation, groups,
                                                  output_mask);
  }
  const bool input_by_forward = output_mask[0] && input_grad_is_a_forward(g);
  if (g.batch > 0 && grouped_pointwise_applies(g, input) && grouped_pointwise_applies(g, grad_output)) {
    return {input_by_forward ? input_grad_by_forward(grad_output, input, weight, g) : at::Tensor(),
            output_mask[1] ? grouped_pointwise_weight_grad(grad_output, input, weight, g) : at::Tensor()};
  }
  auto [grad_input, grad_weight] =
      banded_backward(grad_output, input, weight, g, output_mask[0] && !input_by_forward, output_mask[1]);
  if (input_by_forward) grad_input = input_grad_by_forward(grad_output, input, weight, g);
  return {grad_input, grad_weight};
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("grouped_conv2d", &grouped_conv2d_kernel);
  m.impl("grouped_conv2d_backward", &grouped_conv2d_backward_kernel);
}

}  // namespace leanconv::cpu
