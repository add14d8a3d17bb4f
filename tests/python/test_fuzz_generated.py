"""Fuzzing of the generated ops (generate_weights): drawn arguments around the catalogue's ops
(catalogue/generated.py), judged as fuzz_draws.check judges every op: the float64 reference's answer or a clear
leanconv error, whichever the op's documented domain says."""
import torch
from hypothesis import assume, given, strategies as st

import leanconv  # noqa: F401
from fuzz_draws import (MAX_TOTAL, SMALL_RESULT, FLOATS, FUZZ, int64s, small_sizes, Arguments, fits, numel, check)
from op_catalogue import (generate_weights_backward_reference, generate_weights_reference)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(FLOATS + [torch.int64]), scale=st.floats(-4, 4))
def test_generate_weights(data, dtype, scale):
    draw = Arguments(data)
    ring_size = draw("ring_size", st.integers(1, 40), st.integers(0, 3))
    seed = data.draw(int64s(), label="seed")
    total = draw("total", st.integers(1, 300))
    offset = draw("offset", st.integers(0, total) if total >= 0 else st.just(0))
    room = total - offset if 0 <= offset <= total else 6
    shape = [draw(f"shape[{i}]", st.integers(0, min(6, room))) for i in range(data.draw(st.integers(0, 2)))]
    count = numel(shape) if all(s >= 0 for s in shape) else -1
    valid = (ring_size >= 1 and dtype.is_floating_point and 1 <= total <= MAX_TOTAL and count >= 0 and fits(count)
             and offset >= 0 and offset + count <= total)
    assume(not valid or count <= SMALL_RESULT)
    ring = (torch.randn(ring_size, dtype=torch.float64) * 3).to(dtype)
    check(valid, lambda: torch.ops.leanconv.generate_weights(ring, seed, total, offset, shape, scale),
          lambda: generate_weights_reference(ring.double(), seed, total, offset, shape, scale), dtype)


@FUZZ
@given(data=st.data(), grad_shape=st.lists(small_sizes(), max_size=3), dtype=st.sampled_from(FLOATS),
       scale=st.floats(-4, 4))
def test_generate_weights_backward(data, grad_shape, dtype, scale):
    draw = Arguments(data)
    grad = torch.randn(grad_shape, dtype=torch.float64).to(dtype)
    count = grad.numel()
    ring_size = draw("ring_size", st.integers(1, 50))
    seed = data.draw(int64s(), label="seed")
    total = draw("total", st.integers(max(count, 1), 300))
    offset = draw("offset", st.integers(0, max(total - count, 0)) if total >= 0 else st.just(0))
    valid = ring_size >= 1 and 1 <= total <= MAX_TOTAL and offset >= 0 and offset + count <= total
    assume(not valid or ring_size <= SMALL_RESULT)
    check(valid, lambda: torch.ops.leanconv.generate_weights_backward(grad, ring_size, seed, total, offset, scale),
          lambda: generate_weights_backward_reference(grad.double(), ring_size, seed, total, offset, scale), dtype)
