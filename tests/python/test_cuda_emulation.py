"""Every CUDA kernel of cuda/, run on the CPU under the emulated CUDA execution model (tests/python/cuda_emulation.py,
cuda/emulation/), against the CPU kernel (the same bits where the docs promise them) and a float64 reference.

- every sample of the op catalogue of every op that cuda/ registers, in float32, float64, float16 and bfloat16;
- each kernel's paths at shapes that run every loop at least twice (grid-stride wraps, several tiles, several
  reduction chunks, several warp parts, several sort chunks), NCHW and channels_last, non-contiguous and misaligned
  (storage offset) operands, empty tensors, every flag set of the block-epilogue passes;
- three schedules of a block's threads (a missing barrier changes the result: the kernels' bits must not) and
  emulated devices of 1, 7 and 132 SMs (the reductions' chunking);
- the coverage list: a test fails when a __global__ kernel in cuda/ has no emulated case.
"""
import contextlib
import itertools
import os
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import cuda_emulation
from cuda_emulation import emulated
import test_cuda_kernels_speedpaths as speedpaths
from test_cuda_kernels_speedpaths import deterministic_algorithms, relative_difference
from op_catalogue import (OPS_BY_NAME, affine_epilogue_backward_reference, affine_epilogue_reference,
                          batch_norm_epilogue_backward_reference, batch_norm_epilogue_reference,
                          filter_summary_weight_backward_reference, generate_weights_backward_reference,
                          grouped_conv2d_backward_reference, op_samples, shifted_sum_backward_reference,
                          shifted_sum_reference)

CUDA_DIR = Path(__file__).resolve().parents[2] / "cuda"
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Relative to the largest expected magnitude: one rounding to the dtype plus differently ordered op-math sums.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 3e-2}
SCHEDULES = ["forward", "reverse", "random"]


def emulated_ops():
    """The ops cuda/ registers for CUDA tensors (each also registered as leanconv_cuda_emulated::<op>)."""
    names = torch._C._dispatch_get_registrations_for_dispatch_key("CPU")
    return sorted(n.split("::", 1)[1] for n in names if n.startswith("leanconv_cuda_emulated::"))


