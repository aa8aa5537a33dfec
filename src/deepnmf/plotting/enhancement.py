"""Figures of speech enhancement: SDR improvement against input SNR, spectrograms and gain."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepnmf.plotting import finish_figure, new_figure

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from matplotlib.figure import Figure


def plot_sdr_improvement(
    improvement: dict[str, dict[float, float]],
    path: str | Path | None = None,
    *,
    title: str = "",
) -> Path | Figure:
    """One line per method: SDR improvement (dB) over the noisy input against the input SNR.

    Parameters
    ----------
    improvement : dict
        Method -> {input SNR (dB) -> SDR improvement (dB)}.
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.
    """
    fig, ax = new_figure(figsize=(6, 4))
    markers = "osd^v<>*"
    for i, (method, curve) in enumerate(improvement.items()):
        snrs = sorted(curve)
        ax.plot(snrs, [curve[s] for s in snrs], marker=markers[i % len(markers)], label=method)
    ax.axhline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("input SNR (dB)")
    ax.set_ylabel("SDR improvement (dB)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if improvement:
        ax.legend()
    return finish_figure(fig, path)


def plot_seed_spread(
    by_seed: dict[str, dict[int, float | None]],
    path: str | Path | None = None,
    *,
    label: str = "average SDR (dB)",
) -> Path | Figure:
    """One row per method: its value at every seed (a dot each) and their mean (a bar).

    Parameters
    ----------
    by_seed : dict
        Method -> {seed -> value} (``None`` values are left out).
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.
    label : str
        The axis label of the values.
    """
    methods = list(by_seed)
    fig, ax = new_figure(figsize=(6, 0.5 * len(methods) + 1.2))
    seeds = sorted({s for values in by_seed.values() for s in values})
    markers = "osd^v<>*"
    for j, seed in enumerate(seeds):
        points = [(by_seed[m][seed], i) for i, m in enumerate(methods) if by_seed[m].get(seed) is not None]
        if points:
            ax.scatter(*zip(*points), marker=markers[j % len(markers)], s=28, label=f"seed {seed}", zorder=3)
    for i, m in enumerate(methods):
        values = [v for v in by_seed[m].values() if v is not None]
        if values:
            ax.plot([np.mean(values)] * 2, [i - 0.3, i + 0.3], color="0.2", lw=2, zorder=2)
    ax.set_yticks(range(len(methods)), methods)
    ax.invert_yaxis()
    ax.set_xlabel(f"{label}; bar: mean over the seeds")
    ax.grid(axis="x", alpha=0.3)
    if seeds:
        ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(seeds), 6), frameon=False)
    return finish_figure(fig, path)


def plot_enhancement(
    noisy_mag: np.ndarray,
    gain: np.ndarray,
    enhanced_mag: np.ndarray,
    path: str | Path | None = None,
    *,
    sr: int = 16000,
    hop: int = 128,
) -> Path | Figure:
    """Noisy spectrogram, gain and enhanced spectrogram, one above the other.

    Parameters
    ----------
    noisy_mag, gain, enhanced_mag : np.ndarray [shape=(n_frames, n_bins)]
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure unsaved.
    """
    fig, axes = new_figure(3, 1, figsize=(8, 7), sharex=True)
    n_frames, n_bins = noisy_mag.shape
    extent = (0.0, n_frames * hop / sr, 0.0, sr / 2000.0)
    panels = [("noisy (dB)", 20 * np.log10(noisy_mag + 1e-6)), ("gain", gain), ("enhanced (dB)", 20 * np.log10(enhanced_mag + 1e-6))]
    for ax, (label, data) in zip(axes, panels):
        vmax = data.max() if label == "gain" else np.percentile(data, 99.5)
        vmin = 0.0 if label == "gain" else vmax - 80
        im = ax.imshow(data.T, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax, cmap="magma")
        ax.set_ylabel("kHz")
        ax.set_title(label, fontsize=9)
        fig.colorbar(im, ax=ax, pad=0.01)
    axes[-1].set_xlabel("time (s)")
    return finish_figure(fig, path)
