"""The bandwidth-minded CUDA paths against the CPU kernels and float64 references, at shapes that run each of
their loops, chunks and fallbacks at least twice:

- the deterministic generated backward (a stable sort by ring entry, then each entry's terms added in position
  order): the CPU kernel's order, so the same bits, and no cost that grows with the virtual sequence's length;
- the block-epilogue passes: several chunks per channel, several NHWC channel tiles, 16-byte vectors and their
  scalar fallbacks (odd sizes, a storage offset of one element), empty batches, the same bits run to run;
- the shifted sum in NCHW and channels_last (no layout copies) and the overlap-add backward's warp path.

Each test runs on the CPU too (the CPU against itself), so the arguments stay valid where no GPU is at hand.
"""
import contextlib
import time

import pytest
import torch

import leanconv  # noqa: F401
from conftest import DEVICES, requires_cuda
from leanconv import ops
from leanconv.reference.generated import ring_indices_and_signs

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["float32", "float64", "float16", "bfloat16"]
# Relative to the largest expected magnitude: one rounding to the dtype plus differently ordered op-math sums.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 3e-2}


def relative_difference(actual, expected):
    actual, expected = actual.detach().cpu().double(), expected.detach().cpu().double()
    if expected.numel() == 0:
        return 0.0
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1)).item()


@contextlib.contextmanager
def deterministic_algorithms(enabled=True):
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


# ---- generated: the deterministic backward -------------------------------------------------------------------

# (ring_size, total, offset, numel), each a different shape of the runs the sort makes.
GENERATED_CASES = {
    "one entry, one run over everything": (1, 50, 0, 50),
    "small ring, runs of ~9": (97, 1000, 100, 900),
    "runs of ~49, 13-bit keys": (4099, 300000, 12345, 200000),
    "more entries than positions, 21-bit keys": ((1 << 20) + 3, 1 << 22, 5, 70000),
    "64-bit layout crossing 2^32": (1000, (1 << 33) + 17, (1 << 32) - 100, 5000),
}


def ring_gradient_reference(grad, ring_size, seed, total, offset, scale):
    index, sign = ring_indices_and_signs(seed, total, ring_size, offset, grad.numel())
    terms = sign.double() * grad.detach().cpu().double().flatten() * scale
    return torch.zeros(ring_size, dtype=torch.float64).index_add_(0, index, terms)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(GENERATED_CASES.values()), ids=list(GENERATED_CASES))
def test_deterministic_generated_backward_gives_the_cpu_bits(device, dtype, case):
    # The CPU adds each entry's terms in increasing position order, each term g * (+-scale) rounded on its own;
    # the deterministic CUDA backward adds them in the same order, so every dtype matches bit for bit.
    ring_size, total, offset, numel = case
    grad = torch.randn(numel).to(dtype)
    with deterministic_algorithms():
        actual = ops.generate_weights_backward(grad.to(device), ring_size, 7, total, offset, 0.3)
        again = ops.generate_weights_backward(grad.to(device), ring_size, 7, total, offset, 0.3)
    expected = ops.generate_weights_backward(grad, ring_size, 7, total, offset, 0.3)
    assert torch.equal(actual.cpu(), expected)
    assert torch.equal(actual, again)
    reference = ring_gradient_reference(grad, ring_size, 7, total, offset, 0.3)
    assert relative_difference(actual, reference) < TOLERANCE[dtype]


@requires_cuda
def test_deterministic_generated_backward_over_several_sort_chunks():
    # cuda/generated.cu sorts at most 2^24 positions at a time: 2^24 + 4097 positions are two chunks, and an
    # entry's sum continues from the first into the second in position order.
    numel, ring_size, total, offset = (1 << 24) + 4097, 4099, 1 << 26, 777
    grad = torch.randn(numel)
    with deterministic_algorithms():
        actual = ops.generate_weights_backward(grad.cuda(), ring_size, 3, total, offset, 0.5)
    assert torch.equal(actual.cpu(), ops.generate_weights_backward(grad, ring_size, 3, total, offset, 0.5))


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_generated_backward_costs_nothing_in_the_sequence_length(device):
    # A small range far into a sequence of 2^33 positions: the work is the range's, not the sequence's (a walk
    # over the whole sequence would take many seconds).
    total, numel, ring_size = (1 << 33) + 12345, 64 * 64 * 9, 1000003
    offset = total - 3 * numel
    grad = torch.randn(numel)
    on_device = grad.to(device)
    with deterministic_algorithms():
        ops.generate_weights_backward(on_device, ring_size, 5, total, offset, 0.25)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        actual = ops.generate_weights_backward(on_device, ring_size, 5, total, offset, 0.25)
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"{elapsed:.3f} s for {numel} positions"
    assert torch.equal(actual.cpu(), ops.generate_weights_backward(grad, ring_size, 5, total, offset, 0.25))


# ---- block epilogue: the channel passes ----------------------------------------------------------------------

