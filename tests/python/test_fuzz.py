"""Fuzzing across ops: every windowed op at windows near the int64 limits, and every op of the catalogue with its
tensors on mixed devices. Each op's own arguments are fuzzed in its family's file, test_fuzz_<family>.py (a new
family adds its own; test_registry.py checks that every op of the catalogue has a fuzz test there); fuzz_draws.py
holds what they all draw from and how a drawn call is judged."""
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import leanconv  # noqa: F401
from fuzz_draws import (INT64_MAX, SMALL_RESULT, FLOATS, time_limit, fits, numel, tolerance, check, conv_axis,
                        seed_values)
from op_catalogue import (OPS, op_samples, eigen_conv2d_backward_reference, eigen_conv2d_reference,
                          grouped_conv2d_backward_reference, grouped_conv2d_reference,
                          segment_conv2d_backward_reference, segment_conv2d_reference, shifted_sum_backward_reference,
                          shifted_sum_reference)


# ---- every windowed op at windows near the int64 limits -----------------------------------------------------

# Window values past int32 (where a library's 32-bit index arithmetic or a size product wraps) and up to int64's.
HUGE = [2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 2 ** 40, 2 ** 58, 2 ** 62 - 1, 2 ** 62, INT64_MAX // 2, INT64_MAX]


def window_value(data, name, small):
    return data.draw(st.one_of(small, st.sampled_from(HUGE)), label=name)


def huge_window(data):
    """Small tensors under a window whose strides, paddings and dilations are often near the int64 limits."""
    pair = lambda name, small: [window_value(data, f"{name}[{a}]", small) for a in range(2)]  # noqa: E731
    kh, kw = data.draw(st.integers(1, 3), label="kernel_h"), data.draw(st.integers(1, 3), label="kernel_w")
    window = (pair("stride", st.integers(1, 3)), pair("padding", st.integers(0, 2)), pair("dilation", st.integers(1, 2)))
    hw = [data.draw(st.integers(0, 5), label="height"), data.draw(st.integers(0, 5), label="width")]
    out = [conv_axis(hw[a], (kh, kw)[a], window[0][a], window[1][a], window[2][a]) for a in range(2)]
    return kh, kw, window, hw, out


def _windowed_calls(op, data, dtype):
    """(call, reference, output size, leading output sizes, whether a gradient of the output's size was made) of one
    windowed op with small tensors; an output size is None where the window is invalid."""
    kh, kw, window, hw, out = huge_window(data)
    batch, c_in, c_out = (data.draw(st.integers(0, 2), label="batch"), data.draw(st.integers(1, 3), label="in"),
                          data.draw(st.integers(1, 3), label="out"))
    seed_values(data)
    x = torch.randn(batch, c_in, *hw, dtype=torch.float64).to(dtype)
    # A gradient of the output's shape where that is valid and small (where it is not, a backward call is invalid, and
    # a larger example discarded below); at most 9 channels.
    grad_out = out if (all(o is not None for o in out) and fits(numel([9, *out]))
                       and (batch == 0 or numel([batch, 9, *out]) <= SMALL_RESULT)) else [1, 1]
    grad_shape = lambda channels: [batch, channels, *grad_out]  # noqa: E731
    step = data.draw(st.integers(0, 4), label="channel_step")
    if op in ("shifted_sum", "shifted_sum_backward"):
        if op == "shifted_sum":
            return (lambda: torch.ops.leanconv.shifted_sum(x, kh, kw, step, *window),
                    lambda: shifted_sum_reference(x.double(), kh, kw, step, *window), out, [batch, c_in], True)
        grad = torch.randn(grad_shape(c_in), dtype=torch.float64).to(dtype)
        return (lambda: torch.ops.leanconv.shifted_sum_backward(grad, kh, kw, step, *window, hw),
                lambda: shifted_sum_backward_reference(grad.double(), kh, kw, step, *window, hw), out, [batch, c_in],
                grad_out == out)
    if op in ("segment_conv2d", "segment_conv2d_backward"):
        segments = torch.randn(c_out, c_in, dtype=torch.float64).to(dtype)
        if op == "segment_conv2d":
            return (lambda: torch.ops.leanconv.segment_conv2d(x, segments, kh, kw, step, *window),
                    lambda: segment_conv2d_reference(x.double(), segments.double(), kh, kw, step, *window), out,
                    [batch, c_out], True)
        grad = torch.randn(grad_shape(c_out), dtype=torch.float64).to(dtype)
        return (lambda: torch.ops.leanconv.segment_conv2d_backward(grad, x, segments, kh, kw, step, *window,
                                                                   [True, True]),
                lambda: segment_conv2d_backward_reference(grad.double(), x.double(), segments.double(), kh, kw, step,
                                                          *window, [True, True]), out, [batch, c_out],
                grad_out == out)
    if op in ("eigen_conv2d", "eigen_conv2d_backward"):
        rank = data.draw(st.integers(1, kh * kw), label="rank")
        basis = torch.randn(c_in, rank, kh, kw, dtype=torch.float64).to(dtype)
        coeff = torch.randn(c_out, c_in * rank, dtype=torch.float64).to(dtype)
        if op == "eigen_conv2d":
            return (lambda: torch.ops.leanconv.eigen_conv2d(x, basis, coeff, None, *window),
                    lambda: eigen_conv2d_reference(x.double(), basis.double(), coeff.double(), None, *window), out,
                    [batch, max(c_out, c_in * rank)], True)
        grad = torch.randn(grad_shape(c_out), dtype=torch.float64).to(dtype)
        return (lambda: torch.ops.leanconv.eigen_conv2d_backward(grad, x, basis, coeff, *window, [True, True, True]),
                lambda: eigen_conv2d_backward_reference(grad.double(), x.double(), basis.double(), coeff.double(),
                                                        *window, [True, True, True]), out,
                [batch, max(c_out, c_in * rank)], grad_out == out)
    groups = data.draw(st.sampled_from([g for g in (1, 2, 3) if c_in % g == 0]), label="groups")
    weight = torch.randn(c_out * groups, c_in // groups, kh, kw, dtype=torch.float64).to(dtype)
    if op == "grouped_conv2d":
        return (lambda: torch.ops.leanconv.grouped_conv2d(x, weight, None, *window, groups),
                lambda: grouped_conv2d_reference(x.double(), weight.double(), None, *window, groups), out,
                [batch, c_out * groups], True)
    grad = torch.randn(grad_shape(c_out * groups), dtype=torch.float64).to(dtype)
    return (lambda: torch.ops.leanconv.grouped_conv2d_backward(grad, x, weight, *window, groups, [True, True]),
            lambda: grouped_conv2d_backward_reference(grad.double(), x.double(), weight.double(), *window, groups,
                                                      [True, True]), out, [batch, c_out * groups], grad_out == out)


WINDOWED_OPS = ["shifted_sum", "shifted_sum_backward", "segment_conv2d", "segment_conv2d_backward", "eigen_conv2d",
                "eigen_conv2d_backward", "grouped_conv2d", "grouped_conv2d_backward"]


@pytest.mark.parametrize("op", WINDOWED_OPS)
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_every_windowed_op_at_windows_near_the_int64_limits(op, data, dtype):
    """Strides, paddings and dilations past int32 and up to int64's limit, in the op's valid domain: the result
    equals the reference (which gathers taps and never pads), an invalid window is a clear error, and nothing
    crashes or hangs."""
    call, reference, out, leading, gradient_fits = _windowed_calls(op, data, dtype)
    # (The output's strides must fit even for an empty batch, and so must those of the widest intermediate.)
    valid = (all(o is not None for o in out) and fits(numel(leading + out), numel([1, *leading[1:], *out]))
             and gradient_fits)
    assume(not valid or numel(leading + out) <= SMALL_RESULT)
    check(valid, call, reference, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_a_padding_near_2_31_that_ended_the_process_in_half_precision(dtype):
    # oneDNN's float16 convolution died on this window (found by the fuzzing above); the composites now go by taps.
    x, basis, coeff = (torch.randn(1, 1, 6, 2, dtype=dtype), torch.randn(1, 1, 1, 1, dtype=dtype),
                       torch.randn(1, 1, dtype=dtype))
    window = ([2 ** 31 - 1, 2], [2 ** 31 - 1, 1], [2, 1])
    with time_limit():
        y = torch.ops.leanconv.eigen_conv2d(x, basis, coeff, None, *window)
        grads = torch.ops.leanconv.eigen_conv2d_backward(torch.ones_like(y), x, basis, coeff, *window,
                                                         [True, True, True])
    expected = eigen_conv2d_reference(x.double(), basis.double(), coeff.double(), None, *window)
    expected_grads = eigen_conv2d_backward_reference(torch.ones_like(expected), x.double(), basis.double(),
                                                     coeff.double(), *window, [True, True, True])
    tol = tolerance(dtype)
    for actual, reference in zip((y, *grads), (expected, *expected_grads)):
        torch.testing.assert_close(actual.double(), reference, rtol=tol, atol=tol)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.data())
def test_every_op_refuses_tensors_on_mixed_devices(data):
    # Any op of the catalogue, any of its samples, any non-empty proper subset of its tensors moved to the meta
    # device: a clear "device" error, never a result (a meta tensor would otherwise route the call to the op's meta
    # kernel and return an uninitialised tensor on the other device).
    spec = data.draw(st.sampled_from(OPS), label="op")
    args = data.draw(st.sampled_from(op_samples(spec, "cpu", torch.float32)), label="sample")
    positions = [p for p, a in enumerate(args) if isinstance(a, torch.Tensor)]
    assume(len(positions) >= 2)
    moved = data.draw(st.sets(st.sampled_from(positions), min_size=1, max_size=len(positions) - 1), label="moved")
    mixed = [a.to("meta") if p in moved else a for p, a in enumerate(args)]
    with time_limit(), pytest.raises(RuntimeError, match="device"):
        spec.op(*mixed)
