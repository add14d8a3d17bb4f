// Schemas and public C++ entry points of the generated-weight (RPG) ops.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "leanconv/ops/generated.h"

namespace leanconv::ops {

at::Tensor generate_weights(const at::Tensor& ring, int64_t seed, int64_t total, int64_t offset,
                            at::IntArrayRef shape, double scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::generate_weights", "")
                       .typed<decltype(generate_weights)>();
  return op.call(ring, seed, total, offset, shape, scale);
}

at::Tensor generate_weights_backward(const at::Tensor& grad, c10::SymInt ring_size, int64_t seed, int64_t total,
                                     int64_t offset, double scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::generate_weights_backward", "")
                       .typed<decltype(generate_weights_backward)>();
  return op.call(grad, std::move(ring_size), seed, total, offset, scale);
}

}  // namespace leanconv::ops

TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  m.def("generate_weights(Tensor ring, int seed, int total, int offset, int[] shape, float scale) -> Tensor");
  m.def("generate_weights_backward(Tensor grad, SymInt ring_size, int seed, int total, int offset, float scale)"
        " -> Tensor");
}
