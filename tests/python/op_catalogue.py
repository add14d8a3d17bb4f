"""Every leanconv op, declared once: sample arguments and an independent float64 reference.

The op-contract suite (test_op_contract.py) runs the same properties over every sample of every op, and the
fuzz suites (test_fuzz_<family>.py) draw arguments around the same ops. A new op adds an OpSpec to its family's file in
catalogue/ (a new family adds its own file), not test code; this module collects every file's OPS and HELPER_OPS
and offers each file's references (``<op>_reference``) by name.

A sample is a tuple of the op's positional arguments; ``differentiable`` names the positions of the tensors the
op is differentiable in. References are plain PyTorch (float64 where it matters) built from the maths, not from
leanconv's kernels.
"""
import importlib
import pkgutil

import torch

import catalogue
from catalogue._spec import OpSpec

OPS = []
# Ops without tensor arguments (the kernel choice's queries and settings, the low-rank cost model): not under the
# op contract; each is covered by the test file named.
HELPER_OPS = {}
for _info in sorted(pkgutil.iter_modules(catalogue.__path__), key=lambda m: m.name):
    if _info.name.startswith("_"):
        continue
    _family = importlib.import_module(f"catalogue.{_info.name}")
    OPS += _family.OPS
    HELPER_OPS.update(getattr(_family, "HELPER_OPS", {}))
    globals().update({name: value for name, value in vars(_family).items() if name.endswith("_reference")})

OPS_BY_NAME = {spec.name: spec for spec in OPS}


def op_samples(spec: OpSpec, device="cpu", dtype=torch.float64):
    torch.manual_seed(0)
    return spec.samples(device, dtype)


def sample_ids(spec: OpSpec):
    return [f"{spec.name}-{i}" for i in range(len(spec.samples("cpu", torch.float64)))]


def all_samples():
    """(spec, sample index) pairs, for parametrising over every sample of every op."""
    return [(spec, i) for spec in OPS for i in range(len(spec.samples("cpu", torch.float64)))]
