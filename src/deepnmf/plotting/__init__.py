"""Figures. Only this package imports matplotlib.

One module per topic (``nmf``, ``vae``, ``implicit``, ``emg``, ``enhancement``).
Every function takes arrays and a ``path``: it writes a PNG there and returns
the path, or, with ``path=None``, returns the drawn
:class:`matplotlib.figure.Figure` unsaved (to show, edit or inspect it; the
tests check what each figure draws this way).

Figures are made with matplotlib's object API (:class:`~matplotlib.figure.Figure`,
rendered by Agg when saved), never through ``pyplot``: drawing does not touch
the caller's backend or pyplot's list of open figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from matplotlib.figure import Figure


def new_figure(*args, figsize: tuple[float, float] | None = None, **kwargs):
    """A new :class:`~matplotlib.figure.Figure` and its axes, ``(fig, axes)``.

    ``args`` and ``kwargs`` are those of :meth:`matplotlib.figure.Figure.subplots`
    (``nrows, ncols, sharex, squeeze, gridspec_kw``...), as with ``plt.subplots``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Lay out ``fig`` and write it to ``path`` (PNG); creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


def finish_figure(fig: Figure, path: str | Path | None, *, dpi: int = 120) -> Path | Figure:
    """What every plotting function returns: the saved ``path``, or the laid-out ``fig`` when ``path`` is None."""
    if path is None:
        fig.tight_layout()
        return fig
    return save_figure(fig, path, dpi=dpi)
