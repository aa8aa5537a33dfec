"""The one progress protocol: a callback receives an :class:`EpochInfo` record.

Every estimator's ``fit(..., callback=)``, every pipeline and every experiment
runner reports progress the same way: ``callback(info)`` with an
:class:`EpochInfo`. Returning ``True`` asks the caller to stop early (where
it can: training loops stop after the current epoch). Estimators fill
``train["loss"]`` with the objective they minimise; pipelines and runners
set ``stage`` (what is being done) and ``message`` (a line for a person) and
count work units in ``epoch`` / ``max_epochs``. The command line turns the
records into progress bars (:func:`deepnmf.cli.app.progress_callback`); the
library never prints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional


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
