"""Generated-weight (RPG) modules: one ParameterRing of N learned parameters serves every layer built on it.

Layer i's weights are positions [offset_i, offset_i + n_i) of the model's virtual weight sequence:
``W_i[j] = alpha_i * s(g) * ring[pi(g) mod N]`` with ``g = offset_i + j``, ``pi`` a fixed pseudo-random
bijection of [0, T), ``s`` a fixed pseudo-random sign (both from the ring's seed), and
``alpha_i = sqrt(fan_ref / fan_out_i)`` so each layer keeps its Kaiming scale.

A layer keeps a reference to its ring without registering it as a submodule: register the ring on the model
that owns the layers (``model.ring = ring``). The state_dict then holds the ring once, ``parameters()``
lists it once (DDP-safe), and ``model.to(...)`` moves it. The layout (seed, total, offsets) is in the
state_dict as int64 buffers and is adopted on ``load_state_dict``.
"""
import math
from typing import Callable, Dict, Hashable, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ._convs import DenseConvs, Scope, count_conv_weights
from .counting import conv_multiply_adds
from ._holder import SharedHolder, check_input_against
from ._conv_args import apply_padding_mode, check_conv_input, conv_extra_repr, conv_geometry, dense_conv_like

_DEFAULT_FAN_REF = 512 * 3 * 3
_MAX_TOTAL = 1 << 62  # the longest virtual weight sequence the layout supports (csrc/common/ring_permutation.h)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class _LayoutBuffers(nn.Module):
    """Int64 scalar buffers that mirror Python ints the forward reads (the layout of a generated model).

    The ints are the truth: the state_dict is written from them, and the buffers are rewritten from them after
    anything that may replace the buffers (to_empty() after meta-device construction, .to(), reset_parameters()),
    so the state_dict always holds what the forward uses. Subclasses name the pairs in _layout()."""

    def _layout(self) -> Dict[str, int]:
        raise NotImplementedError

    def _write_layout(self) -> None:
        with torch.no_grad():
            for name, value in self._layout().items():
                getattr(self, name).fill_(value)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._write_layout()
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, value in self._layout().items():
            destination[prefix + name] = torch.tensor(value, dtype=torch.int64, device=getattr(self, name).device)


def _init_bias(bias: Tensor, fan_in: int) -> None:
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    nn.init.uniform_(bias, -bound, bound)


class ParameterRing(SharedHolder, _LayoutBuffers):
    """The learned 1-D parameter bank ``ring`` (N,) that generated layers draw their weights from.

    Args:
        size: number of learned parameters N.
        seed: seed of the permutation and the signs.
        fan_ref: reference fan-out; the ring is initialised Kaiming-normal for it (default: a 512->512 3x3 conv).
    """

    registration_example = "model.ring = ring"

    def __init__(self, size: int, seed: int = 0, fan_ref: float = _DEFAULT_FAN_REF, device=None, dtype=None):
        super().__init__()
        if size < 1:
            raise ValueError(f"leanconv: ParameterRing size must be positive, got {size}")
        if fan_ref <= 0:
            raise ValueError(f"leanconv: ParameterRing fan_ref must be positive, got {fan_ref}")
        if not _INT64_MIN <= int(seed) <= _INT64_MAX:
            raise ValueError(f"leanconv: ParameterRing seed must fit in int64, got {seed}")
        self.fan_ref = float(fan_ref)
        self.ring = nn.Parameter(torch.empty(size, device=device, dtype=dtype))
        # The layout lives in Python ints (what the forward reads); the buffers mirror them for the state_dict
        # and the C++ modules, and are rewritten from them whenever they could have lost their values.
        self._seed = int(seed)
        self._total = 0
        self.register_buffer("seed", torch.tensor(self._seed, dtype=torch.int64, device=device))
        self.register_buffer("total", torch.tensor(0, dtype=torch.int64, device=device))
        self.register_load_state_dict_post_hook(ParameterRing._adopt_layout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.ring, 0.0, math.sqrt(2.0 / self.fan_ref))
        self._write_layout()

    def _layout(self) -> Dict[str, int]:
        return {"seed": self._seed, "total": self._total}

    @staticmethod
    def _adopt_layout(module, incompatible_keys) -> None:
        if module.total.is_meta:  # a meta module loads nothing (torch warns that the copy is a no-op)
            return
        total = int(module.total.item())
        if not 0 <= total <= _MAX_TOTAL:
            raise RuntimeError(f"leanconv: the loaded ParameterRing total must be in [0, 2^62], got {total}")
        module._seed = int(module.seed.item())
        module._total = total

    def allocate(self, numel: int) -> int:
        """Reserves ``numel`` positions of the virtual weight sequence for a new layer; returns their offset."""
        if numel < 1:
            raise ValueError(f"leanconv: a generated layer must have at least one weight, got {numel}")
        if self._total + int(numel) > _MAX_TOTAL:
            raise ValueError("leanconv: a ParameterRing serves at most 2^62 weights")
        offset = self._total
        self._total += int(numel)
        with torch.no_grad():
            self.total.fill_(self._total)
        return offset

    def generate(self, offset: int, shape: Sequence[int], scale: float) -> Tensor:
        """Positions ``[offset, offset + prod(shape))`` of the virtual weight sequence, times ``scale``."""
        if self._total == 0:
            raise RuntimeError("leanconv: the ring's virtual weight sequence is empty (total = 0): create the "
                               "layers that draw on a ring before generating weights from it")
        return ops.generate_weights(self.ring, self._seed, self._total, offset, shape, scale)

    @property
    def size(self) -> int:
        return self.ring.numel()

    def num_learned_params(self) -> int:
        return self.ring.numel()

    def num_dense_params(self) -> int:
        return 0  # the dense equivalents are counted by the layers

    def extra_repr(self) -> str:
        compression = self._total / self.ring.numel()
        return f"size={self.ring.numel()}, seed={self._seed}, serves={self._total}, compression={compression:.2f}x"


