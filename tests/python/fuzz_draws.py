"""What the fuzz suites (test_fuzz.py, across ops, and test_fuzz_<family>.py, one file per family's ops) draw from
and how they judge a drawn call: each drawn call must either agree with the float64 reference or raise a clear
leanconv error (RuntimeError whose message starts "leanconv:"), and which one it does must be what the op's
documented domain says: a valid call that errors, or an invalid one that returns, fails.

Each example runs under a time limit: a hang ends the run with a traceback (faulthandler), as a crash does.
The validity predicates are written with Python's unbounded integers, independently of the C++ checks.
"""
import contextlib
import faulthandler

import torch
from hypothesis import HealthCheck, assume, event, settings, strategies as st

INT64_MAX = 2 ** 63 - 1
MAX_TOTAL = 2 ** 62
SMALL_RESULT = 1 << 14  # valid calls are only made when their outputs stay this small
EDGES = [-(2 ** 63), -(2 ** 62), -1, 0, 1, 2, 3, 5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 61 + 1,
         2 ** 62 - 1, 2 ** 62, 2 ** 62 + 1, INT64_MAX]
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def int64s(low=-2, high=9):
    """Mostly small values, often the int64 edges, sometimes anything in int64."""
    return st.one_of(st.integers(low, high), st.sampled_from(EDGES), st.integers(-(2 ** 63), INT64_MAX))


def small_sizes(high=5):
    return st.integers(0, high)


class Arguments:
    """Draws an op's arguments. Half the examples stay in the op's valid domain (and are compared with the
    reference); in the others each argument has a one-in-three chance to be drawn from anywhere in int64 (or
    its own wild range), so invalid calls are mostly invalid in one or a few arguments."""

    def __init__(self, data):
        self.data = data
        self.wild = data.draw(st.booleans(), label="wild")

    def __call__(self, name, valid, wild=None):
        if self.wild and self.data.draw(st.integers(0, 2), label=f"{name} wild?") == 0:
            return self.data.draw(wild if wild is not None else int64s(), label=name)
        return self.data.draw(valid, label=name)

    def pair(self, name, valid):
        return [self(f"{name}[{axis}]", valid) for axis in range(2)]

    def window(self):
        """kh, kw, stride, padding, dilation of a conv window."""
        kh, kw = self.pair("kernel", st.integers(1, 3))
        return (kh, kw, self.pair("stride", st.integers(1, 3)), self.pair("padding", st.integers(0, 2)),
                self.pair("dilation", st.integers(1, 2)))

    def spatial_size(self, name, kernel, padding, dilation):
        """An input size the window fits (when the window is valid), or a wild one."""
        try:
            smallest = max(0, dilation * (kernel - 1) + 1 - 2 * padding)
        except TypeError:
            smallest = 0
        if not (0 <= smallest <= 8):
            smallest = 0
        return self(name, st.integers(smallest, smallest + 5), st.integers(0, 8))


@contextlib.contextmanager
def time_limit(seconds=30):
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def fits(*values):
    return all(-(2 ** 63) <= v <= INT64_MAX for v in values)


def numel(shape):
    if any(s == 0 for s in shape):
        return 0
    n = 1
    for s in shape:
        n *= s
    return n


def output_strides_fit(sizes):
    """Whether a (C, H, W) output (or intermediate) has strides in int64, as even an empty batch's must."""
    return fits(numel(sizes))


def tolerance(dtype):
    return {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-5)


# Values the dispatcher itself cannot carry (an int list entry near -2^63 is no SymInt) are refused by torch
# before any leanconv code runs, with this message.
TORCH_ARGUMENT_ERRORS = ("cannot be represented as a SymInt", "SymIntArrayRef expected to contain only concrete integers")


