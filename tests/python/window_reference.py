"""Conv-window references that never pad: each tap gathers the input pixels its output positions read, where they
lie inside the image. Python integers compute the positions, so any int64 stride, padding or dilation is exact and
only the output (small in the tests) is allocated, where padding the input first would allocate 10^11 values."""
import itertools

import torch


def output_size(size, kernel, stride, pad, dilation):
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _axis(size, out, k, stride, pad, dilation):
    """The output positions whose tap k reads inside the image, and the input positions they read."""
    positions = [p * stride - pad + k * dilation for p in range(out)]
    kept = [p for p, row in enumerate(positions) if 0 <= row < size]
    return torch.tensor(kept, dtype=torch.long), torch.tensor([positions[p] for p in kept], dtype=torch.long)


def taps(x, kernel_h, kernel_w, stride, padding, dilation):
    """Yields (i, j, window) per tap: window[n, c, p, q] = x[n, c, p*sh - ph + i*dh, q*sw - pw + j*dw], 0 where that
    lies outside the image (differentiable with respect to x)."""
    n, c, h, w = x.shape
    out_h = output_size(h, kernel_h, stride[0], padding[0], dilation[0])
    out_w = output_size(w, kernel_w, stride[1], padding[1], dilation[1])
    empty = n * c * out_h * out_w == 0  # (an empty output may be 2^32 wide: no positions to list)
    rows = [_axis(h, 0 if empty else out_h, i, stride[0], padding[0], dilation[0]) for i in range(kernel_h)]
    cols = [_axis(w, 0 if empty else out_w, j, stride[1], padding[1], dilation[1]) for j in range(kernel_w)]
    for i, j in itertools.product(range(kernel_h), range(kernel_w)):
        (out_rows, in_rows), (out_cols, in_cols) = rows[i], cols[j]
        # (index_put also where no position reads the image: the window stays a function of x for autograd.)
        window = x.new_zeros(n, c, out_h, out_w)
        window[:, :, out_rows[:, None], out_cols[None, :]] = x[:, :, in_rows[:, None], in_cols[None, :]]
        yield i, j, window


def conv2d(x, weight, bias, stride, padding, dilation, groups=1):
    """F.conv2d's function, by taps."""
    n, c_in = x.shape[:2]
    c_out, per_group, kh, kw = weight.shape
    out_h = output_size(x.shape[2], kh, stride[0], padding[0], dilation[0])
    out_w = output_size(x.shape[3], kw, stride[1], padding[1], dilation[1])
    y = x.new_zeros(n, c_out, out_h, out_w)
    for i, j, window in taps(x, kh, kw, stride, padding, dilation):
        w_tap = weight[:, :, i, j].reshape(groups, c_out // groups, per_group)
        grouped = window.reshape(n, groups, per_group, out_h, out_w)
        y = y + torch.einsum("goc,ngchw->ngohw", w_tap, grouped).reshape(n, c_out, out_h, out_w)
    return y if bias is None else y + bias.view(1, -1, 1, 1)
