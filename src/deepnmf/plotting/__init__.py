"""Figures. Only this package imports matplotlib (with the non-interactive Agg backend).

One module per topic (``nmf``, ``vae``, ``implicit``, ``emg``, ``enhancement``);
every function takes arrays, writes a PNG and returns its path.
"""
from __future__ import annotations

from pathlib import Path


def new_figure(*args, **kwargs):
    """``plt.subplots`` with the Agg backend; returns ``(fig, axes)``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Save and close ``fig``; creates the parent folder."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
