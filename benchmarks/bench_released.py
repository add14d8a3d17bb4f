"""Each family's model training step against the papers' released code on the same architecture (CPU, float32).

Rows, each timed at every --threads count, the released model's step first (the baseline, ratio 1.00), then
leanconv's, round-robin in one process:

1. DACNN plain: the released ``resnet_Fix_BN`` against ``leanconv.models.dacnn("plain")`` (blocks 3-4-6-3,
   width 128, one anchor), CIFAR 32x32, batch 32.
2. DACNN mix: the released ``resnet_mix`` against ``dacnn("mix", rotate=1, released_rotation=True)`` (one anchor
   per width 64..512, the released rotations), batch 32.
3. RPG ResNet-18: the released ``superresnet18e`` against ``resnet18(conv="generated", ring_scope="model")``,
   one ring of N = 2,304,000 (the released initialisation needs a multiple of 512*3*3), ImageNet layout on 32x32
   (the released code has no CIFAR variant), batch 32; and generating all generated weights and reducing their
   gradients into the ring alone (the released way: its int64 index gather times its sign mask, autograd's
   scatter; leanconv: every GeneratedConv2d's weight and the backward of given gradients).
4. MGIC ResNet-20 (widths 16-32-64, 3 blocks each, 3x3 stem) at group sizes 2 and 8, batch 64.

A training step is zero_grad, forward, cross-entropy, backward and an SGD (momentum 0.9) step; each time is the
median of 5 repeats after 2 warm-ups unless --repeats/--warmup say otherwise. --quick halves the batches. CPU and
float32 only: the harness's --devices, --dtypes and --no-compile do not apply. Every row's notes give both models'
learned parameters (and how many get a gradient in a step, where the released model holds parameters it never
uses) and what was lined up.

The released code is not part of this repository: each family is imported from the checkout named on the command
line, and a family without one is skipped. To get them at the measured commits:

    git clone https://github.com/Gabriel-Huang/DACNN_release && git -C DACNN_release checkout 3cc0829
    git clone https://github.com/samaonline/Recurrent-Parameter-Generators && \\
        git -C Recurrent-Parameter-Generators checkout 9b7c391
    git clone https://github.com/BGUCompSci/MultigridInChannelsCNNs && \\
        git -C MultigridInChannelsCNNs checkout 23e6c22
    python benchmarks/bench_released.py --released-dacnn DACNN_release \\
        --released-rpg Recurrent-Parameter-Generators --released-mgic MultigridInChannelsCNNs --out PREFIX

The released RPG code assumes a GPU and numpy < 1.24. Two shims, applied in this process only and only when the
RPG rows run, let it run unchanged on a CPU: without a GPU, ``torch.Tensor.cuda`` returns the tensor itself (its
layers call ``.cuda()`` unconditionally), and its module's ``np.array`` falls back to an object array for a list
of arrays of different lengths (its ``finalize`` saves the per-layer index lists that way; numpy >= 1.24 raises).
"""
import importlib
import os
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import leanconv  # noqa: E402
from leanconv.nn import GeneratedConv2d  # noqa: E402
from harness import Row, common_arguments, measure_row, parse_arguments, report  # noqa: E402

NUM_CLASSES = 10
IMAGE_SIZE = 32
RPG_RING_SIZE = 2_304_000  # 500 * 512*3*3: the released ring's initialisation views it as (512, -1, 3, 3)


@dataclass
class ReleasedCode:
    family: str
    option: str      # the command-line option naming the checkout
    url: str
    commit: str

    def recipe(self) -> str:
        folder = self.url.rsplit("/", 1)[-1]
        return f"git clone {self.url} && git -C {folder} checkout {self.commit}"

    def label(self) -> str:
        return f"released {self.url.rsplit('/', 1)[-1]}@{self.commit}"


DACNN = ReleasedCode("DACNN", "released_dacnn", "https://github.com/Gabriel-Huang/DACNN_release", "3cc0829")
RPG = ReleasedCode("RPG", "released_rpg", "https://github.com/samaonline/Recurrent-Parameter-Generators", "9b7c391")
MGIC = ReleasedCode("MGIC", "released_mgic", "https://github.com/BGUCompSci/MultigridInChannelsCNNs", "23e6c22")


