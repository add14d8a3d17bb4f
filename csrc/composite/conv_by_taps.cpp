#include "composite/conv_by_taps.h"

#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/einsum.h>
#include <ATen/ops/slice_scatter.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <vector>

#include "common/checks.h"

namespace leanconv::composite {
namespace {

constexpr int64_t kTapsPast = int64_t(1) << 30;

// The output positions [lo, hi) whose tap k reads inside an axis of `size`, and the first input position read.
struct TapSpan {
  int64_t lo, hi, first;
  bool empty() const { return hi <= lo; }
};

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

TapSpan tap_span(int64_t size, int64_t out, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
  // Row of output p: p * stride - pad + k * dilation (all in range: k * dilation <= the checked kernel span, and
  // p * stride <= the padded input). Inside the image: 0 <= row <= size - 1.
  const int64_t shift = pad - k * dilation;                             // row = p * stride - shift
  const int64_t lo = std::max<int64_t>(0, -floor_div(-shift, stride));  // ceil(shift / stride)
  const int64_t hi = std::min(out, floor_div(size - 1 + shift, stride) + 1);
  return {lo, hi, lo < hi ? lo * stride - shift : 0};
}

struct Geometry {
  int64_t batch, channels, groups, out_channels, per_group, kh, kw, out_h, out_w;
};

Geometry geometry_of(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                     at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const int64_t kh = weight.size(2), kw = weight.size(3);
  return {input.size(0),
          input.size(1),
          groups,
          weight.size(0),
          weight.size(1),
          kh,
          kw,
          checks::conv_output_size(input.size(2), kh, stride[0], padding[0], dilation[0]),
          checks::conv_output_size(input.size(3), kw, stride[1], padding[1], dilation[1])};
}

// The image pixels a tap reads, as (N, G, C/G, rows, cols), and the output block they feed.
struct Tap {
  TapSpan rows, cols;
  at::Tensor input;
};

Tap tap_of(const at::Tensor& input, const Geometry& g, int64_t i, int64_t j, at::IntArrayRef stride,
           at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto rows = tap_span(input.size(2), g.out_h, i, stride[0], padding[0], dilation[0]);
  const auto cols = tap_span(input.size(3), g.out_w, j, stride[1], padding[1], dilation[1]);
  if (rows.empty() || cols.empty()) return {rows, cols, at::Tensor()};
  // The last position read is first + (count - 1) * stride, inside the image: the slice ends one past it.
  const auto x = input.slice(2, rows.first, rows.first + (rows.hi - rows.lo - 1) * stride[0] + 1, stride[0])
                     .slice(3, cols.first, cols.first + (cols.hi - cols.lo - 1) * stride[1] + 1, stride[1]);
  return {rows, cols, x.reshape({g.batch, g.groups, g.channels / g.groups, x.size(2), x.size(3)})};
}

// weight[:, :, i, j] as (G, O/G, C/G).
at::Tensor tap_weight(const at::Tensor& weight, const Geometry& g, int64_t i, int64_t j) {
  return weight.select(3, j).select(2, i).reshape({g.groups, g.out_channels / g.groups, g.per_group});
}

// `block` added into the rows [row_start, row_end) and columns [col_start, col_end), each taken with its step, of
// `target`, out of place.
at::Tensor add_block(const at::Tensor& target, const at::Tensor& block, int64_t row_start, int64_t row_end,
                     int64_t row_step, int64_t col_start, int64_t col_end, int64_t col_step) {
  const auto band = target.slice(2, row_start, row_end, row_step);
  const auto updated = at::slice_scatter(band, band.slice(3, col_start, col_end, col_step).add(block), 3, col_start,
                                         col_end, col_step);
  return at::slice_scatter(target, updated, 2, row_start, row_end, row_step);
}

}  // namespace

bool window_goes_by_taps(at::IntArrayRef kernel, at::IntArrayRef stride, at::IntArrayRef padding,
                         at::IntArrayRef dilation) {
  for (size_t a = 0; a < 2; ++a) {
    if (stride[a] > kTapsPast || padding[a] > kTapsPast ||
        checks::saturating_mul(dilation[a], kernel[a] - 1) > kTapsPast)
      return true;
  }
  return false;
}

at::Tensor convolution(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  if (!window_goes_by_taps(weight.sizes().slice(2), stride, padding, dilation)) {
    return at::convolution(input, weight, bias, stride, padding, dilation, false, std::vector<int64_t>{0, 0}, groups);
  }
  const auto g = geometry_of(input, weight, stride, padding, dilation, groups);
  auto y = at::zeros({g.batch, g.out_channels, g.out_h, g.out_w}, input.options());
  if (y.numel() > 0) {
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const auto tap = tap_of(input, g, i, j, stride, padding, dilation);
        if (!tap.input.defined()) continue;
        const auto block = at::einsum("goc,ngchw->ngohw", {tap_weight(weight, g, i, j), tap.input})
                               .reshape({g.batch, g.out_channels, tap.input.size(3), tap.input.size(4)});
        y = add_block(y, block, tap.rows.lo, tap.rows.hi, 1, tap.cols.lo, tap.cols.hi, 1);
      }
    }
  }
  return bias.has_value() && bias->defined() ? y.add(bias->view({1, -1, 1, 1})) : y;
}

