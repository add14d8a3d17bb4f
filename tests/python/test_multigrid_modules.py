"""The multigrid family's modules and models: MultigridBlock and MultigridConv2d against the authors' plain-PyTorch
composition built from the same parameters (R x computed twice there, once here), the coarse-grid correction op,
parameter growth with width, the builders, convert and the kernel-choice tuner. Module properties every family
shares (compile, torch.func, state_dict, low precision, ...) are in test_module_contract.py."""
import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision

import leanconv
from leanconv.models import mgic_resnet, mobilenet_v2, resnet20
from leanconv.nn import GroupedConv2d, MultigridBlock, MultigridConv2d, parameter_counts
from leanconv.nn.multigrid import channel_levels
from leanconv.ops import multigrid as grouped_conv
from leanconv.reference.multigrid import ReferenceMultigrid

CASES = [
    ("block", lambda: MultigridBlock(32, 64, stride=2, group_size=8, coarsest=16), (3, 32, 8, 8)),
    ("block_same_width", lambda: MultigridBlock(64, 64, group_size=16, coarsest=16), (2, 64, 6, 6)),
    ("conv", lambda: MultigridConv2d(64, 64, 3, group_size=8, coarsest=8), (2, 64, 5, 5)),
    ("conv_strided_wider", lambda: MultigridConv2d(16, 32, 3, stride=2, group_size=8, coarsest=8), (2, 16, 9, 9)),
    ("pointwise", lambda: MultigridConv2d(24, 48, 1, group_size=8, coarsest=12), (2, 24, 4, 4)),
]


def _bn_pairs(module, reference):
    """(module BN, reference BN) in the same roles."""
    pairs = list(zip(module.correction_bn, reference.correction_bn))
    if module.entry is not None:
        pairs.append((module.entry[1], reference.entry[1]))
    if isinstance(module, MultigridBlock):
        pairs += [(module.coarse_bn1, reference.coarse[1]), (module.coarse_bn2, reference.coarse[3])]
        for k in range(len(module.levels) - 1):
            pairs += [(module.level_bn1[k], reference.up[k][1]), (module.level_bn2[k], reference.up[k][3])]
    else:
        pairs.append((module.coarse_bn, reference.coarse[1]))
        pairs += [(module.level_bn[k], reference.up[k][1]) for k in range(1, len(module.levels) - 1)]  # 0: no BN
    return pairs


