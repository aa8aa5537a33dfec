"""Muscle-synergy figures: synergy bars, activations, envelope reconstructions, VAF curve.

Orientation as everywhere: envelopes ``(n_samples, n_channels)``, synergies
``(rank, n_channels)``, activations ``(n_samples, rank)``. Every function
writes a PNG and returns its path (``path=None``: returns the drawn Figure instead).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, TYPE_CHECKING

import numpy as np

from deepnmf.plotting import finish_figure, new_figure

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from matplotlib.figure import Figure


def plot_synergies(
    synergies: np.ndarray,
    channels: Sequence[str],
    path: str | Path | None = None,
    *,
    title: str = "",
) -> Path | Figure:
    """Bar chart of each synergy vector (one row of panels per synergy).

    Parameters
    ----------
    synergies : np.ndarray [shape=(rank, n_channels)]
    channels : sequence of str
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.
    """
    W = np.asarray(synergies)
    rank = W.shape[0]
    fig, axes = new_figure(rank, 1, figsize=(max(4.0, 0.5 * W.shape[1] + 2), 1.6 * rank + 0.6), sharex=True, squeeze=False)
    x = np.arange(W.shape[1])
    for k, ax in enumerate(axes[:, 0]):
        ax.bar(x, W[k], color=f"C{k}")
        ax.set_ylabel(f"S{k + 1}")
        ax.set_ylim(0, max(1.0, float(W.max())) * 1.05)
    axes[-1, 0].set_xticks(x, list(channels), rotation=45, ha="right")
    axes[0, 0].set_title(title or "synergy vectors (unit norm)")
    return finish_figure(fig, path)


def plot_activations(
    activations: np.ndarray,
    fs: float,
    path: str | Path | None = None,
    *,
    bounds: Sequence[tuple[int, int, int]] = (),
    title: str = "",
    time_label: str = "time (s)",
) -> Path | Figure:
    """Activation time courses, one panel per synergy, repetitions marked.

    Parameters
    ----------
    activations : np.ndarray [shape=(n_samples, rank)]
    fs : float
        Samples per unit of the time axis.
    bounds : sequence of (repetition, start, stop)
        Repetition boundaries in samples (drawn as vertical lines).
    """
    H = np.asarray(activations)
    t = np.arange(H.shape[0]) / fs
    fig, axes = new_figure(H.shape[1], 1, figsize=(8, 1.4 * H.shape[1] + 0.6), sharex=True, squeeze=False)
    for k, ax in enumerate(axes[:, 0]):
        ax.plot(t, H[:, k], color=f"C{k}", lw=1)
        ax.set_ylabel(f"S{k + 1}")
        for rep, start, _stop in bounds:
            ax.axvline(start / fs, color="0.6", lw=0.6, ls="--")
            if k == 0:
                ax.text(start / fs, ax.get_ylim()[1], f" r{rep}", va="top", fontsize=7, color="0.4")
    axes[-1, 0].set_xlabel(time_label)
    axes[0, 0].set_title(title or "synergy activations")
    return finish_figure(fig, path)


def plot_reconstruction(
    envelopes: np.ndarray,
    reconstruction: np.ndarray,
    channels: Sequence[str],
    vaf_per_channel: Sequence[float],
    path: str | Path | None = None,
    *,
    fs: float = 1.0,
    vaf: float | None = None,
    title: str = "",
    time_label: str = "time (s)",
) -> Path | Figure:
    """Original versus reconstructed envelope of every channel, with its VAF.

    Parameters
    ----------
    envelopes, reconstruction : np.ndarray [shape=(n_samples, n_channels)]
    channels : sequence of str
    vaf_per_channel : sequence of float, length n_channels
    """
    X, Y = np.asarray(envelopes), np.asarray(reconstruction)
    n = X.shape[1]
    ncol = 2 if n > 4 else 1
    nrow = int(np.ceil(n / ncol))
    fig, axes = new_figure(nrow, ncol, figsize=(5.5 * ncol, 1.5 * nrow + 0.8), sharex=True, squeeze=False)
    t = np.arange(X.shape[0]) / fs
    for c, ax in enumerate(axes.T.ravel()):
        if c >= n:
            ax.axis("off")
            continue
        ax.plot(t, X[:, c], color="0.2", lw=1, label="original")
        ax.plot(t, Y[:, c], color="C3", lw=1, ls="--", label="reconstructed")
        ax.set_title(f"{channels[c]}  VAF {vaf_per_channel[c]:.3f}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel(time_label)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    head = title or "envelopes: original vs reconstructed"
    fig.suptitle(head + (f" (total VAF {vaf:.3f})" if vaf is not None else ""), fontsize=10)
    return finish_figure(fig, path)


def plot_vaf_curve(
    curves: dict[str, dict[int, float]],
    path: str | Path | None = None,
    *,
    threshold: float | None = 0.9,
    rank: int | None = None,
) -> Path | Figure:
    """VAF versus rank, one line per movement.

    Parameters
    ----------
    curves : dict
        ``{movement label: {rank: vaf}}``.
    threshold : float, optional
        Horizontal line at this VAF.
    rank : int, optional
        Vertical line at the rank used.
    """
    fig, ax = new_figure(figsize=(5, 3.5))
    for i, (label, curve) in enumerate(curves.items()):
        ranks = sorted(curve)
        ax.plot(ranks, [curve[r] for r in ranks], marker="o", ms=3, label=str(label), color=f"C{i % 10}")
    if threshold is not None:
        ax.axhline(threshold, color="0.5", ls=":", lw=1)
    if rank is not None:
        ax.axvline(rank, color="0.5", ls="--", lw=1)
    ax.set_xlabel("number of synergies")
    ax.set_ylabel("VAF")
    ax.set_title("VAF versus rank")
    if len(curves) > 1:
        ax.legend(fontsize=7, title="movement")
    return finish_figure(fig, path)


def plot_vaf_comparison(
    rows: Sequence[dict],
    methods: Sequence[str],
    path: str | Path | None = None,
    *,
    title: str = "",
) -> Path | Figure:
    """Training and held-out VAF per movement and method (held-out: mean, bar; each repetition, dots).

    Parameters
    ----------
    rows : sequence of dict
        ``{"movement": label, method: {"vaf": float, "heldout_vaf": [float, ...]}, ...}``
        as built by :func:`deepnmf.experiments.synergies.compare_methods`.
    methods : sequence of str
    """
    n, m = len(rows), len(methods)
    width = 0.8 / (2 * m)
    fig, ax = new_figure(figsize=(max(5.0, 1.1 * n + 2), 3.6))
    x = np.arange(n)
    for j, method in enumerate(methods):
        train = [r[method]["vaf"] for r in rows]
        held = [np.mean(r[method]["heldout_vaf"]) if r[method]["heldout_vaf"] else np.nan for r in rows]
        off = (2 * j - m + 0.5) * width
        ax.bar(x + off, train, width, color=f"C{j}", label=f"{method} training")
        ax.bar(x + off + width, held, width, color=f"C{j}", alpha=0.45, label=f"{method} held-out (mean)")
        for i, r in enumerate(rows):
            vals = r[method]["heldout_vaf"]
            ax.plot(np.full(len(vals), x[i] + off + width), vals, "k.", ms=3)
    ax.axhline(0.9, color="0.5", ls=":", lw=1)
    lo = min(0.8, np.nanmin([v for r in rows for mm in methods for v in [r[mm]["vaf"], *r[mm]["heldout_vaf"]]]) - 0.02)
    ax.set_ylim(lo, 1.0)
    ax.set_xticks(x, [str(r["movement"]) for r in rows])
    ax.set_xlabel("movement")
    ax.set_ylabel("VAF")
    ax.set_title(title or "training vs held-out VAF")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return finish_figure(fig, path)


def plot_mean_cycle(
    activations: np.ndarray,
    n_points: int,
    path: str | Path | None = None,
    *,
    title: str = "",
) -> Path | Figure:
    """Activations averaged over time-normalised cycles (mean and ± one standard deviation).

    Parameters
    ----------
    activations : np.ndarray [shape=(n_cycles * n_points, rank)]
        Concatenated time-normalised cycles.
    n_points : int
        Points per cycle.
    """
    H = np.asarray(activations)
    cycles = H.reshape(-1, n_points, H.shape[1])  # (n_cycles, n_points, rank)
    mean, sd = cycles.mean(axis=0), cycles.std(axis=0)
    pct = np.linspace(0, 100, n_points, endpoint=False)
    fig, axes = new_figure(H.shape[1], 1, figsize=(5, 1.3 * H.shape[1] + 0.6), sharex=True, squeeze=False)
    for k, ax in enumerate(axes[:, 0]):
        ax.fill_between(pct, mean[:, k] - sd[:, k], mean[:, k] + sd[:, k], color=f"C{k}", alpha=0.3, lw=0)
        ax.plot(pct, mean[:, k], color=f"C{k}", lw=1.2)
        ax.axvline(50, color="0.6", ls=":", lw=0.8)
        ax.set_ylabel(f"S{k + 1}")
    axes[-1, 0].set_xlabel("cycle (%)")
    axes[0, 0].set_title(title or f"mean activation over {cycles.shape[0]} cycles (± 1 sd)")
    return finish_figure(fig, path)
