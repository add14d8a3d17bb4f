"""Every leanconv op, declared once: sample arguments and an independent float64 reference.

The op-contract suite (test_op_contract.py) runs the same properties over every sample of every op, and the
fuzz suite (test_fuzz.py) draws arguments around the same ops. A new op adds an OpSpec here, not test code.

A sample is a tuple of the op's positional arguments; ``differentiable`` names the positions of the tensors the
op is differentiable in. References are plain PyTorch (float64 where it matters) built from the maths, not from
leanconv's kernels.
"""
import itertools
from dataclasses import dataclass, field
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn.functional as F

import window_reference
from leanconv.reference.filter_summary import summary_index
from leanconv.reference.generated import ring_indices_and_signs


# ---- references ---------------------------------------------------------------------------------------

def generate_weights_reference(ring, seed, total, offset, shape, scale):
    numel = 1
    for s in shape:
        numel *= s
    index, sign = ring_indices_and_signs(seed, total, ring.numel(), offset, numel)
    return (scale * sign.to(ring.dtype) * ring[index.to(ring.device)]).view(shape)


def generate_weights_backward_reference(grad, ring_size, seed, total, offset, scale):
    index, sign = ring_indices_and_signs(seed, total, ring_size, offset, grad.numel())
    contributions = scale * sign.to(grad.dtype) * grad.flatten()
    return torch.zeros(ring_size, dtype=grad.dtype, device=grad.device).index_add(0, index.to(grad.device),
                                                                                   contributions)


def filter_summary_weight_reference(summary, out_channels, in_channels, kernel_h, kernel_w, summary_stride):
    return summary[summary_index(out_channels, in_channels, kernel_h, kernel_w, summary_stride).to(summary.device)]


def filter_summary_weight_backward_reference(grad_weight, length, summary_stride):
    index = summary_index(*grad_weight.shape, summary_stride).to(grad_weight.device)
    return torch.zeros(length, dtype=grad_weight.dtype, device=grad_weight.device).index_add(
        0, index.flatten(), grad_weight.flatten())


def shifted_sum_reference(z, kernel_h, kernel_w, channel_step, stride, padding, dilation):
    """Output channel o sums, over the taps t = i*kw + j, channel (o + t*step) mod M of z read by the tap (taps
    gathered without padding: any int64 window, see window_reference)."""
    m = z.shape[1]
    y = 0
    for i, j, window in window_reference.taps(z, kernel_h, kernel_w, stride, padding, dilation):
        source = (torch.arange(m, device=z.device) + (i * kernel_w + j) * channel_step % m) % m  # (Python ints)
        y = y + window[:, source]
    return y


def segment_conv2d_reference(input, segments, kernel_h, kernel_w, channel_step, stride, padding, dilation):
    z = torch.einsum("mc,nchw->nmhw", segments, input)
    return shifted_sum_reference(z, kernel_h, kernel_w, channel_step, stride, padding, dilation)


def segment_conv2d_backward_reference(grad_output, input, segments, kernel_h, kernel_w, channel_step, stride, padding,
                                      dilation, output_mask):
    leaves = [t.detach().requires_grad_() for t in (input, segments)]
    with torch.enable_grad():
        y = segment_conv2d_reference(*leaves, kernel_h, kernel_w, channel_step, stride, padding, dilation)
        grads = torch.autograd.grad(y, leaves, grad_output)
    return tuple(g if need else None for g, need in zip(grads, output_mask))


def shifted_sum_backward_reference(grad_output, kernel_h, kernel_w, channel_step, stride, padding, dilation,
                                   input_size):
    z = grad_output.new_zeros(grad_output.shape[0], grad_output.shape[1], *input_size, requires_grad=True)
    with torch.enable_grad():
        y = shifted_sum_reference(z, kernel_h, kernel_w, channel_step, stride, padding, dilation)
        grad, = torch.autograd.grad(y, z, grad_output)
    return grad


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


def eigen_conv2d_backward_reference(grad_output, input, basis, coeff, stride, padding, dilation, output_mask):
    leaves = [t.detach().requires_grad_() for t in (input, basis, coeff)]
    with torch.enable_grad():
        y = eigen_conv2d_reference(*leaves, None, stride, padding, dilation)
        grads = torch.autograd.grad(y, leaves, grad_output)
    return tuple(g if need else None for g, need in zip(grads, output_mask))