class _GeneratedLayer(_LayoutBuffers):
    """Common part of the generated layers: the ring reference, the offset and the scale."""

    def _attach(self, ring: ParameterRing, weight_shape: Tuple[int, ...], fan_out: int) -> None:
        if not isinstance(ring, ParameterRing):
            raise TypeError(f"leanconv: ring must be a leanconv.nn.ParameterRing, got {type(ring).__name__}")
        object.__setattr__(self, "_ring", ring)  # a reference, not a submodule (see the module docstring)
        self.weight_shape = tuple(int(s) for s in weight_shape)
        self._offset = ring.allocate(math.prod(self.weight_shape))
        self.register_buffer("offset", torch.tensor(self._offset, dtype=torch.int64, device=ring.ring.device))
        self.scale = math.sqrt(ring.fan_ref / fan_out)
        self.register_load_state_dict_post_hook(_GeneratedLayer._adopt_layout)

    def _layout(self) -> Dict[str, int]:
        return {"offset": self._offset}

    @staticmethod
    def _adopt_layout(module, incompatible_keys) -> None:
        if module.offset.is_meta:  # a meta module loads nothing (torch warns that the copy is a no-op)
            return
        offset = int(module.offset.item())
        if not 0 <= offset <= _MAX_TOTAL - math.prod(module.weight_shape):
            raise RuntimeError(f"leanconv: the loaded offset {offset} of a generated layer lies outside any virtual "
                               "weight sequence [0, 2^62)")
        module._offset = offset

    @property
    def ring(self) -> ParameterRing:
        return self._ring

    @property
    def weight(self) -> Tensor:
        """The dense equivalent weight, differentiable with respect to the ring."""
        return self._ring.generate(self._offset, self.weight_shape, self.scale)

    def num_learned_params(self) -> int:
        return 0 if self.bias is None else self.bias.numel()

    def num_dense_params(self) -> int:
        return math.prod(self.weight_shape) + self.num_learned_params()


