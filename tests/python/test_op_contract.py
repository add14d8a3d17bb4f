"""The op contract: properties every leanconv op keeps, run over every sample of every op in op_catalogue.

Each property is a class of defect made impossible to reintroduce: a silent wrong value (float64 reference),
a silently dropped second derivative (gradgradcheck), a fake kernel that promises other strides than the real
kernel returns (FakeTensor metadata, compiled forward + backward), torch.func refusing the op (grad, vmap of
grad, jvp), a backward that depends on the thread count under deterministic algorithms, an empty batch.
"""
import contextlib

import pytest
import torch
import torch.func as func
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._pytree import tree_map

import leanconv  # noqa: F401
from conftest import DEVICES, requires_cuda
from op_catalogue import OPS, all_samples, op_samples

SAMPLES = all_samples()
IDS = [f"{spec.name}-{i}" for spec, i in SAMPLES]
DIFFERENTIABLE = [(spec, i) for spec, i in SAMPLES if spec.differentiable]
DIFFERENTIABLE_IDS = [f"{spec.name}-{i}" for spec, i in DIFFERENTIABLE]


def sample(spec, index, dtype=torch.float64):
    return op_samples(spec, "cpu", dtype)[index]


def outputs(result):
    """The op's outputs as a list of tensors (None for outputs a mask left undefined)."""
    return list(result) if isinstance(result, (tuple, list)) else [result]


def assert_close_outputs(actual, expected, **tolerance):
    for a, e in zip(outputs(actual), outputs(expected)):
        assert (a is None) == (e is None)
        if a is not None:
            torch.testing.assert_close(a, e, **tolerance)


def scalar_loss(spec, args, positions):
    """f(*tensors at positions) = sum_k <op(...)_k, w_k>, with fixed random w_k: every output matters."""
    with torch.no_grad():
        weights = [None if y is None else torch.randn_like(y) for y in outputs(spec.op(*args))]

    def loss(*tensors):
        full = list(args)
        for position, t in zip(positions, tensors):
            full[position] = t
        return sum((y * w).sum() for y, w in zip(outputs(spec.op(*full)), weights) if y is not None)

    return loss


def present_positions(spec, args):
    return tuple(p for p in spec.differentiable if args[p] is not None)


def to_device(args, device):
    return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)


@contextlib.contextmanager
def deterministic_algorithms():
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@contextlib.contextmanager
def deterministic_threads(count):
    previous_threads, previous_mode = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(count)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_mode)


