"""Figures for VAE-NMF and dictionary training: ELBO terms per epoch, dictionary atoms."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence, TYPE_CHECKING

import numpy as np

from deepnmf.plotting import finish_figure, new_figure

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from matplotlib.figure import Figure


def plot_elbo(
    history: Mapping[str, Sequence[float]],
    path: str | Path | None = None,
    *,
    title: str = "VAE-NMF training",
) -> Path | Figure:
    """Three panels per epoch: the loss (negative ELBO + penalty), the expected NLL, the KL.

    Parameters
    ----------
    history : mapping of str -> sequence of float
        ``VAENMF.history_``: ``train_loss``, ``train_nll``, ``train_kl`` and
        optionally the ``val_`` versions, one value per epoch.
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.

    Returns
    -------
    Path or matplotlib.figure.Figure
    """
    fig, axes = new_figure(1, 3, figsize=(12, 3.4))
    panels = [("loss", "loss = -ELBO + penalty"), ("nll", "-E_q[log p(x|z)]"), ("kl", "KL(q(z|x) || p(z))")]
    for ax, (term, label) in zip(axes, panels):
        for split, style in (("train", "-"), ("val", "--")):
            values = history.get(f"{split}_{term}")
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per sample")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return finish_figure(fig, path)


def plot_loss_curve(
    losses: Sequence[float],
    path: str | Path | None = None,
    *,
    xlabel: str = "iteration",
    title: str = "objective",
) -> Path | Figure:
    """One curve (for example ``NMF.loss_curve_``) on a log scale when positive.

    Parameters
    ----------
    losses : sequence of float [shape=(n_iter,)]
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.
    """
    fig, ax = new_figure(figsize=(5, 3.4))
    values = np.asarray(losses, dtype=float)
    ax.plot(np.arange(1, values.size + 1), values)
    if values.size and np.all(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("objective")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return finish_figure(fig, path)


def uneven_row_edges(values: np.ndarray) -> np.ndarray | None:
    """Row boundaries (midpoints between neighbours) for unevenly spaced axis values, ``None`` if even.

    Parameters
    ----------
    values : np.ndarray [shape=(n,)]
        Increasing axis values (frequencies of a dictionary's features).

    Returns
    -------
    edges : np.ndarray [shape=(n + 1,)] or None
        ``edges[i] <= values[i] <= edges[i + 1]``; the outer rows extend by
        half their inner step.
    """
    steps = np.diff(values)
    if values.size < 2 or np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        return None
    return np.concatenate([[values[0] - steps[0] / 2], (values[:-1] + values[1:]) / 2, [values[-1] + steps[-1] / 2]])


def plot_dictionary(
    components: np.ndarray,
    path: str | Path | None = None,
    *,
    freqs: np.ndarray | None = None,
    title: str = "dictionary atoms",
) -> Path | Figure:
    """The atoms as an image (one column per atom), each normalised to its maximum.

    Parameters
    ----------
    components : np.ndarray [shape=(n_components, n_features)]
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.
    freqs : np.ndarray [shape=(n_features,)], optional
        Feature axis values (Hz for spectra); otherwise the feature index.
    """
    W = np.asarray(components, dtype=float)
    W = W / np.maximum(W.max(axis=1, keepdims=True), 1e-12)
    fig, ax = new_figure(figsize=(max(4.0, 0.12 * W.shape[0] + 3), 4))
    f = None if freqs is None else np.asarray(freqs, dtype=float)
    edges = None if f is None else uneven_row_edges(f)
    if edges is not None:  # a point cloud's distinct frequencies: rows drawn at their true heights
        image = ax.pcolormesh(np.arange(W.shape[0] + 1) + 0.5, edges, W.T, cmap="magma", shading="flat")
    else:
        extent = None if f is None else (0.5, W.shape[0] + 0.5, float(f[0]), float(f[-1]))
        image = ax.imshow(W.T, origin="lower", aspect="auto", cmap="magma", extent=extent, interpolation="nearest")
    ax.set_xlabel("atom")
    ax.set_ylabel("frequency (Hz)" if freqs is not None else "feature")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="relative weight")
    return finish_figure(fig, path)


def plot_throughput(
    frames_per_second: Mapping[str, float],
    path: str | Path | None = None,
    *,
    title: str = "training throughput",
) -> Path | Figure:
    """Horizontal bars of frames per second, one per training loop.

    Parameters
    ----------
    frames_per_second : mapping of str -> float
        Loop name -> frames per second.
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.
    """
    names = list(frames_per_second)
    values = [float(frames_per_second[n]) for n in names]
    fig, ax = new_figure(figsize=(7, 0.5 * len(names) + 1.5))
    ax.barh(np.arange(len(names)), values, color="tab:blue")
    ax.set_yticks(np.arange(len(names)), names)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.0f}", va="center")
    ax.set_xlabel("frames per second")
    ax.set_xlim(0, max(values) * 1.2 if values else 1)
    ax.set_title(title)
    return finish_figure(fig, path)
