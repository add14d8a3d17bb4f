"""Overlapping-segment (FSNet) family, its modules and tools: both paths of FilterSummaryConv2d against the dense conv,
autocast, the path choice and counts, from_conv, state_dict, quantised export, the differentiable search, CUDA and
the C++ module."""
import copy
import io
import pytest
import torch
import torch.nn.functional as F
from torch import nn
import leanconv
from leanconv import filter_summary as tools, ops
from leanconv.nn import FilterSummaryConv2d, parameter_counts
from conftest import DEVICES, requires_cuda, requires_extension


def _direct_case(k, compression, in_channels=36):
    return dict(in_channels=in_channels, out_channels=24, kernel_size=k, compression=compression)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k,compression", [(3, 9), (3, 18), (3, 36), (1, 2), (1, 4), (5, 25), (5, 50)])
@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (2, 2)])
def test_direct_path_matches_gather_and_dense_conv(device, k, compression, stride, padding):
    layer = FilterSummaryConv2d(**_direct_case(k, compression), stride=stride, padding=padding, path="direct",
                                dtype=torch.float64, device=device)
    x = torch.randn(2, 36, 13, 11, dtype=torch.float64, device=device)
    expected = F.conv2d(x, layer.weight, layer.bias, stride, padding)
    torch.testing.assert_close(layer(x), expected)
    gather = copy.deepcopy(layer)
    gather.path = "gather"
    (g1,) = torch.autograd.grad(layer(x).square().sum(), layer.summary)
    (g2,) = torch.autograd.grad(gather(x).square().sum(), gather.summary)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "sliced"])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "input grad", "frozen"])
def test_direct_path_in_every_grad_mode_and_layout_matches_the_dense_conv(device, dtype, layout, mode):
    # The 1x1 stage runs as a GEMM where no gradient flows (inference) and as aten's conv otherwise; both must give
    # the dense conv's numbers and keep the input's memory format.
    torch.manual_seed(0)
    layer = FilterSummaryConv2d(36, 24, 3, padding=1, compression=9, path="direct", dtype=dtype, device=device)
    x = torch.randn(2, 36, 9, 8 if layout != "sliced" else 16, dtype=dtype, device=device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "sliced":
        x = x[..., ::2]
    expected = F.conv2d(x.double(), layer.weight.double(), layer.bias.double(), 1, 1)
    if mode == "frozen":
        layer.requires_grad_(False)
    if mode == "input grad":
        x.requires_grad_()
    context = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}.get(mode, torch.enable_grad)
    with context():
        out = layer(x)
    tol = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 5e-2}[dtype]
    torch.testing.assert_close(out.double(), expected, atol=tol * expected.abs().max().item(), rtol=0)
    assert out.dtype == dtype
    if layout == "channels_last":
        assert out.is_contiguous(memory_format=torch.channels_last)
    if mode == "input grad":
        (grad,) = torch.autograd.grad(out.square().sum(), x)
        (reference,) = torch.autograd.grad(F.conv2d(x, layer.weight, layer.bias, 1, 1).square().sum(), x)
        torch.testing.assert_close(grad, reference, atol=tol * reference.abs().max().item(), rtol=0)


