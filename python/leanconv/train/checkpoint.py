"""Training checkpoints: written atomically, checksummed, the previous good one kept, a damaged one refused with a
clear message, and never written over anything else.

A checkpoint holds everything a run needs to continue exactly: model, optimizer and scheduler states, the epoch,
the step within it, the RNG states, and the options that define the run (``options``: a resumed run must be the
same run). The file is a header line (``MAGIC``), a line with the payload's length and SHA-256, then the payload
(``torch.save`` of the state): damage anywhere, a flipped byte inside a tensor included, fails the checksum.

``save`` writes a temporary file of its own (a unique name beside ``PATH``), flushes it to disk and renames it over
``PATH`` (a rename is atomic on POSIX file systems), after moving the old ``PATH`` to ``PATH.prev``: a crash at any
moment leaves a complete ``PATH`` or ``PATH.prev``. Only files that start with ``MAGIC`` are ever moved or replaced,
and a blank ``PATH`` (empty or all zero bytes, what a crash can leave) beside a checkpoint at ``PATH.prev``: a
directory or any other file at ``PATH`` or ``PATH.prev`` is an error (``check_destination`` says so before a run
trains, creating no file). ``load`` reads ``PATH``, and if that is blank, truncated or damaged says so and
falls back to ``PATH.prev``. A rewritten checkpoint keeps its file's permissions; a new one gets the umask's. A disk
that fills during the write is one line, and the previous checkpoint stays.
"""
import errno
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


def is_blank(path) -> bool:
    """Whether ``path`` is a regular file that is empty or all zero bytes: no one's data, what a crash during a
    write can leave."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            if chunk.count(0) != len(chunk):
                return False
    return True


def _replaceable(path: Path) -> bool:
    """A checkpoint, or a blank file where a checkpoint was being written (a checkpoint at PATH.prev)."""
    return is_checkpoint(path) or (is_blank(path) and is_checkpoint(previous_path(path)))


def _refuse_foreign(path: Path, replaceable) -> None:
    if path.is_dir():
        raise CheckpointError(f"leanconv: checkpoint path {path} is a directory; give a file path, e.g. {path}/run.pt")
    if (path.exists() or path.is_symlink()) and not replaceable(path):
        raise CheckpointError(f"leanconv: {path} exists and is not a leanconv training checkpoint: refusing to move "
                              "or replace it (give another --checkpoint path)")


def check_destination(path) -> None:
    """Raises CheckpointError unless checkpoints can be saved at ``path`` without touching anything else: ``path``
    names a file, neither it nor ``path.prev`` is a directory or a file other than a checkpoint, and its folder is
    writable (made if missing: a folder, never a file)."""
    text = str(path)
    if text.endswith(("/", os.sep)):
        raise CheckpointError(f"leanconv: the checkpoint path {text} names a folder; give a file path, e.g. "
                              f"{text}run.pt")
    path = Path(path)
    _refuse_foreign(path, _replaceable)
    _refuse_foreign(previous_path(path), is_checkpoint)
    folder = path.parent
    try:  # making the folder is the one sure test that it can be made (root's os.access says yes to /proc)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(f"leanconv: cannot create the checkpoint folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CheckpointError(f"leanconv: the checkpoint folder {folder} is not writable")


def _mode_for(path: Path) -> int:
    """The permissions of a checkpoint written at ``path``: those of the file it replaces, else the umask's."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# A full disk or file-size limit during the write: one line, the previous checkpoint kept.
_NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def save(path, state: Dict[str, Any]) -> None:
    path = Path(path)
    check_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    payload = buffer.getvalue()
    header = MAGIC + f"bytes={len(payload)} sha256={hashlib.sha256(payload).hexdigest()}\n".encode()
    mode = _mode_for(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode)
        if is_checkpoint(path):  # a blank PATH is dropped, never moved over a good PATH.prev
            os.replace(path, previous_path(path))
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):
            os.unlink(temporary)
        if error.errno in _NO_ROOM:
            kept = " (the previous checkpoint is kept)" if path.exists() else ""
            raise CheckpointError(f"leanconv: cannot write the checkpoint {path}: {error.strerror}{kept}") from None
        raise
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
            if is_blank(candidate):
                raise ValueError("blank (empty or all zero bytes): a write that did not finish")
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
