// Argument checks of the block-epilogue ops (batch_norm_epilogue, affine_epilogue and their backwards), shared by
// the CPU and CUDA kernels.
//
// Dtypes follow aten's batch_norm: the per-channel parameters have the input's dtype, or float32 for a float16
// or bfloat16 input (the usual mixed-precision BatchNorm); the statistics (mean, invstd and their gradients) are
// in the op-math type: float32 for a float16 or bfloat16 input, else the input's dtype.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>

#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>

#include "channel_passes.h"
#include "checks.h"

namespace leanconv::checks {

struct EpilogueInput {
  common::ChannelLayout layout;
  at::MemoryFormat memory_format;
  at::ScalarType parameter_dtype;  // of weight/bias/scale/shift and their gradients
};

inline const at::Tensor* defined_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? &*t : nullptr;
}

// input (N, C, H, W) floating; each named per-channel tensor (null: absent) of shape (C,) on the input's device,
// all of one dtype, the input's or float32 for a reduced-precision input; each named feature map (null: absent)
// of the input's shape, dtype and device.
inline EpilogueInput check_epilogue_operands(
    std::string_view op, const at::Tensor& input,
    std::initializer_list<std::pair<std::string_view, const at::Tensor*>> per_channel,
    std::initializer_list<std::pair<std::string_view, const at::Tensor*>> feature_maps) {
  TORCH_CHECK(input.dim() == 4, "leanconv: ", op, " expects a 4-D (N, C, H, W) input, got shape ", input.sizes());
  check_floating(input, "input");
  const int64_t C = input.size(1);
  std::optional<at::ScalarType> dtype;
  for (const auto& [name, t] : per_channel) {
    if (t == nullptr) continue;
    check_same_device(input, "input", *t, name);
    TORCH_CHECK(t->dim() == 1 && t->size(0) == C, "leanconv: ", op, ": ", name, " must have shape (", C,
                ") (one value per input channel), got ", t->sizes());
    const auto type = t->scalar_type();
    const bool reduced_input = input.scalar_type() == at::kHalf || input.scalar_type() == at::kBFloat16;
    TORCH_CHECK(type == input.scalar_type() || (reduced_input && type == at::kFloat), "leanconv: ", op, ": ", name,
                " must have the input's dtype (", input.scalar_type(), ")",
                reduced_input ? " or float32" : "", ", got ", type);
    TORCH_CHECK(!dtype.has_value() || *dtype == type, "leanconv: ", op,
                ": the per-channel tensors must share one dtype, got ", *dtype, " and ", type, " (", name, ")");
    dtype = type;
  }
  for (const auto& [name, t] : feature_maps) {
    if (t == nullptr) continue;
    check_same_device(input, "input", *t, name);
    check_same_dtype(input, "input", *t, name);
    TORCH_CHECK(t->sizes() == input.sizes(), "leanconv: ", op, ": ", name, " must have the input's shape ",
                input.sizes(), ", got ", t->sizes());
  }
  EpilogueInput result;
  result.memory_format = input.suggest_memory_format();
  result.layout.batch = input.size(0);
  result.layout.channels = C;
  result.layout.spatial = checked_mul(input.size(2), input.size(3), "H*W");
  checked_mul(checked_mul(result.layout.batch, C, "N*C"), result.layout.spatial, "the number of input elements");
  result.layout.channels_last = result.memory_format == at::MemoryFormat::ChannelsLast;
  result.parameter_dtype = dtype.value_or(input.scalar_type());
  return result;
}

// A per-channel statistic (mean, invstd or a gradient of them): (C,) in the op-math type, on the input's device.
inline void check_statistic(std::string_view op, const at::Tensor& input, const at::Tensor& t, std::string_view name) {
  check_same_device(input, "input", t, name);
  const auto dtype = at::toOpMathType(input.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == input.size(1) && t.scalar_type() == dtype, "leanconv: ", op, ": ", name,
              " must be a (", input.size(1), ") tensor of dtype ", dtype, ", got ", t.sizes(), " ", t.scalar_type());
}

inline void check_epsilon(double eps) {
  TORCH_CHECK(eps > 0 && eps == eps, "leanconv: batch_norm_epilogue eps must be positive, got ", eps);
}

}  // namespace leanconv::checks