def global_kernels():
    """The name of every __global__ kernel template in cuda/."""
    kernels = set()
    for path in sorted(CUDA_DIR.glob("*.cu")) + sorted(CUDA_DIR.glob("*.cuh")):
        text = re.sub(r"//[^\n]*", "", path.read_text())
        kernels.update(re.findall(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(", text))
    return kernels


@contextlib.contextmanager
def environment(**values):
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def as_list(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def assert_matches(actual, expected, reference, dtype, same_bits=False):
    """Each output: the CPU kernel's shape, dtype and strides, its bits (same_bits) or within the dtype's tolerance
    of it, and within the tolerance of the float64 reference (None: not computed)."""
    for i, (a, e) in enumerate(zip(as_list(actual), as_list(expected))):
        if e is None or (isinstance(e, torch.Tensor) and not e.defined() if hasattr(e, "defined") else False):
            continue
        assert a.shape == e.shape and a.dtype == e.dtype, (i, a.shape, e.shape, a.dtype, e.dtype)
        if a.dim() == 4 and a.numel() > 0:
            assert a.stride() == e.stride(), (i, a.stride(), e.stride())
        if same_bits:
            assert torch.equal(a, e), (i, relative_difference(a, e))
        assert relative_difference(a, e) < TOLERANCE[dtype], (i, relative_difference(a, e))
    if reference is not None:  # within the dtype's tolerance, or no further from it than the CPU kernel is
        for i, (a, e, r) in enumerate(zip(as_list(actual), as_list(expected), as_list(reference))):
            if r is not None and a is not None:
                error = relative_difference(a, r)
                assert error < max(TOLERANCE[dtype], 1.5 * relative_difference(e, r)), (i, error)


def assert_same_bits(first, second):
    for a, b in zip(as_list(first), as_list(second)):
        assert (a is None and b is None) or torch.equal(a, b)


# ---- every catalogue sample of every op cuda/ registers ------------------------------------------------------

# Ops whose CUDA kernels promise the CPU kernel's bits (each output adds its terms in the CPU's order).
SAME_BITS = {"shifted_sum", "shifted_sum_backward", "filter_summary_weight", "generate_weights"}
OP_MATH_PARAMETERS = {  # positions of per-channel tensors the epilogue ops take in the op-math type
    "batch_norm_epilogue": (1, 2), "batch_norm_epilogue_backward": (1, 2, 5, 6, 7),
    "affine_epilogue": (1, 2), "affine_epilogue_backward": (3,),
}


def catalogue_cases():
    cases = []
    for name in emulated_ops():
        for index in range(len(op_samples(OPS_BY_NAME[name]))):
            cases.append(pytest.param(name, index, id=f"{name}-{index}"))
    return cases


def catalogue_sample(name, index, dtype):
    sample = op_samples(OPS_BY_NAME[name], "cpu", torch.float64)[index]
    op_math = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    keep = OP_MATH_PARAMETERS.get(name, ())
    converted = []
    for i, t in enumerate(sample):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            t = t.to(op_math if i in keep else dtype)
        converted.append(t)
    # The reference sees the values the kernels see (rounded to the dtype), in float64.
    upcast = tuple(t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in converted)
    return upcast, tuple(converted)


def test_every_gpu_op_has_an_emulated_op():
    # LEANCONV_CUDA_KERNELS registers each op of a CUDA file under both builds: the emulated library has exactly
    # the ops whose CUDA kernels cuda/ defines.
    registered = set()
    for path in CUDA_DIR.glob("*.cu"):
        registered.update(re.findall(r'm\.impl\("(\w+)"', path.read_text()))
    assert registered and set(emulated_ops()) == registered


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("name,index", catalogue_cases())
def test_catalogue_samples_on_the_emulated_kernels(name, index, dtype):
    reference_sample, sample = catalogue_sample(name, index, dtype)
    expected = getattr(torch.ops.leanconv, name)(*sample)
    actual = getattr(emulated, name)(*sample)
    reference = OPS_BY_NAME[name].reference(*reference_sample)
    deterministic_order = name != "generate_weights_backward" or torch.are_deterministic_algorithms_enabled()
    assert_matches(actual, expected, reference, dtype, same_bits=name in SAME_BITS)
    if deterministic_order:  # the same bits whatever the order of the threads and blocks
        with cuda_emulation.device(schedule="random", seed=index + 1):
            assert_same_bits(getattr(emulated, name)(*sample), actual)


# ---- the block-epilogue passes: every flag set, chunking, layouts, alignment ----------------------------------

# (N, C, H, W), channels_last, storage offset in elements; with 7 SMs (28 blocks wanted per reduction) each names
# what it runs in cuda/channel_passes.cuh.
EPILOGUE_CASES = {
    "nchw vectors, several chunks a channel": ((4, 3, 16, 16), False, 0),
    "nchw 7x7 planes, groups across planes": ((40, 2, 7, 7), False, 0),
    "nchw misaligned by one element": ((4, 3, 16, 16), False, 1),
    "nhwc vectors, 2 channel tiles, several row chunks": ((2, 136, 6, 6), True, 0),
    "nhwc odd channels": ((4, 37, 9, 9), True, 0),
    "nhwc misaligned by one element": ((2, 136, 6, 6), True, 1),
    "nchw empty batch": ((0, 8, 5, 5), False, 0),
    "nhwc empty batch": ((0, 8, 5, 5), True, 0),
}


def feature_map(values, channels_last, offset):
    """`values` on the CPU in the layout, its data `offset` elements into its storage (a misaligned pointer)."""
    return speedpaths.feature_map(values, "cpu", channels_last, offset)


def op_math(dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


@pytest.mark.parametrize("sm_count", [1, 7, 132])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(EPILOGUE_CASES.values()), ids=list(EPILOGUE_CASES))
def test_batch_norm_epilogue_passes(case, dtype, sm_count):
    shape, channels_last, offset = case
    channels, math = shape[1], op_math(dtype)
    x, residual, grad = ((torch.randn(shape) * 2 + 1).to(dtype), torch.randn(shape).to(dtype),
                         torch.randn(shape).to(dtype))
    weight, bias = torch.randn(channels).to(math), torch.randn(channels).to(math)
    grad_mean, grad_invstd = torch.randn(channels).to(math), torch.randn(channels).to(math)
    placed = lambda t: feature_map(t, channels_last, offset)  # noqa: E731

    def forward(op, relu, with_weight, with_residual):
        return op(placed(x), weight if with_weight else None, bias if with_weight else None,
                  placed(residual) if with_residual else None, relu, 1e-5)

    def backward(op, out, mean, invstd, relu, with_weight, mask):
        return op(placed(grad), grad_mean if mask[1] else None, grad_invstd if mask[1] else None,
                  placed(out) if relu else None, placed(x), weight if with_weight else None, mean, invstd, relu, mask)

    with cuda_emulation.device(sm_count=sm_count):
        for relu, with_weight, with_residual in itertools.product([False, True], repeat=3):
            expected = forward(torch.ops.leanconv.batch_norm_epilogue, relu, with_weight, with_residual)
            actual = forward(emulated.batch_norm_epilogue, relu, with_weight, with_residual)
            reference = (batch_norm_epilogue_reference(x.double(), weight.double() if with_weight else None,
                                                       bias.double() if with_weight else None,
                                                       residual.double() if with_residual else None, relu, 1e-5)
                         if x.numel() else None)  # the reference's statistics of no values are NaN
            assert_matches(actual, expected, reference, dtype)
            out, mean, invstd, _ = expected
            # Every gradient the backward can be asked for: the masked gradient written (mask[0]) or not, with
            # and without the statistics' gradients.
            for mask in ([True, with_weight, True, True], [True, False, False, False], [False, with_weight, True,
                                                                                        False]):
                expected_grads = backward(torch.ops.leanconv.batch_norm_epilogue_backward, out, mean, invstd, relu,
                                          with_weight, mask)
                actual_grads = backward(emulated.batch_norm_epilogue_backward, out, mean, invstd, relu, with_weight,
                                        mask)
                reference_grads = (batch_norm_epilogue_backward_reference(
                    grad.double(), grad_mean.double() if mask[1] else None,
                    grad_invstd.double() if mask[1] else None, out.double() if relu else None, x.double(),
                    weight.double() if with_weight else None, mean.double(), invstd.double(), relu, mask)
                    if x.numel() else None)
                assert_matches(actual_grads, expected_grads, reference_grads, dtype)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(EPILOGUE_CASES.values()), ids=list(EPILOGUE_CASES))
def test_affine_epilogue_passes_every_flag_set(case, dtype):
    # affine_kernel's 16 flag sets: mask (the backward's relu mask), x (a second per-channel term), residual, relu.
    shape, channels_last, offset = case
    channels, math = shape[1], op_math(dtype)
    x, residual, grad = torch.randn(shape).to(dtype), torch.randn(shape).to(dtype), torch.randn(shape).to(dtype)
    scale, shift = torch.randn(channels).to(math), torch.randn(channels).to(math)
    placed = lambda t: feature_map(t, channels_last, offset)  # noqa: E731
    for relu, with_scale, with_residual in itertools.product([False, True], repeat=3):
        args = (placed(x), scale if with_scale else None, shift, placed(residual) if with_residual else None, relu)
        expected = torch.ops.leanconv.affine_epilogue(*args)
        actual = emulated.affine_epilogue(*args)
        reference = affine_epilogue_reference(x.double(), scale.double() if with_scale else None, shift.double(),
                                              residual.double() if with_residual else None, relu)
        assert_matches(actual, expected, reference, dtype)
        for mask in ([True, with_scale, True, True], [True, False, False, False], [False, with_scale, False, True]):
            grad_args = (placed(grad), placed(expected) if relu else None, placed(x), scale if with_scale else None,
                         relu, mask)
            expected_grads = torch.ops.leanconv.affine_epilogue_backward(*grad_args)
            actual_grads = emulated.affine_epilogue_backward(*grad_args)
            reference_grads = affine_epilogue_backward_reference(
                grad.double(), expected.double() if relu else None, x.double(),
                scale.double() if with_scale else None, relu, mask)
            assert_matches(actual_grads, expected_grads, reference_grads, dtype)


@pytest.mark.parametrize("shape,channels_last", [((8, 2, 128, 132), False), ((2, 4, 132, 130), True)],
                         ids=["nchw 33 chunks a channel", "nhwc 33 row chunks"])
def test_reductions_of_more_chunks_than_a_warp_has_lanes(shape, channels_last):
    # The per-channel finish gives lane l the chunks l, l + 32, ...: with 33 chunks its loop runs twice.
    x = feature_map(torch.randn(shape) + 0.5, channels_last, 0)
    weight, bias, grad = torch.randn(shape[1]), torch.randn(shape[1]), feature_map(torch.randn(shape), channels_last, 0)
    expected = torch.ops.leanconv.batch_norm_epilogue(x, weight, bias, None, False, 1e-5)
    actual = emulated.batch_norm_epilogue(x, weight, bias, None, False, 1e-5)
    assert_matches(actual, expected, batch_norm_epilogue_reference(x.double(), weight.double(), bias.double(), None,
                                                                   False, 1e-5), torch.float32)
    out, mean, invstd, _ = expected
    mask = [True, True, True, False]
    args = (grad, None, None, None, x, weight, mean, invstd, False, mask)
    reference = batch_norm_epilogue_backward_reference(grad.double(), None, None, None, x.double(), weight.double(),
                                                       mean.double(), invstd.double(), False, mask)
    assert_matches(emulated.batch_norm_epilogue_backward(*args), torch.ops.leanconv.batch_norm_epilogue_backward(*args),
                   reference, torch.float32)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_epilogue_reductions_give_the_same_bits_in_every_schedule(channels_last, schedule):
    # Each reduction has a fixed tree: the order in which a block's threads or the grid's blocks run changes nothing.
    x = feature_map(torch.randn(6, 40, 9, 9), channels_last, 0)
    weight, bias = torch.randn(40), torch.randn(40)
    with cuda_emulation.device(sm_count=7):
        expected = emulated.batch_norm_epilogue(x, weight, bias, None, True, 1e-5)
        with cuda_emulation.device(schedule=schedule, seed=3):
            actual = emulated.batch_norm_epilogue(x, weight, bias, None, True, 1e-5)
    assert_same_bits(actual, expected)


# ---- filter summary: gather, overlap-add (both paths), shifted sum -------------------------------------------

# kernel (kh, kw), channel step, stride, padding, dilation, z's (N, M, H, W): the grid-stride loops wrap (more
# elements than 2^20 blocks would not fit a test; several blocks and both layouts do).
SHIFTED_SUM_CASES = {
    "3x3, stride 1, padding 1": ((3, 3), 2, (1, 1), (1, 1), (1, 1), (2, 12, 11, 10)),
    "3x3, stride 2, padding 1, dilation 2": ((3, 3), 5, (2, 2), (1, 1), (2, 2), (2, 12, 11, 10)),
    "2x3, strides (3, 2), padding (2, 0), dilation (2, 3)": ((2, 3), 7, (3, 2), (2, 0), (2, 3), (3, 5, 13, 12)),
    "1x1 output, contiguous in both layouts": ((3, 3), 1, (1, 1), (0, 0), (1, 1), (2, 6, 3, 3)),
    "empty batch": ((3, 3), 2, (1, 1), (1, 1), (1, 1), (0, 6, 5, 5)),
}


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "non-contiguous", "misaligned"])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(SHIFTED_SUM_CASES.values()), ids=list(SHIFTED_SUM_CASES))
def test_shifted_sum_and_its_adjoint(case, dtype, layout):
    kernel, step, stride, padding, dilation, shape = case

    def placed(t):
        if layout == "channels_last":
            return t.contiguous(memory_format=torch.channels_last)
        if layout == "non-contiguous":  # every other column of a wider tensor
            wide = torch.zeros(*t.shape[:3], 2 * t.shape[3], dtype=t.dtype)
            wide[..., ::2] = t
            return wide[..., ::2]
        return feature_map(t, False, 1 if layout == "misaligned" else 0)

    z = torch.randn(shape).to(dtype)
    args = (*kernel, step, list(stride), list(padding), list(dilation))
    expected = torch.ops.leanconv.shifted_sum(placed(z), *args)
    actual = emulated.shifted_sum(placed(z), *args)
    assert_matches(actual, expected, shifted_sum_reference(z.double(), *args), dtype, same_bits=True)

    grad = torch.randn(expected.shape).to(dtype)
    grad_args = (*args, list(shape[2:]))
    expected_grad = torch.ops.leanconv.shifted_sum_backward(placed(grad), *grad_args)
    actual_grad = emulated.shifted_sum_backward(placed(grad), *grad_args)
    assert_matches(actual_grad, expected_grad, shifted_sum_backward_reference(grad.double(), *grad_args), dtype,
                   same_bits=True)


