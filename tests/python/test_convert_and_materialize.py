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
from leanconv.families import FAMILIES
from op_watch import leanconv_ops_run

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


def _leanconv_ops_run(model, x):
    with torch.no_grad():
        return leanconv_ops_run(model, x)[0]


def test_the_op_watch_sees_leanconv_ops_where_they_run():
    layer = leanconv.nn.EigenConv2d(4, 6, 3, padding=1, rank=2)
    assert _leanconv_ops_run(layer, torch.randn(1, 4, 5, 5))
    assert _leanconv_ops_run(leanconv.materialize(layer), torch.randn(1, 4, 5, 5)) == set()


@pytest.mark.parametrize("conv", sorted(FAMILIES))
def test_materialize_gives_plain_layers_with_equal_outputs(conv):
    options = FAMILIES[conv].sample_options
    torch.manual_seed(0)
    model = models.resnet20(conv=conv, **options)
    x = torch.randn(2, 3, 32, 32)
    model(x)  # a training step's statistics, so eval uses non-trivial running statistics
    model.eval()
    plain = leanconv.materialize(model).eval()
    torch.testing.assert_close(plain(x), model(x), rtol=1e-5, atol=1e-5)
    # Every layer holding tensors is a torch.nn one (a leanconv container of them, a multigrid V-cycle's plain
    # composition, may remain), and no leanconv op runs.
    leanconv_layers = [type(m).__name__ for m in plain.modules() if type(m).__module__.startswith("leanconv")
                       and (list(m.parameters(recurse=False)) or list(m.buffers(recurse=False)))]
    assert leanconv_layers == []
    assert _leanconv_ops_run(plain, x) == set()
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


FAMILY_MODELS = {  # every family's ResNet-20 (the registry's sample options), and the MGIC ResNet
    **{name: (lambda name=name: models.resnet20(conv=name, **FAMILIES[name].sample_options)) for name in FAMILIES},
    "mgic_resnet": lambda: models.mgic_resnet(widths=(16, 32), blocks=(1, 1), group_size=8, coarsest=8),
}


@pytest.mark.parametrize("name", sorted(FAMILY_MODELS))
def test_materialize_keeps_every_modules_mode(name):
    torch.manual_seed(0)
    model = FAMILY_MODELS[name]()
    x = torch.randn(2, 3, 32, 32)
    model(x)  # non-trivial running statistics
    model.eval()
    plain = leanconv.materialize(model)  # no .eval() after: the copy must already be in eval mode
    assert not any(m.training for m in plain.modules())
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    torch.testing.assert_close(plain(x), model(x), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in state.items())  # eval: no statistics change
    # A training model with one part frozen in eval mode: each part keeps its own mode.
    model.train()
    frozen = [m for m in model.modules() if list(m.children())][1]
    frozen.eval()
    plain = leanconv.materialize(model)
    modes = {n: m.training for n, m in plain.named_modules()}
    for n, m in model.named_modules():
        if n in modes and not isinstance(m, nn.ModuleDict):
            assert modes[n] == m.training, n
    assert plain.training and any(not m.training for m in plain.modules())


@pytest.mark.parametrize("name", ["multigrid", "mgic_resnet"])
def test_tuning_the_grouped_conv_choice_leaves_the_model_as_it_was(name):
    torch.manual_seed(0)
    model = FAMILY_MODELS[name]()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    list(model.modules())[2].eval()  # a mixed-mode model
    modes = [m.training for m in model.modules()]
    rows = leanconv.multigrid.tune(model, torch.randn(2, 3, 32, 32), repeats=1)
    assert rows and [m.training for m in model.modules()] == modes
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


class SameConv2d(nn.Conv2d):
    """A library's conv with a "same" padding computed from each input's size (it overrides forward)."""

    def forward(self, x):
        pad_h = max((x.shape[-2] + self.stride[0] - 1) // self.stride[0] * self.stride[0] - x.shape[-2]
                    + self.kernel_size[0] - self.stride[0], 0)
        pad_w = max((x.shape[-1] + self.stride[1] - 1) // self.stride[1] * self.stride[1] - x.shape[-1]
                    + self.kernel_size[1] - self.stride[1], 0)
        x = nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return self._conv_forward(x, self.weight, self.bias)


