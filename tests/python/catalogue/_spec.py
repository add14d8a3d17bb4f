"""What a catalogue entry declares (OpSpec, ModuleSpec), the samples' random tensors, and the C++ twins' helpers."""
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn


@dataclass
class OpSpec:
    name: str  # torch.ops.leanconv.<name>
    samples: Callable[[str, torch.dtype], List[tuple]]
    reference: Callable
    differentiable: Tuple[int, ...]  # argument positions of the tensors the op is differentiable in
    refuses_graph: bool = False  # True: the op is not differentiable and says so when asked for a graph
    autocast: bool = False  # True: under autocast the op runs in the autocast dtype (else in its inputs' dtype)
    # Positions of tensors with a batch (N) dimension first and spatial dims last (vmap, empty batch, layouts).
    batched: Tuple[int, ...] = ()
    # Outputs in the op-math type (float32 for float16/bfloat16 inputs), like aten batch_norm's statistics.
    op_math_outputs: Tuple[int, ...] = ()
    tags: Sequence[str] = field(default_factory=tuple)

    @property
    def op(self):
        return getattr(torch.ops.leanconv, self.name)


def _randn(*shape, device="cpu", dtype=torch.float64):
    return torch.randn(*shape, device=device, dtype=dtype)


def layer_under_test(model: nn.Module) -> nn.Module:
    """The first of a holder model's layers (RingModel, AnchorModel), else the model itself."""
    return model.layers[0] if getattr(model, "holds_shared_state", False) else model


@dataclass
class ModuleSpec:
    name: str
    build: Callable[[], nn.Module]
    input_shape: Tuple[int, ...]
    conv: bool = True  # materialize() gives an nn.Conv2d (or the model holds such layers)
    smooth: bool = True  # False: a straight-through quantiser makes finite differences meaningless
    materializable: bool = True  # False: no single dense layer computes the same (a V-cycle with BatchNorms)
    batch_norm: bool = False  # True: holds BatchNorms (per-sample gradients then use eval mode, as torch.func asks)
    # The C++ twin, through leanconv._C.cpp: cpp(cpp_namespace) -> (forward, {state_dict name: C++ tensor}).
    cpp: Optional[Callable] = None

    def layer(self, model: nn.Module) -> nn.Module:
        return layer_under_test(model)


def _state(module, prefix=""):
    return {prefix + k: v for k, v in [*module.named_parameters(), *module.named_buffers()]}


def _cpp_layer(make_layer):
    def build(cpp):
        layer = make_layer(cpp)
        return layer.forward, _state(layer)
    return build
