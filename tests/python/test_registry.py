"""The family registry (leanconv.families) is the one list: everything that enumerates families or ops agrees with
it, so a new family or op cannot be left out of the docs, tests, benchmarks or tables unnoticed."""
import ast
import importlib
import pkgutil
import re
from pathlib import Path

import torch

import leanconv  # noqa: F401  (registers the ops)
from leanconv.families import FAMILIES, benchmarks, table_rows
from leanconv.train.__main__ import MODELS, parse_args
import catalogue
from op_catalogue import HELPER_OPS, OPS

REPO = Path(__file__).resolve().parents[2]


def test_design_docs_family_table_is_the_registry():
    text = (REPO / "docs" / "design.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| \[(\w+)\.md\]\(\w+\.md\) \| (.+?) \|$", text, re.M)
    assert {name: (page, paper) for name, page, paper in rows} == {
        name: (name, family.paper) for name, family in FAMILIES.items() if name != "dense"}


def test_every_family_has_its_docs_page_benchmark_and_table_rows():
    for name, family in FAMILIES.items():
        assert (REPO / family.docs).exists(), family.docs
        assert family.table_rows, name
        if name != "dense":
            assert family.benchmark and (REPO / "benchmarks" / family.benchmark).exists(), name
    for row, flags in table_rows():  # each row's flags are a valid command line
        args = parse_args(flags.split())
        assert args.model in MODELS and args.conv in FAMILIES, row


def test_every_op_registered_with_the_dispatcher_is_in_the_op_catalogue():
    # The catalogue's ops get the whole contract (reference, opcheck, gradients, compile, ...); the helper ops
    # (queries and settings of a kernel choice, no tensors) each name the test that covers them.
    registered = {name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("leanconv::")}
    assert registered == {spec.name for spec in OPS} | set(HELPER_OPS)
    for op, test_file in HELPER_OPS.items():
        assert op in _called_in_tests(REPO / "tests" / "python" / test_file), (
            f"{test_file} names {op} but no test function there calls it")


def _called_in_tests(path):
    """The names called (f(...) or x.f(...)) inside the file's test functions: a mention in a comment, a string or
    a helper no test calls does not count."""
    called = set()
    for function in ast.parse(path.read_text()).body:
        if isinstance(function, ast.FunctionDef) and function.name.startswith("test_"):
            for node in ast.walk(function):
                if isinstance(node, ast.Call):
                    target = node.func
                    called.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None))
    return called


def test_the_helper_op_check_ignores_mentions_that_are_not_calls(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("# grouped_conv2d_rule\ndef helper():\n    ops.grouped_conv2d_choices()\n\n\n"
                     "def test_x():\n    assert 'eigen_conv2d_fused_is_cheaper'\n    ops.clear_grouped_conv2d_choices()\n")
    called = _called_in_tests(probe)
    assert "clear_grouped_conv2d_choices" in called
    assert not called & {"grouped_conv2d_rule", "grouped_conv2d_choices", "eigen_conv2d_fused_is_cheaper"}


def test_every_family_fuzzes_each_of_its_ops_in_its_own_fuzz_file():
    # catalogue/<family>.py declares a family's ops; tests/python/test_fuzz_<family>.py fuzzes each of them.
    for info in pkgutil.iter_modules(catalogue.__path__):
        if info.name.startswith("_"):
            continue
        ops = [spec.name for spec in getattr(importlib.import_module(f"catalogue.{info.name}"), "OPS", [])]
        fuzz_file = REPO / "tests" / "python" / f"test_fuzz_{info.name}.py"
        assert fuzz_file.exists() or not ops, f"{info.name}'s ops {ops} have no fuzz file {fuzz_file.name}"
        fuzzed = set(re.findall(r"^def test_(\w+)\(", fuzz_file.read_text(), re.M)) if ops else set()
        missing = [name for name in ops if name not in fuzzed]
        assert not missing, f"ops without a fuzz test of their own in {fuzz_file.name}: {missing}"


def test_the_moonshot_recipe_stays_under_its_parameter_budget():
    # Every compact row of benchmarks/moonshot_fashion_mnist.rows learns at most 100,000 parameters, every tensor
    # counted (rings, BatchNorms, stem, classifier), and each row is a valid command line.
    from leanconv.train.__main__ import build_model

    rows = [line.split("|", 1) for line in (REPO / "benchmarks" / "moonshot_fashion_mnist.rows").read_text()
            .splitlines() if line.strip() and not line.startswith("#")]
    assert len(rows) >= 2
    for name, flags in rows:
        model, _ = build_model(parse_args(flags.split()), num_classes=10, in_channels=1)
        learned = sum(p.numel() for p in model.parameters())
        assert ("dense" in name) == (learned > 100_000), (name, learned)


def _table_rows(text, header):
    """The rows of the markdown table under `header` (a line starting with it), as lists of cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_design_docs_ops_and_public_names_tables_are_the_registrys():
    """design.md's other family tables hold one row per family, and a family's row names its ops and modules."""
    import importlib

    text = (REPO / "docs" / "design.md").read_text()
    families = {name for name in FAMILIES if name != "dense"}
    ops_rows = {row[0].strip("`"): row for row in _table_rows(text, "| family | ops | modules")}
    assert set(ops_rows) == families
    op_family = {}
    for path in (REPO / "tests" / "python" / "catalogue").glob("[!_]*.py"):
        module = importlib.import_module(f"catalogue.{path.stem}")
        for spec in module.OPS:
            op_family[spec.name] = path.stem
        for op in getattr(module, "HELPER_OPS", {}):
            op_family[op] = path.stem
    for op, owner in op_family.items():  # (the block epilogue's ops are in the shared family's row)
        row = ops_rows["shared" if owner == "block_epilogue" else owner]
        assert f"`{op}`" in row[1], (op, row[0])
    for name in families:
        for exported in importlib.import_module(f"leanconv.nn.{name}").__all__:
            if exported[0].isupper():  # (the modules; helper functions need not be listed)
                assert f"`{exported}`" in ops_rows[name][2], (name, exported)
    public_rows = {row[0]: row for row in _table_rows(text, "| family | Python modules")}
    assert set(public_rows) == families


def test_the_readme_status_table_has_every_family():
    text = (REPO / "README.md").read_text()
    rows = _table_rows(text, "| family | modules | status")
    for name, family in FAMILIES.items():
        if name == "dense":
            continue
        abbreviation = re.search(r"\((\w+)\)$", family.paper).group(1)  # "Filter Summary (FSNet)" -> FSNet
        assert sum(f"({abbreviation})" in row[0] for row in rows) == 1, (name, abbreviation)
    assert len(rows) == len(FAMILIES) - 1


def test_the_readmes_family_lists_name_every_family():
    """README's list of family pages links each family's page, and its benchmark line names each family's script."""
    text = (REPO / "README.md").read_text()
    intro = text[text.index("Families (the architecture"):text.index("```")]
    linked = set(re.findall(r"\]\(docs/(\w+)\.md\)", intro)) - {"design"}
    assert linked == set(FAMILIES) - {"dense"}
    bench_line = re.search(r"^python benchmarks/bench_<family>\.py --help\s+# (.+)$", text, re.M)
    assert bench_line, "README's benchmark line"
    listed = {name.strip() for name in bench_line.group(1).split(",")}
    assert {f"bench_{name}.py" for name in listed} == set(benchmarks())
