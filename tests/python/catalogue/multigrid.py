"""The multigrid family's ops: the grouped conv and its backward, the coarse-grid correction. Each op: sample arguments
and an independent float64 reference (op_catalogue.py collects every family's OPS)."""

import torch
import torch.nn.functional as F

import window_reference
from leanconv.nn import GroupedConv2d, MultigridBlock, MultigridConv2d
from catalogue._spec import ModuleSpec, OpSpec, _cpp_layer, _randn


def grouped_conv2d_reference(input, weight, bias, stride, padding, dilation, groups):
    # By taps, as eigen_conv2d_reference.
    return window_reference.conv2d(input, weight, bias, stride, padding, dilation, groups)


def grouped_conv2d_backward_reference(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    leaves = [t.detach().requires_grad_() for t in (input, weight)]
    with torch.enable_grad():
        y = grouped_conv2d_reference(*leaves, None, stride, padding, dilation, groups)
        grads = torch.autograd.grad(y, leaves, grad_output)
    return tuple(g if m else None for g, m in zip(grads, output_mask))


def coarse_grid_correction_reference(fine, coarse, restricted, prolongation, groups, weight, bias, running_mean,
                                     running_var, training, momentum, eps, use_kernel):
    prolonged = F.conv2d(coarse - restricted, prolongation, groups=groups)
    return fine + F.batch_norm(prolonged, running_mean, running_var, weight, bias, training, momentum, eps)


# (N, C_in, C_out, (H, W), kernel, groups, stride, padding, dilation, bias): 1x1 and 3x3, stride 1 and 2, group
# widths from 1 to 16 input channels, filter counts that are and are not multiples of the kernels' filter group.
GROUPED_GEOMETRIES = [
    (2, 8, 8, (9, 10), 3, 2, (1, 1), (1, 1), (1, 1), True),
    (3, 16, 32, (8, 7), 3, 4, (2, 2), (1, 1), (1, 1), False),
    (1, 6, 9, (5, 5), 1, 3, (1, 1), (0, 0), (1, 1), True),
    (2, 32, 16, (6, 6), 1, 2, (2, 2), (0, 0), (1, 1), False),
    (2, 12, 6, (7, 9), 3, 3, (2, 1), (2, 0), (2, 1), True),
    (2, 5, 10, (4, 4), 3, 5, (1, 1), (0, 0), (1, 1), True),
    (1, 4, 4, (3, 17), 3, 1, (1, 1), (1, 1), (1, 1), False),
]


def _grouped_samples(device, dtype):
    samples = []
    for n, c_in, c_out, hw, k, groups, st, pd, dl, bias in GROUPED_GEOMETRIES:
        samples.append((_randn(n, c_in, *hw, device=device, dtype=dtype),
                        _randn(c_out, c_in // groups, k, k, device=device, dtype=dtype),
                        _randn(c_out, device=device, dtype=dtype) if bias else None, list(st), list(pd), list(dl),
                        groups))
    return samples


def _grouped_backward_samples(device, dtype):
    samples = []
    for x, w, _, st, pd, dl, groups in _grouped_samples(device, dtype):
        y = F.conv2d(x, w, None, st, pd, dl, groups)
        for mask in ([True, True], [False, True], [True, False]):
            samples.append((torch.randn_like(y), x, w, st, pd, dl, groups, mask))
    return samples


def _coarse_grid_correction_samples(device, dtype):
    samples = []
    # The prolongation on leanconv's kernel (the aten path is in test_multigrid_modules.py: aten's CPU convolutions do not
    # promise the same bits for every thread count).
    for n, c, coarse_c, groups, hw, weight, use_kernel in [(2, 8, 4, 2, (5, 4), True, True),
                                                           (3, 6, 3, 3, (3, 3), False, True),
                                                           (2, 4, 4, 1, (4, 6), True, True)]:
        samples.append((_randn(n, c, *hw, device=device, dtype=dtype), _randn(n, coarse_c, *hw, device=device, dtype=dtype),
                        _randn(n, coarse_c, *hw, device=device, dtype=dtype),
                        _randn(c, coarse_c // groups, 1, 1, device=device, dtype=dtype), groups,
                        _randn(c, device=device, dtype=dtype) if weight else None,
                        _randn(c, device=device, dtype=dtype) if weight else None, None, None, True, 0.1, 1e-5,
                        use_kernel))
    return samples


OPS = [
    OpSpec("grouped_conv2d", _grouped_samples, grouped_conv2d_reference, (0, 1, 2), batched=(0,), autocast=True),
    OpSpec("coarse_grid_correction", _coarse_grid_correction_samples, coarse_grid_correction_reference,
           (0, 1, 2, 3, 5, 6), batched=(0, 1, 2)),
    OpSpec("grouped_conv2d_backward", _grouped_backward_samples, grouped_conv2d_backward_reference, (),
           refuses_graph=True, batched=(0, 1)),
]

# Ops without tensor arguments (queries and settings): not under the op contract; each is covered by the test
# file named.
HELPER_OPS = {"grouped_conv2d_uses_kernel": "test_multigrid_ops.py",
              "grouped_conv2d_rule": "test_multigrid_ops.py",
              "record_grouped_conv2d_choice": "test_multigrid_ops.py",
              "grouped_conv2d_choices": "test_multigrid_ops.py",
              "clear_grouped_conv2d_choices": "test_multigrid_ops.py"}


MODULES = [
    ModuleSpec("multigrid_grouped_conv_kernel", lambda: GroupedConv2d(8, 12, 3, stride=2, padding=1, groups=4, path="kernel"),
               (2, 8, 7, 6), cpp=_cpp_layer(lambda cpp: cpp.GroupedConv2d(8, 12, 3, stride=2, padding=1, groups=4,
                                                                           path="kernel"))),
    ModuleSpec("multigrid_grouped_conv_auto", lambda: GroupedConv2d(8, 8, 1, groups=2), (2, 8, 5, 5),
               cpp=_cpp_layer(lambda cpp: cpp.GroupedConv2d(8, 8, 1, groups=2))),
    ModuleSpec("multigrid_block", lambda: MultigridBlock(4, 8, stride=2, group_size=4, coarsest=4), (2, 4, 5, 5),
               materializable=False, batch_norm=True,
               cpp=_cpp_layer(lambda cpp: cpp.MultigridBlock(4, 8, stride=2, group_size=4, coarsest=4))),
    ModuleSpec("multigrid_conv", lambda: MultigridConv2d(8, 8, 3, group_size=4, coarsest=4), (2, 8, 5, 5),
               materializable=False, batch_norm=True,
               cpp=_cpp_layer(lambda cpp: cpp.MultigridConv2d(8, 8, 3, group_size=4, coarsest=4))),
    ModuleSpec("multigrid_conv_strided_pointwise",
               lambda: MultigridConv2d(8, 16, 1, stride=2, group_size=4, coarsest=4), (2, 8, 5, 5),
               materializable=False, batch_norm=True,
               cpp=_cpp_layer(lambda cpp: cpp.MultigridConv2d(8, 16, 1, stride=2, group_size=4, coarsest=4))),
]


# Not nn.Conv2d's argument space: a V-cycle keeps the image size by construction (odd kernels, 'same' padding), so
# test_module_contract.py's padding and padding-mode cases do not apply.
CONV2D_LIKE = None
