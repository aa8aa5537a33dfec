"""Synthetic multichannel EMG with planted muscle synergies (known ground truth).

Generative model (time x channels, like every deepnmf ``X``):

.. math:: e(t, c) = g_c \\Big(\\sum_k h_k(t)\\, w_{k c} + \\tau\\Big), \\qquad
          x(t, c) = e(t, c)\\, n_c(t) + \\sigma\\, \\varepsilon_c(t)

``w_k`` are the planted synergy vectors (unit norm), ``h_k(t)`` smooth
activation profiles (a Gaussian burst per synergy and repetition, with jittered
timing and amplitude), ``tau`` a small tonic level, ``g_c`` electrode gains,
``n_c`` unit-RMS band-limited (20-450 Hz) Gaussian noise carriers and
``sigma epsilon`` additive sensor noise. Rectifying and low-passing ``x``
gives back ``e`` up to one constant, so after preprocessing the expected
synergies are ``w_k * g / scale`` with the per-channel amplitude scale the
preprocessing applied (:meth:`SyntheticEMG.expected_synergies`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deepnmf.emg.io import Recording, Segment
from deepnmf.exceptions import ParameterError


@dataclass
class SyntheticEMG:
    """A synthetic recording and its ground truth.

    Attributes
    ----------
    recording : Recording
        Raw EMG, ``data`` of shape ``(n_samples, n_channels)``.
    synergies : np.ndarray [shape=(n_synergies, n_channels)]
        Planted synergy vectors (unit norm).
    activations : np.ndarray [shape=(n_samples, n_synergies)]
        Planted activation profiles.
    envelopes : np.ndarray [shape=(n_samples, n_channels)]
        Noise-free envelopes ``g * (activations @ synergies + tonic)``.
    gains : np.ndarray [shape=(n_channels,)]
        Electrode gains.
    """

    recording: Recording
    synergies: np.ndarray
    activations: np.ndarray
    envelopes: np.ndarray
    gains: np.ndarray

    def expected_synergies(self, channel_scale: Any = None) -> np.ndarray:
        """Planted synergies as they appear after gains and amplitude normalisation.

        Parameters
        ----------
        channel_scale : array-like [shape=(n_channels,)] or dict, optional
            Per-channel scale divided out by preprocessing
            (``meta["preprocessing"]["channel_scale"]``).

        Returns
        -------
        np.ndarray [shape=(n_synergies, n_channels)], unit-norm rows
        """
        if isinstance(channel_scale, dict):
            channel_scale = [channel_scale[c] for c in self.recording.channels]
        scale = np.ones(self.gains.size) if channel_scale is None else np.asarray(channel_scale, dtype=float)
        W = self.synergies * (self.gains / scale)[None, :]
        return W / np.linalg.norm(W, axis=1, keepdims=True)


def planted_synergies(n_synergies: int, n_channels: int, rng: np.random.Generator) -> np.ndarray:
    """Sparse-ish nonnegative synergy vectors, unit norm, shape ``(n_synergies, n_channels)``.

    Each synergy has a few dominant muscles (as recorded synergies do) on a
    low background, so that different synergies are clearly distinct.
    """
    W = 0.08 * rng.random((n_synergies, n_channels))
    n_main = max(2, n_channels // n_synergies)
    for k in range(n_synergies):
        main = rng.choice(n_channels, size=n_main, replace=False)
        W[k, main] += rng.uniform(0.5, 1.0, size=n_main)
    return W / np.linalg.norm(W, axis=1, keepdims=True)


def _bursts(n_t: int, fs: float, n_synergies: int, rng: np.random.Generator) -> np.ndarray:
    """One Gaussian burst per synergy at jittered times, shape ``(n_t, n_synergies)``."""
    t = np.arange(n_t) / fs
    dur = n_t / fs
    centres = (np.arange(n_synergies) + 0.5) / n_synergies * dur
    centres = centres + rng.normal(0.0, 0.04 * dur, n_synergies)
    widths = rng.uniform(0.06, 0.12, n_synergies) * dur
    amps = rng.uniform(0.6, 1.4, n_synergies)
    return amps * np.exp(-0.5 * ((t[:, None] - centres) / widths) ** 2)


def _carriers(n_t: int, n_channels: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS Gaussian noise, band-limited to 20-450 Hz where ``fs`` allows."""
    from scipy.signal import butter, sosfiltfilt

    z = rng.standard_normal((n_t, n_channels))
    high = min(450.0, 0.45 * fs)
    if high > 20.0:
        z = sosfiltfilt(butter(4, [20.0, high], "bandpass", fs=fs, output="sos"), z, axis=0)
    return z / np.sqrt(np.mean(z**2, axis=0, keepdims=True))


def make_synthetic_emg(
    *,
    n_channels: int = 8,
    n_synergies: int = 4,
    n_movements: int = 1,
    n_repetitions: int = 4,
    fs: float = 1000.0,
    repetition_duration: float = 2.0,
    rest_duration: float = 0.5,
    tonic: float = 0.02,
    noise_level: float = 0.01,
    gain_spread: float = 0.5,
    random_state: Any = None,
) -> SyntheticEMG:
    """Generate raw multichannel EMG from planted synergies.

    Parameters
    ----------
    n_channels, n_synergies : int
        Muscles and planted synergies (``n_synergies <= n_channels``).
    n_movements, n_repetitions : int
        Movements (labels 1..n_movements, all sharing the synergies with
        their own activation timing) and repetitions of each.
    fs : float
        Sampling rate in Hz.
    repetition_duration, rest_duration : float
        Seconds of each repetition and of the rest before it.
    tonic : float
        Constant background activity added to every channel's envelope.
    noise_level : float
        RMS of the additive sensor noise, relative to the envelope's RMS.
    gain_spread : float
        Electrode gains are ``exp(U(-spread, spread))``; 0 gives unit gains.
    random_state : int, generator or None

    Returns
    -------
    SyntheticEMG
    """
    from deepnmf._utils import seed_from

    if n_synergies > n_channels or min(n_channels, n_synergies, n_movements, n_repetitions) < 1:
        raise ParameterError("need 1 <= n_synergies <= n_channels and at least one movement and repetition")
    if fs <= 0 or repetition_duration <= 0 or rest_duration < 0:
        raise ParameterError("fs and repetition_duration must be > 0 and rest_duration >= 0")
    rng = np.random.default_rng(seed_from(random_state))
    W = planted_synergies(n_synergies, n_channels, rng)
    n_rep, n_rest = int(round(repetition_duration * fs)), int(round(rest_duration * fs))
    blocks, segments, pos = [], [], 0
    for m in range(1, n_movements + 1):
        for r in range(1, n_repetitions + 1):
            blocks += [np.zeros((n_rest, n_synergies)), _bursts(n_rep, fs, n_synergies, rng)]
            segments.append(Segment(pos + n_rest, pos + n_rest + n_rep, m, r))
            pos += n_rest + n_rep
    blocks.append(np.zeros((n_rest, n_synergies)))
    H = np.concatenate(blocks, axis=0)
    gains = np.exp(rng.uniform(-gain_spread, gain_spread, n_channels))
    E = (H @ W + tonic) * gains
    x = E * _carriers(H.shape[0], n_channels, fs, rng)
    x += noise_level * np.sqrt(np.mean(E**2, axis=0)) * rng.standard_normal(x.shape)
    channels = [f"m{c + 1}" for c in range(n_channels)]
    meta = {"format": "synthetic", "sources": [], "planted_synergies": n_synergies}
    return SyntheticEMG(Recording(x, float(fs), channels, segments, meta), W, H, E, gains)