@pytest.mark.parametrize("path", ["auto", "kernel"])
@pytest.mark.parametrize("name,make,shape", CASES, ids=[c[0] for c in CASES])
def test_matches_the_authors_composition_in_training_and_eval(name, make, shape, path):
    torch.manual_seed(0)
    module = make().double()
    for m in module.modules():
        if isinstance(m, GroupedConv2d):
            m.path = path
    for bn in module.modules():  # non-trivial affine parameters
        if isinstance(bn, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
            torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    reference = ReferenceMultigrid(module).double()
    x = torch.randn(*shape, dtype=torch.float64)
    for step in range(2):
        xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        y, expected = module(xm), reference(xr)
        torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
        grad = torch.randn_like(y)
        y.backward(grad)
        expected.backward(grad)
        torch.testing.assert_close(xm.grad, xr.grad, rtol=1e-10, atol=1e-10)
    for ours, theirs in _bn_pairs(module, reference):
        torch.testing.assert_close(ours.running_mean, theirs.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ours.running_var, theirs.running_var, rtol=1e-12, atol=1e-12)
        assert ours.num_batches_tracked == theirs.num_batches_tracked == 2
        torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(module.restrict[0].weight.grad, reference.restrict[0].weight.grad, rtol=1e-9,
                               atol=1e-9)
    module.eval()
    reference.eval()
    torch.testing.assert_close(module(x), reference(x), rtol=1e-10, atol=1e-10)


def test_the_down_pass_restriction_is_computed_once():
    torch.manual_seed(0)
    module = MultigridBlock(64, 64, group_size=16, coarsest=16).double()
    calls = []
    for k, restrict in enumerate(module.restrict):
        restrict.register_forward_hook(lambda m, args, out, k=k: calls.append(k))
    module(torch.randn(2, 64, 4, 4, dtype=torch.float64))
    assert sorted(calls) == list(range(len(module.levels) - 1))  # the reference calls each twice


def test_coarse_grid_correction_op_matches_its_definition():
    torch.manual_seed(0)
    fine = torch.randn(3, 16, 5, 5, dtype=torch.float64, requires_grad=True)
    coarse = torch.randn(3, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    restricted = torch.randn(3, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    p = torch.randn(16, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    w = torch.rand(16, dtype=torch.float64, requires_grad=True)
    b = torch.randn(16, dtype=torch.float64, requires_grad=True)
    rm, rv = torch.zeros(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    rm2, rv2 = rm.clone(), rv.clone()
    for use_kernel in (True, False):
        out = torch.ops.leanconv.coarse_grid_correction(fine, coarse, restricted, p, 2, w, b, rm, rv, True, 0.1,
                                                        1e-5, use_kernel)
        expected = fine + F.batch_norm(F.conv2d(coarse - restricted, p, groups=2), rm2, rv2, w, b, True, 0.1, 1e-5)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close((rm, rv), (rm2, rv2), rtol=1e-12, atol=1e-12)
    inputs = (fine, coarse, restricted, p, w, b)
    assert torch.autograd.gradcheck(
        lambda *t: torch.ops.leanconv.coarse_grid_correction(t[0], t[1], t[2], t[3], 2, t[4], t[5], None, None,
                                                             True, 0.1, 1e-5, True), inputs)
    with pytest.raises(RuntimeError, match="coarse and restricted of one shape"):
        torch.ops.leanconv.coarse_grid_correction(fine, coarse, restricted[:, :4], p, 2, w, b, None, None, True,
                                                  0.1, 1e-5, True)


def test_parameters_grow_linearly_with_width():
    def count(width):
        return MultigridBlock(width, width, group_size=16, coarsest=16).num_learned_params()

    def dense(width):
        return MultigridBlock(width, width, group_size=16, coarsest=16).num_dense_params()

    for width in (128, 256):
        # Each doubling adds one level and doubles the widths above the coarsest: about 2x, never the dense 4x.
        assert 1.6 < count(2 * width) / count(width) < 2.3
        assert 3.9 < dense(2 * width) / dense(width) < 4.1
    assert parameter_counts(MultigridConv2d(256, 256, 3, group_size=16, coarsest=16))[1] == 256 * 256 * 9


@pytest.mark.parametrize("kwargs,message", [
    (dict(in_channels=64, channels=80, group_size=32), "not divisible by group_size"),
    (dict(in_channels=64, channels=64, group_size=0), "group_size must be a positive int"),
    (dict(in_channels=64, channels=64, coarsest=0), "coarsest must be a positive int"),
    (dict(in_channels=64, channels=64, coarsest=128), "must not exceed the channels"),
    (dict(in_channels=64, channels=64, group_size=7, coarsest=16), "not divisible by group_size"),
])
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultigridBlock(**kwargs)


@pytest.mark.parametrize("make", [lambda: MultigridConv2d(60, 60, 3, group_size=16, coarsest=32),
                                  lambda: MultigridBlock(16, 16, group_size=16, coarsest=16),
                                  lambda: MultigridConv2d(64, 64, 3, group_size=32, coarsest=64)])
def test_options_that_leave_one_level_are_refused(make):
    with pytest.raises(ValueError, match="one channel level: no multigrid structure"):
        make()


def test_the_drop_in_conv_ends_in_its_finest_conv_and_the_host_block_adds_bn_and_relu():
    # A drop-in replaces one conv: no BatchNorm or ReLU of its own after it (the host block's follow).
    torch.manual_seed(0)
    conv = MultigridConv2d(32, 32, 3, group_size=8, coarsest=8)
    assert isinstance(conv.level_bn[0], torch.nn.Identity)
    assert conv(torch.randn(2, 32, 6, 6)).min() < 0
    model = resnet20(conv="multigrid", group_size=8, coarsest=8)
    block = next(m for m in model.modules() if hasattr(m, "bn2"))  # the first basic block
    assert isinstance(block.conv1, MultigridConv2d) and isinstance(block.bn1, torch.nn.BatchNorm2d)


def test_every_conv_starts_as_the_authors_initialise_it():
    # Kaiming-normal with fan_out and the ReLU gain for every conv, restriction and prolongation included.
    torch.manual_seed(0)
    net = mgic_resnet(widths=(64, 128), blocks=(1, 1), group_size=8, coarsest=16)
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.weight.numel() >= 2048:
            expected = (2 / (m.out_channels * m.kernel_size[0] * m.kernel_size[1])) ** 0.5
            assert abs(m.weight.std().item() / expected - 1) < 0.15, name


@pytest.mark.parametrize("kernel", [2, 4])
def test_an_even_kernel_is_refused_when_built(kernel):
    with pytest.raises(ValueError, match="odd kernel_size"):
        MultigridConv2d(8, 8, kernel, group_size=2, coarsest=2)


def test_the_correction_refuses_running_statistics_that_do_not_fit():
    fine, coarse = torch.randn(2, 8, 5, 4), torch.randn(2, 4, 5, 4)
    p, w = torch.randn(8, 2, 1, 1), torch.randn(8)
    op = torch.ops.leanconv.coarse_grid_correction
    with pytest.raises(RuntimeError, match="both running_mean and running_var, or neither"):
        op(fine, coarse, coarse * 0.5, p, 2, w, w, torch.zeros(8), None, True, 0.1, 1e-5, True)
    with pytest.raises(RuntimeError, match="running_var must have shape"):
        op(fine, coarse, coarse * 0.5, p, 2, w, w, torch.zeros(8), torch.ones(4), True, 0.1, 1e-5, True)
    with pytest.raises(RuntimeError, match="eps must be a positive number"):
        op(fine, coarse, coarse * 0.5, p, 2, w, w, torch.zeros(8), torch.ones(8), False, 0.1, 0.0, True)


def test_fold_folds_the_multigrid_batch_norms_too():
    torch.manual_seed(0)
    model = leanconv.models.mgic_resnet(widths=(16, 32), blocks=(1, 1), group_size=8, coarsest=8, num_classes=4)
    x = torch.randn(2, 3, 16, 16)
    model(x)
    model.eval()
    with torch.no_grad():
        expected = model(x)
        folded = leanconv.shared.fold(model)
        assert not any(type(m) is leanconv.nn.FusedBatchNorm2d for m in folded.modules())
        torch.testing.assert_close(folded(x), expected, rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_clear_errors():
    block = MultigridBlock(32, 32, group_size=8, coarsest=8)
    with pytest.raises(ValueError, match=r"expects a 4-D \(N, 32, H, W\) input"):
        block(torch.randn(2, 16, 4, 4))
    with pytest.raises(RuntimeError, match="same dtype|expected|dtype"):
        block(torch.randn(2, 32, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="padding must be kernel_size // 2"):
        MultigridConv2d(32, 32, 3, padding=0, group_size=8, coarsest=8)
    assert channel_levels(256, 32, 32) == [256, 128, 64, 32]
    assert channel_levels(96, 32, 32) == [96, 48]  # 48 is not a multiple of 32: the coarsest
    assert channel_levels(48, 32, 32) == [48]


def test_models_build_train_and_count():
    torch.manual_seed(0)
    for model, shape in [(mgic_resnet(), (2, 3, 32, 32)), (mgic_resnet(layout="imagenet"), (2, 3, 64, 64)),
                         (mobilenet_v2(10, layout="cifar", conv="multigrid", group_size=8, coarsest=8), (2, 3, 32, 32)),
                         (resnet20(conv="multigrid", group_size=8, coarsest=8), (2, 3, 32, 32))]:
        y = model(torch.randn(*shape))
        y.sum().backward()
        learned, dense = parameter_counts(model)
        assert y.shape[0] == 2 and learned < dense
    blocks = [m for m in mgic_resnet().modules() if isinstance(m, MultigridBlock)]
    assert [b.channels for b in blocks] == [32, 64, 64, 128, 128, 256, 256]
    # The authors' defaults: group size 32, levels down to 16 channels (their full-conv threshold of 32).
    assert all(b.group_size == 32 and b.coarsest == 16 and b.levels[-1] == 16 for b in blocks)


def test_convert_swaps_every_convertible_conv():
    torch.manual_seed(0)
    for model, shape in [(torchvision.models.resnet18(num_classes=10), (2, 3, 64, 64)),
                         (torchvision.models.vgg11_bn(num_classes=10), (2, 3, 64, 64))]:
        converted = leanconv.convert(model, "multigrid")
        swapped = [m for m in converted.modules() if isinstance(m, MultigridConv2d)]
        assert swapped
        assert converted(torch.randn(*shape)).shape == (2, 10)
        assert parameter_counts(converted)[0] < parameter_counts(model)[0]
        # The dense equivalent is the original model, less the biases of the replaced convs (the host's BatchNorm
        # follows the drop-in, which makes a bias redundant).
        dropped = sum(m.bias.numel() for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)
                      and m.bias is not None and isinstance(converted.get_submodule(name), MultigridConv2d))
        assert parameter_counts(converted)[1] == parameter_counts(model)[1] - dropped


def test_tune_records_a_choice_per_shape():
    grouped_conv.clear_grouped_conv2d_choices()
    try:
        model = MultigridBlock(64, 64, group_size=16, coarsest=16)
        rows = leanconv.multigrid.tune(model, torch.randn(2, 64, 8, 8), repeats=1)
        choices = grouped_conv.grouped_conv2d_choices()
        assert len(rows) == len(choices) >= 3
        for row in rows:
            device, dtype, cl, ci, co, groups, k, s, size = row["shape"]
            assert grouped_conv.grouped_conv2d_uses_kernel(device, dtype, cl, ci, co, groups, k, s, size) == \
                row["use_kernel"]
        model(torch.randn(2, 64, 8, 8)).sum().backward()  # the recorded choices run
    finally:
        grouped_conv.clear_grouped_conv2d_choices()
