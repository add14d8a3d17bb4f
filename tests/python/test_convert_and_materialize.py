"""leanconv.convert on torchvision's resnet18, mobilenet_v2 and vgg11_bn for every convertible family (the forward
runs, outputs keep their shape, the parameter count changes exactly by what the replaced layers hold, the summary
line says so), and leanconv.materialize: every family's models become plain PyTorch layers with equal outputs."""
import pytest
import torch
import torchvision
from torch import nn

import leanconv
from leanconv import models
from leanconv.convert import convertible_families

TORCHVISION = {"resnet18": torchvision.models.resnet18, "mobilenet_v2": torchvision.models.mobilenet_v2,
               "vgg11_bn": torchvision.models.vgg11_bn}


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", convertible_families())
@pytest.mark.parametrize("architecture", sorted(TORCHVISION))
def test_convert_torchvision_models(architecture, family, capsys):
    torch.manual_seed(0)
    model = TORCHVISION[architecture](num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    converted = leanconv.convert(model, family).eval()
    summary = capsys.readouterr().out
    assert f"leanconv.convert(model, {family!r}): replaced" in summary
    assert f"{_params(model):,} -> {_params(converted):,}" in summary
    assert converted(x).shape == model(x).shape == (2, 10)
    # The parameters change by exactly what the replaced convs held and what their replacements hold.
    before = dict(model.named_modules())
    removed = added = 0
    counted = set()
    for name, module in converted.named_modules():
        original = before.get(name)
        if isinstance(original, nn.Conv2d) and not (type(module) is nn.Conv2d):
            removed += _params(original)
            own = {id(p) for p in module.parameters()}
            added += sum(p.numel() for p in module.parameters() if id(p) not in counted)
            counted |= own
    holders = [m for n, m in converted.named_modules() if n.startswith("anchors")]
    holder_params = sum(p.numel() for m in holders[:1] for p in m.parameters())
    expected = _params(model) - removed + added + (holder_params if family == "shared" else 0)
    assert _params(converted) == expected
    if removed:
        assert _params(converted) < _params(model) or family == "lowrank"


@pytest.mark.parametrize("conv,options", [("generated", {}), ("filter_summary", {}), ("lowrank", {}), ("shared", {}),
                                          ("multigrid", {"group_size": 8, "coarsest": 8}), ("dense", {})])
def test_materialize_gives_plain_layers_with_equal_outputs(conv, options):
    torch.manual_seed(0)
    model = models.resnet20(conv=conv, **options)
    x = torch.randn(2, 3, 32, 32)
    model(x)  # a training step's statistics, so eval uses non-trivial running statistics
    model.eval()
    plain = leanconv.materialize(model).eval()
    torch.testing.assert_close(plain(x), model(x), rtol=1e-5, atol=1e-5)
    leanconv_layers = [type(m).__name__ for m in plain.modules() if type(m).__module__.startswith("leanconv.nn")]
    assert leanconv_layers == []
    assert all(type(m) is nn.Conv2d for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert _params(model) > 0 and model is not plain


def test_materialize_a_single_layer_and_the_mgic_resnet():
    torch.manual_seed(0)
    layer = leanconv.nn.EigenConv2d(4, 6, 3, padding=1, rank=2)
    x = torch.randn(2, 4, 5, 5)
    plain = leanconv.materialize(layer)
    assert type(plain) is nn.Conv2d
    torch.testing.assert_close(plain(x), layer(x), rtol=1e-5, atol=1e-5)
    net = models.mgic_resnet(widths=(16, 32), blocks=(1, 1), group_size=8, coarsest=8).eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(leanconv.materialize(net).eval()(x), net(x), rtol=1e-5, atol=1e-5)
