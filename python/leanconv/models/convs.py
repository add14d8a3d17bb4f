"""Conv factories: a model builder asks one for each of its convs, so one builder serves every family.

A builder calls ``convs.conv(in, out, k, stride, padding, scope=(stage, block))`` for each conv the family
may replace (stems and heads stay ordinary) and ``convs.finish(model)`` at the end, which registers any
shared state (e.g. the rings of the generated-weight family) on the model. ``leanconv.families`` says which
factory serves which ``conv=`` name.
"""
import numbers
from typing import Callable, Dict, Hashable, Sequence, Tuple, Union

from torch import nn

from ..nn import AnchoredConv2d, ConvAnchor, EigenConv2d, FilterSummaryConv2d, GeneratedConv2d, ParameterRing
from ..nn.lowrank import checked_rank
from ..nn.multigrid import MultigridConv2d, multigrid_applies

Scope = Tuple[int, int]  # (stage, block) of the conv in the network


class DenseConvs:
    """Ordinary ``nn.Conv2d`` layers (the baseline)."""

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)) -> nn.Module:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)

    def finish(self, model: nn.Module) -> nn.Module:
        return model


class _CountingConvs(DenseConvs):
    """A dry run: meta-device convs, recording how many weights each ring scope would generate."""

    def __init__(self, key_of: Callable[[Scope], Hashable]):
        self.key_of = key_of
        self.counts: Dict[Hashable, int] = {}

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        key = self.key_of(scope)
        self.counts[key] = self.counts.get(key, 0) + out_channels * in_channels * kernel_size * kernel_size
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False, device="meta")


RING_SCOPES: Dict[str, Callable[[Scope], str]] = {
    "model": lambda scope: "model",
    "stage": lambda scope: f"stage{scope[0]}",
    "block": lambda scope: f"stage{scope[0]}_block{scope[1]}",
}


def count_ring_weights(make_model, key_of) -> Dict[Hashable, int]:
    """How many weights each ring (keyed by ``key_of(scope)``) serves: a dry run of the builder on meta convs."""
    counting = _CountingConvs(key_of)
    make_model(counting)
    return counting.counts


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
            self.rings[key] = ParameterRing(size, seed=seed + i)

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        return GeneratedConv2d(self.rings[self.key_of(scope)], in_channels, out_channels, kernel_size, stride,
                               padding, bias=False)

    def finish(self, model: nn.Module) -> nn.Module:
        model.rings = self.rings  # registered once, on the model: one copy in the state_dict
        return model


class FilterSummaryConvs(DenseConvs):
    """Filter-summary (FSNet) convs with one compression ratio (and optional quantisation) for every layer.

    A layer whose filters are too short for the ratio (s < 1) is kept dense, as are 1x1 convs unless
    ``pointwise=True``."""

    def __init__(self, compression: float = 9, quant_bits=None, pointwise: bool = False, path: str = "auto"):
        self.compression, self.quant_bits, self.pointwise, self.path = compression, quant_bits, pointwise, path

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        if (kernel_size == 1 and not self.pointwise) or in_channels * kernel_size * kernel_size < self.compression:
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        return FilterSummaryConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False,
                                   compression=self.compression, quant_bits=self.quant_bits, path=self.path)


RankRule = Union[int, Sequence[int], Callable[[int, int, int, Scope], int]]


class LowrankConvs(DenseConvs):
    """Low-rank (DeCEF) convs for every k x k conv (k > 1); 1x1 convs stay dense (rank 1 would not save anything).

    ``rank`` is the rule: an int for every layer, a sequence indexed by stage (the effective rank falls with
    depth, so a falling schedule such as ``(6, 5, 4)`` follows it), or a callable
    ``rank(in_channels, out_channels, kernel_size, scope) -> int``. Ranks above k*k are clipped to k*k."""

    def __init__(self, rank: RankRule = 4, path: str = "auto"):
        self.rank, self.path = rank, path

    def rank_of(self, in_channels, out_channels, kernel_size, scope: Scope) -> int:
        if callable(self.rank):
            rank = self.rank(in_channels, out_channels, kernel_size, scope)
        elif isinstance(self.rank, numbers.Number):
            rank = self.rank  # checked below: a float rank is refused, not truncated
        else:
            if scope[0] >= len(self.rank):
                raise ValueError(f"leanconv: the rank schedule {tuple(self.rank)} has no entry for stage {scope[0]}")
            rank = self.rank[scope[0]]
        return min(checked_rank(rank, kernel_size * kernel_size), kernel_size * kernel_size)

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        if kernel_size == 1:
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        return EigenConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False,
                           rank=self.rank_of(in_channels, out_channels, kernel_size, scope), path=self.path)


class SharedConvs(DenseConvs):
    """Shared-weight (DACNN) convs: in each stage, the k x k convs of equal shape C -> C use one anchor; the
    width-changing and 1x1 convs stay dense. ``rotate`` is the channel rotation of every anchored use."""

    def __init__(self, rotate: int = 0):
        self.rotate = rotate
        self.anchors = nn.ModuleDict()

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        if in_channels != out_channels or kernel_size == 1:
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        key = f"stage{scope[0]}_{in_channels}x{kernel_size}"
        if key not in self.anchors:
            self.anchors[key] = ConvAnchor(in_channels, kernel_size)
        return AnchoredConv2d(self.anchors[key], stride, padding, rotate=self.rotate)

    def finish(self, model: nn.Module) -> nn.Module:
        model.anchors = self.anchors  # registered once, on the model: one copy in the state_dict
        return model


class MultigridConvs(DenseConvs):
    """Multigrid-in-channels convs (:class:`leanconv.nn.MultigridConv2d`) for every conv with at least two channel
    levels at its output width (``group_size``, ``coarsest``); the others stay dense. 1x1 convs too: the MobileNetV2
    variant's pointwise convs become V-cycles of grouped 1x1 convs."""

    def __init__(self, group_size: int = 32, coarsest: int = 16):
        self.group_size, self.coarsest = group_size, coarsest

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        if not multigrid_applies(in_channels, out_channels, kernel_size, stride, padding, 1, self.group_size,
                                 self.coarsest):
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        return MultigridConv2d(in_channels, out_channels, kernel_size, stride, padding, group_size=self.group_size,
                               coarsest=self.coarsest)
