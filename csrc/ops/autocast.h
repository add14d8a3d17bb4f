// What an op's Autocast registration does, shared by the families that choose one (the choice sits beside each
// op's schema): under autocast the op runs in the autocast dtype (half or bfloat16), like the convolution it is
// part of, and its kernels accumulate in float. Ops that are exact copies (the weight gathers) need no policy:
// they run in the parameter's dtype and the following conv casts as autocast says.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <optional>

namespace leanconv::autocast {

template <c10::DeviceType device_type>
constexpr c10::DispatchKey autocast_key() {
  return device_type == c10::DeviceType::CUDA ? c10::DispatchKey::AutocastCUDA : c10::DispatchKey::AutocastCPU;
}

// Calls `op` with every tensor cast to the autocast dtype of `device_type`, with that autocast key excluded.
template <c10::DeviceType device_type, typename Op, typename... Args>
auto in_autocast_dtype(Op&& op, const Args&... args) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key<device_type>());
  const auto dtype = at::autocast::get_autocast_dtype(device_type);
  const auto cast = [&](const auto& arg) {
    using T = std::decay_t<decltype(arg)>;
    if constexpr (std::is_same_v<T, at::Tensor>) {
      return at::autocast::cached_cast(dtype, arg, device_type);
    } else if constexpr (std::is_same_v<T, std::optional<at::Tensor>>) {
      return arg.has_value() && arg->defined() ? std::optional<at::Tensor>(at::autocast::cached_cast(dtype, *arg, device_type))
                                               : arg;
    } else {
      return arg;
    }
  };
  return op(cast(args)...);
}

}  // namespace leanconv::autocast