# (N, C, H, W), channels_last, storage offset in elements. The chunk counts are those of an H200 (132 SMs: 528
# blocks wanted per reduction); each names what it runs in cuda/channel_passes.cuh.
EPILOGUE_CASES = {
    "nchw vectors, 2 to 9 chunks a channel": ((4, 8, 64, 72), False, 0),
    "nchw 16 to 66 chunks a channel": ((8, 4, 128, 132), False, 0),
    "nchw 7x7 planes, groups across planes": ((300, 8, 7, 7), False, 0),
    "nchw misaligned by one element": ((4, 8, 64, 72), False, 1),
    "nhwc vectors, 2 to 5 channel tiles, 25 row chunks": ((2, 304, 20, 20), True, 0),
    "nhwc odd channels, 28 to 110 row chunks": ((4, 37, 30, 30), True, 0),
    "nhwc misaligned by one element": ((2, 304, 20, 20), True, 1),
    "nchw empty batch": ((0, 8, 5, 5), False, 0),
    "nhwc empty batch": ((0, 8, 5, 5), True, 0),
}


def feature_map(values, device, channels_last, offset):
    """`values` on `device` in the layout, its data `offset` elements into its storage (a misaligned pointer)."""
    format = torch.channels_last if channels_last else torch.contiguous_format
    dense = values.to(device).contiguous(memory_format=format)
    if offset == 0 or dense.numel() == 0:
        return dense
    storage = torch.empty(dense.numel() + offset, dtype=dense.dtype, device=device)
    placed = storage[offset:].as_strided(dense.shape, dense.stride())
    placed.copy_(dense)
    return placed


def parameter_dtype(dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def assert_close_to_cpu_and_float64(actual, expected, reference, dtype):
    for a, e, r in zip(actual, expected, reference):
        if e is None:
            assert a is None
            continue
        assert a.shape == e.shape and a.dtype == e.dtype and a.stride() == e.stride()
        assert relative_difference(a, e) < TOLERANCE[dtype]
        if r is not None:
            assert relative_difference(a, r) < TOLERANCE[dtype]


def assert_same_bits(first, second):
    for a, b in zip(first, second):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(EPILOGUE_CASES.values()), ids=list(EPILOGUE_CASES))
def test_batch_norm_epilogue_passes(device, dtype, case):
    from op_catalogue import batch_norm_epilogue_backward_reference, batch_norm_epilogue_reference
    shape, channels_last, offset = case
    channels, math = shape[1], parameter_dtype(dtype)
    x, residual, grad = ((torch.randn(shape) * 2 + 1).to(dtype), torch.randn(shape).to(dtype),
                         torch.randn(shape).to(dtype))
    weight, bias = torch.randn(channels).to(math), torch.randn(channels).to(math)
    grad_mean, grad_invstd = torch.randn(channels).to(math), torch.randn(channels).to(math)

    def forward(on):
        return ops.batch_norm_epilogue(feature_map(x, on, channels_last, offset), weight.to(on), bias.to(on),
                                       feature_map(residual, on, channels_last, offset), relu=True, eps=1e-5)

    def backward(on, out, mean, invstd):  # the CPU's forward outputs, so both devices reduce the same values
        return torch.ops.leanconv.batch_norm_epilogue_backward(
            feature_map(grad, on, channels_last, offset), grad_mean.to(on), grad_invstd.to(on),
            feature_map(out, on, channels_last, offset), feature_map(x, on, channels_last, offset), weight.to(on),
            mean.to(on), invstd.to(on), True, [True, True, True, True])

    expected = forward("cpu")
    actual, again = forward(device), forward(device)
    assert_same_bits(actual, again)
    # The reference's statistics of no values are NaN; the op's are mean 0, variance 0.
    reference = (batch_norm_epilogue_reference(x.double(), weight.double(), bias.double(), residual.double(), True,
                                               1e-5) if x.numel() else [None] * 4)
    assert_close_to_cpu_and_float64(actual, expected, reference, dtype)

    out, mean, invstd, _ = expected
    expected_grads = backward("cpu", out, mean, invstd)
    actual_grads, again = backward(device, out, mean, invstd), backward(device, out, mean, invstd)
    assert_same_bits(actual_grads, again)
    reference_grads = (batch_norm_epilogue_backward_reference(
        grad.double(), grad_mean.double(), grad_invstd.double(), out.double(), x.double(), weight.double(),
        mean.double(), invstd.double(), True, [True, True, True, True]) if x.numel() else [None] * 4)
    assert_close_to_cpu_and_float64(actual_grads, expected_grads, reference_grads, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(EPILOGUE_CASES.values()), ids=list(EPILOGUE_CASES))
