"""Figures for iN-NMF: atoms sampled at several STFT sizes, point clouds, loss curves.

Every function takes arrays (or a fitted model), writes a PNG and returns its path
(``path=None``: returns the drawn Figure instead).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, TYPE_CHECKING

import numpy as np

from deepnmf.plotting import finish_figure, new_figure

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from matplotlib.figure import Figure


def plot_dictionary_at_sizes(
    model: Any,
    sizes: Sequence[int],
    sr: float,
    path: str | Path | None = None,
    *,
    n_atoms: int = 6,
    fmax: float | None = None,
) -> Path | Figure:
    """Atoms of an :class:`~deepnmf.ImplicitNMF` sampled at the bins of several STFT sizes.

    Left: the first ``n_atoms`` atoms as curves, one marker style per size
    (the samples of each size fall on the same functions). Right: the whole
    dictionary at the first and last size as images (atoms x frequency).

    Parameters
    ----------
    model : fitted ImplicitNMF
    sizes : sequence of int
        STFT sizes (for example ``(1000, 2500)``).
    sr : float
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.
    n_atoms : int
    fmax : float, optional
        Upper frequency shown (default ``sr / 2``).
    """
    from deepnmf.audio.tf import stft_freqs

    fmax = fmax or sr / 2
    fig, axes = new_figure(1, 3, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2, 1, 1]})
    offsets = None
    for size, marker in zip(sizes, ("o", "x", "+", ".", "s")):
        f = stft_freqs(size, sr)
        f = f[f <= fmax]
        W = np.asarray(model.dictionary_at(f))  # (K, n_bins)
        if offsets is None:
            offsets = np.arange(min(n_atoms, W.shape[0])) * float(np.max(W[:n_atoms]))
        for k, off in enumerate(offsets):  # one colour per atom, one marker per size
            axes[0].plot(f, W[k] + off, color=f"C{k}", marker=marker, markersize=2.5, linewidth=0.6,
                         label=f"size {size} ({f.size} bins)" if k == 0 else None)
    axes[0].set(xlabel="frequency (Hz)", ylabel="atom (offset)", title=f"first {len(offsets)} atoms at several STFT sizes")
    axes[0].legend(loc="upper right")
    for ax, size in zip(axes[1:], (sizes[0], sizes[-1])):
        f = stft_freqs(size, sr)
        f = f[f <= fmax]
        ax.imshow(np.asarray(model.dictionary_at(f)), aspect="auto", origin="lower", cmap="magma",
                  extent=(f[0], f[-1], -0.5, model.n_components_ - 0.5), interpolation="nearest")
        ax.set(xlabel="frequency (Hz)", ylabel="atom", title=f"dictionary at size {size} ({f.size} bins)")
    return finish_figure(fig, path)


def plot_point_cloud(
    points: Any,
    path: str | Path | None = None,
    *,
    max_points: int = 60000,
    seed: int = 0,
) -> Path | Figure:
    """Scatter of a :class:`~deepnmf.audio.points.TFPoints` (time x frequency, colour = value), one panel per group."""
    rng = np.random.default_rng(seed)
    n_groups = len(points.groups)
    fig, axes = new_figure(1, n_groups, figsize=(4.5 * n_groups, 4), squeeze=False)
    for g, (ax, name) in enumerate(zip(axes[0], points.groups)):
        idx = np.flatnonzero(points.group == g)
        if idx.size > max_points:
            idx = rng.choice(idx, max_points, replace=False)
        ax.scatter(points.t[idx], points.f[idx], c=points.value[idx], s=1.5, cmap="magma", linewidths=0)
        ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=f"{name} ({np.sum(points.group == g)} points)")
    return finish_figure(fig, path)


def plot_factor_functions(model: Any, path: str | Path | None = None, *, n_grid: int = 1000) -> Path | Figure:
    """Points-mode model: atoms ``W_k(f)`` and activations ``H_k(t)`` as continuous functions."""
    f = np.linspace(0, model.nyquist_, n_grid)
    W = np.asarray(model.dictionary_at(f))  # (K, n_grid)
    fig, axes = new_figure(1, 2, figsize=(12, 4))
    for k in range(W.shape[0]):
        axes[0].plot(f, W[k], linewidth=0.8, label=f"atom {k + 1}")
    axes[0].set(xlabel="frequency (Hz)", ylabel="W_k(f)", title="atoms")
    if model.mode == "points":
        t = np.linspace(0, model.duration_, n_grid)
        H = np.asarray(model.activations_at(t))  # (n_grid, K)
        for k in range(H.shape[1]):
            axes[1].plot(t, H[:, k], linewidth=0.8, label=f"atom {k + 1}")
        axes[1].set(xlabel="time (s)", ylabel="H_k(t)", title="activations")
    else:
        H = np.asarray(model.activations_)
        axes[1].imshow(H.T, aspect="auto", origin="lower", cmap="magma", interpolation="nearest")
        axes[1].set(xlabel="frame", ylabel="atom", title="activations")
    if W.shape[0] <= 8:
        axes[0].legend(loc="upper right")
    return finish_figure(fig, path)


def plot_loss_curve(
    loss_curve: Sequence[float],
    path: str | Path | None = None,
    *,
    label: str = "mean divergence",
) -> Path | Figure:
    """Training loss per epoch on a log scale."""
    fig, ax = new_figure(figsize=(6, 4))
    ax.semilogy(np.arange(len(loss_curve)), np.asarray(loss_curve))
    ax.set(xlabel="epoch", ylabel=label, title="training loss")
    return finish_figure(fig, path)


def plot_separation_table(summary: Sequence[dict], path: str | Path | None = None) -> Path | Figure:
    """SDR and STOI per STFT size for NMF (refitted per size) and iN-NMF (trained once)."""
    fig, axes = new_figure(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("sdr", "stoi")):
        for model, style in (("nmf", "o-"), ("implicit", "s--")):
            rows = sorted((r for r in summary if r["model"] == model), key=lambda r: r["n_fft"])
            ax.plot([r["n_fft"] for r in rows], [r[metric] for r in rows], style,
                    label="NMF (fitted at each size)" if model == "nmf" else "iN-NMF (trained at one size)")
        ax.set(xlabel="STFT size", ylabel=metric.upper() + (" (dB)" if metric == "sdr" else ""), title=metric.upper())
        ax.legend()
    return finish_figure(fig, path)
