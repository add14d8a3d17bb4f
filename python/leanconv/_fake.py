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
