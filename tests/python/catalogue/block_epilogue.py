"""The block epilogue's ops (infrastructure of the shared-weight blocks and the multigrid correction): BatchNorm +
residual + ReLU in one pass, its affine form, and their backwards. Each op: sample arguments and an independent
float64 reference (op_catalogue.py collects every family's OPS)."""

import torch
import torch.nn.functional as F

from catalogue._spec import OpSpec, _randn


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
    OpSpec("batch_norm_epilogue", _batch_norm_epilogue_samples, batch_norm_epilogue_reference, (0, 1, 2, 3),
           batched=(0, 3), op_math_outputs=(1, 2, 3)),
    OpSpec("batch_norm_epilogue_backward", _batch_norm_epilogue_backward_samples,
           batch_norm_epilogue_backward_reference, (), refuses_graph=True, batched=(0, 3, 4)),
    OpSpec("affine_epilogue", _affine_epilogue_samples, affine_epilogue_reference, (0, 1, 2, 3), batched=(0, 3)),
    OpSpec("fused_batch_norm", _fused_batch_norm_samples, fused_batch_norm_reference, (0, 3, 4, 5), batched=(0, 5)),
    OpSpec("affine_epilogue_backward", _affine_epilogue_backward_samples, affine_epilogue_backward_reference, (),
           refuses_graph=True, batched=(0, 1, 2)),
]
