"""The module contract: what every leanconv module keeps, run over every module kind in module_catalogue.

A module computes what its materialised nn.Conv2d computes (every padding and padding_mode), its second
derivatives are right, everything its forward depends on is in its state_dict and survives meta-device
construction, a save/load, deepcopy and pickling of the whole model; torch.func and torch.compile work on it.
"""
import copy
import io
import math
import warnings

import pytest
import torch
import torch.func as func
from torch import nn

import leanconv
from conftest import requires_cuda, requires_extension
from leanconv.families import FAMILIES
from leanconv.nn import AnchoredConv2d, EigenConv2d, FilterSummaryConv2d, GeneratedConv2d, ParameterRing
from module_catalogue import CONV2D_LIKE, AnchorModel, MODULE_IDS, MODULES, RingModel
from catalogue._spec import layer_under_test
from op_watch import leanconv_ops_run


def built(spec, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return spec.build().to(dtype)


def example_input(spec, dtype=torch.float64, seed=1):
    torch.manual_seed(seed)
    return torch.randn(*spec.input_shape, dtype=dtype)


def reset_all(model):
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


MATERIALIZABLE = [s for s in MODULES if s.materializable]


@pytest.mark.parametrize("spec", MATERIALIZABLE, ids=[s.name for s in MATERIALIZABLE])
def test_materialized_module_computes_the_same(spec):
    model, x = built(spec), example_input(spec)
    layer = spec.layer(model)
    materialized = layer.materialize()
    assert isinstance(materialized, nn.Conv2d if spec.conv else nn.Linear)
    torch.testing.assert_close(model(x), materialized(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_every_module_kind_materializes_to_plain_pytorch_of_the_same_function(spec):
    """leanconv.materialize over every kind, the V-cycles included: no leanconv op runs in the result, and it
    computes the model's function in training mode (BatchNorms on batch statistics, each updating its own copy)
    and in eval mode."""
    model, x = built(spec), example_input(spec)
    plain = leanconv.materialize(model)
    seen, plain_training = leanconv_ops_run(plain, x)
    assert seen == set()
    torch.testing.assert_close(plain_training, model(x), rtol=1e-10, atol=1e-10)
    model.eval(), plain.eval()
    torch.testing.assert_close(plain(x), model(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype,limit", [(torch.float16, 2e-2), (torch.bfloat16, 6e-2)], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_low_precision_channels_last_and_empty_batch(spec, dtype, limit):
    model, x = built(spec), example_input(spec)
    expected = model(x)
    low, x_low = copy.deepcopy(model).to(dtype), x.to(dtype)
    if x.dim() == 4:
        x_low = x_low.contiguous(memory_format=torch.channels_last)
    y = low(x_low.requires_grad_())
    y.float().square().sum().backward()
    assert y.dtype == dtype and x_low.grad.dtype == dtype
    assert ((y.double() - expected).norm() / expected.norm()).item() < limit
    if x.dim() == 4:
        assert y.is_contiguous(memory_format=torch.channels_last)
    empty = x[:0].clone().requires_grad_()
    out = model(empty)
    assert out.shape == (0, *expected.shape[1:])
    out.sum().backward()
    assert empty.grad.shape == empty.shape


@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_second_derivatives(spec):
    model, x = built(spec), example_input(spec).requires_grad_()
    names, params = zip(*model.named_parameters())

    def function(x, *params):
        return func.functional_call(model, dict(zip(names, params)), (x,))

    inputs = (x, *params) if spec.smooth else (x,)
    if spec.smooth:
        assert torch.autograd.gradgradcheck(function, inputs)
    else:
        assert torch.autograd.gradgradcheck(lambda x: function(x, *params), inputs)


@pytest.mark.parametrize("spec", [s for s in MATERIALIZABLE if s.conv], ids=[s.name for s in MATERIALIZABLE if s.conv])
def test_input_gradient_penalty_reaches_the_following_layers(spec):
    # An input-gradient penalty through the layer and a Linear: the Linear's weight gradient must be the one the
    # materialised nn.Conv2d gives (it was silently None when a backward op had no derivative).
    model, x = built(spec), example_input(spec)
    features = math.prod(model(x).shape[1:])
    torch.manual_seed(2)
    head = nn.Linear(features, 3).double()

    def penalty_gradient(conv):
        head.zero_grad()
        xi = x.clone().requires_grad_()
        grad_x, = torch.autograd.grad(head(conv(xi).flatten(1)).sum(), xi, create_graph=True)
        grad_x.square().sum().backward()
        return head.weight.grad.clone()

    expected = penalty_gradient(spec.layer(model).materialize())
    torch.testing.assert_close(penalty_gradient(model), expected, rtol=1e-9, atol=1e-9)
    assert expected.abs().sum() > 0


@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_meta_device_construction_then_reset_gives_a_valid_state_dict(spec):
    with torch.device("meta"):
        model = spec.build()
    model.to_empty(device="cpu")
    torch.manual_seed(5)
    reset_all(model)
    model = model.double()
    x = example_input(spec)
    fresh = built(spec, seed=9)  # another initialisation: its outputs differ until it loads model's state
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)
    reference = built(spec, seed=9)
    for key, value in reference.state_dict().items():  # the layout buffers equal those of a normal construction
        if value.dtype == torch.int64 and not key.endswith("num_batches_tracked"):  # (a step count, not layout)
            assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_state_dict_save_load_deepcopy_and_pickling(spec):
    model, x = built(spec), example_input(spec)
    expected = model(x)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    other = built(spec, seed=4)
    other.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(other(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(copy.deepcopy(model)(x), expected, rtol=0, atol=0)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    whole = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(whole(x), expected, rtol=0, atol=0)
    # Shared state stays shared and stored once.
    assert len(list(whole.parameters())) == len(list(model.parameters()))
    float_model = copy.deepcopy(model).float()
    assert all(p.dtype == torch.float32 for p in float_model.parameters())
    float_model(x.float())


@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_per_sample_gradients_with_torch_func(spec):
    model, x = built(spec), example_input(spec)
    if spec.batch_norm:
        model.eval()  # batch statistics over one sample, and in-place running statistics, do not vmap
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(params, sample):
        return func.functional_call(model, params, (sample.unsqueeze(0),)).square().sum()

    per_sample = func.vmap(func.grad(loss), in_dims=(None, 0))(params, x)
    for n in range(x.shape[0]):
        model.zero_grad()
        loss(dict(model.named_parameters()), x[n]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(per_sample[name][n], p.grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_compiled_forward_and_backward(spec):
    torch._dynamo.reset()
    model, x = built(spec, torch.float32), example_input(spec, torch.float32)

    def step(m):
        m.zero_grad()
        y = m(x)
        y.square().sum().backward()
        return [y.detach()] + [p.grad.clone() for p in m.parameters()]

    expected = step(model)
    actual = step(torch.compile(model, fullgraph=True))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


CPP = [s for s in MODULES if s.cpp is not None]


@requires_extension
@pytest.mark.parametrize("spec", CPP, ids=[s.name for s in CPP])
def test_the_cpp_module_has_the_same_state_dict_names_and_numbers(spec):
    model, x = built(spec, torch.float32), example_input(spec, torch.float32)
    forward, state = spec.cpp(leanconv._C.cpp)
    assert set(state) == set(model.state_dict())
    with torch.no_grad():
        for name, tensor in state.items():
            tensor.copy_(model.state_dict()[name])
    torch.testing.assert_close(forward(x), model(x), rtol=0, atol=0)


# ---- the rank, channel and layout space of the fused low-rank conv under torch.compile ------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("channels,rank", [(64, 3), (8, 1), (8, 2), (8, 5), (8, 6), (8, 9)])
def test_compiled_fused_eigen_conv_backward_for_every_rank(channels, rank, layout):
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = EigenConv2d(channels, channels, 3, padding=1, rank=rank, path="fused")
    x = torch.randn(2, channels, 8, 8)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)

    def step(m):
        m.zero_grad()
        m(x).square().sum().backward()
        return [p.grad.clone() for p in m.parameters()]

    for a, e in zip(step(torch.compile(layer, fullgraph=True)), step(layer)):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


# ---- checkpoints that do not fit the model -------------------------------------------------------------

# Options that change a layer's function but not its parameters' shapes: (key, builder of option value).
FUNCTION_OPTIONS = {
    "quant_bits": lambda bits: FilterSummaryConv2d(8, 8, 3, padding=1, quant_bits=bits),
    "rotate": lambda r: AnchorModel(lambda a: [AnchoredConv2d(a, rotate=r)]),
    "dacnn rotate": lambda r: leanconv.models.dacnn("mix", blocks=(1, 1), rotate=r, num_classes=10),
    "shared resnet rotate": lambda r: leanconv.models.resnet20(conv="shared", rotate=r),
    # Equal summary lengths (C_out * s = 256), read into other filters: 3x3 over 16 channels, 1x1 over 144, 3x3 over
    # 32 at compression 18.
    "summary_layout": lambda layout: {
        "3x3": lambda: FilterSummaryConv2d(16, 16, 3, padding=1, bias=False),
        "1x1": lambda: FilterSummaryConv2d(144, 16, 1, bias=False),
        "wide": lambda: FilterSummaryConv2d(32, 16, 3, padding=1, bias=False, compression=18)}[layout](),
    "rotate_output": lambda released: leanconv.models.dacnn("mix", blocks=(1, 1), rotate=1, num_classes=10,
                                                            released_rotation=bool(released)),
}


@pytest.mark.parametrize("option,saved,loading", [("quant_bits", 4, 8), ("quant_bits", 4, None),
                                                  ("quant_bits", None, 4), ("rotate", 1, 0), ("rotate", 0, 2),
                                                  ("dacnn rotate", 1, 0), ("shared resnet rotate", 0, 3),
                                                  ("rotate_output", 1, 0), ("summary_layout", "3x3", "1x1"),
                                                  ("summary_layout", "3x3", "wide"), ("summary_layout", "1x1", "3x3")])
def test_a_checkpoint_of_another_function_is_refused(option, saved, loading):
    # The option is in the state_dict (written from what the forward uses) and checked on load: "All keys matched"
    # must never load a function the model does not compute.
    state = FUNCTION_OPTIONS[option](saved).state_dict()
    model = FUNCTION_OPTIONS[option](loading)
    key = option.split()[-1]
    assert any(k.endswith(key) for k in state)
    with pytest.raises(RuntimeError, match=f"leanconv: .*{key}"):
        model.load_state_dict(state)
    FUNCTION_OPTIONS[option](saved).load_state_dict(state)  # the same setting loads


def test_a_filter_summary_checkpoint_from_before_its_layout_was_stored_loads_unchecked():
    layer = FilterSummaryConv2d(16, 16, 3, padding=1)
    state = layer.state_dict()
    del state["summary_layout"]
    other = FilterSummaryConv2d(16, 16, 3, padding=1)
    other.load_state_dict(state)
    torch.testing.assert_close(other.summary, layer.summary, rtol=0, atol=0)


@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_a_meta_module_takes_a_state_dict_as_torch_layers_do(spec):
    """Loading into meta parameters is a no-op with torch's warning, never an error from a load hook."""
    state = built(spec).state_dict()
    with torch.device("meta"):
        model = spec.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch: "copying from a non-meta parameter ... is a no-op")
        model.load_state_dict(state)
    assert all(t.is_meta for t in model.state_dict().values() if t.is_floating_point())


def test_a_fixed_quantisation_scale_survives_the_state_dict_and_reset_clears_it():
    layer = FilterSummaryConv2d(8, 8, 3, padding=1, quant_bits=4)
    layer.fix_quant_scale(0.05)
    other = FilterSummaryConv2d(8, 8, 3, padding=1, quant_bits=4)
    other.load_state_dict(layer.state_dict())
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(other(x), layer(x), rtol=0, atol=0)
    layer.reset_parameters()
    assert float(layer.state_dict()["quant_scale"]) == 0.0


@pytest.mark.parametrize("key,value", [("layers.0.offset", 2 ** 63 - 1), ("layers.0.offset", -1),
                                       ("ring.total", 2 ** 62 + 1), ("ring.total", -3)])
def test_a_hostile_layout_in_a_checkpoint_is_refused(key, value):
    model = RingModel(lambda r: [GeneratedConv2d(r, 3, 4, 3, padding=1)])
    state = model.state_dict()
    state[key] = torch.tensor(value)
    with pytest.raises(RuntimeError, match="leanconv: the loaded"):
        RingModel(lambda r: [GeneratedConv2d(r, 3, 4, 3, padding=1)]).load_state_dict(state)


def test_an_offset_past_the_ring_is_a_clear_error_in_the_forward():
    model = RingModel(lambda r: [GeneratedConv2d(r, 3, 4, 3, padding=1)])
    state = model.state_dict()
    state["layers.0.offset"] = torch.tensor(2 ** 40)  # a valid offset, but not of this ring's sequence
    model.load_state_dict(state)
    with pytest.raises(RuntimeError, match="lies outside the ring's virtual weight sequence"):
        model(torch.randn(1, 3, 5, 5))


def test_an_unregistered_ring_is_reported_once():
    ring = ParameterRing(20)
    conv = GeneratedConv2d(ring, 2, 3, 3)
    with pytest.warns(UserWarning, match="registered on no module"):
        conv(torch.randn(1, 2, 5, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv(torch.randn(1, 2, 5, 5))  # once per ring
        holder = nn.Module()
        holder.ring = ParameterRing(20)
        GeneratedConv2d(holder.ring, 2, 3, 3)(torch.randn(1, 2, 5, 5))  # registered: no warning


# ---- nn.Conv2d's argument space ------------------------------------------------------------------------

CONV_FAMILIES = {family: layer for family, layer in CONV2D_LIKE.items() if layer is not None}


def test_every_family_of_the_registry_is_under_contract():
    # A new family cannot go untested unnoticed: it has module specs (their names start with its name), and its
    # catalogue file says whether its layer takes nn.Conv2d's argument space (CONV2D_LIKE, a factory or None).
    compact = set(FAMILIES) - {"dense"}
    assert all(any(spec.name.startswith(name) for spec in MODULES) for name in compact)
    assert set(CONV2D_LIKE) == compact


@pytest.mark.parametrize("family", sorted(CONV_FAMILIES))
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("kernel_size,padding,stride,dilation", [
    (3, "same", 1, 1), (4, "same", 1, 1), (3, "same", 1, 2), ((2, 3), "same", 1, 1), (3, "valid", 2, 1),
    (3, 1, 1, 1), ((3, 1), (1, 0), (2, 1), 1)])
def test_every_padding_and_padding_mode_matches_nn_conv2d(family, padding_mode, kernel_size, padding, stride,
                                                          dilation):
    torch.manual_seed(0)
    kernel = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    if family == "shared" and padding == "same" and min(k % 2 for k in kernel) == 0:
        with pytest.raises(ValueError, match="'same' needs an odd kernel"):  # the anchor's uses would differ
            CONV_FAMILIES[family](4, 4, kernel_size, padding=padding)
        return
    model = CONV_FAMILIES[family](4, 4, kernel_size, stride=stride, padding=padding, dilation=dilation,
                                  padding_mode=padding_mode).double()
    layer = layer_under_test(model)
    reference = nn.Conv2d(4, 4, kernel_size, stride, padding, dilation, bias=layer.bias is not None,
                          padding_mode=padding_mode).double()
    with torch.no_grad():
        reference.weight.copy_(layer.weight)
        if layer.bias is not None:
            reference.bias.copy_(layer.bias)
    x = torch.randn(2, 4, 7, 8, dtype=torch.float64)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("family", sorted(CONV_FAMILIES))
def test_strided_same_padding_is_refused_as_nn_conv2d_refuses_it(family):
    with pytest.raises(ValueError, match="'same' is not supported for strided"):
        CONV_FAMILIES[family](4, 4, 3, stride=2, padding="same")


@requires_cuda
@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_to_cuda_computes_what_the_cpu_module_computes(spec):
    model, x = built(spec, torch.float32), example_input(spec, torch.float32)

    def step(m, inputs):
        m.zero_grad()
        y = m(inputs)
        y.square().sum().backward()
        return [y.detach().cpu()] + [p.grad.cpu() for p in m.parameters()]

    expected = step(model, x)
    actual = step(copy.deepcopy(model).to("cuda"), x.cuda())
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


# ---- multiply-adds: each layer reports its own ------------------------------------------------------------------

@pytest.mark.parametrize("spec", MODULES, ids=MODULE_IDS)
def test_every_module_reports_its_multiply_adds(spec):
    model, x = built(spec), example_input(spec)
    count = leanconv.nn.multiply_adds(model, x)
    assert isinstance(count, int) and count > 0
    assert leanconv.nn.multiply_adds(model, torch.cat([x, x])) == 2 * count  # per image


def test_a_compact_layer_that_reports_no_multiply_adds_is_an_error():
    class Uncounted(nn.Module):  # a new family's layer without multiply_adds (and no conv inside)
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(3))

        def num_dense_params(self):
            return 27

        def forward(self, x):
            return x * self.weight.sum()

    model = nn.Sequential(nn.Conv2d(1, 3, 3), Uncounted())
    with pytest.raises(TypeError, match="Uncounted at 1 reports no multiply-adds"):
        leanconv.nn.multiply_adds(model, torch.zeros(1, 1, 5, 5))
    assert leanconv.nn.multiply_adds(model[:1], torch.zeros(1, 1, 5, 5)) == 3 * 9 * 9