# (C_out, C_in, kh, kw, s), whether one thread adds each entry (the CPU's order: the same bits) or a warp does.
OVERLAP_ADD_CASES = {
    "thread per entry, K < 32 s": ((8, 8, 3, 3, 4), True),
    "warp per entry, s = 1": ((8, 64, 3, 3, 1), False),
    "warp per entry, 60 unwrapped positions per entry": ((3, 40, 3, 3, 2), False),
    "warp per entry, fewer filters than lanes": ((2, 100, 1, 1, 1), False),
    "warp per entry, entries over several blocks": ((20, 64, 3, 3, 1), False),
}


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(OVERLAP_ADD_CASES.values()), ids=list(OVERLAP_ADD_CASES))
def test_overlap_add_backward(case, dtype, schedule):
    (out_channels, in_channels, kh, kw, s), same_order_as_cpu = case
    grad = torch.randn(out_channels, in_channels, kh, kw).to(dtype)
    length = out_channels * s
    expected = torch.ops.leanconv.filter_summary_weight_backward(grad, length, s)
    with cuda_emulation.device(schedule=schedule, seed=11):
        actual = emulated.filter_summary_weight_backward(grad, length, s)
    assert_matches(actual, expected, filter_summary_weight_backward_reference(grad.double(), length, s), dtype,
                   same_bits=same_order_as_cpu)
    assert_same_bits(actual, emulated.filter_summary_weight_backward(grad, length, s))


