"""Training checkpoints: written atomically, the previous good one kept, a damaged one refused with a clear message.

A checkpoint holds everything a run needs to continue exactly: model, optimizer and scheduler states, the epoch,
the step within it, the epoch's sample order, and the RNG states. ``save`` writes ``PATH.tmp``, flushes it to disk
and renames it over ``PATH`` (a rename is atomic on POSIX file systems), after moving the old ``PATH`` to
``PATH.prev``: a crash at any moment leaves a complete ``PATH`` or ``PATH.prev``. ``load`` reads ``PATH``, and if
that is truncated or corrupted says so and falls back to ``PATH.prev``.
"""
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import torch

FORMAT = 1


class CheckpointError(RuntimeError):
    """No usable checkpoint: the message says which files were tried and what is wrong with each."""


def previous_path(path) -> Path:
    return Path(str(path) + ".prev")


def save(path, state: Dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(str(path) + ".tmp")
    with open(temporary, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, previous_path(path))
    os.replace(temporary, path)


def _read(path: Path) -> Dict[str, Any]:
    # weights_only: a checkpoint is data (tensors, numbers, lists), never code to run.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"not a leanconv training checkpoint of format {FORMAT}")
    return state


def load(path) -> Optional[Dict[str, Any]]:
    """The newest readable checkpoint at ``path`` (or its ``.prev``); None when neither exists."""
    path = Path(path)
    problems = []
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            continue
        try:
            state = _read(candidate)
        except Exception as error:  # truncated, corrupted, or another format: say which, try the previous one
            problems.append(f"{candidate}: {type(error).__name__}: {error}")
            print(f"leanconv: checkpoint {candidate} is unreadable ({type(error).__name__}: {error}); "
                  "trying the previous one", file=sys.stderr)
            continue
        if candidate != path:
            print(f"leanconv: resuming from the previous checkpoint {candidate}", file=sys.stderr)
        return state
    if problems:
        raise CheckpointError("leanconv: no usable checkpoint:\n  " + "\n  ".join(problems))
    return None
