"""The low-rank family's ops: the eigen-filter conv and the eigen weight, with their backwards. Each op: sample
arguments and an independent float64 reference (op_catalogue.py collects every family's OPS)."""

import torch

import window_reference
from leanconv.nn import EigenConv2d
from catalogue._spec import ModuleSpec, OpSpec, _cpp_layer, _randn


def eigen_conv2d_reference(input, basis, coeff, bias, stride, padding, dilation):
    c_in, rank, kh, kw = basis.shape
    # By taps (window_reference): an empty image with enough padding, or a window near the int64 limits, is a valid
    # geometry that F.conv2d refuses or could not allocate padded.
    z = window_reference.conv2d(input, basis.reshape(c_in * rank, 1, kh, kw), None, stride, padding, dilation,
                                groups=c_in)
    y = torch.einsum("om,nmhw->nohw", coeff, z)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def eigen_weight_reference(basis, coeff):
    c_in, rank, kh, kw = basis.shape
    factors = coeff.reshape(coeff.shape[0], c_in, rank)
    return (factors[:, :, :, None, None] * basis[None]).sum(2)  # W[o, c] = sum_r coeff[o, c*R + r] basis[c, r]


def eigen_weight_backward_reference(grad_weight, basis, coeff, output_mask):
    leaves = [t.detach().requires_grad_() for t in (basis, coeff)]
    with torch.enable_grad():
        grads = torch.autograd.grad(eigen_weight_reference(*leaves), leaves, grad_weight)
    return tuple(g if need else None for g, need in zip(grads, output_mask))


def eigen_conv2d_backward_reference(grad_output, input, basis, coeff, stride, padding, dilation, output_mask):
    leaves = [t.detach().requires_grad_() for t in (input, basis, coeff)]
    with torch.enable_grad():
        y = eigen_conv2d_reference(*leaves, None, stride, padding, dilation)
        grads = torch.autograd.grad(y, leaves, grad_output)
    return tuple(g if need else None for g, need in zip(grads, output_mask))


EIGEN_GEOMETRIES = [  # (N, C_in, C_out, (H, W), (kh, kw), R, stride, padding, dilation, bias)
    (2, 3, 4, (6, 7), (3, 3), 3, (1, 1), (1, 1), (1, 1), True),
    (1, 4, 5, (9, 8), (3, 3), 1, (2, 2), (1, 1), (1, 1), False),
    (2, 2, 3, (8, 9), (3, 3), 5, (1, 2), (2, 0), (2, 1), True),
    (1, 3, 2, (5, 5), (1, 1), 1, (1, 1), (0, 0), (1, 1), True),
    (1, 2, 3, (7, 7), (3, 1), 2, (1, 1), (1, 0), (1, 1), False),
    (2, 3, 3, (6, 6), (3, 3), 9, (1, 1), (1, 1), (1, 1), True),
]


def _eigen_samples(device, dtype):
    samples = []
    for n, c_in, c_out, hw, (kh, kw), rank, st, pd, dl, bias in EIGEN_GEOMETRIES:
        samples.append((_randn(n, c_in, *hw, device=device, dtype=dtype),
                        _randn(c_in, rank, kh, kw, device=device, dtype=dtype),
                        _randn(c_out, c_in * rank, device=device, dtype=dtype),
                        _randn(c_out, device=device, dtype=dtype) if bias else None, list(st), list(pd), list(dl)))
    return samples


def _eigen_weight_samples(device, dtype):
    # Ranks 1 to k*k, kernels from 1x1 to 5x3, a single channel and wider layers.
    return [(_randn(c_in, rank, kh, kw, device=device, dtype=dtype), _randn(c_out, c_in * rank, device=device, dtype=dtype))
            for c_in, c_out, kh, kw, rank in [(3, 4, 3, 3, 2), (1, 1, 1, 1, 1), (5, 2, 5, 3, 15), (16, 24, 3, 3, 9),
                                              (8, 8, 3, 3, 1)]]


def _eigen_weight_backward_samples(device, dtype):
    samples = []
    for basis, coeff in _eigen_weight_samples(device, dtype):
        grad = _randn(coeff.shape[0], basis.shape[0], basis.shape[2], basis.shape[3], device=device, dtype=dtype)
        for mask in ([True, True], [True, False], [False, True]):
            samples.append((grad, basis, coeff, mask))
    return samples


def _eigen_backward_samples(device, dtype):
    samples = []
    for x, basis, coeff, _, st, pd, dl in _eigen_samples(device, dtype):
        y = eigen_conv2d_reference(x, basis, coeff, None, st, pd, dl)
        for mask in ([True, True, True], [False, True, False], [True, False, True]):
            samples.append((torch.randn_like(y), x, basis, coeff, st, pd, dl, mask))
    return samples


OPS = [
    OpSpec("eigen_conv2d", _eigen_samples, eigen_conv2d_reference, (0, 1, 2, 3), batched=(0,), autocast=True),
    OpSpec("eigen_conv2d_backward", _eigen_backward_samples, eigen_conv2d_backward_reference, (),
           refuses_graph=True, batched=(0, 1)),
    OpSpec("eigen_weight", _eigen_weight_samples, eigen_weight_reference, (0, 1)),
    OpSpec("eigen_weight_backward", _eigen_weight_backward_samples, eigen_weight_backward_reference, (),
           refuses_graph=True),
]

# Ops without tensor arguments (queries and settings): not under the op contract; each is covered by the test
# file named.
HELPER_OPS = {"eigen_conv2d_fused_is_cheaper": "test_lowrank_modules.py"}


MODULES = [
    ModuleSpec("lowrank_fused", lambda: EigenConv2d(4, 6, 3, stride=2, padding=1, rank=3, path="fused"), (2, 4, 6, 6),
               cpp=_cpp_layer(lambda cpp: cpp.EigenConv2d(4, 6, 3, rank=3, stride=2, padding=1, path="fused"))),
    ModuleSpec("lowrank_materialized", lambda: EigenConv2d(4, 6, 3, padding=1, rank=3, path="materialized"),
               (2, 4, 6, 6), cpp=_cpp_layer(lambda cpp: cpp.EigenConv2d(4, 6, 3, rank=3, padding=1,
                                                                         path="materialized"))),
    ModuleSpec("lowrank_valid_replicate",
               lambda: EigenConv2d(4, 5, 3, stride=2, padding="valid", padding_mode="replicate", rank=2, path="fused"),
               (2, 4, 7, 6)),
    ModuleSpec("lowrank_same_zeros_even_kernel",
               lambda: EigenConv2d(3, 4, 2, padding="same", rank=2, path="fused"), (1, 3, 5, 5)),
]


# The family's layer over nn.Conv2d's argument space (test_module_contract.py): nn.Conv2d's arguments -> the layer.
def CONV2D_LIKE(*conv_arguments, **conv_options):
    return EigenConv2d(*conv_arguments, rank=2, path="fused", **conv_options)