class GeneratedConv2d(_GeneratedLayer):
    """A ``Conv2d`` whose weight is generated from a :class:`ParameterRing`; same arguments as ``nn.Conv2d``."""

    def __init__(self, ring: ParameterRing, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding: Union[int, Tuple[int, int], str] = 0, dilation=1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = conv_geometry(
            "GeneratedConv2d", in_channels, out_channels, kernel_size, stride, padding, dilation, groups, padding_mode)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self._attach(ring, shape, fan_out=out_channels * self.kernel_size[0] * self.kernel_size[1])
        factory = {"device": device if device is not None else ring.ring.device,
                   "dtype": dtype if dtype is not None else ring.ring.dtype}
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._write_layout()
        if self.bias is not None:
            _init_bias(self.bias, math.prod(self.weight_shape[1:]))

    def forward(self, input: Tensor) -> Tensor:
        check_conv_input("GeneratedConv2d", input, self.in_channels)
        self._ring.check_registered("layer")
        check_input_against(input, self._ring.ring, "ring")
        input, padding = apply_padding_mode(input, self)
        return F.conv2d(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def materialize(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` computing the same function, with the generated weight copied in."""
        return dense_conv_like(self, self.weight.detach(), self.bias)

    def multiply_adds(self, input: Tensor, output: Tensor) -> int:
        return conv_multiply_adds(self, output)

    def extra_repr(self) -> str:
        return conv_extra_repr(self) + f", offset={self._offset}, ring_size={self._ring.size}"


class GeneratedLinear(_GeneratedLayer):
    """A ``Linear`` whose weight is generated from a :class:`ParameterRing`."""

    def __init__(self, ring: ParameterRing, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError("leanconv: GeneratedLinear in_features and out_features must be positive, got "
                             f"{in_features} and {out_features}")
        self.in_features, self.out_features = in_features, out_features
        self._attach(ring, (out_features, in_features), fan_out=out_features)
        factory = {"device": device if device is not None else ring.ring.device,
                   "dtype": dtype if dtype is not None else ring.ring.dtype}
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._write_layout()
        if self.bias is not None:
            _init_bias(self.bias, self.in_features)

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() < 1 or input.shape[-1] != self.in_features:
            raise RuntimeError(f"leanconv: GeneratedLinear expects {self.in_features} input features in the last "
                               f"dimension, got shape {tuple(input.shape)}")
        self._ring.check_registered("layer")
        check_input_against(input, self._ring.ring, "ring")
        return F.linear(input, self.weight, self.bias)

    def materialize(self) -> nn.Linear:
        ring = self._ring.ring
        linear = nn.Linear(self.in_features, self.out_features, self.bias is not None, device=ring.device,
                           dtype=ring.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def multiply_adds(self, input: Tensor, output: Tensor) -> int:
        return output.numel() * self.in_features

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"offset={self._offset}, ring_size={self._ring.size}")


# ---- the family's conv factory (leanconv.families) ----------------------------------------------------------------

RING_SCOPES: Dict[str, Callable[[Scope], str]] = {
    "model": lambda scope: "model",
    "stage": lambda scope: f"stage{scope[0]}",
    "block": lambda scope: f"stage{scope[0]}_block{scope[1]}",
}


class GeneratedConvs(DenseConvs):
    """Generated-weight convs drawing on one ring per model, per stage or per block.

    ``ring_size`` is the number of ring parameters of each ring, or, as a float in (0, 1], that fraction of
    the weights the ring serves.
    """

    def __init__(self, counts: Dict[Hashable, int], key_of, ring_size: Union[int, float], seed: int = 0):
        self.key_of = key_of
        self.rings = nn.ModuleDict()
        for i, (key, count) in enumerate(counts.items()):
            if isinstance(ring_size, float):
                if not 0.0 < ring_size <= 1.0:
                    raise ValueError(f"leanconv: a fractional ring_size must be in (0, 1], got {ring_size}")
                size = max(1, round(ring_size * count))
            else:
                size = int(ring_size)
                if size != ring_size or size < 1:
                    raise ValueError(f"leanconv: ring_size must be a whole count >= 1 or a fraction in (0, 1], "
                                     f"got {ring_size}")
                if size > count:
                    raise ValueError(f"leanconv: a ring of {size:,} parameters is more than the {count:,} weights it "
                                     "serves (a fraction in (0, 1] sizes it by them)")
            self.rings[key] = ParameterRing(size, seed=seed + i)

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        return GeneratedConv2d(self.rings[self.key_of(scope)], in_channels, out_channels, kernel_size, stride,
                               padding, bias=False)

    def finish(self, model: nn.Module) -> nn.Module:
        model.rings = self.rings  # registered once, on the model: one copy in the state_dict
        return model

    @classmethod
    def build(cls, make_model, ring_size: Union[int, float] = 0.1, ring_scope: str = "model",
              seed: int = 0) -> nn.Module:
        """The model with its rings sized from a dry run of the builder (a fractional ring_size is a share of the
        weights each ring serves)."""
        if ring_scope not in RING_SCOPES:
            raise ValueError(f"leanconv: ring_scope must be one of {sorted(RING_SCOPES)}, got {ring_scope!r}")
        key_of = RING_SCOPES[ring_scope]
        convs = cls(count_conv_weights(make_model, key_of), key_of, ring_size, seed)
        return convs.finish(make_model(convs))


__all__ = ["ParameterRing", "GeneratedConv2d", "GeneratedLinear"]
