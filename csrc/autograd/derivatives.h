// How leanconv's autograd kernels attach a backward to their outputs: the way PyTorch's own derivatives do
// (a Node connected to the inputs' gradient edges by hand), not through torch::autograd::Function.
//
// Why: torch.func (grad, vjp, jacrev, vmap of a gradient) refuses C++ autograd Functions, but composes with
// autograd kernels of this shape, exactly as it does with aten's. The backward nodes call leanconv's ops
// through the dispatcher, and those ops are differentiable in turn, so double backward (create_graph=True)
// and torch.compile's joint tracing work through the same code. C++ programs train through the same kernels:
// they are registered at the Autograd key of the op library, not in Python.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace leanconv::autograd {

using torch::autograd::variable_list;

// Backward passes run on the caller's thread on the CPU, inside any autocast region the caller is in; a
// gradient must be computed in the dtypes the forward saved, so every backward node switches autocast off.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

// The backward of a linear op y = op(x): grad_x = adjoint(grad_y).
class AdjointNode : public torch::autograd::Node {
 public:
  using Adjoint = std::function<at::Tensor(const at::Tensor&)>;

  AdjointNode(std::string name, Adjoint adjoint) : name_(std::move(name)), adjoint_(std::move(adjoint)) {}

  variable_list apply(variable_list&& grads) override {
    NoAutocast no_autocast;
    if (!grads[0].defined() || !task_should_compute_output(0)) return {at::Tensor()};
    return {adjoint_(grads[0])};
  }

  std::string name() const override { return name_; }

 private:
  std::string name_;
  Adjoint adjoint_;
};

// An optional operand as the tensor autograd works with (undefined when absent), and back.
inline at::Tensor defined_or_empty(const std::optional<at::Tensor>& t) { return t.has_value() ? *t : at::Tensor(); }
inline std::optional<at::Tensor> optional_of(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

inline bool any_requires_grad(std::initializer_list<at::Tensor> tensors) {
  for (const auto& t : tensors) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

// Whether a computation on `tensors` is recorded: a backward that must itself be differentiable then takes the
// composite (aten) path.
inline bool builds_graph(std::initializer_list<at::Tensor> tensors) {
  return at::GradMode::is_enabled() && any_requires_grad(tensors);
}

// The backward ops are not differentiable: refuse to build a graph through one rather than return a wrong one.
// (The forward ops' own backward never reaches them with a graph to build: it takes the aten path then.)
// `instead` says what to differentiate.
inline void refuse_graph(const char* op, const char* instead, std::initializer_list<at::Tensor> tensors) {
  TORCH_CHECK(!builds_graph(tensors), "leanconv: ", op, " is not differentiable; differentiate ", instead);
}

// A gradient in its operand's dtype (a parameter's dtype may differ from the computation's).
inline at::Tensor cast_to(const at::Tensor& t, std::optional<at::ScalarType> dtype) {
  return t.defined() && dtype.has_value() && t.scalar_type() != *dtype ? t.to(*dtype) : t;
}

// A backward node of type NodeT whose gradients flow to the edges of `inputs`.
template <typename NodeT, typename... Inputs>
std::shared_ptr<NodeT> new_node(const Inputs&... inputs) {
  auto node = std::shared_ptr<NodeT>(new NodeT(), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(inputs...));
  return node;
}

// The tangent a forward-mode AD level 0 (torch.func.jvp, jacfwd, torch.autograd.forward_ad) gives `t`.
inline at::Tensor tangent_of(const at::Tensor& t) { return t.defined() ? t._fw_grad(/*level=*/0) : at::Tensor(); }

// The autograd kernel of a linear op: y = forward(x) computed below autograd; its backward is adjoint(grad_y)
// and its forward-mode tangent forward(tangent_x). `make_adjoint(x)` builds the adjoint from what the forward
// learned (the kernel has checked the arguments by then).
template <typename Forward, typename MakeAdjoint>
at::Tensor linear_op(const char* name, const at::Tensor& x, Forward&& forward, MakeAdjoint&& make_adjoint) {
  const bool requires_grad = torch::autograd::compute_requires_grad(x);
  at::Tensor y;
  {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    y = forward(x);
  }
  if (requires_grad) {
    auto node = std::shared_ptr<AdjointNode>(new AdjointNode(name, make_adjoint(x)), torch::autograd::deleteNode);
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    torch::autograd::set_history(y, node);
  }
  const auto x_tangent = tangent_of(x);
  if (x_tangent.defined()) y._set_fw_grad(forward(x_tangent), /*level=*/0, /*is_inplace_op=*/false);
  return y;
}

}  // namespace leanconv::autograd