# ---- values ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,index", SAMPLES, ids=IDS)
def test_matches_the_float64_reference(spec, index):
    args = sample(spec, index)
    assert_close_outputs(spec.op(*args), spec.reference(*args), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spec,index", SAMPLES, ids=IDS)
def test_opcheck(spec, index):
    args = sample(spec, index)
    if spec.differentiable:
        args = tuple(a.requires_grad_() if i in spec.differentiable and a is not None else a
                     for i, a in enumerate(args))
    torch.library.opcheck(spec.op, args)


def layouts(spec, args):
    """The sample as given, with its batched 4-D tensors in channels_last, and with them non-contiguous."""
    yield "contiguous", args
    for name, change in (("channels_last", lambda t: t.contiguous(memory_format=torch.channels_last)),
                         ("non_contiguous", lambda t: t.transpose(2, 3).contiguous().transpose(2, 3))):
        if not spec.batched:
            continue
        changed = list(args)
        for p in spec.batched:
            if args[p] is not None:
                changed[p] = change(args[p])
        yield name, tuple(changed)


@pytest.mark.parametrize("spec,index", SAMPLES, ids=IDS)
def test_fake_kernel_promises_what_the_kernel_returns(spec, index):
    # torch.compile trusts the fake kernel's sizes and strides: a mismatch fails a compiled backward.
    for layout, args in layouts(spec, sample(spec, index)):
        real = outputs(spec.op(*args))
        with FakeTensorMode() as mode:
            fake_args = tree_map(lambda a: mode.from_tensor(a) if isinstance(a, torch.Tensor) else a, args)
            fake = outputs(spec.op(*fake_args))
        for r, f in zip(real, fake):
            assert (r is None) == (f is None), layout
            if r is not None:
                assert (r.shape, r.stride(), r.dtype) == (f.shape, f.stride(), f.dtype), layout
        assert_close_outputs(spec.op(*args), spec.reference(*args), rtol=1e-10, atol=1e-10)


def relative_error(actual, expected):
    return ((actual.double() - expected.double()).norm() / expected.double().norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,limit", [(torch.float16, 1e-2), (torch.bfloat16, 5e-2)], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("spec,index", SAMPLES, ids=IDS)
def test_low_precision_against_the_float64_reference(spec, index, dtype, limit, device):
    # The kernels accumulate in float: the error is the inputs' and the output's rounding, not the sum's. On CUDA
    # the result is also compared with the CPU kernel's in the same dtype.
    args = sample(spec, index, dtype)
    result = outputs(spec.op(*to_device(args, device)))
    reference = outputs(spec.reference(*[a.double() if isinstance(a, torch.Tensor) else a for a in args]))
    on_cpu = outputs(spec.op(*args)) if device != "cpu" else result
    for k, (y, r, c) in enumerate(zip(result, reference, on_cpu)):
        assert (y is None) == (r is None)
        if y is not None:
            assert y.dtype == (torch.float32 if k in spec.op_math_outputs else dtype) and y.device.type == device
            assert relative_error(y.cpu(), r) < limit
            assert relative_error(y.cpu(), c) < limit


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", OPS, ids=lambda s: s.name)
def test_autocast_policy(spec, device):
    args = to_device(sample(spec, 0, torch.float32), device)
    with torch.autocast(device, dtype=torch.bfloat16):
        result = outputs(spec.op(*args))
    expected_dtype = torch.bfloat16 if spec.autocast else torch.float32
    assert all(y.dtype == expected_dtype for y in result if y is not None)
    if spec.autocast:  # and it computes the op on the cast inputs
        reference = outputs(spec.reference(*[a.cpu().double() if isinstance(a, torch.Tensor) else a for a in args]))
        assert all(relative_error(y.cpu(), r) < 5e-2 for y, r in zip(result, reference) if y is not None)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,index", DIFFERENTIABLE, ids=DIFFERENTIABLE_IDS)
def test_a_backward_inside_autocast_runs_in_the_dtypes_its_forward_saved(spec, index, device):
    # A float32 forward whose backward is called inside an autocast region (a common training-loop slip): the
    # backward nodes switch autocast off, so the gradients are the float32 ones, bit for bit.
    args = to_device(sample(spec, index, torch.float32), device)
    positions = present_positions(spec, args)
    loss = scalar_loss(spec, args, positions)

    def gradients(inside_autocast):
        leaves = [args[p].detach().requires_grad_() for p in positions]
        value = loss(*leaves)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=inside_autocast):
            return torch.autograd.grad(value, leaves)

    with deterministic_algorithms():
        expected, actual = gradients(False), gradients(True)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype == torch.float32
        assert torch.equal(a, e)


@pytest.mark.parametrize("spec,index", SAMPLES, ids=IDS)
def test_mixed_devices_are_an_error(spec, index):
    # As in aten: one tensor on another device (a meta tensor here, which would otherwise route the whole call to
    # the op's meta kernel and return an uninitialised CPU tensor) is refused, whichever argument it is.
    args = sample(spec, index, torch.float32)
    positions = [p for p, a in enumerate(args) if isinstance(a, torch.Tensor)]
    if len(positions) < 2:
        pytest.skip("one tensor argument: nothing to mix")
    for position in positions:
        mixed = list(args)
        mixed[position] = args[position].to("meta")
        with pytest.raises(RuntimeError, match="device"):
            spec.op(*mixed)


# ---- derivatives ----------------------------------------------------------------------------------------

def check_derivatives(spec, args, nondet_tol=0.0):
    """gradcheck and gradgradcheck in every differentiable tensor of the sample."""
    positions = present_positions(spec, args)
    tensors = [args[p].detach().requires_grad_() for p in positions]

    def function(*ts):
        full = list(args)
        for p, t in zip(positions, ts):
            full[p] = t
        return spec.op(*full)

    assert torch.autograd.gradcheck(function, tensors, nondet_tol=nondet_tol)
    assert torch.autograd.gradgradcheck(function, tensors, nondet_tol=nondet_tol)


@pytest.mark.parametrize("spec,index", DIFFERENTIABLE, ids=DIFFERENTIABLE_IDS)
def test_gradcheck_and_gradgradcheck(spec, index):
    check_derivatives(spec, sample(spec, index))


@pytest.mark.parametrize("spec", [s for s in OPS if s.refuses_graph], ids=lambda s: s.name)
def test_an_op_that_is_not_differentiable_says_so(spec):
    args = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) else a for a in sample(spec, 0)]
    with pytest.raises(RuntimeError, match="leanconv: .*not differentiable"):
        spec.op(*args)