class NamedConv2d(nn.Conv2d):
    """A subclass that only adds a name: it computes nn.Conv2d's function."""


@pytest.mark.parametrize("family", convertible_families())
def test_conv_subclasses_are_converted_when_their_function_is_known_and_named_when_not(family, capsys):
    torch.manual_seed(0)
    model = nn.Sequential(NamedConv2d(16, 16, 3, padding=1), nn.ReLU(), SameConv2d(16, 16, 3, stride=2),
                          nn.Conv2d(16, 16, 3, padding=1))
    options = {"group_size": 4, "coarsest": 4} if family == "multigrid" else {}
    converted = leanconv.convert(model, family, **options)
    summary = capsys.readouterr().out
    assert "replaced 2 of 2 convertible convs" in summary
    assert "skipped" in summary and "2 (SameConv2d)" in summary
    assert type(converted[2]) is SameConv2d and not isinstance(converted[0], nn.Conv2d)
    assert converted(torch.randn(2, 16, 8, 8)).shape == (2, 16, 4, 4)


@pytest.mark.parametrize("family", convertible_families())
def test_same_padding_converts_as_its_numeric_equal(family):
    # padding='same' is padding=k//2 for an odd kernel at stride 1: every family converts both alike.
    options = {"group_size": 4, "coarsest": 4} if family == "multigrid" else {}
    torch.manual_seed(0)
    by_number = leanconv.convert(nn.Sequential(nn.Conv2d(16, 16, 3, padding=1)), family, verbose=False, **options)
    torch.manual_seed(0)
    by_word = leanconv.convert(nn.Sequential(nn.Conv2d(16, 16, 3, padding="same")), family, verbose=False, **options)
    assert [type(m) for m in by_word.modules()] == [type(m) for m in by_number.modules()]
    assert not isinstance(by_word[0], nn.Conv2d)
    x = torch.randn(2, 16, 6, 6)
    assert by_word(x).shape == by_number(x).shape == (2, 16, 6, 6)


def test_a_model_that_is_a_sequential_converts_to_the_shared_family_and_runs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False))
    x = torch.randn(2, 8, 5, 5)
    converted = leanconv.convert(model, "shared", verbose=False)
    # The anchors' holder, a child of the Sequential, passes its input through; each top-level conv is its own
    # group (the first part of its name), so its anchor is its own weight and the function is unchanged.
    torch.testing.assert_close(converted(x), model(x))
    assert isinstance(converted.anchors, nn.ModuleDict) and len(converted.anchors) == 2


def test_convert_to_filter_summary_and_errors():
    from leanconv.models import resnet
    from leanconv.nn import FilterSummaryConv2d

    model = leanconv.convert(resnet.resnet20(), "filter_summary", compression=9, skip=["stem.0"])
    assert sum(isinstance(m, FilterSummaryConv2d) for m in model.modules()) == 18
    with pytest.raises(ValueError, match="convert supports"):
        leanconv.convert(model, "generated")


@pytest.mark.parametrize("family", ["lowrank", "filter_summary"])
def test_convert_handles_string_paddings_a_bare_conv_and_a_rank_above_k_squared(family):
    options = {"rank": 20} if family == "lowrank" else {"compression": 3}
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding="same", padding_mode="reflect"), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding="valid"), nn.Conv2d(8, 4, (2, 3), padding="same")).double()
    converted = leanconv.convert(model, family, **options)
    assert not any(type(m) is nn.Conv2d for m in converted.modules())
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    assert converted(x).shape == model(x).shape
    if family == "lowrank":  # rank 20 is clipped to the full rank k*k = 9 (6 for the 2x3 conv): exact
        assert [m.rank for m in converted.modules() if isinstance(m, leanconv.nn.EigenConv2d)] == [9, 9, 6]
        torch.testing.assert_close(converted(x), model(x))
    bare = nn.Conv2d(3, 8, 3, padding=1).double()
    layer = leanconv.convert(bare, family, **options)
    assert type(layer) is not nn.Conv2d
    assert leanconv.convert(bare, family, skip=[""], **options) is not bare  # a copy, left dense
    if family == "lowrank":
        torch.testing.assert_close(layer(x), bare(x))
