"""Figures for NMF factorisations: spectrogram, dictionary, activations, objective."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, TYPE_CHECKING

import numpy as np

from deepnmf.plotting import finish_figure, new_figure

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from matplotlib.figure import Figure


def factorisation_figure(
    X: np.ndarray,
    components: np.ndarray,
    activations: np.ndarray,
    loss_curve: Sequence[float],
    path: str | Path | None = None,
    *,
    freqs: np.ndarray | None = None,
    times: np.ndarray | None = None,
    title: str = "NMF",
) -> Path | Figure:
    """Four panels: data, reconstruction, dictionary atoms, activations, and the objective.

    Parameters
    ----------
    X : np.ndarray [shape=(n_frames, n_bins)]
    components : np.ndarray [shape=(n_components, n_bins)]
    activations : np.ndarray [shape=(n_frames, n_components)]
    loss_curve : sequence of float
    """
    fig, axes = new_figure(2, 2, figsize=(12, 7))
    freqs = np.arange(X.shape[1]) if freqs is None else freqs
    times = np.arange(X.shape[0]) if times is None else times
    extent = [times[0], times[-1], freqs[0], freqs[-1]]
    db = lambda A: 20 * np.log10(np.maximum(A, 1e-8 * A.max()))  # noqa: E731
    recon = activations @ components
    vmax = db(X).max()
    for ax, A, name in ((axes[0, 0], X, "data"), (axes[0, 1], recon, "reconstruction W H")):
        ax.imshow(db(A).T, origin="lower", aspect="auto", extent=extent, vmin=vmax - 80, vmax=vmax, cmap="magma")
        ax.set(title=f"{title}: {name} (dB)", xlabel="time (s)" if times is not None else "frame", ylabel="frequency (Hz)")
    ax = axes[1, 0]
    peak = components.max(axis=1, keepdims=True)
    for k, atom in enumerate(components / np.maximum(peak, 1e-12)):
        ax.plot(freqs, atom + k, lw=0.8)
    ax.set(title="dictionary atoms (each scaled to 1, stacked)", xlabel="frequency (Hz)", ylabel="component")
    ax = axes[1, 1]
    for k, act in enumerate(activations.T / np.maximum(activations.max(axis=0)[:, None], 1e-12)):
        ax.plot(times, act + k, lw=0.8)
    ax.set(title="activations (each scaled to 1, stacked)", xlabel="time (s)", ylabel="component")
    inset = ax.inset_axes([0.72, 1.02, 0.28, 0.22])
    curve = np.asarray(loss_curve, dtype=float)
    (inset.semilogy if curve.min() > 0 else inset.plot)(curve, lw=1)
    inset.set_title("objective per iteration", fontsize=7)
    inset.tick_params(labelsize=6)
    return finish_figure(fig, path)


def loss_figure(
    curves: dict[str, Sequence[float]],
    path: str | Path | None = None,
    *,
    ylabel: str = "objective",
) -> Path | Figure:
    """One line per named loss curve, log scale."""
    fig, ax = new_figure(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(np.arange(len(curve)), curve, label=name)
    ax.set(xlabel="iteration", ylabel=ylabel, yscale="log")
    ax.legend()
    return finish_figure(fig, path)
