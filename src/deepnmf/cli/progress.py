"""Progress records (:class:`deepnmf.callbacks.EpochInfo`) shown on a rich progress bar."""
from __future__ import annotations

from typing import Any

from deepnmf.callbacks import Callback, EpochInfo


def describe(info: EpochInfo) -> str:
    """The text shown beside the bar: the record's message, else its loss (when it has one)."""
    if info.message:
        return info.message
    loss = info.loss
    return "" if loss is None else f"loss {loss:.4g}"


def progress_callback(progress: Any, task: Any) -> Callback:
    """A callback that moves ``task`` of a rich ``progress`` (see :func:`deepnmf.cli.app.progress_bar`).

    A record of a new ``stage`` restarts the bar under that stage's name with
    the record's ``max_epochs`` as total; every record sets the completed
    count to ``epoch`` and shows :func:`describe`.
    """
    seen: set[str] = set()

    def report(info: EpochInfo) -> None:
        if info.stage not in seen:
            seen.add(info.stage)
            progress.update(task, description=info.stage or "fit", total=info.max_epochs, completed=0)
        progress.update(task, completed=info.epoch, info=describe(info))

    return report
