"""Constant-Q transform (librosa) in the package's orientation.

Orientation: ``(n_frames, n_bins)`` (time x frequency), as the STFT in
:mod:`deepnmf.audio.tf`. librosa is imported inside the functions.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnmf.exceptions import DataError, ParameterError


def _check_cqt_params(sr: float, hop: int, fmin: float, n_bins: int, bins_per_octave: int) -> float:
    """Validate the CQT settings; return the highest centre frequency in Hz."""
    if sr <= 0:
        raise ParameterError(f"sr must be positive, got {sr}")
    if not (isinstance(hop, (int, np.integer)) and hop > 0):
        raise ParameterError(f"hop must be a positive integer, got {hop!r}")
    if fmin <= 0:
        raise ParameterError(f"fmin must be positive, got {fmin}")
    if n_bins < 1 or bins_per_octave < 1:
        raise ParameterError(f"n_bins and bins_per_octave must be >= 1, got {n_bins}, {bins_per_octave}")
    fmax = fmin * 2.0 ** ((n_bins - 1) / bins_per_octave)
    if fmax >= sr / 2:
        raise ParameterError(
            f"the top CQT bin ({fmax:.0f} Hz) reaches the Nyquist frequency ({sr / 2:.0f} Hz); "
            "lower n_bins or fmin"
        )
    n_octaves = int(np.ceil(n_bins / bins_per_octave))
    if hop % 2 ** max(n_octaves - 1, 0):
        raise ParameterError(
            f"hop={hop} must be a multiple of 2**(n_octaves - 1) = {2 ** (n_octaves - 1)} "
            f"for a CQT spanning {n_octaves} octaves"
        )
    return fmax


def cqt_freqs(*, fmin: float = 32.70, n_bins: int = 84, bins_per_octave: int = 12) -> np.ndarray:
    """Centre frequencies in Hz of the CQT bins.

    Returns
    -------
    freqs : np.ndarray [shape=(n_bins,)]
        ``fmin * 2 ** (k / bins_per_octave)``.
    """
    return fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)


def cqt(
    x: Any,
    sr: float,
    *,
    hop: int = 256,
    fmin: float = 32.70,
    n_bins: int = 84,
    bins_per_octave: int = 12,
) -> np.ndarray:
    """Constant-Q transform of a mono signal (``librosa.cqt``), frames first.

    Parameters
    ----------
    x : array-like [shape=(n_samples,)]
    sr : float
        Sampling rate in Hz.
    hop : int
        Hop in samples; a multiple of ``2 ** (n_octaves - 1)``.
    fmin : float
        Lowest centre frequency in Hz (default C1).
    n_bins, bins_per_octave : int

    Returns
    -------
    C : np.ndarray [shape=(n_frames, n_bins), complex]
        Frame ``m`` is centred at ``m * hop / sr`` seconds (see
        :func:`deepnmf.audio.tf.frame_times`); bin ``k`` at ``cqt_freqs()[k]`` Hz.
    """
    import librosa

    sig = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if sig.ndim != 1 or sig.size == 0:
        raise DataError(f"signal must be a non-empty 1-D array, got shape {sig.shape}")
    _check_cqt_params(sr, hop, fmin, n_bins, bins_per_octave)
    try:
        C = librosa.cqt(sig, sr=sr, hop_length=int(hop), fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave)
    except librosa.util.exceptions.ParameterError as err:  # its filters' bandwidth reaching Nyquist, for example
        raise ParameterError(f"constant-Q transform at sr={sr:g} Hz: {err}") from err
    return np.ascontiguousarray(C.T)  # (n_frames, n_bins)