def test_autocast_cpu_bfloat16_direct_path():
    layer = FilterSummaryConv2d(16, 8, 3, padding=1, compression=9, path="direct")
    x = torch.randn(2, 16, 7, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    torch.testing.assert_close(out.float(), layer(x), rtol=5e-2, atol=5e-2)


def test_auto_path_choice_and_counts():
    layer = FilterSummaryConv2d(64, 64, 3, padding=1, compression=9)
    assert layer.summary_stride == 64 and layer.uses_direct_path()
    assert not FilterSummaryConv2d(64, 64, 3, compression=7).uses_direct_path()  # s = 82 does not divide 64
    assert layer.num_learned_params() == 64 * 64 + 64
    assert layer.num_dense_params() == 64 * 64 * 9 + 64
    assert "compression=9.00x" in repr(layer)
    model = nn.Sequential(layer)
    assert parameter_counts(model) == (64 * 64 + 64, 64 * 64 * 9 + 64)


def test_from_conv_and_materialize():
    conv = nn.Conv2d(6, 4, 3, padding=1)
    exact = FilterSummaryConv2d.from_conv(conv, compression=1)  # no overlap: the summary is the filters
    x = torch.randn(2, 6, 8, 8)
    torch.testing.assert_close(exact(x), conv(x))
    approx = FilterSummaryConv2d.from_conv(conv, compression=9)
    # Least squares: each summary element is the mean of the dense weights that read it.
    w = conv.weight.detach()
    s = approx.summary_stride
    count = ops.filter_summary_weight_backward(torch.ones_like(w), approx.summary.numel(), s)
    residual = ops.filter_summary_weight_backward(w - approx.weight.detach(), approx.summary.numel(), s)
    torch.testing.assert_close(residual / count, torch.zeros_like(residual), atol=1e-6, rtol=0)
    torch.testing.assert_close(approx.materialize()(x), approx(x))


def test_state_dict_round_trip():
    layer = FilterSummaryConv2d(8, 8, 3, compression=9, quant_bits=4)
    assert set(layer.state_dict()) == {"summary", "bias", "quant_scale", "quant_bits", "summary_layout"}
    other = FilterSummaryConv2d(8, 8, 3, compression=9, quant_bits=4)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer))
    x = torch.randn(1, 8, 5, 5)
    assert torch.equal(layer(x), other(x))


def test_quantised_export_reproduces_the_fake_quantised_model_exactly():
    model = leanconv.models.resnet20(conv="filter_summary", compression=9, quant_bits=4)
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    expected = model(x)
    exported = tools.export_quantized(model)
    assert exported and all(e["q"].dtype == torch.int8 and e["q"].abs().max() <= 7 for e in exported.values())
    buffer = io.BytesIO()
    torch.save(exported, buffer)
    buffer.seek(0)
    fresh = leanconv.models.resnet20(conv="filter_summary", compression=9, quant_bits=4)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():  # scramble the float summaries: the int export alone must restore them
        for m in fresh.modules():
            if isinstance(m, FilterSummaryConv2d):
                m.summary.normal_()
    tools.load_quantized(fresh, torch.load(buffer))
    fresh.eval()
    assert torch.equal(fresh(x), expected)
    assert tools.model_size_bytes(model) < tools.model_size_bytes(leanconv.models.resnet20())


def test_fake_quantize_straight_through():
    f = torch.randn(100, requires_grad=True)
    q = leanconv.nn.fake_quantize(f, 3)
    assert q.detach().unique().numel() <= 7
    q.sum().backward()
    assert torch.equal(f.grad, torch.ones(100))


