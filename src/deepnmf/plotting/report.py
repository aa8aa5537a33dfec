"""Figures of the HTML report and the demo: spectrograms of several signals, dictionaries side by side.

Spectrograms are drawn in dB over time (s) and frequency (Hz); a dictionary
``H`` is ``(n_components, n_bins)`` (``components_``), drawn one column per atom.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from deepnmf.plotting import finish_figure, new_figure

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from matplotlib.figure import Figure


def log_spectrogram(x: np.ndarray, *, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """``20 log10 |STFT(x)|`` (Hann window) ``(n_bins, n_frames)``, clipped 80 dB under its peak."""
    from scipy.signal import stft

    _, _, Z = stft(np.asarray(x, dtype=float), nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=False)
    db = 20 * np.log10(np.abs(Z) + 1e-10)
    return np.maximum(db, db.max() - 80.0)


def plot_spectrograms(
    signals: Mapping[str, np.ndarray], sr: float, path: str | Path | None = None, *,
    n_fft: int = 512, hop: int = 128, title: str = "",
) -> Path | Figure:
    """One row per signal: its log-magnitude spectrogram, all on one colour scale.

    Parameters
    ----------
    signals : mapping of name -> np.ndarray [shape=(n_samples,)]
        Drawn top to bottom in order.
    sr : float
        Sampling rate in Hz.
    path : str or Path, optional
        PNG to write; ``None`` returns the Figure.
    """
    if not signals:
        raise ValueError("no signals to draw")
    specs = {name: log_spectrogram(x, n_fft=n_fft, hop=hop) for name, x in signals.items()}
    top = max(s.max() for s in specs.values())
    fig, axes = new_figure(len(specs), 1, figsize=(8, 1.9 * len(specs) + 0.4), sharex=True, squeeze=False)
    for ax, (name, S) in zip(axes[:, 0], specs.items()):
        extent = (0.0, S.shape[1] * hop / sr, 0.0, sr / 2)
        image = ax.imshow(S, origin="lower", aspect="auto", cmap="magma", extent=extent, vmin=top - 80, vmax=top)
        ax.set_ylabel("Hz")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(image, ax=list(axes[:, 0]), label="dB", fraction=0.03)
    if title:
        fig.suptitle(title)
    return fig if path is None else _save_unlaid(fig, path)


def _save_unlaid(fig: Figure, path: str | Path) -> Path:
    """Save without tight_layout (a shared colour bar does not take it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_dictionaries(
    dictionaries: Mapping[str, np.ndarray], path: str | Path | None = None, *,
    freqs: Mapping[str, np.ndarray] | np.ndarray | None = None, title: str = "",
) -> Path | Figure:
    """Dictionaries side by side, each atom normalised to its maximum.

    Parameters
    ----------
    dictionaries : mapping of name -> np.ndarray [shape=(n_components, n_bins)]
    freqs : np.ndarray [shape=(n_bins,)] or mapping of name -> that, optional
        The frequency (Hz) of each bin; one array for all or one per dictionary.
    """
    if not dictionaries:
        raise ValueError("no dictionaries to draw")
    fig, axes = new_figure(1, len(dictionaries), figsize=(3.2 * len(dictionaries) + 0.5, 3.4), squeeze=False)
    for ax, (name, H) in zip(axes[0], dictionaries.items()):
        H = np.asarray(H, dtype=float)
        H = H / np.maximum(H.max(axis=1, keepdims=True), 1e-12)
        f = freqs.get(name) if isinstance(freqs, Mapping) else freqs
        extent = None if f is None else (0.5, H.shape[0] + 0.5, float(f[0]), float(f[-1]))
        ax.imshow(H.T, origin="lower", aspect="auto", cmap="magma", extent=extent, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("atom")
    axes[0, 0].set_ylabel("frequency (Hz)" if freqs is not None else "feature")
    if title:
        fig.suptitle(title)
    return finish_figure(fig, path)
