"""leanconv.convert and materialize on models as users have them, for every convertible family: convs with hooks or
parametrizations, frozen and eval-mode parts, tied convs, wrapped models (torch.compile, DataParallel), a model
with its own ``anchors``, skip names, a failure half-way, and meta-device models. Each property holds for every
family: the converted model computes what the family makes of the same model unwrapped and untouched, or the conv
is kept and named."""
import copy
from collections import OrderedDict

import pytest
import torch
from torch import nn

import leanconv
from leanconv.convert import convertible_families
from leanconv.families import FAMILIES
from leanconv.models import resnet

FAMILIES_TO_TRY = convertible_families()


def _options(family):
    return dict(FAMILIES[family].sample_options)


def _staged_model(bias=True):
    """Two stages of two 16 -> 16 convs after a stem: every family replaces the stages' convs."""
    torch.manual_seed(0)

    def stage():
        return nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=bias), nn.ReLU(),
                             nn.Conv2d(16, 16, 3, padding=1, bias=bias))
    return nn.Sequential(OrderedDict(stem=nn.Conv2d(3, 16, 3, padding=1), layer1=stage(), layer2=stage(),
                                     pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(16, 10)))


def _stage_convs(model):
    return {name: m for name, m in model.named_modules() if name.startswith("layer") and isinstance(m, nn.Conv2d)}


def _doubled(module, args, output):
    return output * 2


@pytest.mark.parametrize("family", FAMILIES_TO_TRY)
def test_convs_with_hooks_or_parametrizations_are_kept_with_them_and_named(family, capsys):
    model = _staged_model()
    model.layer1[0].register_forward_hook(_doubled)
    model.layer1[2].register_forward_pre_hook(lambda module, args: (args[0] * 0.5,))
    nn.utils.spectral_norm(model.layer2[0])
    nn.utils.parametrizations.weight_norm(model.layer2[2])
    x = torch.randn(2, 3, 8, 8)
    converted = leanconv.convert(model, family, **_options(family))
    summary = capsys.readouterr().out
    assert "hooks or parametrizations" in summary
    for name in ("layer1.0", "layer1.2", "layer2.0", "layer2.2"):
        assert name in summary
        assert type(converted.get_submodule(name)) is type(model.get_submodule(name))
    assert len(converted.layer1[0]._forward_hooks) == 1 and len(converted.layer1[2]._forward_pre_hooks) == 1
    assert hasattr(converted.layer2[0], "weight_orig") and hasattr(converted.layer2[2], "parametrizations")
    model.eval(), converted.eval()
    if family in ("lowrank", "shared"):  # exact for the kept convs; only the stem differs (shared keeps it)
        converted.stem = model.stem
        torch.testing.assert_close(converted(x), model(x))


@pytest.mark.parametrize("family", FAMILIES_TO_TRY)
def test_frozen_and_eval_parts_stay_frozen_and_in_eval_through_convert_and_materialize(family):
    model = _staged_model()
    model.layer1.requires_grad_(False)
    model.layer2[2].bias.requires_grad_(False)  # a frozen bias under a trained weight
    model.layer2.eval()
    converted = leanconv.convert(model, family, verbose=False, **_options(family))
    plain = leanconv.materialize(converted)
    for result in (converted, plain):
        for name, original in _stage_convs(model).items():
            layer = result.get_submodule(name)
            assert layer.training == original.training, (family, name)
            trained = {p.requires_grad for p in _parameters_behind(result, layer)}
            if name.startswith("layer1"):
                assert trained == {False}, (family, name)
            elif name == "layer2.2" and family != "multigrid":  # (a fresh V-cycle has no conv bias to freeze)
                assert layer.bias is None or not layer.bias.requires_grad, (family, name)
                assert True in trained, (family, name)
            else:
                assert trained == {True}, (family, name)


def _parameters_behind(model, layer):
    """The layer's parameters and those of a shared holder it draws on (an anchor)."""
    own = list(layer.parameters())
    anchor = getattr(layer, "anchor", None)
    return own + (list(anchor.parameters()) if anchor is not None else [])


