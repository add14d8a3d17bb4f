"""The C++ modules (leanconv._C.cpp, bound from leanconv::nn) and the Python modules (leanconv.nn) are one API: every
C++ module has its Python namesake, every argument the C++ binding takes has the same default in Python (the
bindings read theirs from the C++ options structs), an argument required in one is required in the other, and the
two modules built from the required arguments alone have the same state_dict names and shapes. A default changed on
one side only (the bindings once made `coarsest` 32 where the C++ options and Python say 16) fails here. The C++
family registry (what C++ model builders build from) has the Python registry's families, option names and defaults."""
import ast
import inspect
import re

import pytest
import torch
from torch import nn

import leanconv
import leanconv.nn as leanconv_nn
from conftest import requires_extension
from leanconv.families import FAMILIES

# Values for the arguments a module requires (whatever the family): large enough for every family's rules at their
# defaults (a multigrid module's 64 channels reach below the default coarsest of 16 with the default group size 32).
REQUIRED_VALUES = {"in_channels": 64, "out_channels": 64, "channels": 64, "kernel_size": 3, "rank": 2, "size": 40,
                   "in_features": 5, "out_features": 3}
# Arguments whose value is another module: (its class name, the arguments it is built with).
HOLDER_ARGUMENTS = {"ring": ("ParameterRing", {"size": 40}), "anchor": ("ConvAnchor", {"channels": 64})}


def cpp_classes():
    if getattr(leanconv, "_C", None) is None:  # (the op library loaded alone: LEANCONV_LIBRARY)
        return {}
    raw = leanconv._C.cpp.cpp  # the pybind11 classes behind the ModuleWrapper factories
    return {name: getattr(raw, name) for name in dir(raw) if isinstance(getattr(raw, name), type)}


def cpp_signature(raw_class):
    """{argument: default or inspect.Parameter.empty} from pybind11's __init__ signature line."""
    line = raw_class.__init__.__doc__.strip().splitlines()[0]
    inside = line[line.index("(") + 1:line.rindex(")")]
    arguments = {}
    for part in re.split(r",\s*(?![^\[]*\])", inside)[1:]:  # (commas outside typing brackets; skip self)
        name, _, rest = part.partition(":")
        _, equals, default = rest.partition(" = ")
        arguments[name.strip()] = ast.literal_eval(default.strip()) if equals else inspect.Parameter.empty
    return arguments


def python_signature(python_class):
    """{argument: default} of the Python module's constructor; a constructor that forwards *args/**kwargs to its
    torch.nn base (GroupedConv2d) adds that base's arguments."""
    arguments = {}
    for cls in python_class.__mro__:
        if cls is nn.Module or "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters
        for name, parameter in parameters.items():
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) and name != "self":
                arguments.setdefault(name, parameter.default)
        if not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters.values()):
            break
    return arguments


CLASSES = sorted(cpp_classes())


@requires_extension
def test_every_bound_module_of_every_family_is_here():
    families = {family: [] for family in FAMILIES}
    assert len(CLASSES) >= len(families) - 1  # (dense has no module of its own)
    for name in CLASSES:
        assert hasattr(leanconv_nn, name), f"leanconv._C.cpp.{name} has no Python namesake in leanconv.nn"


@requires_extension
@pytest.mark.parametrize("name", CLASSES)
def test_the_cpp_and_python_modules_take_the_same_defaults(name):
    cpp = cpp_signature(cpp_classes()[name])
    python = python_signature(getattr(leanconv_nn, name))
    for argument, default in cpp.items():
        assert argument in python, f"{name}: the C++ module takes {argument!r}, the Python module does not"
        if default is inspect.Parameter.empty:
            assert python[argument] is inspect.Parameter.empty, f"{name}.{argument}: required in C++ only"
            continue
        assert python[argument] == default and type(python[argument]) in (type(default), int, float), (
            f"{name}.{argument}: default {default!r} in C++, {python[argument]!r} in Python")
    for argument, default in python.items():  # what Python requires, C++ requires too
        if default is inspect.Parameter.empty and argument in cpp:
            assert cpp[argument] is inspect.Parameter.empty, f"{name}.{argument}: required in Python only"


def _built(namespace, name, wrap):
    """The module `name` from `namespace` with its required arguments alone; `wrap` gives the value passed on for a
    holder module (the C++ side passes the bound module's cpp_module)."""
    arguments = {}
    for argument, default in cpp_signature(cpp_classes()[name]).items():
        if default is not inspect.Parameter.empty:
            continue
        if argument in HOLDER_ARGUMENTS:
            holder_name, holder_arguments = HOLDER_ARGUMENTS[argument]
            arguments[argument] = wrap(getattr(namespace, holder_name)(**holder_arguments))
        else:
            arguments[argument] = REQUIRED_VALUES[argument]
    return getattr(namespace, name)(**arguments)


@requires_extension
@pytest.mark.parametrize("name", CLASSES)
def test_the_cpp_and_python_modules_built_from_their_defaults_hold_the_same_tensors(name):
    torch.manual_seed(0)
    python = _built(leanconv_nn, name, lambda holder: holder)
    cpp = _built(leanconv._C.cpp, name, lambda holder: holder.cpp_module)
    cpp_state = dict([*cpp.named_parameters(), *cpp.named_buffers()])  # (a bound module's state_dict entries)
    assert _shapes(cpp_state) == _shapes(python.state_dict())


def _shapes(state):
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


# ---- the family registries: leanconv.families and the C++ one (leanconv/nn/conv_families.h) -----------------

def cpp_families():
    return {family["name"]: family for family in leanconv._C.cpp.conv_families()}


@requires_extension
def test_the_cpp_registry_has_every_family_of_the_python_registry_and_no_other():
    assert set(cpp_families()) == set(FAMILIES)


@requires_extension
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_family_takes_its_options_by_the_python_names_with_the_python_defaults(name):
    """The C++ family reads a subset of the Python family's options (the C++ model builders take one rank, one ring
    for the model); each has the Python name, and its default, read by the Python option's parser, is Python's."""
    python_options = {option.name: option for option in FAMILIES[name].options}
    cpp = cpp_families()[name]
    assert cpp["compact"] == (name != "dense")
    for option, default_text in cpp["options"].items():
        assert option in python_options, f"conv={name}: the C++ family takes {option!r}, the Python family does not"
        python_option = python_options[option]
        assert python_option.parse(default_text) == python_option.default, (
            f"conv={name}, {option}: default {default_text!r} in C++, {python_option.default!r} in Python")