@dataclass
class Workload:
    """One row's work, built once and timed at every thread count."""
    benchmark: str
    workload: str
    mode: str
    variants: Dict[str, Callable[[], object]]
    notes: Dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# Importing the released code


def import_released(path: str, *module_names: str) -> List[types.ModuleType]:
    """The released modules, imported from their checkout. The checkout leaves sys.path afterwards so that its
    top-level names cannot shadow another checkout's."""
    sys.path.insert(0, os.path.abspath(path))
    try:
        return [importlib.import_module(name) for name in module_names]
    finally:
        sys.path.remove(os.path.abspath(path))


def let_cuda_calls_pass_without_a_gpu() -> None:
    # The released RPG layers call .cuda() on their indices unconditionally; on a CPU-only machine the tensors
    # stay where they are.
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *args, **kwargs: self


def tolerate_ragged_arrays(module: types.ModuleType) -> None:
    """Gives ``module`` a numpy whose ``array`` builds an object array from a list of arrays of different lengths,
    as numpy < 1.24 did (the released RPG ``finalize`` saves its per-layer index lists that way)."""
    shim = types.ModuleType("numpy_ragged_arrays")
    shim.__dict__.update(np.__dict__)

    def array(obj, *args, **kwargs):
        try:
            return np.array(obj, *args, **kwargs)
        except ValueError:
            ragged = np.empty(len(obj), dtype=object)
            ragged[:] = list(obj)
            return ragged

    shim.array = array
    module.np = shim


# ---------------------------------------------------------------------------------------------------------------
# Training steps and parameter counts


