"""A sixth family made of its own code and one registry entry appears wherever a family appears on the Python side:
the model builders, the training command line, convert, materialize, parameter and multiply-add counts, the
results-table rows and the benchmark rows. The family here is a test-only one (a conv whose weight is a learned
scale times a fixed sign pattern), registered for the test alone.

A real family's own files also include its test catalogue (tests/python/catalogue/<family>.py, collected by the op
and module contracts), its fuzz file (tests/python/test_fuzz_<family>.py), its kernel-driver cases
(benchmarks/gpu/cases/<family>.cpp) and its C++ registry entry (csrc/nn/<family>_convs.cpp; the C++ half of this
proof is tests/cpp/test_conv_families.cpp). What a new family still edits by hand: its rows in the tables of README and
docs/design.md, each compared with the registry by a test (CMake writes the umbrella header from the public headers)."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import leanconv
from leanconv.convert import convertible_families
from leanconv.families import FAMILIES, Family, Option, table_rows
from leanconv.nn._convs import DenseConvs
from leanconv.nn.counting import conv_multiply_adds

REPO = Path(__file__).resolve().parents[2]


class SignConv2d(nn.Module):
    """weight = scale[o] * sign[o, c, i, j]: C_out learned numbers for a C_out x C_in x k x k conv."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, seed=0, device=None, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kernel_size, kernel_size), stride, padding
        generator = torch.Generator().manual_seed(seed)
        sign = torch.randint(0, 2, (out_channels, in_channels, kernel_size, kernel_size), generator=generator) * 2 - 1
        self.register_buffer("sign", sign.to(device=device, dtype=dtype or torch.get_default_dtype()))
        self.scale = nn.Parameter(torch.full((out_channels,), 0.1, device=device, dtype=dtype))

    @property
    def weight(self):
        return self.scale.view(-1, 1, 1, 1) * self.sign

    def forward(self, x):
        return F.conv2d(x, self.weight, None, self.stride, self.padding)

    def materialize(self) -> nn.Conv2d:
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding, bias=False)
        with torch.no_grad():
            conv.weight.copy_(self.weight)
        return conv

    def num_learned_params(self):
        return self.scale.numel()

    def num_dense_params(self):
        return self.sign.numel()

    def multiply_adds(self, input, output):
        return conv_multiply_adds(self, output)


class SignConvs(DenseConvs):
    """Every 3x3 conv a SignConv2d; the others stay dense."""

    def __init__(self, pattern_seed: int = 0):
        self.seed = pattern_seed

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope=(0, 0)):
        if kernel_size != 3:
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        return SignConv2d(in_channels, out_channels, 3, stride, padding, self.seed)

    @staticmethod
    def from_conv(conv: nn.Conv2d, pattern_seed: int = 0) -> nn.Module:
        """The conv's sign pattern, each filter's scale its mean absolute weight."""
        if conv.kernel_size != (3, 3) or conv.bias is not None or conv.groups != 1 or conv.dilation != (1, 1) \
                or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            return conv
        layer = SignConv2d(conv.in_channels, conv.out_channels, 3, conv.stride, conv.padding, pattern_seed)
        with torch.no_grad():
            layer.sign.copy_(torch.where(conv.weight >= 0, 1.0, -1.0))
            layer.scale.copy_(conv.weight.abs().mean((1, 2, 3)))
        return layer


SIGN = Family("sign", "a test-only family: learned per-filter scales of fixed sign patterns", SignConvs, (
    Option("pattern_seed", 0, "seed of the sign patterns", int),
), sample_options={"pattern_seed": 1},
    table_rows=(("resnet20-sign", "--model resnet20 --conv sign --pattern-seed 3"),))


@pytest.fixture
def sixth_family(monkeypatch):
    monkeypatch.setitem(FAMILIES, "sign", SIGN)
    return SIGN


def test_the_model_builders_build_it(sixth_family):
    model = leanconv.models.resnet20(conv="sign", pattern_seed=1)
    layers = [m for m in model.modules() if isinstance(m, SignConv2d)]
    assert len(layers) == 18  # every 3x3 block conv of ResNet-20
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    learned, dense = leanconv.nn.parameter_counts(model)
    assert learned < dense and dense == sum(p.numel() for p in leanconv.models.resnet20().parameters())


def test_the_training_command_line_takes_it_with_its_options(sixth_family):
    from leanconv.train.__main__ import build_model, parse_args

    args = parse_args(["--model", "resnet20", "--conv", "sign", "--pattern-seed", "3"])
    model, _ = build_model(args, num_classes=10, in_channels=1)
    assert args.conv == "sign" and any(isinstance(m, SignConv2d) for m in model.modules())
    assert ("resnet20-sign", "--model resnet20 --conv sign --pattern-seed 3") in table_rows()


def test_convert_and_materialize_take_it(sixth_family):
    torch.manual_seed(0)
    dense = torchvision.models.resnet18(num_classes=10).eval()
    converted = leanconv.convert(dense, "sign", verbose=False).eval()
    signs = [m for m in converted.modules() if isinstance(m, SignConv2d)]
    assert signs and all(type(m) is not SignConv2d for m in dense.modules())
    x = torch.randn(1, 3, 32, 32)
    plain = leanconv.materialize(converted).eval()
    assert not any(isinstance(m, SignConv2d) for m in plain.modules())
    torch.testing.assert_close(plain(x), converted(x), rtol=1e-5, atol=1e-5)
    assert "sign" in convertible_families()


def test_its_multiply_adds_and_benchmark_rows_are_its_own(sixth_family):
    model = leanconv.models.resnet20(conv="sign")
    dense = leanconv.models.resnet20()
    x = torch.zeros(1, 3, 32, 32)
    assert leanconv.nn.multiply_adds(model, x) == leanconv.nn.multiply_adds(dense, x)  # the dense conv's work
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from bench_models import resnet18_rows
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert ("resnet18_cifar-sign", "--model resnet18_cifar --conv sign --pattern-seed 3") in resnet18_rows()
