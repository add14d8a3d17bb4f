// Schemas and public C++ entry points of the grouped conv, and the per-shape choice between its kernels and
// aten's convolution.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <map>
#include <mutex>

#include "leanconv/ops/multigrid.h"
#include "ops/autocast.h"

namespace leanconv::ops {

at::Tensor grouped_conv2d(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::grouped_conv2d", "")
                       .typed<decltype(grouped_conv2d)>();
  return op.call(input, weight, bias, stride, padding, dilation, groups);
}

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                           const at::Tensor& weight, at::IntArrayRef stride,
                                                           at::IntArrayRef padding, at::IntArrayRef dilation,
                                                           int64_t groups, std::array<bool, 2> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::grouped_conv2d_backward", "")
                       .typed<decltype(grouped_conv2d_backward)>();
  return op.call(grad_output, input, weight, stride, padding, dilation, groups, output_mask);
}

std::string GroupedConvShape::key() const {
  return c10::DeviceTypeName(device, /*lower_case=*/true) + " " + std::string(c10::toString(dtype)) +
         (channels_last ? " nhwc " : " nchw ") + std::to_string(in_channels) + "->" + std::to_string(out_channels) +
         " g" + std::to_string(groups) + " k" + std::to_string(kernel) + " s" + std::to_string(stride) + " " +
         std::to_string(in_h) + "x" + std::to_string(in_w);
}

namespace {

struct ChoiceTable {
  std::mutex mutex;
  std::map<std::string, bool> use_kernel;
};

ChoiceTable& choice_table() {
  static ChoiceTable table;
  return table;
}

}  // namespace

bool grouped_conv2d_rule(const GroupedConvShape& s) {
  if (s.device != c10::DeviceType::CPU) {
    // On CUDA cuDNN runs the convs; the direct kernels are chosen only when a measurement says so.
    return false;
  }
  // aten's CPU convolution has no fast path for half and bfloat16 grouped convs on a CPU without native
  // bfloat16 units (it runs them 10-50x slower than float32); the kernels compute them in float32.
  if (s.dtype == c10::ScalarType::Half || s.dtype == c10::ScalarType::BFloat16) return true;
  // float32 and float64 (benchmarks/NOTES.md, "Grouped conv"): oneDNN's k x k convs are slow for narrow groups,
  // which the kernel's micro-tiles fill. Forward+backward at the MGIC ResNet-20 levels (batch 64 and 128): at 1-4
  // input channels a group the kernel takes 0.2-0.76x of oneDNN's time (NCHW and channels_last; float64
  // 0.24-0.96), and 0.11-0.5x for the coarsest level's full convs of 2-8 channels (groups 1); at 8 a group 0.3-0.94x
  // on 32x32 images but 1.0-1.26x on 16x16 and smaller; at 16 and wider 1.05-1.5x. The 1x1 restrictions and
  // prolongations of up to 8 channels a group on NCHW run on the kernel's plane path (cpu/grouped_pointwise.h: no
  // copies, each value read once), which takes the MGIC ResNet-20 step from 1.51x to 1.34x the dense step at group
  // size 8 and from 1.57x to 1.22x at 2 (one run, the variants side by side); leanconv.multigrid.tune measures a
  // model's own shapes.
  const int64_t per_group = s.in_channels / s.groups;
  if (s.kernel == 1) return per_group <= 8 && s.stride == 1 && !s.channels_last;
  const int64_t out_pixels = (s.in_h / s.stride) * (s.in_w / s.stride);
  return per_group <= 4 || (per_group <= 8 && out_pixels >= 28 * 28);
}

bool grouped_conv2d_uses_kernel(const GroupedConvShape& shape) {
  auto& table = choice_table();
  {
    std::lock_guard<std::mutex> lock(table.mutex);
    const auto found = table.use_kernel.find(shape.key());
    if (found != table.use_kernel.end()) return found->second;
  }
  return grouped_conv2d_rule(shape);
}

void record_grouped_conv2d_choice(const GroupedConvShape& shape, bool use_kernel) {
  auto& table = choice_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  table.use_kernel[shape.key()] = use_kernel;
}