# ---- generated: forward, atomic backward, deterministic backward (32- and 64-bit keys, several sort chunks) ----

# (ring_size, total, offset, numel), each a different shape of the runs the sort makes.
GENERATED_CASES = {
    "one entry, one run over everything": (1, 50, 0, 50),
    "small ring, runs of ~9": (97, 1000, 100, 900),
    "runs of ~49": (409, 30000, 1234, 20000),
    "more entries than positions": (70003, 1 << 20, 5, 7000),
    "64-bit layout crossing 2^32": (1000, (1 << 33) + 17, (1 << 32) - 100, 5000),
}


@pytest.mark.parametrize("keys", ["32-bit", "64-bit"])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(GENERATED_CASES.values()), ids=list(GENERATED_CASES))
def test_deterministic_generated_backward_gives_the_cpu_bits(case, dtype, keys):
    # The CPU adds each entry's terms in increasing position order, each term g * (+-scale) rounded on its own; the
    # sort keeps that order within each entry. LEANCONV_TEST_SORT_CHUNK cuts the positions into sort chunks of
    # 3,000 (the build's 2^24 needs 16 M positions), so an entry's sum carries from one chunk into the next.
    ring_size, total, offset, numel = case
    grad = torch.randn(numel).to(dtype)
    expected = torch.ops.leanconv.generate_weights_backward(grad, ring_size, 7, total, offset, 0.3)
    with deterministic_algorithms(), environment(LEANCONV_TEST_WIDE_SORT_KEYS=int(keys == "64-bit"),
                                                 LEANCONV_TEST_SORT_CHUNK=3000):
        actual = emulated.generate_weights_backward(grad, ring_size, 7, total, offset, 0.3)
        with cuda_emulation.device(schedule="random", seed=5):
            again = emulated.generate_weights_backward(grad, ring_size, 7, total, offset, 0.3)
    reference = generate_weights_backward_reference(grad.double(), ring_size, 7, total, offset, 0.3)
    assert_matches(actual, expected, reference, dtype, same_bits=True)
    assert torch.equal(actual, again)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_atomic_generated_backward_and_the_forward_wrap_their_grid(dtype):
    # More positions than one pass of the grid covers would need 2^28 threads; several blocks and an uneven tail do.
    ring = torch.randn(300).to(dtype)
    args = (ring, 9, 100000, 77, [37, 41, 3], 0.5)
    assert torch.equal(emulated.generate_weights(*args), torch.ops.leanconv.generate_weights(*args))
    grad = torch.randn(37 * 41 * 3).to(dtype)
    with deterministic_algorithms(False):
        actual = emulated.generate_weights_backward(grad, 300, 9, 100000, 77, 0.5)
    reference = generate_weights_backward_reference(grad.double(), 300, 9, 100000, 77, 0.5)
    assert relative_difference(actual, reference) < TOLERANCE[dtype]


