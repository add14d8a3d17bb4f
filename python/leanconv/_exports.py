"""A package's exports gathered from its modules: each public module (a name not starting with ``_``) lists its
public names in ``__all__``, and the package re-exports them, so a family's new module needs no edit of the
package's ``__init__``."""
import importlib
import importlib.util
import pkgutil


def collect(package: str, path, namespace: dict) -> list:
    """Imports every public module of ``package`` (in name order), binds each name of its ``__all__`` in
    ``namespace`` (the package's globals) and returns all of them; two modules exporting one name is an error."""
    exported = {}
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for name in getattr(module, "__all__", ()):
            if name in exported:
                raise ImportError(f"leanconv: {package}.{info.name} and {package}.{exported[name]} both export "
                                  f"{name!r}")
            exported[name] = info.name
            namespace[name] = getattr(module, name)
    return list(exported)


def family_tools(package: str, families, namespace: dict) -> list:
    """Imports ``package.<family>`` for each family of the registry that has such a module (its tools: tuning,
    factorising, export, ...), binds it in ``namespace`` and returns their names."""
    tools = []
    for family in families:
        if importlib.util.find_spec(f"{package}.{family}") is not None:
            namespace[family] = importlib.import_module(f"{package}.{family}")
            tools.append(family)
    return tools
