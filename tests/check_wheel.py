"""Checks a built wheel: python tests/check_wheel.py WHEEL.

1. It holds what a C++ user of a pip install needs: _C, the library, headers, the CMake package.
2. It installs into a fresh virtual environment that has torch and nothing else, asking for no other package;
   there every module outside the training command imports, and `python -m leanconv.train --help` (and every other
   training command line's) ends with the one-line message that names the `train` extra.
3. With the packages of the `train` extra added, pip finds the extra satisfied, every module imports and
   `python -m leanconv.train --help` runs.

Nothing is downloaded (pip runs with --no-index) and torch is not copied: the environment reaches this Python's
installed packages through links, a folder of them per stage, each named by a .pth file: pip; torch and what it
requires; then the extra's packages and what they require. Packages outside those closures stay invisible.
"""
import re
import subprocess
import sys
import venv
import zipfile
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement

PUBLIC_HEADERS = Path(__file__).resolve().parents[1] / "csrc" / "include"
# Every public header of the source tree (csrc/include/leanconv/**), read from the tree, not listed here.
# The umbrella header leanconv/leanconv.h is written by CMake from them.
REQUIRED = ["leanconv/__init__.py", "leanconv/lib/libleanconv.so", "leanconv/include/leanconv/leanconv.h",
            *sorted(f"leanconv/include/{header.relative_to(PUBLIC_HEADERS).as_posix()}"
                    for header in PUBLIC_HEADERS.rglob("*.h")),
            "leanconv/share/cmake/leanconv/leanconvConfig.cmake",
            "leanconv/share/cmake/leanconv/leanconvTargets.cmake"]

MISSING_EXTRA = re.compile(r"leanconv: the training command needs \w+: pip install 'leanconv\[train\]'")

# Run in the environment: import every leanconv module, or (argument "core") every one that torch alone serves:
# all but the training command's submodules (the package and its report load their extras on use) and the
# NumPy reference.
IMPORT_MODULES = r"""
import importlib, pkgutil, sys
import leanconv
core = sys.argv[1] == "core"
names = ["leanconv"] + [m.name for m in pkgutil.walk_packages(leanconv.__path__, "leanconv.")]
names = [n for n in names if not any(part.startswith("_") for part in n.split("."))]
if core:
    names = [n for n in names if not n.startswith("leanconv.train.") or n == "leanconv.train.report"]
    names = [n for n in names if n != "leanconv.reference.generated"]
for name in names:
    importlib.import_module(name)
print(len(names), "modules import")
"""


def check_contents(path: Path) -> list:
    names = set(zipfile.ZipFile(path).namelist())
    missing = [n for n in REQUIRED if n not in names]
    if not any(n.startswith("leanconv/_C.") and n.endswith(".so") for n in names):
        missing.append("leanconv/_C.*.so")
    return missing


def installed_closure(requirements: list) -> list:
    """The installed distributions that `requirements` (strings) need, recursively, extras included."""
    found, extras_of, todo = {}, {}, [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        key = requirement.name.lower().replace("_", "-")
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue  # not on this platform (its marker), or missing: pip says which below
        wanted = set(requirement.extras)
        if key in found and wanted <= extras_of[key]:
            continue
        found[key], extras_of[key] = dist, extras_of.get(key, set()) | wanted
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras_of[key] | {""}):
                todo.append(sub)
    return list(found.values())


def link_distributions(dists: list, folder: Path) -> None:
    """Links each distribution's top-level files and folders (its modules and its .dist-info) into `folder`."""
    folder.mkdir(parents=True)
    for dist in dists:
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        if not tops:
            raise SystemExit(f"check_wheel: {dist.metadata['Name']} lists no files to link")
        for top in tops:
            target = folder / top
            if not target.exists():
                target.symlink_to(Path(dist.locate_file(top)).resolve())


def run(command: list, expect_status: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != expect_status:
        raise SystemExit(f"check_wheel: {' '.join(map(str, command))} exited {done.returncode}, not "
                         f"{expect_status}:\n{done.stdout}{done.stderr}")
    return done


def add_packages(python: Path, folder: Path, requirements: list) -> None:
    """Makes the installed distributions that `requirements` need visible in the environment of `python`."""
    link_distributions(installed_closure(requirements), folder)
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(site) / f"{folder.name}.pth").write_text(f"{folder}\n")


def extra_requirements(python: Path, extra: str) -> list:
    """The requirements of leanconv's `extra`, as the installed wheel declares them."""
    code = (f"from importlib import metadata; print('\\n'.join(r.split(';')[0].strip() for r in "
            f"metadata.requires('leanconv') if 'extra == \"{extra}\"' in r))")
    return run([python, "-c", code]).stdout.split()


# The command lines that need the train extra (the report needs it only to draw, after reading its logs).
TRAINING_COMMANDS = ["leanconv.train", "leanconv.train.demo", "leanconv.train.lowrank",
                     "leanconv.train.filter_summary_search"]


def check_command_without_extra(python: Path) -> None:
    """Status 1, leanconv's one line naming the extra last, no traceback (torch may warn first that it found no
    NumPy: that is torch's own message, whatever imports it), from every training command line."""
    for command in TRAINING_COMMANDS:
        done = run([python, "-m", command, "--help"], expect_status=1)
        ours = [line for line in done.stderr.splitlines() if line.startswith("leanconv:")]
        last = done.stderr.strip().splitlines()[-1:]
        if "Traceback" in done.stderr or len(ours) != 1 or ours != last or not MISSING_EXTRA.fullmatch(ours[0]):
            raise SystemExit(f"check_wheel: without the train extra, python -m {command} said:\n{done.stderr}")


def check_environment(wheel: Path, where: Path) -> None:
    if where.exists():
        run(["rm", "-rf", str(where)])
    venv.create(where, with_pip=False)  # pip comes linked too: no ensurepip needed
    python = where / "bin" / "python"
    add_packages(python, where / "installer", ["pip"])
    add_packages(python, where / "torch-packages", ["torch"])
    # Only torch is there and no index to download from: the install succeeds only if torch is all it needs.
    run([python, "-m", "pip", "install", "--quiet", "--no-index", str(wheel)])
    print(run([python, "-c", IMPORT_MODULES, "core"]).stdout.strip(), "with torch alone")
    check_command_without_extra(python)
    train = extra_requirements(python, "train")
    add_packages(python, where / "train-packages", train)
    run([python, "-m", "pip", "install", "--quiet", "--no-index", f"{wheel}[train]"])
    print(run([python, "-c", IMPORT_MODULES, "all"]).stdout.strip(), f"with the train extra ({', '.join(train)})")
    for command in TRAINING_COMMANDS:
        run([python, "-m", command, "--help"])


def main(path: str) -> int:
    wheel = Path(path).resolve()
    missing = check_contents(wheel)
    if missing:
        print(f"{path}: missing {missing}")
        return 1
    print(f"{path}: complete ({len(zipfile.ZipFile(wheel).namelist())} files)")
    check_environment(wheel, wheel.parent.parent / "wheel-venv")
    print(f"{path}: installs with torch alone; python -m leanconv.train names its extra, and runs with it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