@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_an_empty_generated_range(deterministic):
    with deterministic_algorithms(deterministic):
        assert torch.equal(emulated.generate_weights_backward(torch.randn(0), 50, 3, 100, 10, 0.5), torch.zeros(50))
        assert emulated.generate_weights(torch.randn(50), 3, 100, 10, [0, 4], 0.5).shape == (0, 4)


# ---- low-rank: the fused eigen conv's tiles ------------------------------------------------------------------

# (N, C_in, C_out, (H, W), (kh, kw), R, stride, padding, dilation, bias): several pixel tiles of 64, several
# channel tiles of 64, several 16-channel chunks of the C_in*R intermediate, and partial tiles of each.
EIGEN_CASES = {
    "3 pixel tiles, 2 channel tiles, 3 chunks": (2, 12, 70, (9, 8), (3, 3), 4, (1, 1), (1, 1), (1, 1), True),
    "stride 2, dilation 2, no bias": (3, 5, 20, (11, 10), (3, 3), 2, (2, 2), (2, 1), (2, 2), False),
    "1x1, rank 1, 130 outputs": (1, 33, 130, (5, 5), (1, 1), 1, (1, 1), (0, 0), (1, 1), True),
}


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "misaligned"])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(EIGEN_CASES.values()), ids=list(EIGEN_CASES))
def test_eigen_conv2d_forward_tiles(case, dtype, layout):
    n, c_in, c_out, hw, (kh, kw), rank, stride, padding, dilation, has_bias = case
    x = torch.randn(n, c_in, *hw)
    basis, coeff = torch.randn(c_in, rank, kh, kw) / kh, torch.randn(c_out, c_in * rank) / c_in
    bias = torch.randn(c_out) if has_bias else None
    placed = feature_map(x.to(dtype), layout == "channels_last", 1 if layout == "misaligned" else 0)
    args = (basis.to(dtype), coeff.to(dtype), bias.to(dtype) if has_bias else None, list(stride), list(padding),
            list(dilation))
    expected = torch.ops.leanconv.eigen_conv2d(placed, *args)
    actual = emulated.eigen_conv2d(placed, *args)
    weight = torch.einsum("ocr,crhw->ochw", coeff.double().view(c_out, c_in, rank), basis.double())
    reference = F.conv2d(x.double(), weight, bias.double() if has_bias else None, stride, padding, dilation)
    assert_matches(actual, expected, reference, dtype)