namespace {

// Tap (i, j)'s share of the backward: its input-gradient block added into grad_input (where it is wanted) and its
// weight gradient, (O, C/G), returned (undefined where it is not wanted).
at::Tensor tap_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
                        const Geometry& g, int64_t i, int64_t j, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, std::array<bool, 2> output_mask, at::Tensor& grad_input) {
  const auto tap = tap_of(input, g, i, j, stride, padding, dilation);
  if (!tap.input.defined() || g.batch == 0) return at::zeros({g.out_channels, g.per_group}, weight.options());
  const auto grad_block =
      grad_output.slice(2, tap.rows.lo, tap.rows.hi)
          .slice(3, tap.cols.lo, tap.cols.hi)
          .reshape({g.batch, g.groups, g.out_channels / g.groups, tap.input.size(3), tap.input.size(4)});
  if (output_mask[0]) {
    const auto block = at::einsum("goc,ngohw->ngchw", {tap_weight(weight, g, i, j), grad_block})
                           .reshape({g.batch, g.channels, tap.input.size(3), tap.input.size(4)});
    const int64_t rows_end = tap.rows.first + (tap.rows.hi - tap.rows.lo - 1) * stride[0] + 1;
    const int64_t cols_end = tap.cols.first + (tap.cols.hi - tap.cols.lo - 1) * stride[1] + 1;
    grad_input = add_block(grad_input, block, tap.rows.first, rows_end, stride[0], tap.cols.first, cols_end, stride[1]);
  }
  return output_mask[1]
             ? at::einsum("ngohw,ngchw->goc", {grad_block, tap.input}).reshape({g.out_channels, g.per_group})
             : at::Tensor();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> convolution_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                        const at::Tensor& weight, at::IntArrayRef stride,
                                                        at::IntArrayRef padding, at::IntArrayRef dilation,
                                                        int64_t groups, std::array<bool, 2> output_mask) {
  if (!window_goes_by_taps(weight.sizes().slice(2), stride, padding, dilation)) {
    auto [grad_input, grad_weight, unused_bias] =
        at::convolution_backward(grad_output, input, weight, std::nullopt, stride, padding, dilation, false,
                                 std::vector<int64_t>{0, 0}, groups, {output_mask[0], output_mask[1], false});
    return {grad_input, grad_weight};
  }
  const auto g = geometry_of(input, weight, stride, padding, dilation, groups);
  auto grad_input = output_mask[0] ? at::zeros_like(input) : at::Tensor();
  std::vector<at::Tensor> grad_taps;  // (O, C/G) per tap, row-major over (i, j)
  for (int64_t i = 0; i < g.kh; ++i)
    for (int64_t j = 0; j < g.kw; ++j)
      grad_taps.push_back(
          tap_backward(grad_output, input, weight, g, i, j, stride, padding, dilation, output_mask, grad_input));
  if (!output_mask[1]) return {grad_input, at::Tensor()};
  return {grad_input, at::stack(grad_taps, 2).reshape({g.out_channels, g.per_group, g.kh, g.kw}).contiguous()};
}

}  // namespace leanconv::composite
