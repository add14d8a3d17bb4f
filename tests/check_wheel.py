"""Checks that a built wheel holds what a C++ user of a pip install needs: _C, the library, headers, CMake."""
import sys
import zipfile

REQUIRED = ["leanconv/__init__.py", "leanconv/lib/libleanconv.so", "leanconv/include/leanconv/leanconv.h",
            *[f"leanconv/include/leanconv/{layer}/{family}.h" for layer in ("ops", "nn")
              for family in ("generated", "filter_summary", "lowrank")],
            "leanconv/include/leanconv/nn/shared.h",
            "leanconv/share/cmake/leanconv/leanconvConfig.cmake",
            "leanconv/share/cmake/leanconv/leanconvTargets.cmake"]


def main(path: str) -> int:
    names = set(zipfile.ZipFile(path).namelist())
    missing = [n for n in REQUIRED if n not in names]
    if not any(n.startswith("leanconv/_C.") and n.endswith(".so") for n in names):
        missing.append("leanconv/_C.*.so")
    if missing:
        print(f"{path}: missing {missing}")
        return 1
    print(f"{path}: complete ({len(names)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
