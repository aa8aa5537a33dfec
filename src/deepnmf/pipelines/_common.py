"""Small pieces shared by the pipelines and the runners: JSON files, notices and work-unit progress.

Progress goes through the one protocol (:class:`deepnmf.callbacks.EpochInfo`):
a *notice* is a record with ``epoch == 0`` and a ``message`` (printed once,
not counted); a *work unit* is a record with ``epoch`` units done out of
``max_epochs``, a ``stage`` and a ``message``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from deepnmf.callbacks import Callback, Clock, EpochInfo, notify

#: said before the first, silent, epoch of an iN-NMF training compiled with torch.compile
COMPILE_NOTICE = "the first epoch compiles the training step with torch.compile (9-25 s the first time)"


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (creating the parent folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def send_notice(callback: Callback | None, message: str, *, stage: str = "", max_epochs: int = 0) -> None:
    """Send a notice (a record with ``epoch=0`` and a message) to ``callback``, if any."""
    notify(callback, EpochInfo(0, max_epochs, stage=stage, message=message))


def unit_counter(callback: Callback | None, stage: str, total: int) -> Callable[[str], bool]:
    """A function ``step(message)`` that counts one unit of work done and reports it to ``callback``.

    Each call sends ``EpochInfo(epoch=units done, max_epochs=total, stage=stage,
    message=message)`` and returns True when the callback asks to stop.
    """
    clock = Clock()
    done = 0

    def step(message: str) -> bool:
        nonlocal done
        done += 1
        return notify(callback, EpochInfo(done, total, elapsed=clock(), stage=stage, message=message))

    return step
