"""The filter-summary family's ops: the summary gather and its adjoint, the shifted sum, the segment conv. Each op:
sample arguments and an independent float64 reference (op_catalogue.py collects every family's OPS)."""

import torch

import window_reference
from leanconv.reference.filter_summary import summary_index
from leanconv.nn import FilterSummaryConv2d
from catalogue._spec import ModuleSpec, OpSpec, _cpp_layer, _randn


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


OPS = [
    OpSpec("filter_summary_weight", _summary_samples, filter_summary_weight_reference, (0,)),
    OpSpec("filter_summary_weight_backward", _summary_backward_samples, filter_summary_weight_backward_reference,
           (0,)),
    OpSpec("shifted_sum", _shifted_sum_samples, shifted_sum_reference, (0,), batched=(0,), autocast=True),
    OpSpec("shifted_sum_backward", _shifted_sum_backward_samples, shifted_sum_backward_reference, (0,),
           batched=(0,)),
    OpSpec("segment_conv2d", _segment_conv2d_samples, segment_conv2d_reference, (0, 1), batched=(0,), autocast=True),
    OpSpec("segment_conv2d_backward", _segment_conv2d_backward_samples, segment_conv2d_backward_reference, (),
           refuses_graph=True, batched=(0, 1)),
]


MODULES = [
    ModuleSpec("filter_summary_gather", lambda: FilterSummaryConv2d(8, 8, 3, padding=1, path="gather"), (2, 8, 5, 5),
               cpp=_cpp_layer(lambda cpp: cpp.FilterSummaryConv2d(8, 8, 3, padding=1, path="gather"))),
    ModuleSpec("filter_summary_direct", lambda: FilterSummaryConv2d(8, 8, 3, stride=2, padding=1, path="direct"),
               (2, 8, 5, 5), cpp=_cpp_layer(lambda cpp: cpp.FilterSummaryConv2d(8, 8, 3, stride=2, padding=1,
                                                                                   path="direct"))),
    ModuleSpec("filter_summary_same_circular",
               lambda: FilterSummaryConv2d(8, 6, 2, padding="same", padding_mode="circular", compression=4),
               (2, 8, 5, 6)),
    ModuleSpec("filter_summary_quantised", lambda: FilterSummaryConv2d(8, 8, 3, padding=1, quant_bits=4),
               (2, 8, 5, 5), smooth=False,
               cpp=_cpp_layer(lambda cpp: cpp.FilterSummaryConv2d(8, 8, 3, padding=1, quant_bits=4))),
]


# The family's layer over nn.Conv2d's argument space (test_module_contract.py): nn.Conv2d's arguments -> the layer.
def CONV2D_LIKE(*conv_arguments, **conv_options):
    return FilterSummaryConv2d(*conv_arguments, compression=2, **conv_options)
