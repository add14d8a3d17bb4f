"""Training checkpoints: written atomically, checksummed, the previous good one kept, a damaged one refused with a
clear message, and never written over anything else.

A checkpoint holds everything a run needs to continue exactly: model, optimizer and scheduler states, the epoch,
the step within it, the RNG states, and the options that define the run (``options``: a resumed run must be the
same run). The file is a header line (``MAGIC``), a line with the payload's length and SHA-256, then the payload
(``torch.save`` of the state): damage anywhere, a flipped byte inside a tensor included, fails the checksum.

``save`` writes a temporary file of its own (a unique name beside ``PATH``), flushes it to disk and renames it over
``PATH`` (a rename is atomic on POSIX file systems), after moving the old ``PATH`` to ``PATH.prev``: a crash at any
moment leaves a complete ``PATH`` or ``PATH.prev``. Only files that start with ``MAGIC`` are ever moved or replaced:
a directory or any other file at ``PATH`` or ``PATH.prev`` is an error (``check_destination`` says so before a run
trains). ``load`` reads ``PATH``, and if that is truncated or damaged says so and falls back to ``PATH.prev``.
"""
import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch

MAGIC = b"leanconv training checkpoint\n"
FORMAT = 2


class CheckpointError(RuntimeError):
    """No usable checkpoint, or a path that is not one: the message says which files and what is wrong."""


def previous_path(path) -> Path:
    return Path(str(path) + ".prev")


def is_checkpoint(path) -> bool:
    """Whether ``path`` is a regular file this module wrote (it starts with MAGIC), whatever its state after that."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _refuse_foreign(path: Path) -> None:
    if path.is_dir():
        raise CheckpointError(f"leanconv: checkpoint path {path} is a directory; give a file path, e.g. {path}/run.pt")
    if (path.exists() or path.is_symlink()) and not is_checkpoint(path):
        raise CheckpointError(f"leanconv: {path} exists and is not a leanconv training checkpoint: refusing to move "
                              "or replace it (give another --checkpoint path)")


def check_destination(path) -> None:
    """Raises CheckpointError unless checkpoints can be saved at ``path`` without touching anything else: neither
    ``path`` nor ``path.prev`` is a directory or a file other than a checkpoint, and the folder is writable."""
    path = Path(path)
    for candidate in (path, previous_path(path)):
        _refuse_foreign(candidate)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(f"leanconv: cannot create the checkpoint folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CheckpointError(f"leanconv: the checkpoint folder {folder} is not writable")


def save(path, state: Dict[str, Any]) -> None:
    path = Path(path)
    check_destination(path)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    payload = buffer.getvalue()
    header = MAGIC + f"bytes={len(payload)} sha256={hashlib.sha256(payload).hexdigest()}\n".encode()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.replace(path, previous_path(path))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _read(path: Path) -> Dict[str, Any]:
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise ValueError("not a leanconv training checkpoint (no header)")
    line_end = data.find(b"\n", len(MAGIC))
    try:
        fields = dict(item.split("=", 1) for item in data[len(MAGIC):line_end].decode().split())
        length, digest = int(fields["bytes"]), fields["sha256"]
    except (ValueError, KeyError, UnicodeDecodeError):
        raise ValueError("damaged header") from None
    payload = data[line_end + 1:]
    if len(payload) != length:
        raise ValueError(f"truncated or extended: {len(payload)} bytes of data where the header says {length}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise ValueError("damaged: the data does not match its SHA-256 checksum")
    # weights_only: a checkpoint is data (tensors, numbers, lists), never code to run.
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"not a leanconv training checkpoint of format {FORMAT}")
    return state


def load(path) -> Optional[Dict[str, Any]]:
    """The newest readable checkpoint at ``path`` (or its ``.prev``); None when neither exists."""
    path = Path(path)
    problems = []
    for candidate in (path, previous_path(path)):
        if not (candidate.exists() or candidate.is_symlink()):
            continue
        try:
            if candidate.is_dir():
                raise ValueError("a directory, not a checkpoint")
            state = _read(candidate)
        except Exception as error:  # truncated, damaged, foreign or another format: say which, try the previous one
            problems.append(f"{candidate}: {error}")
            print(f"leanconv: checkpoint {candidate} is unusable ({error}); trying the previous one", file=sys.stderr)
            continue
        if candidate != path:
            print(f"leanconv: resuming from the previous checkpoint {candidate}", file=sys.stderr)
        return state
    if problems:
        raise CheckpointError("leanconv: no usable checkpoint:\n  " + "\n  ".join(problems))
    return None


def _flag(name: str) -> str:
    """The command-line flag of a recorded option ("generated.ring_size" is the generated family's --ring-size)."""
    family, _, option = name.rpartition(".")
    return f"--{option.replace('_', '-')}" + (f" ({family})" if family else "")


def check_options(saved: Optional[Dict[str, Any]], current: Dict[str, Any]) -> None:
    """A resumed run continues the run in the checkpoint: every option that defines it (model, family options, data,
    batch size, schedule and its length, seed, ...) must be the checkpoint's. Raises CheckpointError naming each
    option that differs."""
    if saved is None:
        raise CheckpointError("leanconv: the checkpoint does not record its run's options; start a new run")
    differing = [(name, saved.get(name), value) for name, value in current.items() if saved.get(name) != value]
    differing += [(name, value, None) for name, value in saved.items() if name not in current]
    if differing:
        listed = "\n  ".join(f"{_flag(name)}: {old!r} in the checkpoint, {new!r} now" for name, old, new in differing)
        rule = ("\nA run's schedule is built for its epochs: to train longer, start a new run (a new --checkpoint "
                "path)." if any(name == "epochs" for name, _, _ in differing) else "")
        raise CheckpointError("leanconv: --resume continues the run in the checkpoint, but these options differ:\n  "
                              f"{listed}{rule}")
