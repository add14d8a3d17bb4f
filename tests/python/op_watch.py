"""Which leanconv ops a call runs, seen at the dispatcher (a TorchDispatchMode): a materialized model must run none."""
from torch.utils._python_dispatch import TorchDispatchMode


class LeanconvOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "leanconv":
            self.seen.add(func.name())
        return func(*args, **(kwargs or {}))


def leanconv_ops_run(call, *args):
    """The names of the leanconv ops that call(*args) runs."""
    with LeanconvOps() as watch:
        result = call(*args)
    return watch.seen, result
