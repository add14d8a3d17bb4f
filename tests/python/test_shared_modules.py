"""Shared-weight family (DACNN), its modules, models and tools: rotation folded into the anchor, gradients summed over
uses, the reference architectures' parameter counts, the anchor stored once, convert, the DACNN models equal to
their plain-PyTorch form (the released rotation too), fold() giving the eval-mode function with one copy of each
anchor, DDP, the command line and clear errors. (Padding, state_dict, meta-device, torch.func, compile and dtypes:
the module contract.)"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import leanconv
from leanconv.nn import AnchoredConv2d, ConvAnchor, FoldedBatchNorm2d, parameter_counts
from leanconv.nn.shared import activation_rotation
from leanconv.reference.dacnn import ReferenceDACNN
from test_ddp import _free_port, _train_steps


@pytest.mark.parametrize("size", [1, 6])  # 1x1 images: the activations are the smaller operand, rotated there
@pytest.mark.parametrize("rotate", [0, 1, 3, 7])
def test_rotating_the_anchor_equals_rotating_the_activations(rotate, size):
    holder = nn.Module()
    holder.anchor = anchor = ConvAnchor(8, 3).double()
    use = AnchoredConv2d(anchor, rotate=rotate)
    x = torch.randn(2, 8, size, size + 1, dtype=torch.float64)
    expected = F.conv2d(activation_rotation(x, rotate), anchor.weight, None, 1, 1)  # the reference code's way
    torch.testing.assert_close(use(x), expected, rtol=1e-12, atol=1e-12)
    # and the anchor rotated by its channel axes, the weight the layer reports
    torch.testing.assert_close(F.conv2d(x, use.weight, None, 1, 1), expected, rtol=1e-12, atol=1e-12)


def test_the_anchor_gradient_is_the_sum_over_its_uses():
    holder = nn.Module()
    holder.anchor = anchor = ConvAnchor(4, 3).double()
    uses = [AnchoredConv2d(anchor), AnchoredConv2d(anchor, stride=2, rotate=1), AnchoredConv2d(anchor, dilation=2,
                                                                                               padding=2)]
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    sum(use(x).square().sum() for use in uses).backward()
    copies = [use.materialize() for use in uses]  # unshared copies of the same convs
    sum(copy(x).square().sum() for copy in copies).backward()
    # Each copy's weight is the anchor with its input channels rotated: rotate the gradients back and add.
    expected = sum(torch.roll(copy.weight.grad, -use.rotate, dims=1) for copy, use in zip(copies, uses))
    torch.testing.assert_close(anchor.weight.grad, expected, rtol=1e-12, atol=1e-12)


def test_reference_parameter_counts_and_every_parameter_used():
    model = leanconv.models.dacnn("plain", blocks=(3, 4, 6, 3), width=128, num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == 172_260  # the reference's 176,356 has unused BNs
    with_regulators = leanconv.models.dacnn("plain", regulators=True, num_classes=100)
    assert sum(p.numel() for p in with_regulators.parameters()) - 172_260 == 16 * 128 ** 2
    for variant, net in [("plain", with_regulators), ("mix", leanconv.models.dacnn("mix", rotate=1)),
                         ("vgg", leanconv.models.dacnn("vgg"))]:
        net(torch.randn(2, 3, 32, 32)).sum().backward()
        unused = [n for n, p in net.named_parameters() if p.grad is None]
        assert not unused, (variant, unused)  # DDP without find_unused_parameters
    learned, dense = parameter_counts(model)
    assert learned == 172_260 and dense == learned - 128 * 128 * 9 + 32 * 128 * 128 * 9


def test_the_anchor_is_stored_once_and_stays_shared():
    model = leanconv.models.dacnn("plain", blocks=(2, 2), width=16, num_classes=10)
    keys = [k for k in model.state_dict() if k.endswith("weight") and model.state_dict()[k].dim() == 4]
    assert keys == ["anchors.w16.weight", "features.0.0.weight"]  # the anchor and the stem conv
    other = leanconv.models.dacnn("plain", blocks=(2, 2), width=16, num_classes=10)
    other.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    model.eval(), other.eval()
    torch.testing.assert_close(other(x), model(x))
    uses = [m for m in other.modules() if isinstance(m, AnchoredConv2d)]
    assert len(uses) == 8 and all(u.anchor is other.anchors["w16"] for u in uses)


def test_resnet_builders_and_convert_tie_equal_convs_within_a_stage():
    shared = leanconv.models.resnet20(conv="shared")
    assert len(shared.anchors) == 3
    learned, dense = parameter_counts(shared)
    assert dense == sum(p.numel() for p in leanconv.models.resnet20().parameters()) and learned < dense / 3
    dense_model = leanconv.models.resnet20().double()
    converted = leanconv.convert(dense_model, "shared")
    assert parameter_counts(converted)[0] == learned
    group = [c for n, c in dense_model.named_modules() if isinstance(c, nn.Conv2d) and c.in_channels == 32 ==
             c.out_channels]
    torch.testing.assert_close(converted.anchors["blocks_32x3x3"].weight, torch.stack([c.weight for c in group]).mean(0))
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    assert converted(x).shape == (2, 10)


def _ddp_worker(rank, world, port, state, batches, out_dir):
    import os

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = leanconv.models.dacnn("mix", blocks=(1, 1), num_classes=10, rotate=1)
    model.load_state_dict(state)
    _train_steps(DistributedDataParallel(model), batches, (rank, world), lr=0.1)  # no find_unused_parameters
    torch.save(model.state_dict(), f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_on_two_gloo_processes_matches_one_process(tmp_path):
    torch.manual_seed(0)
    model = leanconv.models.dacnn("mix", blocks=(1, 1), num_classes=10, rotate=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))) for _ in range(2)]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), state, batches, str(tmp_path)), nprocs=2)
    _train_steps(model, batches, lr=0.1)  # one process, the global batch
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for key, value in model.state_dict().items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # the ranks agree exactly
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ranks[0]["anchors.w64.weight"], state["anchors.w64.weight"])  # the anchors trained


def test_the_training_command_line_builds_the_dacnns():
    from leanconv.train.__main__ import MODELS, conv_options, parse_args

    for variant in ("plain", "mix", "vgg"):
        args = parse_args(["--model", f"dacnn_{variant}", "--conv", "shared", "--rotate", "1"])
        model = MODELS[args.model](num_classes=10, in_channels=1, conv=args.conv, **conv_options(args))
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)  # (the VGG variant pools 5 times)
    with pytest.raises(SystemExit, match="give --conv shared"):
        MODELS["dacnn_plain"](num_classes=10, in_channels=1, conv="generated")
    # --conv dense: the same network with an unshared conv per use (the comparison the results table makes)
    from leanconv.train.__main__ import model_options
    args = parse_args(["--model", "dacnn_plain", "--conv", "dense", "--width", "16", "--blocks", "2,1",
                       "--regulators"])
    dense = MODELS[args.model](num_classes=10, in_channels=1, conv=args.conv, **model_options(args))
    shared = leanconv.models.dacnn("plain", blocks=(2, 1), width=16, regulators=True, num_classes=10, in_channels=1)
    dense_convs = [m for m in dense.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(dense_convs) == 1 + 2 * 3 and not list(dense.anchors)  # the stem and two per block, no anchors
    shared_params = sum(p.numel() for p in shared.parameters())
    assert sum(p.numel() for p in dense.parameters()) == shared_params + (2 * 3 - 1) * 16 * 16 * 9
    with pytest.raises(SystemExit, match="dacnn models only"):
        model_options(parse_args(["--model", "resnet20", "--width", "8"]))


def test_module_and_model_errors():
    holder = nn.Module()
    holder.anchor = anchor = ConvAnchor(4, 3)
    with pytest.raises(RuntimeError, match="expects 4 input channels, got 3"):
        AnchoredConv2d(anchor)(torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="'same' needs an odd kernel"):
        AnchoredConv2d(ConvAnchor(4, 2), padding="same")
    with pytest.raises(ValueError, match=r"rotate must be an int in \[0, 4\)"):
        AnchoredConv2d(anchor, rotate=4)
    with pytest.raises(ValueError, match="rotate must be an int"):
        AnchoredConv2d(anchor, rotate=-1)
    with pytest.raises(RuntimeError, match="same dtype"):
        AnchoredConv2d(anchor)(torch.randn(1, 4, 5, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="ConvAnchor"):
        AnchoredConv2d(nn.Conv2d(4, 4, 3))
    with pytest.raises(ValueError, match="dacnn variant"):
        leanconv.models.dacnn("resnet")


@pytest.mark.parametrize("variant,regulators,rotate,released", [
    ("plain", False, 0, False), ("plain", True, 0, False), ("mix", False, 1, False), ("mix", False, 1, True),
    ("mix", True, 2, True), ("vgg", False, 0, False)])
def test_dacnn_equals_the_reference_codes_plain_pytorch_form(variant, regulators, rotate, released):
    # released: the released mix code's three rotations (the second use's input, the block's output, the shortcut
    # twice), which the plain form applies with torch.cat as the released code does.
    torch.manual_seed(0)
    model = leanconv.models.dacnn(variant, blocks=(2, 1), width=8, regulators=regulators, rotate=rotate,
                                  num_classes=5, released_rotation=released).double()
    for m in model.modules():  # non-trivial BatchNorm parameters and statistics
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)
    reference = ReferenceDACNN(model).double()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(model, mode)(), getattr(reference, mode)()
        torch.testing.assert_close(model(x), reference(x), rtol=1e-9, atol=1e-9)
    model.train(), reference.train()
    model(x).square().sum().backward()
    reference(x).square().sum().backward()
    for key, anchor in model.anchors.items():
        torch.testing.assert_close(anchor.weight.grad, reference.shared[key].weight.grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("variant,regulators", [("plain", False), ("plain", True), ("mix", False), ("vgg", False)])
def test_fold_gives_the_eval_mode_model_with_one_copy_of_each_anchor(variant, regulators):
    torch.manual_seed(0)
    model = leanconv.models.dacnn(variant, blocks=(2, 1), width=8, regulators=regulators, rotate=1, num_classes=5)
    x = torch.randn(4, 3, 16, 16)
    for _ in range(2):
        model(x)  # running statistics away from their initial values
    model.eval()
    with torch.no_grad():
        expected = model(x)
        anchors = {k: a.weight for k, a in model.anchors.items()}
        folded = leanconv.shared.fold(model)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        assert any(isinstance(m, FoldedBatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(folded(x[:1]), expected[:1], rtol=1e-5, atol=1e-5)  # batch 1
    assert all(folded.anchors[k].weight is w for k, w in anchors.items())
    four_d = [k for k, v in folded.state_dict().items() if v.dim() == 4]
    assert sum(k.startswith("anchors.") for k in four_d) == len(anchors)  # one copy each


def test_fold_works_on_any_model_with_batch_norms():
    model = leanconv.models.resnet20(conv="shared", num_classes=4)
    x = torch.randn(2, 3, 16, 16)
    model(x)
    model.eval()
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(leanconv.shared.fold(model)(x), expected, rtol=1e-5, atol=1e-5)