@pytest.mark.parametrize("family", FAMILIES_TO_TRY)
def test_a_conv_used_in_several_places_becomes_one_layer_used_in_the_same_places(family, capsys):
    torch.manual_seed(0)
    tied = nn.Conv2d(16, 16, 3, padding=1)
    model = nn.Sequential(OrderedDict(stem=nn.Conv2d(3, 16, 3, padding=1), first=tied, relu=nn.ReLU(),
                                      second=tied, branch=nn.Sequential(tied)))
    converted = leanconv.convert(model, family, **_options(family))
    assert "replaced 2 of 2 convertible convs" in capsys.readouterr().out or family in ("shared", "multigrid")
    layer = converted.first
    assert layer is converted.second is converted.branch[0]
    assert not isinstance(layer, nn.Conv2d)
    distinct = {id(p): p.numel() for p in converted.parameters()}
    assert sum(p.numel() for p in converted.parameters()) == sum(distinct.values())
    assert converted(torch.randn(1, 3, 6, 6)).shape == (1, 16, 6, 6)


@pytest.mark.parametrize("family", FAMILIES_TO_TRY)
def test_distinct_convs_sharing_one_weight_are_kept_tied_and_named(family, capsys):
    model = _staged_model()
    model.layer2[0].weight = model.layer1[0].weight
    converted = leanconv.convert(model, family, **_options(family))
    summary = capsys.readouterr().out
    assert "sharing one weight Parameter" in summary and "layer1.0" in summary and "layer2.0" in summary
    assert converted.layer1[0].weight is converted.layer2[0].weight


@pytest.mark.parametrize("family", FAMILIES_TO_TRY)
@pytest.mark.parametrize("wrapper", ["compile", "DataParallel", "a module holding it"])
def test_a_wrapped_model_converts_as_the_model_itself(family, wrapper):
    """The shared family's stages are read under the wrapper: the same anchors, the same parameter count."""
    torch.manual_seed(0)
    model = resnet.resnet20()
    wrap = {"compile": torch.compile, "DataParallel": nn.DataParallel, "a module holding it": Holder}[wrapper]
    plain = leanconv.convert(model, family, verbose=False, **_options(family))
    wrapped = leanconv.convert(wrap(model), family, verbose=False, **_options(family))
    inner = dict(wrapped.named_children())
    inner = next(iter(inner.values()))
    assert [type(m) for m in inner.modules()] == [type(m) for m in plain.modules()]
    assert [n for n, _ in inner.named_parameters()] == [n for n, _ in plain.named_parameters()]
    for (name, a), b in zip(inner.named_parameters(), plain.parameters()):
        if family != "multigrid":  # (a fresh V-cycle is drawn anew)
            torch.testing.assert_close(a, b, msg=name)


class Holder(nn.Module):
    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network(x)


@pytest.mark.parametrize("first_bias,second_bias", [(True, False), (False, True)])
def test_shared_ties_only_convs_that_agree_in_bias_dtype_and_training(first_bias, second_bias):
    torch.manual_seed(0)
    weight = torch.randn(8, 8, 3, 3)
    convs = [nn.Conv2d(8, 8, 3, padding=1, bias=b) for b in (first_bias, second_bias, first_bias)]
    convs.append(nn.Conv2d(8, 8, 3, padding=1, bias=first_bias).double())
    convs.append(nn.Conv2d(8, 8, 3, padding=1, bias=first_bias).requires_grad_(False))
    for conv in convs:
        with torch.no_grad():
            conv.weight.copy_(weight)
    biases = [c.bias for c in convs]
    stage = nn.Sequential(*convs)
    model = nn.Sequential(OrderedDict(stage=stage))
    converted = leanconv.convert(model, "shared", verbose=False)
    layers = list(converted.stage)
    anchors = [layer.anchor for layer in layers]
    assert anchors[0] is anchors[2] and len({id(a) for a in anchors}) == 4
    for layer, conv, bias in zip(layers, convs, biases):
        assert (layer.bias is None) == (bias is None)
        assert layer.anchor.weight.dtype == conv.weight.dtype
        assert layer.anchor.weight.requires_grad == conv.weight.requires_grad
        x = torch.randn(2, 8, 5, 5, dtype=conv.weight.dtype)
        if bias is None or layer.anchor is not anchors[0]:  # alone on its anchor, or every user agrees in weight
            torch.testing.assert_close(layer(x), conv(x))


