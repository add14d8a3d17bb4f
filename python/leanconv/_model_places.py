"""Where a model's modules sit: the reading of a model that ``leanconv.convert`` needs before it changes anything.

A module can sit in several places (weight tying: one conv held by two parents, or twice in one Sequential), a
model can be wrapped (``torch.compile``'s ``_orig_mod``, DataParallel's ``module``), and a user names modules to
leave alone. These helpers answer those questions once, on an untouched model.
"""
import difflib
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Set, Tuple

from torch import nn


@dataclass
class Places:
    """One module and every place it sits: its names, and the (parent, attribute) pairs that hold it."""
    module: nn.Module
    names: List[str] = field(default_factory=list)
    slots: List[Tuple[nn.Module, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.names[0]


def places_of(model: nn.Module) -> Dict[int, Places]:
    """Every module of the model (the model itself included, as '') with all its names and holding slots, by
    identity, in the order ``named_modules`` first meets them."""
    found: Dict[int, Places] = {}
    seen_slots: Set[Tuple[int, str]] = set()
    for parent_name, parent in model.named_modules(remove_duplicate=False):
        if parent_name == "" and id(parent) not in found:
            found[id(parent)] = Places(parent, [""])
        for attribute, child in parent._modules.items():  # (named_children() lists a module once: not enough)
            if child is None:
                continue
            name = f"{parent_name}.{attribute}" if parent_name else attribute
            entry = found.setdefault(id(child), Places(child))
            if name not in entry.names:
                entry.names.append(name)
            if (id(parent), attribute) not in seen_slots:  # a shared parent lists its children once per place
                seen_slots.add((id(parent), attribute))
                entry.slots.append((parent, attribute))
    return found


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def unwrapped_root(model: nn.Module) -> Tuple[str, nn.Module]:
    """The model under its wrappers: from the top, each module with one child, no tensors of its own and a class of
    its own (an OptimizedModule, DataParallel, a user's module holding the network) is a wrapper, and its child the
    model. A container is no wrapper: a Sequential's one child is its first stage. Returns the root's name prefix
    ('' or e.g. '_orig_mod.') and the root."""
    prefix, root = "", model
    while True:
        children = list(root.named_children())
        own_tensors = [t for t in list(root._parameters.values()) + list(root._buffers.values()) if t is not None]
        if len(children) != 1 or own_tensors or isinstance(root, CONTAINERS):
            return prefix, root
        attribute, child = children[0]
        prefix, root = f"{prefix}{attribute}.", child


def stage_of(name: str, root_prefix: str) -> str:
    """The stage of a module (the first part of its name under the unwrapped root): 'layer2' of
    '_orig_mod.layer2.0.conv1'."""
    inside = name[len(root_prefix):] if name.startswith(root_prefix) else name
    return inside.split(".")[0]


def checked_skip(model: nn.Module, skip: Iterable[str], is_conv) -> List[str]:
    """The ``skip`` names, each required to name a module of the model that is, or holds, a conv (``is_conv``):
    a typo or a conv-less module would otherwise leave the layer the user meant to keep to be converted."""
    if isinstance(skip, str):
        raise TypeError(f"leanconv: skip takes a list of module names, got the string {skip!r} (write [{skip!r}])")
    skip = list(skip)
    modules = dict(model.named_modules(remove_duplicate=False))
    for entry in skip:
        if not isinstance(entry, str):
            raise TypeError(f"leanconv: skip takes module names (strings), got {entry!r}")
        if entry not in modules:
            close = difflib.get_close_matches(entry, [n for n in modules if n], n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"leanconv: skip names {entry!r}, which is no module of the model{hint}")
        if not any(is_conv(m) for m in modules[entry].modules()):
            raise ValueError(f"leanconv: skip names {entry!r}, a {type(modules[entry]).__name__} that holds no conv")
    return skip


def is_skipped(names: Iterable[str], skip: Iterable[str]) -> bool:
    """Whether a module is named in ``skip``, or sits inside a module named there, in any of its places."""
    return any(name == entry or entry == "" or name.startswith(entry + ".") for name in names for entry in skip)


def free_attribute(module: nn.Module, preferred: str, accepts) -> str:
    """``preferred`` if the module has no such attribute or one that ``accepts``, else the first free one of
    ``leanconv_<preferred>``, ``leanconv_<preferred>_2``, ...: a model's own attribute is never replaced."""
    candidates = [preferred, f"leanconv_{preferred}"] + [f"leanconv_{preferred}_{i}" for i in range(2, 100)]
    for name in candidates:
        if not hasattr(module, name) or accepts(getattr(module, name)):
            return name
    raise ValueError(f"leanconv: no free attribute for {preferred} on {type(module).__name__}")
