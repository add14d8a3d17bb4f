"""Every leanconv module kind, declared once: how to build it (inside a model that owns any shared state, as a
user would), an input for it and its C++ twin. Each family declares its own in tests/python/catalogue/<family>.py
(MODULES); this module collects them. The module-contract suite (test_module_contract.py) runs over all of them."""
import importlib
import pkgutil

import catalogue
from catalogue._spec import ModuleSpec  # noqa: F401  (what an entry is)
from catalogue.generated import RingModel  # noqa: F401  (the holder models the contract's own cases build)
from catalogue.shared import AnchorModel  # noqa: F401

MODULES = []
# Each family's layer over nn.Conv2d's argument space, by family: CONV2D_LIKE of its catalogue file (None where the
# layer does not take that space; see the file).
CONV2D_LIKE = {}
for _info in sorted(pkgutil.iter_modules(catalogue.__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        _family = importlib.import_module(f"catalogue.{_info.name}")
        MODULES += getattr(_family, "MODULES", [])
        if hasattr(_family, "CONV2D_LIKE"):
            CONV2D_LIKE[_info.name] = _family.CONV2D_LIKE

MODULE_IDS = [spec.name for spec in MODULES]
