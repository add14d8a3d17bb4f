"""Fake (meta) kernels: output shapes and dtypes without computing, for torch.compile and torch.export."""
import torch


@torch.library.register_fake("leanconv::generate_weights")
def _generate_weights_fake(ring, seed, total, offset, shape, scale):
    torch._check(ring.dim() == 1, lambda: f"leanconv: ring must be 1-D, got {ring.dim()}-D")
    torch._check(total > 0, lambda: "leanconv: the ring's virtual weight sequence is empty")
    return ring.new_empty(shape)


@torch.library.register_fake("leanconv::generate_weights_backward")
def _generate_weights_backward_fake(grad, ring_size, seed, total, offset, scale):
    return grad.new_empty((ring_size,))


@torch.library.register_fake("leanconv::filter_summary_weight")
def _filter_summary_weight_fake(summary, out_channels, in_channels, kernel_h, kernel_w, stride):
    torch._check(summary.dim() == 1, lambda: f"leanconv: summary must be 1-D, got {summary.dim()}-D")
    torch._check(stride >= 1, lambda: f"leanconv: the summary stride s must be at least 1, got {stride}")
    torch._check(summary.shape[0] == out_channels * stride,
                 lambda: f"leanconv: summary length must be C_out * s = {out_channels * stride}")
    return summary.new_empty((out_channels, in_channels, kernel_h, kernel_w))


@torch.library.register_fake("leanconv::filter_summary_weight_backward")
def _filter_summary_weight_backward_fake(grad_weight, length, stride):
    return grad_weight.new_empty((length,))


def _conv_out(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _memory_format(t):
    return torch.channels_last if (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
                                   and not t.is_contiguous()) else torch.contiguous_format


@torch.library.register_fake("leanconv::shifted_sum")
def _shifted_sum_fake(z, kernel_h, kernel_w, channel_step, stride, padding, dilation):
    torch._check(z.dim() == 4, lambda: f"leanconv: z must be 4-D, got {z.dim()}-D")
    out_h = _conv_out(z.shape[2], kernel_h, stride[0], padding[0], dilation[0])
    out_w = _conv_out(z.shape[3], kernel_w, stride[1], padding[1], dilation[1])
    return z.new_empty((z.shape[0], z.shape[1], out_h, out_w)).contiguous(memory_format=_memory_format(z))


@torch.library.register_fake("leanconv::shifted_sum_backward")
def _shifted_sum_backward_fake(grad_output, kernel_h, kernel_w, channel_step, stride, padding, dilation, input_size):
    out = grad_output.new_empty((grad_output.shape[0], grad_output.shape[1], input_size[0], input_size[1]))
    return out.contiguous(memory_format=_memory_format(grad_output))


@torch.library.register_fake("leanconv::eigen_conv2d")
def _eigen_conv2d_fake(input, basis, coeff, bias, stride, padding, dilation):
    torch._check(input.dim() == 4, lambda: f"leanconv: eigen_conv2d expects a 4-D input, got {input.dim()}-D")
    torch._check(basis.dim() == 4 and coeff.dim() == 2, lambda: "leanconv: basis must be 4-D and coeff 2-D")
    torch._check(input.shape[1] == basis.shape[0],
                 lambda: f"leanconv: basis has C_in = {basis.shape[0]} channels but the input has {input.shape[1]}")
    torch._check(coeff.shape[1] == basis.shape[0] * basis.shape[1],
                 lambda: "leanconv: coeff must be (C_out, C_in*R)")
    out_h = _conv_out(input.shape[2], basis.shape[2], stride[0], padding[0], dilation[0])
    out_w = _conv_out(input.shape[3], basis.shape[3], stride[1], padding[1], dilation[1])
    out = input.new_empty((input.shape[0], coeff.shape[0], out_h, out_w))
    return out.contiguous(memory_format=_memory_format(input))


@torch.library.register_fake("leanconv::eigen_conv2d_backward")
def _eigen_conv2d_backward_fake(grad_output, input, basis, coeff, stride, padding, dilation, output_mask):
    grad_input = torch.empty_like(input, memory_format=_memory_format(input)) if output_mask[0] else None
    grad_basis = torch.empty_like(basis, memory_format=torch.contiguous_format) if output_mask[1] else None
    grad_coeff = torch.empty_like(coeff, memory_format=torch.contiguous_format) if output_mask[2] else None
    return grad_input, grad_basis, grad_coeff
