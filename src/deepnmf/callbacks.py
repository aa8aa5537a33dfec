"""The one progress protocol: a callback receives an :class:`EpochInfo` record.

Every estimator's ``fit(..., callback=)``, every pipeline and every experiment
runner reports progress the same way: ``callback(info)`` with an
:class:`EpochInfo`. Returning ``True`` asks the caller to stop early (where
it can: training loops stop after the current epoch). Estimators fill
``train["loss"]`` with the objective they minimise; pipelines and runners
set ``stage`` (what is being done) and ``message`` (a line for a person) and
count work units in ``epoch`` / ``max_epochs``. The command line turns the
records into progress bars (:func:`deepnmf.cli.app.progress_callback`); the
library prints only when an estimator's ``verbose`` asks it to, and then
through a callback of this module (:func:`print_every`), chained to the
user's with :func:`chain`.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TextIO


@dataclass
class EpochInfo:
    """What a progress callback receives.

    Attributes
    ----------
    epoch : int
        Epochs (iterations, work units) completed, 1-based.
    max_epochs : int
        Total expected (an upper bound when training may stop early).
    train : dict of str -> float
        Loss terms of this epoch on the training data; ``"loss"`` is the
        objective being minimised.
    val : dict of str -> float
        The same on validation data (empty without validation).
    elapsed : float
        Seconds since the work started.
    best_epoch : int
        Epoch with the best monitored loss so far (0 when not tracked).
    stage : str
        What is running, for pipelines and runners ("speech dictionary",
        "evaluate"...); empty inside one estimator's fit.
    message : str
        A short human-readable line (file names, settings); may be empty.
    """

    epoch: int
    max_epochs: int
    train: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    best_epoch: int = 0
    stage: str = ""
    message: str = ""

    @property
    def loss(self) -> Optional[float]:
        """The monitored loss: validation loss when there is one, else training loss (None if absent)."""
        return self.val.get("loss", self.train.get("loss"))


#: the type of every progress callback in deepnmf
Callback = Callable[[EpochInfo], Any]


def notify(callback: Optional[Callback], info: EpochInfo) -> bool:
    """Call ``callback(info)`` if given; True when the callback asks to stop."""
    return callback is not None and callback(info) is True


def stage_reporter(callback: Optional[Callback], stage: str) -> Callback | None:
    """A callback that forwards an estimator's records to ``callback`` tagged with ``stage``."""
    if callback is None:
        return None

    def forward(info: EpochInfo) -> Any:
        info.stage = info.stage or stage
        return callback(info)

    return forward


def chain(*callbacks: Optional[Callback]) -> Callback | None:
    """One callback that calls each given one in order; it asks to stop when any of them does.

    ``None`` entries are skipped; with none left the result is ``None`` (so
    loops can skip building records), with one left it is that callback.
    """
    live = [cb for cb in callbacks if cb is not None]
    if len(live) <= 1:
        return live[0] if live else None

    def call_all(info: EpochInfo) -> bool:
        stops = [notify(cb, info) for cb in live]  # every callback sees every record
        return any(stops)

    return call_all


def print_every(
    every: int, line: Callable[[EpochInfo], str], *, at_end: bool = True, file: TextIO | None = None
) -> Callback:
    """A callback printing ``line(info)`` every ``every`` epochs (what ``verbose`` turns on).

    Parameters
    ----------
    every : int
        Print at epochs that are multiples of ``every`` (values below 1 count as 1).
    line : callable
        ``line(info) -> str``, the text of one line.
    at_end : bool
        Also print at ``info.epoch == info.max_epochs``.
    file : text stream, optional
        Default ``sys.stderr`` (looked up at each call).

    A record with a ``message`` and ``epoch == 0`` (a notice before training,
    such as "compiling") prints its message instead.
    """
    every = max(1, int(every))

    def report(info: EpochInfo) -> None:
        out = file if file is not None else sys.stderr
        if info.epoch == 0 and info.message:
            print(info.message, file=out)
        elif info.epoch % every == 0 or (at_end and info.epoch == info.max_epochs):
            print(line(info), file=out)

    return report


class Clock:
    """Seconds since construction, for :attr:`EpochInfo.elapsed` (``Clock()()``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def epoch_record(epoch: int, max_epochs: int, loss: float, clock: Clock, **train: float) -> EpochInfo:
    """The record an estimator sends after an iteration: ``train={"loss": loss, **train}``."""
    return EpochInfo(epoch, max_epochs, {"loss": float(loss), **train}, elapsed=clock())


def report_epoch(callback: Optional[Callback], epoch: int, max_epochs: int, loss: float, clock: Clock,
                 **train: float) -> bool:
    """Send an iteration's loss to ``callback`` (if any) as an :class:`EpochInfo`; True when it asks to stop.

    What every estimator's loop calls after an iteration or epoch; without a
    callback no record is built.
    """
    return callback is not None and notify(callback, epoch_record(epoch, max_epochs, loss, clock, **train))


def stop_on_plateau(tol: float, window: int = 100) -> Callback:
    """A callback asking to stop once the loss has stopped falling.

    Every ``window`` epochs it compares the training loss with the one
    ``window`` epochs earlier and stops when the relative decrease
    ``(old - new) / |old|`` is below ``tol`` (a rise counts as no decrease).

    Parameters
    ----------
    tol : float
        Relative decrease per ``window`` epochs below which training stops (> 0).
    window : int
        Epochs between two comparisons.

    Returns
    -------
    callable
        ``callback(info) -> bool``.
    """
    if not tol > 0 or int(window) < 1:
        raise ValueError(f"stop_on_plateau needs tol > 0 and window >= 1, got tol={tol!r}, window={window!r}")
    marks: dict[int, float] = {}

    def check(info: EpochInfo) -> bool:
        loss = info.train.get("loss")
        if loss is None or info.epoch % window:
            return False
        marks[info.epoch] = float(loss)
        old = marks.get(info.epoch - window)
        return old is not None and (old - loss) < tol * abs(old)

    return check