def test_affine_epilogue_passes(device, dtype, case):
    from op_catalogue import affine_epilogue_backward_reference, affine_epilogue_reference
    shape, channels_last, offset = case
    channels, math = shape[1], parameter_dtype(dtype)
    x, residual, grad = torch.randn(shape).to(dtype), torch.randn(shape).to(dtype), torch.randn(shape).to(dtype)
    scale, shift = torch.randn(channels).to(math), torch.randn(channels).to(math)

    def forward(on):
        return ops.affine_epilogue(feature_map(x, on, channels_last, offset), scale.to(on), shift.to(on),
                                   feature_map(residual, on, channels_last, offset), relu=True)

    def backward(on, out):
        return torch.ops.leanconv.affine_epilogue_backward(
            feature_map(grad, on, channels_last, offset), feature_map(out, on, channels_last, offset),
            feature_map(x, on, channels_last, offset), scale.to(on), True, [True, True, True, True])

    expected = forward("cpu")
    actual = forward(device)
    assert torch.equal(actual, forward(device))
    reference = affine_epilogue_reference(x.double(), scale.double(), shift.double(), residual.double(), True)
    assert_close_to_cpu_and_float64([actual], [expected], [reference], dtype)

    expected_grads = backward("cpu", expected)
    actual_grads = backward(device, expected)
    assert_same_bits(actual_grads, backward(device, expected))
    reference_grads = affine_epilogue_backward_reference(grad.double(), expected.double(), x.double(), scale.double(),
                                                         True, [True, True, True, True])
    assert_close_to_cpu_and_float64(actual_grads, expected_grads, reference_grads, dtype)


# ---- filter summary: the shifted sum and the overlap-add -----------------------------------------------------

# kernel (kh, kw), channel step, stride, padding, dilation, z's (N, M, H, W).
SHIFTED_SUM_CASES = {
    "3x3, stride 1, padding 1": ((3, 3), 2, (1, 1), (1, 1), (1, 1), (2, 12, 11, 10)),
    "3x3, stride 2, padding 1, dilation 2": ((3, 3), 5, (2, 2), (1, 1), (2, 2), (2, 12, 11, 10)),
    "2x3, strides (3, 2), padding (2, 0), dilation (2, 3)": ((2, 3), 7, (3, 2), (2, 0), (2, 3), (3, 5, 13, 12)),
    "1x1 output, contiguous in both layouts": ((3, 3), 1, (1, 1), (0, 0), (1, 1), (2, 6, 3, 3)),
    "empty batch": ((3, 3), 2, (1, 1), (1, 1), (1, 1), (0, 6, 5, 5)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", list(SHIFTED_SUM_CASES.values()), ids=list(SHIFTED_SUM_CASES))
def test_shifted_sum_in_both_layouts(device, dtype, channels_last, case):
    # Each output adds its taps in the CPU kernel's order (i, then j): the same bits in every dtype, and the output
    # in the input's memory format with the CPU's strides (the fake kernel's promise).
    from op_catalogue import shifted_sum_backward_reference, shifted_sum_reference
    kernel, step, stride, padding, dilation, shape = case
    format = torch.channels_last if channels_last else torch.contiguous_format
    z = torch.randn(shape).to(dtype).contiguous(memory_format=format)
    expected = ops.shifted_sum(z, kernel, step, stride, padding, dilation)
    actual = ops.shifted_sum(z.to(device), kernel, step, stride, padding, dilation)
    assert actual.stride() == expected.stride() and torch.equal(actual.cpu(), expected)
    reference = shifted_sum_reference(z.double(), *kernel, step, stride, padding, dilation)
    assert relative_difference(actual, reference) < TOLERANCE[dtype]

    grad = torch.randn(expected.shape).to(dtype).contiguous(memory_format=format)
    args = (*kernel, step, list(stride), list(padding), list(dilation), list(shape[2:]))
    expected_grad = torch.ops.leanconv.shifted_sum_backward(grad, *args)
    actual_grad = torch.ops.leanconv.shifted_sum_backward(grad.to(device), *args)
    assert actual_grad.stride() == expected_grad.stride() and torch.equal(actual_grad.cpu(), expected_grad)
    reference_grad = shifted_sum_backward_reference(grad.double(), *args)
    assert relative_difference(actual_grad, reference_grad) < TOLERANCE[dtype]


# (C_out, C_in, kh, kw, s), whether one thread adds each entry (the CPU's order: the same bits) or a warp does.
OVERLAP_ADD_CASES = {
    "thread per entry, K < 32 s": ((8, 8, 3, 3, 4), True),
    "warp per entry, s = 1": ((8, 64, 3, 3, 1), False),
    "warp per entry, 60 unwrapped positions per entry": ((3, 40, 3, 3, 2), False),
    "warp per entry, fewer filters than lanes": ((2, 100, 1, 1, 1), False),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(OVERLAP_ADD_CASES.values()), ids=list(OVERLAP_ADD_CASES))
def test_overlap_add_backward(device, dtype, case):
    from op_catalogue import filter_summary_weight_backward_reference
    (out_channels, in_channels, kh, kw, s), same_order_as_cpu = case
    grad = torch.randn(out_channels, in_channels, kh, kw).to(dtype)
    length = out_channels * s
    expected = ops.filter_summary_weight_backward(grad, length, s)
    actual = ops.filter_summary_weight_backward(grad.to(device), length, s)
    assert torch.equal(actual, ops.filter_summary_weight_backward(grad.to(device), length, s))
    if same_order_as_cpu or device == "cpu":
        assert torch.equal(actual.cpu(), expected)
    assert relative_difference(actual, expected) < TOLERANCE[dtype]
    reference = filter_summary_weight_backward_reference(grad.double(), length, s)
    assert relative_difference(actual, reference) < TOLERANCE[dtype]
