"""Training: datasets, a training loop and the `python -m leanconv.train` command line.

They need the ``train`` extra (``pip install 'leanconv[train]'``). The names below load on first use, so the
package itself imports without it and the command lines can say which package is missing.
"""
import importlib

_MODULE_OF = {"fashion_mnist": ".data", "random_images": ".data", "read_idx": ".data", "train": ".loop",
              "evaluate": ".loop", "table": ".loop", "TrainResult": ".loop"}

__all__ = list(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name], __name__), name)


def __dir__():
    return sorted([*globals(), *__all__])
