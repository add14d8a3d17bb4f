"""The optional dependencies, each installed by one of leanconv's extras (setup.py's ``extras_require``):
``pip install 'leanconv[train]'`` for the training command. A missing one is named with the extra that
installs it, rather than as a bare ModuleNotFoundError."""
import contextlib
import importlib


class MissingExtra(ImportError):
    """A package of one of leanconv's extras is not installed; the message names the extra."""


def require(module: str, extra: str, user: str):
    """``module`` imported, or MissingExtra: "leanconv: <user> needs <package>: pip install 'leanconv[<extra>]'"."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != package:
            raise  # the package is there but broken: its own error says more
        raise MissingExtra(f"leanconv: {user} needs {package}: pip install 'leanconv[{extra}]'",
                           name=package) from None


def training_dependency(module: str):
    """``module``, one of the packages the ``train`` extra installs for the training command and its tools."""
    return require(module, "train", "the training command")


@contextlib.contextmanager
def exit_on_missing_extra():
    """For a command line: a missing extra ends it with its one-line message and exit status 1, no traceback."""
    try:
        yield
    except MissingExtra as missing:
        raise SystemExit(str(missing)) from None