def _per_channel(t):
    return t.view(1, -1, 1, 1)


def batch_norm_epilogue_reference(input, weight, bias, residual, relu, eps):
    x = input.double()
    mean = x.mean((0, 2, 3))
    var = x.var((0, 2, 3), unbiased=False)
    invstd = torch.rsqrt(var + eps)
    out = (x - _per_channel(mean)) * _per_channel(invstd)
    if weight is not None:
        out = out * _per_channel(weight.double())
    if bias is not None:
        out = out + _per_channel(bias.double())
    if residual is not None:
        out = out + residual.double()
    stats_dtype = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    out = F.relu(out) if relu else out
    return out.to(input.dtype), mean.to(stats_dtype), invstd.to(stats_dtype), var.to(stats_dtype)


def _gradients_of(forward, leaves, grads, output_mask):
    """The gradients of forward(*leaves) for the given output gradients, None where the mask says or no leaf."""
    leaves_rg = [None if t is None else t.detach().requires_grad_() for t in leaves]
    with torch.enable_grad():
        outputs = forward(*leaves_rg)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        pairs = [(y, g) for y, g in zip(outputs, grads) if g is not None]
        wrt = [t for t in leaves_rg if t is not None]
        found = torch.autograd.grad([y for y, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True)
    found = list(found)
    result = [None if t is None else found.pop(0) for t in leaves_rg]
    return tuple(g if need else None for g, need in zip(result, output_mask))


def batch_norm_epilogue_backward_reference(grad_output, grad_mean, grad_invstd, output, input, weight, mean, invstd,
                                           relu, output_mask):
    # The backward of the reference forward before its ReLU at the same input (mean and invstd follow from it),
    # the ReLU's mask taken from the given output; a zero bias and residual stand in for theirs, whose gradients
    # do not depend on their values.
    bias, residual = torch.zeros_like(mean), torch.zeros_like(input)
    masked = grad_output * (output > 0) if relu else grad_output
    return _gradients_of(lambda x, w, b, r: batch_norm_epilogue_reference(x, w, b, r, False, 1e-5)[:3],
                         [input, weight, bias, residual], [masked, grad_mean, grad_invstd], output_mask)


def fused_batch_norm_reference(input, running_mean, running_var, weight, bias, residual, training, momentum, eps,
                               relu):
    out = F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    out = out + residual if residual is not None else out
    return F.relu(out) if relu else out


def affine_epilogue_reference(input, scale, shift, residual, relu):
    out = input
    if scale is not None:
        out = out * _per_channel(scale)
    if shift is not None:
        out = out + _per_channel(shift)
    if residual is not None:
        out = out + residual
    return F.relu(out) if relu else out


def affine_epilogue_backward_reference(grad_output, output, input, scale, relu, output_mask):
    shift, residual = torch.zeros(input.shape[1], dtype=input.dtype), torch.zeros_like(input)
    masked = grad_output * (output > 0) if relu else grad_output
    return _gradients_of(lambda x, a, c, r: affine_epilogue_reference(x, a, c, r, False),
                         [input, scale, shift, residual], [masked], output_mask)


# ---- the catalogue ------------------------------------------------------------------------------------

@dataclass
class OpSpec:
    name: str  # torch.ops.leanconv.<name>
    samples: Callable[[str, torch.dtype], List[tuple]]
    reference: Callable
    differentiable: Tuple[int, ...]  # argument positions of the tensors the op is differentiable in
    refuses_graph: bool = False  # True: the op is not differentiable and says so when asked for a graph
    autocast: bool = False  # True: under autocast the op runs in the autocast dtype (else in its inputs' dtype)
    # Positions of tensors with a batch (N) dimension first and spatial dims last (vmap, empty batch, layouts).
    batched: Tuple[int, ...] = ()
    # Outputs in the op-math type (float32 for float16/bfloat16 inputs), like aten batch_norm's statistics.
    op_math_outputs: Tuple[int, ...] = ()
    tags: Sequence[str] = field(default_factory=tuple)

    @property
    def op(self):
        return getattr(torch.ops.leanconv, self.name)


def _randn(*shape, device="cpu", dtype=torch.float64):
    return torch.randn(*shape, device=device, dtype=dtype)


def _generate_samples(device, dtype):
    return [(_randn(n, device=device, dtype=dtype), seed, total, offset, shape, scale)
            for n, seed, total, offset, shape, scale in [
                (20, 3, 50, 5, [24], 0.7), (1, 0, 7, 0, [7], 1.0), (97, -5, 1000, 100, [6, 4, 3, 3], 0.3),
                (64, 2 ** 40 + 3, (1 << 33) + 17, (1 << 32) - 10, [4, 5], 1.5)]]  # crosses g = 2^32


def _generate_backward_samples(device, dtype):
    return [(_randn(*shape, device=device, dtype=dtype), n, seed, total, offset, scale)
            for n, seed, total, offset, shape, scale in [
                (20, 3, 50, 5, [24], 0.7), (1, 0, 7, 0, [7], 1.0), (97, -5, 1000, 100, [6, 4, 3, 3], 0.3),
                (64, 7, (1 << 33) + 17, (1 << 32) - 10, [4, 5], 1.5)]]


def _summary_samples(device, dtype):
    # (C_out, C_in, kh, kw, s): s dividing C_in (the direct path's layout) and not, wrapping and not.
    return [(_randn(o * s, device=device, dtype=dtype), o, c, kh, kw, s)
            for o, c, kh, kw, s in [(4, 3, 3, 3, 3), (8, 8, 3, 3, 4), (5, 6, 1, 1, 2), (3, 2, 3, 1, 5), (2, 4, 2, 2, 16)]]


def _summary_backward_samples(device, dtype):
    return [(_randn(o, c, kh, kw, device=device, dtype=dtype), o * s, s)
            for o, c, kh, kw, s in [(4, 3, 3, 3, 3), (8, 8, 3, 3, 4), (5, 6, 1, 1, 2), (3, 2, 3, 1, 5)]]


SHIFTED_SUM_GEOMETRIES = [  # (N, M, H, W, kh, kw, step, stride, padding, dilation)
    (2, 6, 7, 8, 3, 3, 2, (1, 1), (1, 1), (1, 1)),
    (1, 5, 9, 6, 3, 3, 3, (2, 2), (1, 1), (1, 1)),
    (2, 4, 8, 8, 3, 2, 1, (1, 2), (2, 0), (2, 1)),
    (1, 3, 5, 5, 1, 1, 0, (1, 1), (0, 0), (1, 1)),
    (3, 7, 6, 6, 5, 5, 9, (1, 1), (2, 2), (1, 1)),  # step larger than M
]


def _shifted_sum_samples(device, dtype):
    return [(_randn(n, m, h, w, device=device, dtype=dtype), kh, kw, step, list(st), list(pd), list(dl))
            for n, m, h, w, kh, kw, step, st, pd, dl in SHIFTED_SUM_GEOMETRIES]


def _segment_conv2d_samples(device, dtype):
    # Batches and sizes that split the CPU kernel's work into several row bands per image, and several images.
    return [(_randn(n, c, h, w, device=device, dtype=dtype), _randn(m, c, device=device, dtype=dtype), kh, kw, step,
             list(st), list(pd), list(dl))
            for n, c, m, h, w, kh, kw, step, st, pd, dl in [
                (2, 4, 6, 9, 7, 3, 3, 1, (1, 1), (1, 1), (1, 1)),
                (1, 5, 4, 12, 11, 3, 2, 3, (2, 1), (2, 0), (1, 2)),
                (3, 3, 3, 5, 5, 1, 1, 0, (1, 1), (0, 0), (1, 1)),
                (1, 2, 7, 20, 6, 5, 5, 9, (1, 1), (2, 2), (1, 1)),  # step larger than M
                (9, 3, 2, 4, 4, 3, 3, 1, (1, 1), (1, 1), (1, 1))]]  # two weight-gradient partials


def _segment_conv2d_backward_samples(device, dtype):
    samples = []
    for x, segments, kh, kw, step, st, pd, dl in _segment_conv2d_samples(device, dtype):
        y = segment_conv2d_reference(x, segments, kh, kw, step, st, pd, dl)
        for mask in ([True, True], [False, True], [True, False]):
            samples.append((torch.randn_like(y), x, segments, kh, kw, step, st, pd, dl, mask))
    return samples


def _shifted_sum_backward_samples(device, dtype):
    samples = []
    for n, m, h, w, kh, kw, step, st, pd, dl in SHIFTED_SUM_GEOMETRIES:
        out_h = (h + 2 * pd[0] - dl[0] * (kh - 1) - 1) // st[0] + 1
        out_w = (w + 2 * pd[1] - dl[1] * (kw - 1) - 1) // st[1] + 1
        samples.append((_randn(n, m, out_h, out_w, device=device, dtype=dtype), kh, kw, step, list(st), list(pd),
                        list(dl), [h, w]))
    return samples


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


EPILOGUE_GEOMETRIES = [  # (N, C, H, W, weight, bias, residual, relu, offset): offset moves the channel means
    (3, 4, 5, 6, True, True, True, True, 0.0),
    (2, 3, 4, 4, True, True, False, False, 0.0),
    (4, 2, 3, 5, False, False, True, False, 0.0),
    (2, 5, 3, 3, True, False, False, True, 100.0),  # |mean| >> std: the shifted sums keep the variance exact
    (1, 3, 9, 1, False, True, True, True, 0.0),
]


def _epilogue_operands(device, dtype):
    for n, c, h, w, has_w, has_b, has_r, relu, offset in EPILOGUE_GEOMETRIES:
        x = _randn(n, c, h, w, device=device, dtype=dtype) + torch.arange(c, device=device, dtype=dtype).view(
            1, -1, 1, 1) * 0.5 + offset
        yield (x, _randn(c, device=device, dtype=dtype) if has_w else None,
               _randn(c, device=device, dtype=dtype) if has_b else None,
               _randn(n, c, h, w, device=device, dtype=dtype) if has_r else None, relu)


def _batch_norm_epilogue_samples(device, dtype):
    return [(x, w, b, r, relu, 1e-5) for x, w, b, r, relu in _epilogue_operands(device, dtype)]


def _batch_norm_epilogue_backward_samples(device, dtype):
    samples = []
    for x, w, b, r, relu, eps in _batch_norm_epilogue_samples(device, dtype):
        out, mean, invstd, _ = batch_norm_epilogue_reference(x, w, b, r, relu, eps)
        for mask, with_stat_grads in (([True, True, True, True], True), ([True, False, False, False], False),
                                      ([False, True, True, False], True)):
            mask = [mask[0], mask[1] and w is not None, mask[2], mask[3]]
            samples.append((torch.randn_like(out), torch.randn_like(mean) if with_stat_grads else None,
                            torch.randn_like(invstd) if with_stat_grads else None, out if relu else None, x, w, mean,
                            invstd, relu, mask))
    return samples


def _fused_batch_norm_samples(device, dtype):
    # Batch statistics without running ones, and eval with running ones (kept positive: variances). The update of
    # running statistics in training mutates them, which vmap and the compiled comparisons cannot share: its own
    # tests are in test_block_epilogue_ops.py.
    samples = []
    for x, w, b, r, relu in _epilogue_operands(device, dtype):
        c = x.shape[1]
        samples.append((x, None, None, w, b, r, True, 0.1, 1e-5, relu))
        samples.append((x, _randn(c, device=device, dtype=dtype), _randn(c, device=device, dtype=dtype).exp(), w, b,
                        r, False, 0.1, 1e-5, relu))
    return samples


def _affine_epilogue_samples(device, dtype):
    return list(_epilogue_operands(device, dtype))


def _affine_epilogue_backward_samples(device, dtype):
    samples = []
    for x, a, c, r, relu in _affine_epilogue_samples(device, dtype):
        out = affine_epilogue_reference(x, a, c, r, relu)
        for mask in ([True, True, True, True], [True, False, False, False], [False, True, False, True]):
            samples.append((torch.randn_like(out), out if relu else None, x, a, relu,
                            [mask[0], mask[1] and a is not None, mask[2], mask[3]]))
    return samples


OPS = [
    OpSpec("generate_weights", _generate_samples, generate_weights_reference, (0,)),
    OpSpec("generate_weights_backward", _generate_backward_samples, generate_weights_backward_reference, (0,)),
    OpSpec("filter_summary_weight", _summary_samples, filter_summary_weight_reference, (0,)),
    OpSpec("filter_summary_weight_backward", _summary_backward_samples, filter_summary_weight_backward_reference,
           (0,)),
    OpSpec("shifted_sum", _shifted_sum_samples, shifted_sum_reference, (0,), batched=(0,), autocast=True),
    OpSpec("shifted_sum_backward", _shifted_sum_backward_samples, shifted_sum_backward_reference, (0,),
           batched=(0,)),
    OpSpec("segment_conv2d", _segment_conv2d_samples, segment_conv2d_reference, (0, 1), batched=(0,), autocast=True),
    OpSpec("segment_conv2d_backward", _segment_conv2d_backward_samples, segment_conv2d_backward_reference, (),
           refuses_graph=True, batched=(0, 1)),
    OpSpec("eigen_conv2d", _eigen_samples, eigen_conv2d_reference, (0, 1, 2, 3), batched=(0,), autocast=True),
    OpSpec("eigen_conv2d_backward", _eigen_backward_samples, eigen_conv2d_backward_reference, (),
           refuses_graph=True, batched=(0, 1)),
    OpSpec("eigen_weight", _eigen_weight_samples, eigen_weight_reference, (0, 1)),
    OpSpec("eigen_weight_backward", _eigen_weight_backward_samples, eigen_weight_backward_reference, (),
           refuses_graph=True),
    OpSpec("batch_norm_epilogue", _batch_norm_epilogue_samples, batch_norm_epilogue_reference, (0, 1, 2, 3),
           batched=(0, 3), op_math_outputs=(1, 2, 3)),
    OpSpec("batch_norm_epilogue_backward", _batch_norm_epilogue_backward_samples,
           batch_norm_epilogue_backward_reference, (), refuses_graph=True, batched=(0, 3, 4)),
    OpSpec("affine_epilogue", _affine_epilogue_samples, affine_epilogue_reference, (0, 1, 2, 3), batched=(0, 3)),
    OpSpec("fused_batch_norm", _fused_batch_norm_samples, fused_batch_norm_reference, (0, 3, 4, 5), batched=(0, 5)),
    OpSpec("affine_epilogue_backward", _affine_epilogue_backward_samples, affine_epilogue_backward_reference, (),
           refuses_graph=True, batched=(0, 1, 2)),
    OpSpec("grouped_conv2d", _grouped_samples, grouped_conv2d_reference, (0, 1, 2), batched=(0,), autocast=True),
    OpSpec("coarse_grid_correction", _coarse_grid_correction_samples, coarse_grid_correction_reference,
           (0, 1, 2, 3, 5, 6), batched=(0, 1, 2)),
    OpSpec("grouped_conv2d_backward", _grouped_backward_samples, grouped_conv2d_backward_reference, (),
           refuses_graph=True, batched=(0, 1)),
]

OPS_BY_NAME = {spec.name: spec for spec in OPS}

# Ops without tensor arguments (the kernel choice's queries and settings, the low-rank cost model): not under the
# op contract; each is covered by the test file named.
HELPER_OPS = {
    "eigen_conv2d_fused_is_cheaper": "test_lowrank_modules.py",
    "grouped_conv2d_uses_kernel": "test_multigrid_ops.py",
    "grouped_conv2d_rule": "test_multigrid_ops.py",
    "record_grouped_conv2d_choice": "test_multigrid_ops.py",
    "grouped_conv2d_choices": "test_multigrid_ops.py",
    "clear_grouped_conv2d_choices": "test_multigrid_ops.py",
}


def op_samples(spec: OpSpec, device="cpu", dtype=torch.float64):
    torch.manual_seed(0)
    return spec.samples(device, dtype)


def sample_ids(spec: OpSpec):
    return [f"{spec.name}-{i}" for i in range(len(spec.samples("cpu", torch.float64)))]


def all_samples():
    """(spec, sample index) pairs, for parametrising over every sample of every op."""
    return [(spec, i) for spec in OPS for i in range(len(spec.samples("cpu", torch.float64)))]