@pytest.mark.parametrize("own_anchors", ["buffer", "attribute", "module"])
def test_shared_keeps_a_models_own_anchors_attribute(own_anchors, capsys):
    model = _staged_model()
    boxes = torch.tensor([[10.0, 13.0], [16.0, 30.0]])
    if own_anchors == "buffer":
        model.register_buffer("anchors", boxes)
    elif own_anchors == "attribute":
        object.__setattr__(model, "anchors", [(10, 13), (16, 30)])
    else:
        model.anchors = nn.Linear(2, 2)
    before = copy.deepcopy(getattr(model, "anchors"))
    converted = leanconv.convert(model, "shared")
    assert "model.leanconv_anchors" in capsys.readouterr().out
    mine = converted.anchors
    assert type(mine) is type(before)
    if isinstance(before, torch.Tensor):
        torch.testing.assert_close(mine, before)
        assert "anchors" in converted.state_dict()
    assert isinstance(converted.leanconv_anchors, nn.ModuleDict) and len(converted.leanconv_anchors) == 2
    names = {n for n, _ in converted.named_parameters()}
    assert {"leanconv_anchors.layer1_16x3x3.weight", "leanconv_anchors.layer2_16x3x3.weight"} <= names


def test_a_model_converted_twice_keeps_its_first_anchors():
    model = leanconv.convert(_staged_model(), "shared", verbose=False, skip=["layer2"])
    first = dict(model.anchors.items())
    again = leanconv.convert(model, "shared", verbose=False)
    assert all(again.anchors[k] is not None for k in first) and len(again.anchors) == 2
    assert again.layer1[0].anchor is again.anchors["layer1_16x3x3"]
    assert again.layer2[0].anchor is again.anchors["layer2_16x3x3"]


@pytest.mark.parametrize("family", FAMILIES_TO_TRY)
def test_skip_takes_module_names_and_refuses_what_names_no_conv(family):
    model = _staged_model()
    converted = leanconv.convert(model, family, verbose=False, skip=["layer1"], **_options(family))
    assert type(converted.layer1[0]) is nn.Conv2d and type(converted.layer1[2]) is nn.Conv2d
    assert type(converted.layer2[0]) is not nn.Conv2d
    with pytest.raises(ValueError, match="no module of the model; did you mean .*'layer1.0'"):
        leanconv.convert(model, family, skip=["layer1.O"], **_options(family))
    with pytest.raises(ValueError, match="'pool', a AdaptiveAvgPool2d that holds no conv"):
        leanconv.convert(model, family, skip=["pool"], **_options(family))
    with pytest.raises(TypeError, match="a list of module names"):
        leanconv.convert(model, family, skip="stem", **_options(family))


@pytest.mark.parametrize("family", FAMILIES_TO_TRY)
def test_a_failure_half_way_leaves_an_in_place_model_as_it_was_and_names_the_layer(family, monkeypatch):
    model = _staged_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    chosen = FAMILIES[family]
    if chosen.tie is not None:
        def failing(convs, **options):
            raise RuntimeError("cannot tie")
        monkeypatch.setattr(chosen.convs, "tie", staticmethod(failing))
        match = "the tied convs.*cannot tie"
    else:
        made = []
        real = chosen.from_conv

        def failing(conv, **options):
            made.append(conv)
            if len(made) == 3:
                raise ValueError("no layer for this one")
            return real(conv, **options)
        monkeypatch.setattr(chosen.convs, "from_conv", staticmethod(failing))
        match = "layer 'layer1.2': no layer for this one"
    with pytest.raises((ValueError, RuntimeError), match=match):
        leanconv.convert(model, family, inplace=True, **_options(family))
    assert [type(m) for m in model.modules()] == types
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])


@pytest.mark.parametrize("family", FAMILIES_TO_TRY)
def test_a_meta_device_model_converts_to_meta_layers(family):
    with torch.device("meta"):
        model = resnet.resnet20()
    options = _options(family)
    converted = leanconv.convert(model, family, verbose=False, **options)
    assert {p.device.type for p in converted.parameters()} == {"meta"}
    assert any(type(m).__module__.startswith("leanconv.nn") for m in converted.modules())
    if family == "lowrank":
        with pytest.raises(ValueError, match="layer 'stem.0'.*needs a rank"):
            leanconv.convert(model, family, verbose=False)