@pytest.mark.parametrize("spec,index", DIFFERENTIABLE, ids=DIFFERENTIABLE_IDS)
def test_torch_func_grad_and_jvp_match_autograd(spec, index):
    args = sample(spec, index)
    positions = present_positions(spec, args)
    spec_args = [args[p] for p in positions]
    loss_of = scalar_loss(spec, args, positions)
    leaves = [t.detach().requires_grad_() for t in spec_args]
    expected = torch.autograd.grad(loss_of(*leaves), leaves)
    actual = func.grad(loss_of, argnums=tuple(range(len(spec_args))))(*spec_args)
    assert_close_outputs(list(actual), list(expected), rtol=1e-10, atol=1e-10)
    # Forward mode: the directional derivative is the gradient's inner product with the tangent.
    tangents = [torch.randn_like(t) for t in spec_args]
    _, directional = func.jvp(loss_of, tuple(spec_args), tuple(tangents))
    torch.testing.assert_close(directional, sum((g * t).sum() for g, t in zip(expected, tangents)),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("spec,index", [(s, i) for s, i in DIFFERENTIABLE if s.batched],
                         ids=[f"{s.name}-{i}" for s, i in DIFFERENTIABLE if s.batched])
def test_per_sample_gradients_with_vmap_of_grad(spec, index):
    # Per-sample gradients (differential privacy, meta-learning): vmap over the batch of a gradient of the
    # other differentiable tensors (or, with none, of the per-sample tensors themselves), against one autograd
    # call per sample. Every batched tensor is per sample.
    args = sample(spec, index)
    vmapped = [p for p in spec.batched if args[p] is not None]
    others = [p for p in present_positions(spec, args) if p not in vmapped]
    weights = torch.randn_like(outputs(spec.op(*args))[0])

    def per_sample_loss(params, xs, w):
        full = list(args)
        for p, x in zip(vmapped, xs):
            full[p] = x.unsqueeze(0)
        for p, t in zip(others, params):
            full[p] = t
        return (outputs(spec.op(*full))[0] * w.unsqueeze(0)).sum()

    argnum = 0 if others else 1
    params = tuple(args[p] for p in others)
    per_sample = tuple(args[p] for p in vmapped)
    batched = func.vmap(func.grad(per_sample_loss, argnums=argnum), in_dims=(None, 0, 0))(params, per_sample, weights)
    for n in range(weights.shape[0]):
        leaves = [p.detach().requires_grad_() for p in params]
        xs = [x[n].detach().requires_grad_() for x in per_sample]
        expected = torch.autograd.grad(per_sample_loss(leaves, xs, weights[n]), leaves if others else xs)
        for b, e in zip(batched, expected):
            torch.testing.assert_close(b[n], e, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("spec,index", DIFFERENTIABLE, ids=DIFFERENTIABLE_IDS)
def test_forward_and_backward_do_not_depend_on_the_thread_count(spec, index):
    args = sample(spec, index, torch.float32)
    positions = present_positions(spec, args)
    loss = scalar_loss(spec, args, positions)
    results = []
    for threads in (1, 2, 3):
        with deterministic_threads(threads):
            leaves = [args[p].detach().requires_grad_() for p in positions]
            value = loss(*leaves)
            results.append((value, *torch.autograd.grad(value, leaves)))
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


@pytest.mark.parametrize("spec", [s for s in OPS if s.batched and s.differentiable], ids=lambda s: s.name)
def test_empty_batch(spec):
    args = list(sample(spec, 0))
    for p in spec.batched:
        args[p] = args[p][:0].detach().requires_grad_()
    y = outputs(spec.op(*args))[0]
    assert y.shape[0] == 0
    grad, = torch.autograd.grad(y.sum(), args[spec.batched[0]])
    assert grad.shape == args[spec.batched[0]].shape


# ---- torch.compile ----------------------------------------------------------------------------------------

COMPILED = [(spec, 0) for spec in OPS if spec.differentiable]


@pytest.mark.parametrize("spec,index", COMPILED, ids=[s.name for s, _ in COMPILED])
def test_compiled_forward_and_backward_match_eager(spec, index):
    torch._dynamo.reset()
    args = sample(spec, index, torch.float32)
    positions = present_positions(spec, args)
    loss = scalar_loss(spec, args, positions)

    def run(function):
        leaves = [args[p].detach().requires_grad_() for p in positions]
        value = function(*leaves)
        return [value, *torch.autograd.grad(value, leaves)]

    expected = run(loss)
    actual = run(torch.compile(loss, fullgraph=True))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


# ---- CUDA -------------------------------------------------------------------------------------------------

def to_cuda(args):
    return to_device(args, "cuda")


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("spec,index", SAMPLES, ids=IDS)
def test_cuda_matches_cpu_and_the_float64_reference(spec, index, dtype):
    args = sample(spec, index, dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    cuda_result = spec.op(*to_cuda(args))
    assert_close_outputs([None if y is None else y.cpu() for y in outputs(cuda_result)], spec.op(*args),
                         rtol=tol, atol=tol)
    reference = spec.reference(*[a.double() if isinstance(a, torch.Tensor) else a for a in args])
    assert_close_outputs([None if y is None else y.cpu().double() for y in outputs(cuda_result)], reference,
                         rtol=tol, atol=tol)


@requires_cuda
@pytest.mark.parametrize("spec,index", DIFFERENTIABLE, ids=DIFFERENTIABLE_IDS)
def test_cuda_gradcheck_and_gradgradcheck(spec, index):
    # nondet_tol: the generated backward's default CUDA reduction and cuDNN's weight gradients may add with
    # atomics, so two evaluations of one Jacobian may differ in the last bits of float64.
    check_derivatives(spec, to_cuda(sample(spec, index)), nondet_tol=1e-10)


@requires_cuda
@pytest.mark.parametrize("spec,index", SAMPLES, ids=IDS)
def test_cuda_is_deterministic_under_deterministic_algorithms(spec, index):
    # Every op, forward and backward ops alike, twice on the same inputs: the same bits (the eigen conv's backward
    # through cuDNN, the generated backward without atomics, the reductions in a fixed order).
    args = to_cuda(sample(spec, index, torch.float32))
    with deterministic_algorithms():
        first, second = outputs(spec.op(*args)), outputs(spec.op(*args))
    for a, b in zip(first, second):
        assert (a is None and b is None) or torch.equal(a, b)