def check(valid, call, reference, dtype):
    """Runs the op under the time limit; asserts the outcome the predicate says."""
    event("valid call" if valid else "invalid call")  # --hypothesis-show-statistics shows the mix
    with time_limit():
        try:
            result = call()
        except RuntimeError as error:
            message = str(error)
            assert not valid, f"a valid call raised: {message}"
            assert message.startswith("leanconv:") or any(e in message for e in TORCH_ARGUMENT_ERRORS), \
                f"not a clear leanconv error: {message}"
            return
    assert valid, "an invalid call returned a result"
    expected = reference()
    tol = tolerance(dtype)
    results = result if isinstance(result, (tuple, list)) else [result]
    expecteds = expected if isinstance(expected, (tuple, list)) else [expected]
    assert len(results) == len(expecteds)
    for r, e in zip(results, expecteds):  # outputs a mask left out are None on both sides
        assert (r is None) == (e is None)
        if r is not None:
            scale = max(1.0, e.abs().max().item()) if e.numel() else 1.0
            torch.testing.assert_close(r.double(), e.double(), rtol=tol, atol=tol * scale)


def conv_axis(size, kernel, stride, pad, dilation):
    """The output size of one axis, or None when the geometry is invalid (or would overflow int64)."""
    if kernel < 1 or stride < 1 or dilation < 1 or pad < 0 or size < 0:
        return None
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * pad
    if not fits(dilation * (kernel - 1), span, 2 * pad, padded) or padded < span:
        return None
    return (padded - span) // stride + 1


def conv_backward_operands(draw, data, channels, hw, out_size, outputs, dtype, channels_last):
    """A conv backward's (input, grad_output, output_mask, skew): the gradient has the output size (3x3 when the
    geometry is invalid, out_size None), one row more or less when the drawn skew is not 0."""
    batch, in_channels, out_channels = channels
    skew = draw("gradient size skew", st.just(0), st.integers(-1, 1))
    out_h, out_w = out_size if out_size is not None else (3, 3)
    grad_h, grad_w = out_h + skew, out_w
    assume(0 <= grad_h <= 32 and 0 <= grad_w <= 32)
    mask = [data.draw(st.booleans(), label=f"mask[{i}]") for i in range(outputs)]
    x = torch.randn(batch, in_channels, *hw, dtype=torch.float64).to(dtype)
    grad = torch.randn(batch, out_channels, grad_h, grad_w, dtype=torch.float64).to(dtype)
    if channels_last:
        x, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, grad))
    return x, grad, mask, skew


# ---- feature maps and per-channel operands (the block epilogue, the coarse-grid correction) -----------------

def seed_values(data):
    """The tensors' values from a seed the example draws: a replayed example has the same values."""
    torch.manual_seed(data.draw(st.integers(0, 2 ** 16), label="values seed"))


def feature_map(draw, data, dtype, channels_last):
    """(N, C, H, W) values (a few wrong dimension counts), with at least two values per channel when valid (one
    value has no variance: its normalised value is rounding alone, relative to nothing)."""
    seed_values(data)
    shape = [data.draw(st.integers(1, 3), label="batch"), draw("channels", st.integers(1, 4), st.integers(0, 1)),
             data.draw(st.integers(1, 4), label="height"), data.draw(st.integers(1, 4), label="width")]
    shape = shape[:draw("dims", st.just(4), st.integers(3, 5))] + [2] * max(0, len(shape) - 4)
    x = (torch.randn(shape, dtype=torch.float64) * 2 + 0.5).to(dtype)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    valid = x.dim() == 4  # zero channels too: an empty result
    assume(not valid or shape[0] * shape[2] * shape[3] >= 2)
    return x, valid


def per_channel(draw, name, channels, dtype):
    """None, a (C,) tensor, or (wild) one of the wrong length."""
    kind = draw(name, st.sampled_from(["none", "right"]), st.just("wrong"))
    t = {"none": None, "right": torch.randn(channels), "wrong": torch.randn(channels + 1)}[kind]
    param_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    return (None if t is None else t.to(param_dtype)), kind != "wrong"


def residual_of(draw, x):
    kind = draw("residual", st.sampled_from(["none", "right"]), st.just("wrong"))
    if kind == "none":
        return None, True
    shape = list(x.shape)
    if kind == "wrong":
        shape[-1] += 1
    return torch.randn(shape, dtype=torch.float64).to(x.dtype), kind == "right"


def eps_of(draw):
    eps = draw("eps", st.sampled_from([1e-5, 1e-3]), st.sampled_from([0.0, -1e-5, float("nan")]))
    return eps, eps > 0
