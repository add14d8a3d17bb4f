"""The family registry: every conv family leanconv offers, with what the rest of the package needs of it.

For each family: how the model builders get its convs (``build``), how ``leanconv.convert`` makes its layer from
a trained ``nn.Conv2d`` (``from_conv``, or the reason it cannot), and its options with defaults and help text
(the training command line's flags are made from them). ``leanconv.models``, ``leanconv.convert`` and
``python -m leanconv.train --conv`` all read this registry: a new family is its own files plus one entry here.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch import nn

from .models.convs import (DenseConvs, FilterSummaryConvs, GeneratedConvs, LowrankConvs, MultigridConvs, RING_SCOPES,
                           SharedConvs, count_ring_weights)
from .nn import EigenConv2d, FilterSummaryConv2d
from .nn.lowrank import checked_rank


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str  # from a command-line string
    choices: Optional[Sequence[str]] = None
    on_command_line: bool = True


@dataclass(frozen=True)
class Family:
    name: str  # the one name: files, conv= key, tests, benchmark, docs/<name>.md
    paper: str
    build: Callable[..., nn.Module]  # build(make_model, **options) -> the model with this family's convs
    options: Sequence[Option] = field(default_factory=tuple)
    from_conv: Optional[Callable[..., nn.Module]] = None  # from_conv(conv, **options) -> its layer
    # Or, for a family whose layers share a holder: tie(model, {group key: [(name, conv), ...]}, **options).
    tie: Optional[Callable[..., None]] = None
    not_convertible: str = ""  # why neither applies

    @property
    def convertible(self) -> bool:
        return self.from_conv is not None or self.tie is not None

    def check_options(self, options: Dict[str, Any]) -> None:
        unknown = set(options) - {o.name for o in self.options}
        if unknown:
            raise TypeError(f"leanconv: unknown options for conv={self.name!r}: {sorted(unknown)}; it takes "
                            f"{sorted(o.name for o in self.options) or 'none'}")


# ---- builders -----------------------------------------------------------------------------------------

def _build_dense(make_model, **options):
    return make_model(DenseConvs())


def _build_generated(make_model, ring_size=0.1, ring_scope="model", seed=0):
    if ring_scope not in RING_SCOPES:
        raise ValueError(f"leanconv: ring_scope must be one of {sorted(RING_SCOPES)}, got {ring_scope!r}")
    key_of = RING_SCOPES[ring_scope]
    convs = GeneratedConvs(count_ring_weights(make_model, key_of), key_of, ring_size, seed)
    return convs.finish(make_model(convs))


def _build_filter_summary(make_model, **options):
    return make_model(FilterSummaryConvs(**options))


def _build_lowrank(make_model, **options):
    return make_model(LowrankConvs(**options))


def _build_multigrid(make_model, **options):
    return make_model(MultigridConvs(**options))


def _build_shared(make_model, **options):
    convs = SharedConvs(**options)
    return convs.finish(make_model(convs))


# ---- conversion of trained convs ------------------------------------------------------------------------

def _lowrank_from_conv(conv: nn.Conv2d, rank=None, energy: float = 0.99, path: str = "auto") -> nn.Module:
    if rank is not None:  # as the model builders do: a rank above k*k is the full rank k*k
        taps = conv.kernel_size[0] * conv.kernel_size[1]
        rank = min(checked_rank(rank, taps), taps)
    return EigenConv2d.from_conv(conv, rank=rank, energy=energy, path=path)


def _filter_summary_from_conv(conv: nn.Conv2d, compression: float = 9, quant_bits=None,
                              path: str = "auto") -> nn.Module:
    if conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1] < compression:
        return conv  # filters too short for the compression: kept dense
    return FilterSummaryConv2d.from_conv(conv, compression=compression, quant_bits=quant_bits, path=path)


def _multigrid_from_conv(conv: nn.Conv2d, group_size: int = 32, coarsest: int = 16) -> nn.Module:
    """A freshly initialised MultigridConv2d of the conv's shape (a V-cycle of grouped convs has no exact
    counterpart of a dense weight, so nothing is copied), or the conv itself where no multigrid layer applies."""
    from .nn.multigrid import MultigridConv2d, multigrid_applies

    if conv.padding_mode != "zeros" or not multigrid_applies(conv.in_channels, conv.out_channels, conv.kernel_size,
                                                      conv.stride[0], conv.padding, conv.dilation, group_size,
                                                      coarsest) or conv.stride[0] != conv.stride[1]:
        return conv
    padding = conv.kernel_size[0] // 2 if conv.padding == "same" else conv.padding  # (multigrid_applies checked it)
    return MultigridConv2d(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride, padding,
                           group_size=group_size, coarsest=coarsest, device=conv.weight.device,
                           dtype=conv.weight.dtype)


# ---- option parsers -----------------------------------------------------------------------------------------

def _ring_size(text: str):
    value = float(text)
    return int(value) if value >= 1 else value


def _rank(text: str):
    ranks = [int(r) for r in str(text).split(",")]
    return ranks[0] if len(ranks) == 1 else ranks


def _optional_int(text: str):
    return None if text in (None, "", "none", "None") else int(text)


def _shared_tie(model: nn.Module, convs, rotate: int = 0) -> None:
    """Ties each group of convs (same shape C -> C, k x k, in one stage) to one anchor initialised from their mean."""
    from .nn.shared import AnchorDict, AnchoredConv2d, ConvAnchor  # (here: nn.shared is a leaf, families is not)

    model.anchors = getattr(model, "anchors", None) or AnchorDict()
    for key, members in convs.items():
        first = members[0][1]
        anchor = ConvAnchor(first.in_channels, first.kernel_size, bias=first.bias is not None,
                            device=first.weight.device, dtype=first.weight.dtype)
        with torch.no_grad():
            anchor.weight.copy_(torch.stack([c.weight for _, c in members]).mean(0))
            if anchor.bias is not None:
                anchor.bias.copy_(torch.stack([c.bias for _, c in members]).mean(0))
        model.anchors[key] = anchor
        for name, conv in members:
            parent_name, _, attribute = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attribute, AnchoredConv2d(anchor, conv.stride, conv.padding, conv.dilation,
                                                      rotate=rotate, padding_mode=conv.padding_mode))


FAMILIES: Dict[str, Family] = {f.name: f for f in [
    Family("dense", "the baseline: ordinary nn.Conv2d", _build_dense,
           not_convertible="the models already have dense convs"),
    Family("shared", "Deep Anchored CNN (DACNN)", _build_shared, (
        Option("rotate", 0, "channel rotation of every anchored use (the reference mix code's is 1)", int),
    ), tie=_shared_tie),
    Family("generated", "Recurrent Parameter Generator (RPG)", _build_generated, (
        Option("ring_size", 0.1, "ring parameters per ring: a count (>= 1) or a fraction of the weights it serves",
               _ring_size),
        Option("ring_scope", "model", "one ring per model, stage or block", str, ("model", "stage", "block")),
        Option("seed", 0, "seed of the rings' permutations and signs", int, on_command_line=False),
    ), not_convertible="its weights are a permutation of a ring, not a function of a trained weight"),
    Family("filter_summary", "Filter Summary (FSNet)", _build_filter_summary, (
        Option("compression", 9, "C_in*k*k / s: dense filter elements per summary element", float),
        Option("quant_bits", None, "fake-quantise the summaries to this many bits (2..8)", _optional_int),
        Option("pointwise", False, "also summarise the 1x1 convs", lambda t: str(t).lower() in ("1", "true", "yes")),
        Option("path", "auto", "execution path", str, ("auto", "direct", "gather")),
    ), from_conv=_filter_summary_from_conv),
    Family("lowrank", "depthwise convolutional eigen-filters (DeCEF)", _build_lowrank, (
        Option("rank", 4, "basis filters per input channel: one, or one per stage (6,5,4)", _rank),
        Option("path", "auto", "execution path", str, ("auto", "fused", "materialized")),
    ), from_conv=_lowrank_from_conv),
    Family("multigrid", "multigrid-in-channels (MGIC)", _build_multigrid, (
        Option("group_size", 32, "channels per group of the grouped convs", int),
        Option("coarsest", 16, "the narrowest channel level (halving stops before going below it; 16: the authors' full-conv threshold of 32)", int),
    ), from_conv=_multigrid_from_conv),
]}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"leanconv: unknown conv family {name!r}; expected one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def build(make_model: Callable[[DenseConvs], nn.Module], conv: str = "dense", **options) -> nn.Module:
    """``make_model(convs)`` with the convs of family ``conv`` built with ``options`` (see FAMILIES)."""
    chosen = family(conv)
    chosen.check_options(options)
    model = chosen.build(make_model, **options)
    # A family whose options fit none of the model's convs (e.g. a multigrid group size dividing no width) would
    # otherwise hand back the dense model under the family's name.
    if chosen.name != "dense" and not any(type(m).__module__.startswith("leanconv.nn.") for m in model.modules()):
        raise ValueError(f"leanconv: conv={conv!r} with options {options} replaces none of the model's convs (each "
                         f"was kept dense); see the family's options in leanconv.families.FAMILIES[{conv!r}]")
    return model


__all__ = ["FAMILIES", "Family", "Option", "build", "family"]
