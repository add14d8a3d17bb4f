"""The family registry: every conv family leanconv offers, and what the rest of the project needs of it.

Each entry names the family's conv factory (``leanconv.nn.<family>``: how the model builders get its convs, and how
``leanconv.convert`` makes its layer from a trained conv), its options with defaults, help text and the sample
values tests and examples use, its Fashion-MNIST table rows, its benchmark script and its docs page. The model
builders, ``leanconv.convert``, ``python -m leanconv.train --conv``, the tests, ``make bench``, the GPU check and the
results tables all read this table: a new family is its own files plus one entry here.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type

from torch import nn

from .nn._convs import DenseConvs
from .nn.counting import is_compact_layer
from .nn.filter_summary import FilterSummaryConvs
from .nn.generated import GeneratedConvs
from .nn.lowrank import LowrankConvs
from .nn.multigrid import MultigridConvs
from .nn.shared import SharedConvs


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
    convs: Type[DenseConvs]  # its conv factory: convs.build(make_model, **options); from_conv / tie for convert
    options: Sequence[Option] = field(default_factory=tuple)
    # Option values the tests and examples build the family with (small and quick to train).
    sample_options: Dict[str, Any] = field(default_factory=dict)
    # Rows of the Fashion-MNIST families table: (row name, python -m leanconv.train flags), at the family's ~10x point.
    table_rows: Sequence[Tuple[str, str]] = field(default_factory=tuple)
    benchmark: Optional[str] = None  # benchmarks/<script>: the family against dense and the plain-PyTorch layer
    not_convertible: str = ""  # why leanconv.convert cannot make the family's layers from trained convs

    @property
    def docs(self) -> str:
        return f"docs/{self.name}.md" if self.name != "dense" else "docs/design.md"

    @property
    def from_conv(self) -> Optional[Callable[..., nn.Module]]:
        """from_conv(conv, **options) -> its layer (or the conv, kept dense), for families of per-conv layers."""
        return getattr(self.convs, "from_conv", None)

    @property
    def tie(self) -> Optional[Callable[..., tuple]]:
        """tie([(stage, conv), ...], **options) -> (holders by key, {id(conv): layer}), for a family whose layers
        share a holder: the family groups the convs, ``leanconv.convert`` registers the holders and places the
        layers."""
        return getattr(self.convs, "tie", None)

    @property
    def convertible(self) -> bool:
        return self.from_conv is not None or self.tie is not None

    def check_options(self, options: Dict[str, Any]) -> None:
        unknown = set(options) - {o.name for o in self.options}
        if unknown:
            raise TypeError(f"leanconv: unknown options for conv={self.name!r}: {sorted(unknown)}; it takes "
                            f"{sorted(o.name for o in self.options) or 'none'}")


# ---- option parsers (from command-line strings) ---------------------------------------------------------------

def _ring_size(text: str):
    value = float(text)
    if value >= 1 and value != int(value):
        raise ValueError(f"a count of ring parameters is a whole number, got {text}")
    return int(value) if value >= 1 else value


def _rank(text: str):
    ranks = [int(r) for r in str(text).split(",")]
    return ranks[0] if len(ranks) == 1 else ranks


def _optional_int(text: str):
    return None if text in (None, "", "none", "None") else int(text)


def _flag(text: str) -> bool:
    word = str(text).lower()
    if word not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError(f"expected true or false (1/0, yes/no), got {text!r}")
    return word in ("1", "true", "yes")


FAMILIES: Dict[str, Family] = {f.name: f for f in [
    Family("dense", "the baseline: ordinary nn.Conv2d", DenseConvs,
           table_rows=(("resnet20-dense", "--model resnet20 --conv dense"),),
           not_convertible="the models already have dense convs"),
    Family("shared", "Deep Anchored CNN (DACNN)", SharedConvs, (
        Option("rotate", 0, "channel rotation of every anchored use (the reference mix code's is 1)", int),
    ), table_rows=(("resnet20-shared", "--model resnet20 --conv shared"),), benchmark="bench_shared.py"),
    Family("generated", "Recurrent Parameter Generator (RPG)", GeneratedConvs, (
        Option("ring_size", 0.1, "ring parameters per ring: a count (>= 1) or a fraction of the weights it serves",
               _ring_size),
        Option("ring_scope", "model", "one ring per model, stage or block", str, ("model", "stage", "block")),
        Option("seed", 0, "seed of the rings' permutations and signs", int, on_command_line=False),
    ), sample_options={"ring_size": 0.1},
        table_rows=(("resnet20-generated-ring0.1", "--model resnet20 --conv generated --ring-size 0.1"),),
        benchmark="bench_generated.py",
        not_convertible="its weights are a permutation of a ring, not a function of a trained weight"),
    Family("filter_summary", "Filter Summary (FSNet)", FilterSummaryConvs, (
        Option("compression", 9, "C_in*k*k / s: dense filter elements per summary element", float),
        Option("quant_bits", None, "fake-quantise the summaries to this many bits (2..8)", _optional_int),
        Option("pointwise", False, "also summarise the 1x1 convs", _flag),
        Option("path", "auto", "execution path", str, ("auto", "direct", "gather")),
    ), sample_options={"compression": 10},
        table_rows=(("resnet20-filter_summary-c10", "--model resnet20 --conv filter_summary --compression 10"),),
        benchmark="bench_filter_summary.py"),
    Family("lowrank", "depthwise convolutional eigen-filters (DeCEF)", LowrankConvs, (
        Option("rank", 4, "basis filters per input channel: one, or one per stage (6,5,4)", _rank),
        Option("path", "auto", "execution path", str, ("auto", "fused", "materialized")),
    ), sample_options={"rank": 1},
        table_rows=(("resnet20-lowrank-rank1", "--model resnet20 --conv lowrank --rank 1"),
                    ("resnet20-lowrank-rank5", "--model resnet20 --conv lowrank --rank 5")),
        benchmark="bench_lowrank.py"),
    Family("multigrid", "multigrid-in-channels (MGIC)", MultigridConvs, (
        Option("group_size", 32, "channels per group of the grouped convs", int),
        Option("coarsest", 16, "the narrowest channel level (halving stops before going below it; 16: the authors' "
                               "full-conv threshold of 32)", int),
    ), sample_options={"group_size": 8, "coarsest": 8},
        # The MGIC network (V-cycle blocks) at ResNet-20's widths; group size 2 is its ~10x point there.
        table_rows=(("mgic-resnet20-g2", "--model mgic_resnet20 --conv multigrid --group-size 2 --coarsest 2"),),
        benchmark="bench_multigrid.py"),
]}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"leanconv: unknown conv family {name!r}; expected one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def build(make_model: Callable[[DenseConvs], nn.Module], conv: str = "dense", **options) -> nn.Module:
    """``make_model(convs)`` with the convs of family ``conv`` built with ``options`` (see FAMILIES)."""
    chosen = family(conv)
    chosen.check_options(options)
    model = chosen.convs.build(make_model, **options)
    # A family whose options fit none of the model's convs (e.g. a multigrid group size dividing no width) would
    # otherwise hand back the dense model under the family's name.
    if chosen.name != "dense" and not any(is_compact_layer(m) for m in model.modules()):
        raise ValueError(f"leanconv: conv={conv!r} with options {options} replaces none of the model's convs (each "
                         f"was kept dense); see the family's options in leanconv.families.FAMILIES[{conv!r}]")
    return model


def table_rows():
    """Every family's Fashion-MNIST table rows, dense first: (name, flags)."""
    return [row for f in FAMILIES.values() for row in f.table_rows]


def benchmarks():
    """Every family's benchmark script (benchmarks/<script>)."""
    return [f.benchmark for f in FAMILIES.values() if f.benchmark]


__all__ = ["FAMILIES", "Family", "Option", "benchmarks", "build", "family", "table_rows"]
