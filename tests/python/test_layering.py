"""Every arrow points down: what users import (leanconv's product code) never imports the tests' and benchmarks'
oracles in leanconv.reference, which are written apart from the product so that a test compares two things; a
package exports what its modules list; and each C++ layer includes only the layers below it."""
import ast
import importlib
import os
import pathlib
import re

import pytest

import leanconv

PACKAGE = pathlib.Path(leanconv.__file__).parent


def _imported_modules(path: pathlib.Path, source=None):
    """(line, absolute module name) of every import in the file (or in `source`, read as though it were that file),
    relative imports resolved."""
    package = ".".join(("leanconv",) + path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            yield node.lineno, name
            for alias in node.names:  # "from . import reference"
                yield node.lineno, f"{name}.{alias.name}"


def test_product_code_never_imports_the_reference_oracles():
    product = [p for p in PACKAGE.rglob("*.py") if "reference" not in p.relative_to(PACKAGE).parts]
    assert len(product) > 20
    found = [f"{p.relative_to(PACKAGE)}:{line} imports {name}" for p in product
             for line, name in _imported_modules(p)
             if name == "leanconv.reference" or name.startswith("leanconv.reference.")]
    assert not found, found


def test_the_import_reader_sees_a_reference_import():
    """The check above can fail: relative imports of the oracles from a product file are seen."""
    source = "from ..reference.multigrid import ReferenceMultigrid\nfrom .. import reference\n"
    names = [name for _, name in _imported_modules(PACKAGE / "nn" / "probe.py", source)]
    assert "leanconv.reference.multigrid" in names and "leanconv.reference" in names


def test_a_package_exports_what_its_public_modules_list(tmp_path, monkeypatch):
    from leanconv._exports import collect

    package = tmp_path / "probe_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "alpha.py").write_text("__all__ = ['Alpha']\nclass Alpha: pass\nclass Hidden: pass\n")
    (package / "beta.py").write_text("__all__ = ['beta']\ndef beta(): pass\n")
    (package / "_private.py").write_text("__all__ = ['Private']\nPrivate = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace = {}
    assert collect("probe_package", [str(package)], namespace) == ["Alpha", "beta"]
    assert namespace["Alpha"].__name__ == "Alpha" and "Hidden" not in namespace and "Private" not in namespace
    (package / "gamma.py").write_text("__all__ = ['beta']\nbeta = 2\n")  # one name from two modules
    with pytest.raises(ImportError, match="both export 'beta'"):
        collect("probe_package", [str(package)], {})


def test_every_family_module_and_op_module_is_exported_by_its_package():
    for package in (leanconv.nn, leanconv.ops):
        for path in pathlib.Path(package.__file__).parent.glob("[!_]*.py"):
            module = importlib.import_module(f"{package.__name__}.{path.stem}")
            assert module.__all__, f"{module.__name__} lists no public names"
            assert set(module.__all__) <= set(package.__all__)
            assert all(getattr(package, name) is getattr(module, name) for name in module.__all__)


# ---- C++: each folder of csrc/ and cuda/ includes only the layers below it -------------------------------------

REPO = PACKAGE.parents[1]
# A folder's quoted includes (`#include "layer/file.h"`; a bare name is the folder's own) by their first component:
# the layers it may build on. The kernels (cpu, cuda) and the aten composites are backends: they never reach up
# into the op layer (ops: schemas, entry points, the choice of backend) or the public op API (leanconv/ops: the
# dispatcher); the composites alone call other ops through the public API, as aten's composite kernels do.
MAY_INCLUDE = {
    "csrc/common": {"common"},
    "csrc/composite": {"common", "composite", "leanconv"},
    "csrc/cpu": {"common", "composite", "cpu"},
    "cuda": {"common", "composite", "emulation"},
    "csrc/ops": {"common", "composite", "ops", "leanconv"},
    "csrc/autograd": {"common", "composite", "autograd", "leanconv"},
    "csrc/nn": {"common", "leanconv"},
    "csrc/python": {"leanconv"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def _layers_included(folder):
    for path in sorted((REPO / folder).iterdir()):
        if path.suffix in (".h", ".cpp", ".cu", ".cuh"):
            for name in INCLUDE.findall(path.read_text()):
                if "/" in name:
                    yield path.name, name, name.split("/", 1)[0]


def test_every_cpp_layer_includes_only_the_layers_below_it():
    found = {folder: list(_layers_included(folder)) for folder in MAY_INCLUDE}
    assert all(found.values())  # (each folder has includes to check)
    upward = [f"{folder}/{file} includes {name}" for folder, includes in found.items()
              for file, name, layer in includes if layer not in MAY_INCLUDE[folder]]
    assert not upward, upward
    layers = {folder.rsplit("/", 1)[-1] for folder in MAY_INCLUDE} | {"leanconv", "emulation"}
    for folder in MAY_INCLUDE:  # (an include of a folder not listed here names a layer this test must place)
        assert {layer for _, _, layer in found[folder]} <= layers, folder


def test_the_umbrella_header_includes_every_public_header():
    # CMake writes leanconv/leanconv.h from the headers under csrc/include/leanconv/ and installs it with them.
    include = REPO / "csrc" / "include"
    public = sorted(h.relative_to(include).as_posix() for h in include.rglob("*.h"))
    assert len(public) >= 10 and "leanconv/leanconv.h" not in public  # (generated, never a source file)
    umbrella = PACKAGE / "include" / "leanconv" / "leanconv.h"
    if not umbrella.exists():
        if os.environ.get("CI"):  # make test builds and installs it: missing there is a failure
            raise FileNotFoundError(umbrella)
        pytest.skip("leanconv is not built in place (python setup.py build_ext --inplace)")
    assert INCLUDE.findall(umbrella.read_text()) == public