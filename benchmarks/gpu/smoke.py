"""Stage 1 of the GPU check: every leanconv op once on CUDA against the CPU kernel (float32, the op catalogue's
first sample of each op), plus where the op library came from. Without a GPU the CPU side still runs, so the
plumbing is checked. Exit status 1 on any mismatch."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))

import leanconv  # noqa: E402
from op_catalogue import OPS, op_samples  # noqa: E402


def outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def main():
    gpu = torch.cuda.is_available()
    print(f"leanconv from {os.path.dirname(leanconv.__file__)}; extension _C: "
          f"{'loaded' if leanconv._C is not None else 'absent (LEANCONV_LIBRARY=' + os.environ.get('LEANCONV_LIBRARY', '') + ')'}"
          f"; CUDA kernels compiled: {leanconv.compiled_with_cuda()}; GPU: "
          f"{torch.cuda.get_device_name() if gpu else 'none'}")
    failures = 0
    for spec in OPS:
        args = op_samples(spec, "cpu", torch.float32)[0]
        start = time.perf_counter()
        expected = outputs(spec.op(*args))
        if not gpu:
            print(f"skipped: no GPU  {spec.name} (CPU ran in {1e3 * (time.perf_counter() - start):.1f} ms)")
            continue
        cuda_args = tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in args)
        try:
            actual = outputs(spec.op(*cuda_args))
            torch.cuda.synchronize()
            same = all((a is None and e is None) or torch.allclose(a.cpu(), e, rtol=1e-4, atol=1e-4)
                       for a, e in zip(actual, expected))
            print(f"{'ok' if same else 'MISMATCH'}  {spec.name}  ({1e3 * (time.perf_counter() - start):.1f} ms)")
        except Exception as error:  # report every op, whatever one of them does
            same = False
            print(f"ERROR  {spec.name}: {error}")
        failures += not same
    print(f"{len(OPS)} ops, {failures} failed" + ("" if gpu else " (no GPU: CPU side only)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
