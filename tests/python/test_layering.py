"""Every arrow points down: what users import (leanconv's product code) never imports the tests' and benchmarks'
oracles in leanconv.reference, which are written apart from the product so that a test compares two things."""
import ast
import pathlib

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
