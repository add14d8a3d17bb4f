"""What a catalogue entry declares (OpSpec), and the samples' random tensors."""
from dataclasses import dataclass, field
from typing import Callable, List, Sequence, Tuple

import torch


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
