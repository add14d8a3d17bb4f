"""Generated-weight modules: against the plain-PyTorch RPG layer, state_dict, compile, dtypes, C++ parity."""
import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import leanconv
from leanconv.nn import GeneratedConv2d, GeneratedLinear, ParameterRing, parameter_counts
from leanconv.reference.generated import PlainGeneratedConv2d

from conftest import DEVICES, requires_cuda


class TwoLayer(nn.Module):
    def __init__(self, ring_size=200, seed=0, device=None, dtype=None):
        super().__init__()
        self.ring = ParameterRing(ring_size, seed=seed, device=device, dtype=dtype)
        self.conv = GeneratedConv2d(self.ring, 3, 8, 3, padding=1)
        self.head = GeneratedLinear(self.ring, 8, 4)

    def forward(self, x):
        return self.head(F.relu(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (2, 2)])
def test_conv_matches_plain_pytorch_rpg_layer(device, stride, padding):
    ring = ParameterRing(150, seed=4, device=device, dtype=torch.float64)
    first = GeneratedConv2d(ring, 2, 3, 1, bias=False)  # occupies the start of the sequence
    conv = GeneratedConv2d(ring, 5, 7, 3, stride=stride, padding=padding, bias=False)
    x = torch.randn(2, 5, 11, 11, dtype=torch.float64, device=device)
    plain = PlainGeneratedConv2d(ring.ring, 4, ring._total, conv._offset, 5, 7, 3, stride, padding, conv.scale)
    torch.testing.assert_close(conv(x), plain(x))
    # And the gradient reaching the ring is autograd's scatter through the explicit indices.
    (g1,) = torch.autograd.grad(conv(x).square().sum(), ring.ring)
    (g2,) = torch.autograd.grad(plain(x).square().sum(), ring.ring)
    torch.testing.assert_close(g1, g2)
    assert first.weight.shape == (3, 2, 1, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_dilation_groups_bias_padding_mode(device):
    ring = ParameterRing(64, device=device, dtype=torch.float64)
    conv = GeneratedConv2d(ring, 4, 6, 3, padding=2, dilation=2, groups=2, padding_mode="reflect")
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64, device=device)
    expected = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), conv.weight, conv.bias, 1, 0, 2, 2)
    torch.testing.assert_close(conv(x), expected)
    torch.testing.assert_close(conv.materialize()(x), expected)


def test_state_dict_round_trip_holds_the_ring_once():
    model = TwoLayer(seed=3)
    keys = set(model.state_dict())
    assert keys == {"ring.ring", "ring.seed", "ring.total", "conv.bias", "conv.offset", "head.bias", "head.offset"}
    other = TwoLayer(seed=99)  # another seed: loading must adopt the saved layout
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer))
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(model(x), other(x))
    assert len(list(model.parameters())) == 3


def test_training_updates_the_ring_and_compression_is_counted():
    model = TwoLayer(ring_size=50)
    learned, dense = parameter_counts(model)
    assert learned == 50 + 8 + 4
    assert dense == 8 * 3 * 9 + 8 + 4 * 8 + 4
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.ring.ring.detach().clone()
    loss = model(torch.randn(4, 3, 6, 6)).square().mean()
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.ring.ring)


def test_autocast_cpu_bfloat16():
    model = TwoLayer()
    x = torch.randn(2, 3, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), model(x), rtol=5e-2, atol=5e-2)


def test_materialize_and_weight():
    ring = ParameterRing(100)
    conv = GeneratedConv2d(ring, 4, 8, 3, stride=2, padding=1)
    lin = GeneratedLinear(ring, 6, 5)
    x = torch.randn(2, 4, 9, 9)
    dense = conv.materialize()
    assert isinstance(dense, nn.Conv2d)
    torch.testing.assert_close(dense(x), conv(x))
    y = torch.randn(3, 6)
    torch.testing.assert_close(lin.materialize()(y), lin(y))
    assert conv.weight.requires_grad and conv.weight.shape == (8, 4, 3, 3)
    assert "compression" in repr(ring) and "ring_size=100" in repr(conv)


def test_kaiming_scale_per_layer():
    ring = ParameterRing(200000)
    small = GeneratedConv2d(ring, 64, 64, 3, bias=False)
    wide = GeneratedConv2d(ring, 512, 512, 3, bias=False)
    for conv in (small, wide):
        fan_out = conv.out_channels * 9
        assert abs(conv.weight.std().item() / (2.0 / fan_out) ** 0.5 - 1.0) < 0.05


def test_clear_errors():
    ring = ParameterRing(10)
    with pytest.raises(RuntimeError, match="create the layers"):
        ring.generate(0, [2], 1.0)
    with pytest.raises(ValueError, match="size must be positive"):
        ParameterRing(0)
    with pytest.raises(TypeError, match="ParameterRing"):
        GeneratedConv2d(torch.randn(10), 3, 4, 3)
    with pytest.raises(ValueError, match="groups must divide"):
        GeneratedConv2d(ring, 3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="must be positive"):
        GeneratedConv2d(ring, 0, 4, 3)
    conv = GeneratedConv2d(ring, 3, 4, 3)
    with pytest.raises(RuntimeError, match="expects 3 input channels, got 5"):
        conv(torch.randn(1, 5, 8, 8))
    with pytest.raises(RuntimeError, match="3-D .* or 4-D"):
        conv(torch.randn(8, 8))
    with pytest.raises(RuntimeError, match="same dtype"):
        conv(torch.randn(1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="input features"):
        GeneratedLinear(ring, 4, 2)(torch.randn(3, 5))


@requires_cuda
def test_device_mismatch_is_a_clear_error():
    ring = ParameterRing(10)
    conv = GeneratedConv2d(ring, 3, 4, 3)
    with pytest.raises(RuntimeError, match="same device"):
        conv(torch.randn(1, 3, 8, 8, device="cuda"))


@requires_cuda
def test_cuda_model_matches_cpu_model_and_float64():
    model = TwoLayer(ring_size=500)
    x = torch.randn(4, 3, 8, 8)
    gpu = copy.deepcopy(model).cuda()
    f64 = copy.deepcopy(model).double()
    out_cpu, out_gpu, out_f64 = model(x), gpu(x.cuda()), f64(x.double())
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_gpu.cpu().double(), out_f64, rtol=1e-4, atol=1e-4)
    out_cpu.sum().backward()
    out_gpu.sum().backward()
    torch.testing.assert_close(gpu.ring.ring.grad.cpu(), model.ring.ring.grad, rtol=1e-4, atol=1e-4)