std::vector<std::string> grouped_conv2d_choices() {
  auto& table = choice_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  std::vector<std::string> lines;
  for (const auto& [key, use_kernel] : table.use_kernel) lines.push_back(key + ": " + (use_kernel ? "leanconv" : "aten"));
  return lines;
}

void clear_grouped_conv2d_choices() {
  auto& table = choice_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  table.use_kernel.clear();
}

}  // namespace leanconv::ops

namespace {

leanconv::ops::GroupedConvShape shape_of(std::string_view device_type, c10::ScalarType dtype, bool channels_last,
                                         int64_t in_channels, int64_t out_channels, int64_t groups, int64_t kernel,
                                         int64_t stride, int64_t in_h, int64_t in_w) {
  return {c10::Device(std::string(device_type)).type(), dtype, channels_last, in_channels, out_channels, groups, kernel,
          stride, in_h, in_w};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  m.def("grouped_conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation, "
        "int groups) -> Tensor");
  m.def("grouped_conv2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, int[2] padding, "
        "int[2] dilation, int groups, bool[2] output_mask) -> (Tensor, Tensor)");
  // The kernel choice as ops too, so Python and C++ modules share one table and one rule.
  m.def("grouped_conv2d_uses_kernel(str device_type, ScalarType dtype, bool channels_last, int in_channels, "
        "int out_channels, int groups, int kernel, int stride, int in_h, int in_w) -> bool",
        [](std::string_view device, c10::ScalarType dtype, bool cl, int64_t ci, int64_t co, int64_t gr, int64_t k,
           int64_t s, int64_t h, int64_t w) {
          return leanconv::ops::grouped_conv2d_uses_kernel(shape_of(device, dtype, cl, ci, co, gr, k, s, h, w));
        });
  m.def("grouped_conv2d_rule(str device_type, ScalarType dtype, bool channels_last, int in_channels, "
        "int out_channels, int groups, int kernel, int stride, int in_h, int in_w) -> bool",
        [](std::string_view device, c10::ScalarType dtype, bool cl, int64_t ci, int64_t co, int64_t gr, int64_t k,
           int64_t s, int64_t h, int64_t w) {
          return leanconv::ops::grouped_conv2d_rule(shape_of(device, dtype, cl, ci, co, gr, k, s, h, w));
        });
  m.def("record_grouped_conv2d_choice(str device_type, ScalarType dtype, bool channels_last, int in_channels, "
        "int out_channels, int groups, int kernel, int stride, int in_h, int in_w, bool use_kernel) -> ()",
        [](std::string_view device, c10::ScalarType dtype, bool cl, int64_t ci, int64_t co, int64_t gr, int64_t k,
           int64_t s, int64_t h, int64_t w, bool use_kernel) {
          leanconv::ops::record_grouped_conv2d_choice(shape_of(device, dtype, cl, ci, co, gr, k, s, h, w), use_kernel);
        });
  m.def("grouped_conv2d_choices() -> str[]", [] { return leanconv::ops::grouped_conv2d_choices(); });
  m.def("clear_grouped_conv2d_choices() -> ()", [] { leanconv::ops::clear_grouped_conv2d_choices(); });
}

// The grouped conv is a convolution: like aten::conv2d it runs in the autocast dtype (ops/autocast.h).
namespace leanconv::autocast {
namespace {

template <c10::DeviceType device_type>
at::Tensor grouped_conv2d_autocast(const at::Tensor& input, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  return in_autocast_dtype<device_type>(ops::grouped_conv2d, input, weight, bias, stride, padding, dilation, groups);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, AutocastCPU, m) {
  m.impl("grouped_conv2d", &grouped_conv2d_autocast<c10::DeviceType::CPU>);
}
TORCH_LIBRARY_IMPL(leanconv, AutocastCUDA, m) {
  m.impl("grouped_conv2d", &grouped_conv2d_autocast<c10::DeviceType::CUDA>);
}

}  // namespace leanconv::autocast