# ---- multigrid: the grouped conv's forward, input gradient and weight gradient ---------------------------------

# (N, C_in, C_out, (H, W), kernel, groups, stride, padding, dilation): filter counts per group that are and are not
# multiples of the forward's 4, weight gradients over more than the block's 256 products.
GROUPED_CASES = {
    "3x3, groups of 2, 5 filters each": (2, 8, 20, (9, 10), 3, 4, (1, 1), (1, 1), (1, 1)),
    "3x3 stride 2, dilation 2": (3, 12, 6, (11, 9), 3, 3, (2, 2), (2, 1), (2, 2)),
    "1x1, groups of 8": (2, 16, 16, (6, 7), 1, 2, (1, 1), (0, 0), (1, 1)),
}


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "misaligned"])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(GROUPED_CASES.values()), ids=list(GROUPED_CASES))
def test_grouped_conv2d_forward_and_backward(case, dtype, layout):
    n, c_in, c_out, hw, k, groups, stride, padding, dilation = case
    x, weight, bias = torch.randn(n, c_in, *hw), torch.randn(c_out, c_in // groups, k, k), torch.randn(c_out)
    channels_last, offset = layout == "channels_last", 1 if layout == "misaligned" else 0
    placed = feature_map(x.to(dtype), channels_last, offset)
    geometry = (list(stride), list(padding), list(dilation), groups)
    expected = torch.ops.leanconv.grouped_conv2d(placed, weight.to(dtype), bias.to(dtype), *geometry)
    actual = emulated.grouped_conv2d(placed, weight.to(dtype), bias.to(dtype), *geometry)
    reference = F.conv2d(x.double(), weight.double(), bias.double(), stride, padding, dilation, groups)
    assert_matches(actual, expected, reference, dtype)

    grad = feature_map(torch.randn(reference.shape).to(dtype), channels_last, offset)
    for mask in ([True, True], [True, False], [False, True]):
        expected_grads = torch.ops.leanconv.grouped_conv2d_backward(grad, placed, weight.to(dtype), *geometry, mask)
        actual_grads = emulated.grouped_conv2d_backward(grad, placed, weight.to(dtype), *geometry, mask)
        reference_grads = grouped_conv2d_backward_reference(grad.double(), x.double(), weight.double(), *geometry,
                                                            mask)
        assert_matches(actual_grads, expected_grads, reference_grads, dtype)


def test_grouped_conv2d_of_an_empty_batch():
    x, weight = torch.randn(0, 4, 5, 5), torch.randn(4, 2, 3, 3)
    assert emulated.grouped_conv2d(x, weight, None, [1, 1], [1, 1], [1, 1], 2).shape == (0, 4, 5, 5)
    grad_x, grad_w = emulated.grouped_conv2d_backward(torch.randn(0, 4, 5, 5), x, weight, [1, 1], [1, 1], [1, 1], 2,
                                                      [True, True])
    assert grad_x.shape == x.shape and torch.equal(grad_w, torch.zeros_like(weight))


# ---- the launch limits ---------------------------------------------------------------------------------------

def test_a_launch_over_the_gpu_limits_is_refused_naming_the_kernel():
    # cuda/launch.cuh's check, on the int64 sizes before any narrowing (an NCHW reduction of 2^31 channels would
    # ask for grid.x = 2^31; its operands do not fit a test, the check's entry does).
    for dims, words in [((1 << 31, 1, 1, 256, 1, 1, 256), "grid.x"), ((1, 70000, 1, 256, 1, 1, 256), "grid.y"),
                        ((1, 1, 1, 2048, 1, 1, 1024), "over CUDA's 1,024"),
                        ((1, 1, 1, 512, 1, 1, 256), "__launch_bounds__"), ((0, 1, 1, 256, 1, 1, 256), "empty")]:
        message = cuda_emulation.check_launch("reduce_nchw_kernel", *dims)
        assert "reduce_nchw_kernel" in message and words in message, message
    assert cuda_emulation.check_launch("reduce_nchw_kernel", 65535, 65535, 1, 256, 1, 1, 256) == ""


# ---- coverage ----------------------------------------------------------------------------------------------

def test_every_global_kernel_has_an_emulated_case():
    # Runs one small case of each op and path, then compares the kernels launched in this process with every
    # __global__ kernel in cuda/: a new kernel without an emulated case fails here. The list goes to the build
    # folder (make test-cuda-emulation prints it).
    small = torch.randn(2, 8, 6, 6)
    emulated.batch_norm_epilogue(small, None, None, None, False, 1e-5)
    emulated.batch_norm_epilogue(small.contiguous(memory_format=torch.channels_last), None, None, None, False, 1e-5)
    emulated.affine_epilogue(small, torch.randn(8), torch.randn(8), None, True)
    emulated.filter_summary_weight(torch.randn(12), 4, 3, 3, 3, 3)
    emulated.filter_summary_weight_backward(torch.randn(4, 3, 3, 3), 12, 3)
    emulated.filter_summary_weight_backward(torch.randn(2, 64, 3, 3), 2, 1)
    emulated.shifted_sum_backward(emulated.shifted_sum(small, 3, 3, 1, [1, 1], [1, 1], [1, 1]), 3, 3, 1, [1, 1],
                                  [1, 1], [1, 1], [6, 6])
    emulated.generate_weights(torch.randn(10), 1, 100, 0, [20], 1.0)
    for deterministic in (False, True):
        with deterministic_algorithms(deterministic):
            emulated.generate_weights_backward(torch.randn(20), 10, 1, 100, 0, 1.0)
    emulated.eigen_conv2d(small, torch.randn(8, 1, 3, 3), torch.randn(4, 8), None, [1, 1], [1, 1], [1, 1])
    weight = torch.randn(8, 2, 3, 3)
    y = emulated.grouped_conv2d(small, weight, None, [1, 1], [1, 1], [1, 1], 4)
    emulated.grouped_conv2d_backward(y, small, weight, [1, 1], [1, 1], [1, 1], 4, [True, True])

    launched = cuda_emulation.launched_kernels()
    names = {name.split("<", 1)[0] for name in launched}
    lines = [f"{kernel}: {sum(c for n, c in launched.items() if n.split('<', 1)[0] == kernel)} launches"
             for kernel in sorted(global_kernels())]
    build = Path(os.environ.get("LEANCONV_BUILD_DIR", CUDA_DIR.parent / "build" / "cmake"))
    (build / "cuda_emulation_coverage.txt").write_text("\n".join(lines) + "\n")
    missing = sorted(global_kernels() - names)
    assert len(global_kernels()) >= 17 and not missing, f"__global__ kernels without an emulated case: {missing}"
