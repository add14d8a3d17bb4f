// The grouped 1x1 conv on NCHW planes (cpu/grouped_pointwise.h). Arithmetic in the op-math type.
#include "cpu/grouped_pointwise.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <vector>

#include "cpu/vectorize.h"

namespace leanconv::cpu {
namespace {

// Pixels a block: G_in input blocks of this size (up to 32 KiB at 32 channels a group) stay in L1.
constexpr int64_t kBlock = 256;
// Lanes of a dot product: independent sums, so the loop vectorises and is not add-latency bound.
constexpr int64_t kDotLanes = 16;

// acc[p] += w * x[p] over a block.
template <typename scalar_t, typename acc_t>
LEANCONV_CPU_CLONES void axpy_block(acc_t w, const scalar_t* __restrict__ x, acc_t* __restrict__ acc, int64_t n) {
  for (int64_t p = 0; p < n; ++p) acc[p] += w * static_cast<acc_t>(x[p]);
}

// sum_p a[p] * b[p] over a block, in kDotLanes lanes added in lane order.
template <typename scalar_t, typename acc_t>
LEANCONV_CPU_CLONES acc_t dot_block(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t n) {
  acc_t lanes[kDotLanes] = {};
  int64_t p = 0;
  for (; p + kDotLanes <= n; p += kDotLanes) {
    for (int64_t l = 0; l < kDotLanes; ++l) lanes[l] += static_cast<acc_t>(a[p + l]) * static_cast<acc_t>(b[p + l]);
  }
  for (int64_t l = 0; p < n; ++p, ++l) lanes[l] += static_cast<acc_t>(a[p]) * static_cast<acc_t>(b[p]);
  acc_t sum = 0;
  for (int64_t l = 0; l < kDotLanes; ++l) sum += lanes[l];
  return sum;
}

}  // namespace

bool grouped_pointwise_applies(const common::GroupedConv& g, const at::Tensor& input) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0 &&
         input.is_contiguous() && input.suggest_memory_format() == at::MemoryFormat::Contiguous;
}

at::Tensor grouped_pointwise_forward(const at::Tensor& input, const at::Tensor& weight,
                                     const std::optional<at::Tensor>& bias, const common::GroupedConv& g) {
  auto output = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, input.options());
  const int64_t pixels = g.out_pixels(), gi = g.group_in(), go = g.group_out();
  if (output.numel() == 0) return output;
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const auto w = weight.detach().to(acc_type).contiguous();  // (C_out, G_in)
  const bool has_bias = bias.has_value() && bias->defined();
  const auto b = has_bias ? bias->detach().to(acc_type).contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_pointwise_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const acc_t* w_ptr = w.const_data_ptr<acc_t>();
    const acc_t* b_ptr = has_bias ? b.const_data_ptr<acc_t>() : nullptr;
    scalar_t* y = output.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, g.batch * g.groups, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(kBlock);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t n = item / g.groups, group = item % g.groups;
        const scalar_t* x_g = x + (n * g.in_channels + group * gi) * pixels;
        scalar_t* y_g = y + (n * g.out_channels + group * go) * pixels;
        for (int64_t p0 = 0; p0 < pixels; p0 += kBlock) {
          const int64_t len = std::min(kBlock, pixels - p0);
          for (int64_t f = 0; f < go; ++f) {
            const int64_t o = group * go + f;
            std::fill(acc.begin(), acc.begin() + len, b_ptr != nullptr ? b_ptr[o] : acc_t(0));
            for (int64_t c = 0; c < gi; ++c) axpy_block(w_ptr[o * gi + c], x_g + c * pixels + p0, acc.data(), len);
            scalar_t* y_f = y_g + f * pixels + p0;
            for (int64_t p = 0; p < len; ++p) y_f[p] = static_cast<scalar_t>(acc[p]);
          }
        }
      }
    });
  });
  return output;
}

at::Tensor grouped_pointwise_weight_grad(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& weight, const common::GroupedConv& g) {
  const int64_t pixels = g.out_pixels(), gi = g.group_in(), go = g.group_out();
  // Per image, a float sum over its pixels; the images' sums added in double, in image order.
  auto sums = at::zeros({g.out_channels, gi}, weight.options().dtype(at::kDouble));
  double* sums_ptr = sums.mutable_data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grouped_pointwise_wgrad_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* x = input.const_data_ptr<scalar_t>();
    const scalar_t* gy = grad_output.const_data_ptr<scalar_t>();  // contiguous, as grouped_pointwise_applies asks
    at::parallel_for(0, g.out_channels, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> image(gi);
      for (int64_t o = begin; o < end; ++o) {
        const int64_t group = o / go;
        for (int64_t n = 0; n < g.batch; ++n) {
          std::fill(image.begin(), image.end(), acc_t(0));
          const scalar_t* gy_o = gy + (n * g.out_channels + o) * pixels;
          const scalar_t* x_g = x + (n * g.in_channels + group * gi) * pixels;
          for (int64_t p0 = 0; p0 < pixels; p0 += kBlock) {
            const int64_t len = std::min(kBlock, pixels - p0);
            for (int64_t c = 0; c < gi; ++c) image[c] += dot_block<scalar_t, acc_t>(gy_o + p0, x_g + c * pixels + p0, len);
          }
          for (int64_t c = 0; c < gi; ++c) sums_ptr[o * gi + c] += static_cast<double>(image[c]);
        }
      }
    });
  });
  return sums.to(weight.scalar_type()).view(weight.sizes());
}

}  // namespace leanconv::cpu
