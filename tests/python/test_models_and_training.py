"""Model builders with the generated family, the idx reader, and the training loop on tiny data."""
import gzip
import struct

import numpy as np
import pytest
import torch

import leanconv
import leanconv.families
from leanconv import models
from leanconv.nn import GeneratedConv2d, parameter_counts
from leanconv.train import fashion_mnist, random_images, read_idx, table, train


def test_resnet20_generated_shares_one_ring():
    model = models.resnet20(num_classes=10, in_channels=1, conv="generated", ring_size=0.1)
    convs = [m for m in model.modules() if isinstance(m, GeneratedConv2d)]
    assert len(convs) == 18 and all(c.ring is model.rings["model"] for c in convs)
    generated = sum(c.weight.numel() for c in convs)
    assert model.rings["model"].size == round(0.1 * generated)
    learned, dense = parameter_counts(model)
    dense_model = models.resnet20(num_classes=10, in_channels=1)
    assert dense == sum(p.numel() for p in dense_model.parameters())
    assert learned == dense - generated + model.rings["model"].size
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert sum(k.endswith(".ring") for k in model.state_dict()) == 1


@pytest.mark.parametrize("scope,count", [("model", 1), ("stage", 4), ("block", 8)])
def test_resnet18_ring_scopes(scope, count):
    model = models.resnet18(conv="generated", ring_size=1000, ring_scope=scope)
    assert len(model.rings) == count
    convs = [m for m in model.modules() if isinstance(m, GeneratedConv2d)]
    assert len(convs) == 16 + 3  # block convs and the three 1x1 downsample convs
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_builder_errors():
    with pytest.raises(ValueError, match="unknown conv family"):
        models.resnet20(conv="nope")
    with pytest.raises(TypeError, match="unknown options"):
        models.resnet20(conv="generated", rank=3)
    with pytest.raises(ValueError, match="ring_scope"):
        models.resnet20(conv="generated", ring_scope="layer")
    # Options that fit none of the model's convs: an error, not the dense model under the family's name.
    with pytest.raises(ValueError, match="replaces none of the model's convs"):
        models.resnet20(conv="multigrid", group_size=3, coarsest=2)
    with pytest.raises(ValueError, match="replaces none of the model's convs"):
        models.mobilenet_v2(10, conv="lowrank")  # its 3x3 convs are depthwise, its others 1x1: nothing to factor
    assert any(isinstance(m, leanconv.nn.MultigridConv2d)
               for m in models.resnet20(conv="multigrid", group_size=2, coarsest=2).modules())


def _write_idx(path, array, compress):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.random.randint(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    _write_idx(path, images, compress)
    assert np.array_equal(read_idx(path), images)
    wide = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    _write_idx(tmp_path / "w.idx", wide, False)
    assert np.array_equal(read_idx(tmp_path / "w.idx"), wide)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad.idx")


def test_fashion_mnist_loader_on_files_in_the_real_format(tmp_path):
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", np.random.randint(0, 256, (n, 28, 28), dtype=np.uint8), True)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10, True)
    train_set = fashion_mnist(True, tmp_path)
    x, y = train_set[3]
    assert x.shape == (1, 32, 32) and y.item() == 3 and len(fashion_mnist(False, tmp_path)) == 4


def test_training_loop_learns_on_tiny_data():
    torch.set_num_threads(1)
    data = random_images(64, (1, 8, 8), 2)
    # A learnable rule: the label is the sign of the mean pixel.
    data.tensors = (data.tensors[0], (data.tensors[0].mean((1, 2, 3)) > 0).long())
    model = models.resnet20(num_classes=2, in_channels=1, conv="generated", ring_size=0.5)
    result = train("tiny", model, data, data, epochs=12, batch_size=16, lr=0.05)
    assert result.test_accuracy > 0.7
    assert result.compression > 1.0
    assert "tiny" in table([result])


@pytest.mark.parametrize("name", sorted(leanconv.families.FAMILIES))
def test_every_registered_family_builds_converts_and_has_its_flags(name):
    from leanconv.families import FAMILIES
    from leanconv.train.__main__ import conv_options, parse_args

    family = FAMILIES[name]
    model = leanconv.models.resnet20(conv=name, in_channels=1)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    if family.convertible:
        converted = leanconv.convert(model if name == "dense" else leanconv.models.resnet20(in_channels=1), name)
        assert converted(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    else:
        with pytest.raises(ValueError, match="convert supports"):
            leanconv.convert(leanconv.models.resnet20(), name)
    flags = [f"--{o.name.replace('_', '-')}={o.default}" for o in family.options
             if o.on_command_line and o.default is not None]
    args = parse_args(["--conv", name, *flags])
    options = conv_options(args)
    assert {k: v for k, v in options.items() if k != "seed"} == {o.name: o.default for o in family.options
                                                                 if o.on_command_line and o.default is not None}
