"""Every file or folder of the repository that README.md and docs/*.md name exists: a renamed or removed file
cannot leave a page pointing at nothing. Placeholders (`csrc/ops/<f>.cpp`) and globs (`block_epilogue*`) are
patterns, not names, and are left out."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP = ("csrc", "cuda", "python", "tests", "benchmarks", "examples", "docs", "cmake", ".ci", "leanconv")
# A path starting at leanconv/ is the package's (python/) or the public headers' (csrc/include/).
ROOTS = (REPO, REPO / "python", REPO / "csrc" / "include")
# Files the build writes (CMakeLists.txt writes the umbrella header from the public headers): named, not in the tree.
GENERATED = {"leanconv/leanconv.h": "CMakeLists.txt"}
PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./<>*{},-]+)" % "|".join(re.escape(t) for t in TOP))


def named_paths(text):
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".,:;)")
        if not re.search(r"[<>*{}]", path):
            yield path


def test_every_path_the_docs_name_exists():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert sum(1 for page in pages for _ in named_paths(page.read_text())) > 100
    missing = [f"{page.name}: {path}" for page in pages for path in named_paths(page.read_text())
               if not any((root / path).exists() for root in ROOTS) and path not in GENERATED]
    assert not missing, missing
    for path, writer in GENERATED.items():  # each generated file is still written by the file named
        assert path in (REPO / writer).read_text(), (path, writer)


def test_the_path_reader_finds_paths_and_skips_patterns():
    text = ("see `csrc/common/generated.h`, csrc/ops/<f>.cpp and `block_epilogue*` in cuda/launch.cuh; "
            "`leanconv/ops/block_epilogue.h`, not leanconv.nn.")
    assert list(named_paths(text)) == ["csrc/common/generated.h", "cuda/launch.cuh", "leanconv/ops/block_epilogue.h"]