def test_differentiable_search_and_discretize():
    torch.manual_seed(0)
    model = nn.Sequential(tools.DifferentiableFilterSummaryConv2d(4, 8, 3, padding=1, compressions=(4, 9, 36)),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    weight_opt = torch.optim.SGD(tools.weight_parameters(model), lr=0.05)
    arch_opt = torch.optim.Adam(tools.arch_parameters(model), lr=0.1)
    x, y = torch.randn(16, 4, 6, 6), torch.randint(0, 2, (16,))
    for _ in range(5):
        tools.search_step(model, F.cross_entropy, (x, y), (x, y), weight_opt, arch_opt, size_penalty=0.1)
    mixture = model[0].mixture()
    assert not torch.allclose(mixture, torch.full_like(mixture, 1 / 3))  # the architecture moved
    # A strong size penalty pushes towards the smallest candidate (largest compression).
    assert int(torch.argmax(model[0].alpha)) == 2
    best = model[0].candidates[2]
    tools.discretize(model)
    assert isinstance(model[0], FilterSummaryConv2d) and model[0].compression == best.compression
    assert model(x).shape == (16, 2)


@pytest.mark.parametrize("make,message", [
    (lambda: FilterSummaryConv2d(2, 4, 1, compression=3), "s < 1"),
    (lambda: FilterSummaryConv2d(4, 4, 3, quant_bits=9), "between 2 and 8"),
    (lambda: FilterSummaryConv2d(4, 4, 3, quant_bits=1), "between 2 and 8"),
    (lambda: FilterSummaryConv2d(4, 4, 3, groups=2), "groups=1 only"),
    (lambda: FilterSummaryConv2d(4, 4, 3, compression=7, path="direct"), "divide in_channels"),
    (lambda: FilterSummaryConv2d(4, 4, 3, path="fast"), "path must be"),
])
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@requires_cuda
@pytest.mark.parametrize("path", ["direct", "gather"])
def test_cuda_matches_cpu_and_float64(path):
    layer = FilterSummaryConv2d(32, 16, 3, stride=2, padding=1, compression=9, path=path)
    x = torch.randn(4, 32, 15, 15)
    gpu = copy.deepcopy(layer).cuda()
    f64 = copy.deepcopy(layer).double()
    out_cpu, out_gpu, out_f64 = layer(x), gpu(x.cuda()), f64(x.double())
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_gpu.cpu().double(), out_f64, rtol=1e-4, atol=1e-4)
    out_cpu.square().sum().backward()
    out_gpu.square().sum().backward()
    torch.testing.assert_close(gpu.summary.grad.cpu(), layer.summary.grad, rtol=1e-3, atol=1e-3)


@requires_cuda
def test_device_mismatch_is_a_clear_error():
    layer = FilterSummaryConv2d(4, 4, 3, compression=9)
    with pytest.raises(RuntimeError):
        layer(torch.randn(1, 4, 8, 8, device="cuda"))


@requires_extension
@pytest.mark.parametrize("path", ["auto", "direct", "gather"])
def test_cpp_and_python_modules_choose_the_same_path(path):
    # (numbers and state_dict names: test_module_contract.py)
    cpp_layer = leanconv._C.cpp.FilterSummaryConv2d(18, 12, 3, stride=2, padding=1, compression=9, path=path)
    py_layer = FilterSummaryConv2d(18, 12, 3, stride=2, padding=1, compression=9, path=path)
    assert cpp_layer.uses_direct_path() == py_layer.uses_direct_path()


def _mismatched(exported, case):
    """The export with its last entry spoiled in one way (the earlier entries stay good)."""
    name = list(exported)[-1]
    entry = dict(exported[name])
    if case == "length one":
        entry["q"] = entry["q"][:1]
    elif case == "longer":
        entry["q"] = torch.cat([entry["q"], entry["q"][:1]])
    elif case == "bits":
        entry["bits"] = 8
    elif case == "out of range":
        entry["q"] = entry["q"].clone()
        entry["q"][0] = 100
    elif case == "float":
        entry["q"] = entry["q"].float()
    elif case == "scale":
        entry["scale"] = torch.tensor(float("nan"))
    elif case == "fields":
        del entry["scale"]
    elif case == "no such layer":
        return {**exported, "blocks.99.conv1": entry}
    return {**exported, name: entry}


@pytest.mark.parametrize("case", ["length one", "longer", "bits", "out of range", "float", "scale", "fields",
                                  "no such layer"])
def test_a_mismatched_quantised_export_is_refused_and_changes_nothing(case):
    model = leanconv.models.resnet20(conv="filter_summary", compression=9, quant_bits=4)
    exported = tools.export_quantized(model)
    target = leanconv.models.resnet20(conv="filter_summary", compression=9, quant_bits=4)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises((ValueError, KeyError), match="leanconv: "):
        tools.load_quantized(target, _mismatched(exported, case))
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not any(m._scale_fixed for m in target.modules() if isinstance(m, FilterSummaryConv2d))