def training_step(model: torch.nn.Module, batch: int) -> Callable[[], None]:
    """One SGD training step of ``model`` on a fixed random batch (inputs of its own: the released MGIC model sets
    requires_grad on its input)."""
    model.train()
    x = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE)
    y = torch.randint(0, NUM_CLASSES, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return step


def learned_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameters_with_a_gradient(model: torch.nn.Module, step: Callable[[], None]) -> int:
    """Parameters one step gives a gradient (zero_grad sets them to None first): the ones the forward uses."""
    step()
    return sum(p.numel() for p in model.parameters() if p.grad is not None)


def parameter_note(released: torch.nn.Module, released_step, ours: torch.nn.Module, our_step) -> str:
    def describe(model, step):
        learned, used = learned_parameters(model), parameters_with_a_gradient(model, step)
        return f"{learned:,}" + ("" if used == learned else f" ({used:,} get a gradient)")
    return f"released {describe(released, released_step)}, leanconv {describe(ours, our_step)}"


def training_workload(benchmark: str, workload: str, code: ReleasedCode, released: torch.nn.Module,
                      ours: torch.nn.Module, batch: int, lined_up: str) -> Workload:
    released_step, our_step = training_step(released, batch), training_step(ours, batch)
    notes = {"parameters": parameter_note(released, released_step, ours, our_step), "lined up": lined_up}
    return Workload(benchmark, f"{workload}, batch {batch} {IMAGE_SIZE}x{IMAGE_SIZE} float32", "train step",
                    {code.label(): released_step, "leanconv": our_step}, notes)


# ---------------------------------------------------------------------------------------------------------------
# DACNN


def dacnn_workloads(path: str, quick: bool) -> List[Workload]:
    plain_module, mix_module = import_released(path, "resnet_Fix_BN", "resnet_mix_reg")
    batch = 16 if quick else 32
    plain = training_workload(
        "DACNN plain", "resnet_Fix_BN vs dacnn('plain')", DACNN, plain_module.resnet_Fix_BN(num_classes=NUM_CLASSES),
        leanconv.models.dacnn("plain", num_classes=NUM_CLASSES), batch,
        "blocks 3-4-6-3, width 128, one 128x128x3x3 anchor, 2x2 max-pool after each stage on both sides; the "
        "released block also holds a BatchNorm it never uses")
    mix = training_workload(
        "DACNN mix", "resnet_mix vs dacnn('mix', rotate=1, released_rotation=True)", DACNN,
        mix_module.resnet_mix(num_classes=NUM_CLASSES),
        leanconv.models.dacnn("mix", rotate=1, released_rotation=True, num_classes=NUM_CLASSES), batch,
        "blocks 3-4-6-3, widths 64-128-256-512, one anchor per width, an ordinary 3x3 conv and a 1x1 shortcut in "
        "each width-changing block, the released rotations relu(roll(BN2(W * roll(h, -1)), -1) + roll(x, -2)) on "
        "both sides (leanconv folds the first into the anchor); the released anchors and width-changing convs have "
        "a bias (leanconv's do not), and it holds a 1x1 regulator per block and a 128-channel conv it never uses")
    return [plain, mix]


# ---------------------------------------------------------------------------------------------------------------
# RPG


def released_rpg_resnet18(path: str, index_folder: str) -> torch.nn.Module:
    let_cuda_calls_pass_without_a_gpu()
    (supermodels, resnet_module) = import_released(path, "supermodels", "supermodels.super_resnet_equal")
    tolerate_ragged_arrays(resnet_module)
    # finalize() saves the drawn indices and signs under save_name; they go to a folder of this run.
    return supermodels.superresnet18e(num_classes=NUM_CLASSES, mem_size=RPG_RING_SIZE, _resume=False,
                                      save_name=os.path.join(index_folder, "resnet18_"))


def released_generated_layers(model: torch.nn.Module) -> List[torch.nn.Module]:
    return [m for m in model.modules() if type(m).__name__ == "SuperConv2d"]


def released_generated_weight(layer: torch.nn.Module) -> torch.Tensor:
    # The released SuperConv2d.forward's weight: the ring gathered at the layer's int64 indices times its signs,
    # scaled to the layer's Kaiming standard deviation.
    shape = (layer.out_channels, layer.in_channels, *layer.kernel_size)
    return layer.mem(layer.lid).view(shape) * layer.initialization_multiplier


def generation_workload(released: torch.nn.Module, ours: torch.nn.Module) -> Workload:
    """Generating every generated weight and reducing given gradients of them into the ring, alone."""
    released_layers = released_generated_layers(released)
    our_layers = [m for m in ours.modules() if isinstance(m, GeneratedConv2d)]
    released_grads = [torch.randn(layer.out_channels, layer.in_channels, *layer.kernel_size)
                      for layer in released_layers]
    our_grads = [torch.randn(layer.weight_shape) for layer in our_layers]

    def released_way():
        torch.autograd.backward([released_generated_weight(layer) for layer in released_layers], released_grads)

    def leanconv_way():
        torch.autograd.backward([layer.weight for layer in our_layers], our_grads)

    memory = released.mem
    generated = sum(memory.nelements)
    index_bytes = sum(t.numel() * t.element_size() for t in list(memory.p_idxs) + list(memory.b_masks))
    notes = {"generated weights": f"released {generated:,} in {len(released_layers)} layers, leanconv "
                                  f"{ours.rings['model']._total:,} in {len(our_layers)} layers",
             "index bytes": f"released {index_bytes:,} (int64 index + float32 sign per weight), leanconv 0"}
    return Workload("RPG ResNet-18 generation+reduction", f"N={RPG_RING_SIZE:,}, all generated weights",
                    "forward+backward", {RPG.label(): released_way, "leanconv": leanconv_way}, notes)


def rpg_workloads(path: str, quick: bool, index_folder: str) -> List[Workload]:
    released = released_rpg_resnet18(path, index_folder)
    ours = leanconv.models.resnet18(conv="generated", ring_size=RPG_RING_SIZE, ring_scope="model",
                                    num_classes=NUM_CLASSES)
    model = training_workload(
        "RPG ResNet-18", f"superresnet18e vs resnet18(conv='generated'), N={RPG_RING_SIZE:,}", RPG, released, ours,
        16 if quick else 32,
        "ImageNet layout (7x7 stride-2 stem, max-pool) on 32x32 inputs; every 3x3 block conv and 1x1 downsample "
        "conv generated from one ring of N weights; stem, BatchNorms and classifier ordinary")
    return [model, generation_workload(released, ours)]


# ---------------------------------------------------------------------------------------------------------------
# MGIC

# Group size -> (the released mgFcChannel, leanconv's coarsest) giving the same levels. leanconv halves while the
# width is a multiple of the group size and the half is at least `coarsest`; the released code always restricts at
# least once and puts the full-conv level at the first width strictly below mgFcChannel (it keeps halving below
# the group size, with one group). Group size 2: levels ..., 4, 2 (full convs at 2). Group size 8: levels ..., 8, 4
# (full convs at 4, where 4 is no longer a multiple of 8).
MGIC_LEVELS = {2: (4, 2), 8: (8, 4)}


def released_mgic_resnet20(module: types.ModuleType, group_size: int, fc_channels: int) -> torch.nn.Module:
    parameters = module.ModelParameters(
        NUM_CLASSES, [16, 32, 64], [3, 3, 3], strideArray=[1, 2, 2], numberOfFixGroup=group_size,
        mgFcChannel=fc_channels, pwGroup=True, structuredChannels=True, SameMaskStructure=True, bottleneck=False,
        resNext=False, mgNstep=4, nonZeroRP=32, openLayerKernel=3, openLayerStride=1)
    return module.ResNetMGGroup(parameters)


def mgic_workloads(path: str, quick: bool) -> List[Workload]:
    (module,) = import_released(path, "resnetMG")
    # The released forward runs its blocks through checkpoint_sequential with one segment (no recomputation),
    # which warns about use_reentrant on every call.
    warnings.filterwarnings("ignore", message=".*use_reentrant.*")
    workloads = []
    for group_size, (fc_channels, coarsest) in MGIC_LEVELS.items():
        released = released_mgic_resnet20(module, group_size, fc_channels)
        ours = leanconv.models.mgic_resnet(num_classes=NUM_CLASSES, in_channels=3, widths=(16, 32, 64),
                                           blocks=(3, 3, 3), group_size=group_size, coarsest=coarsest, layout="cifar")
        levels = " ".join(str(c) for c in ours.blocks[-1].levels)
        workloads.append(training_workload(
            f"MGIC ResNet-20 g{group_size}", f"ResNetMGGroup(mgFcChannel={fc_channels}) vs "
            f"mgic_resnet(coarsest={coarsest})", MGIC, released, ours, 32 if quick else 64,
            f"group size {group_size}, released mgFcChannel={fc_channels} and leanconv coarsest={coarsest}: levels "
            f"{levels} in the last stage, full convs at the coarsest; 3x3 stem; the released forward also computes "
            f"the input's gradient (it sets requires_grad on it)"))
    return workloads


# ---------------------------------------------------------------------------------------------------------------


def family_workloads(args, index_folder: str) -> List[Workload]:
    """Every family whose released checkout was given; the others are named with the recipe to get them."""
    builders = ((DACNN, lambda path: dacnn_workloads(path, args.quick)),
                (RPG, lambda path: rpg_workloads(path, args.quick, index_folder)),
                (MGIC, lambda path: mgic_workloads(path, args.quick)))
    workloads = []
    for code, build in builders:
        path = getattr(args, code.option)
        if path is None:
            print(f"{code.family}: skipped (no --{code.option.replace('_', '-')}). To get the released code: "
                  f"{code.recipe()}", flush=True)
            continue
        if not os.path.isdir(path):
            raise SystemExit(f"--{code.option.replace('_', '-')}: {path} is not a folder. To get the released "
                             f"code: {code.recipe()}")
        torch.manual_seed(0)
        np.random.seed(0)  # the released RPG and MGIC code draw their indices and masks with numpy
        workloads += build(path)
    return workloads


def measure(workload: Workload, threads: int, args) -> Row:
    row = Row(workload.benchmark, workload.workload, "cpu", f"{workload.mode}, {threads} thread(s)")
    row.notes = dict(workload.notes)
    return measure_row(row, workload.variants, args.warmup, args.repeats)


def main():
    parser = common_arguments(__doc__)
    for code in (DACNN, RPG, MGIC):
        parser.add_argument(f"--{code.option.replace('_', '-')}", metavar="DIR", default=None,
                            help=f"checkout of {code.url} at {code.commit}")
    parser.add_argument("--threads", default="1,2", help="comma-separated CPU thread counts, one row set each")
    parser.set_defaults(warmup=2, repeats=5)
    args = parse_arguments(parser)
    rows = []
    with tempfile.TemporaryDirectory() as index_folder:
        workloads = family_workloads(args, index_folder)
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            rows += [measure(workload, threads, args) for workload in workloads]
    report(rows, args.out)


if __name__ == "__main__":
    main()
