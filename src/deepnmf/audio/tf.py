"""STFT / ISTFT in torch and magnitude spectrograms.

Orientation: spectrograms are ``(n_frames, n_bins)`` (time x frequency), the
``X`` orientation of the estimators. Signals are 1-D ``(n_samples,)``.
Functions accept numpy arrays or tensors and return tensors.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepnmf.exceptions import DataError, ParameterError

WINDOWS = ("hann", "sqrt-hann", "hamming", "rect")


def get_window(name: str | torch.Tensor, n_fft: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Periodic analysis window of length ``n_fft``: ``hann``, ``sqrt-hann``, ``hamming`` or ``rect``."""
    if isinstance(name, torch.Tensor):
        if name.shape != (n_fft,):
            raise ParameterError(f"window has shape {tuple(name.shape)}, expected ({n_fft},)")
        return name.to(dtype=dtype, device=device)
    if name == "hann":
        return torch.hann_window(n_fft, periodic=True, dtype=dtype, device=device)
    if name == "sqrt-hann":
        return torch.hann_window(n_fft, periodic=True, dtype=dtype, device=device).sqrt()
    if name == "hamming":
        return torch.hamming_window(n_fft, periodic=True, dtype=dtype, device=device)
    if name == "rect":
        return torch.ones(n_fft, dtype=dtype, device=device)
    raise ParameterError(f"window must be one of {WINDOWS} or a tensor, got {name!r}")


def _signal(x: Any) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    if t.ndim != 1:
        raise DataError(f"signal must be 1-D (mono), got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise DataError("signal is empty")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def stft(
    x: Any, *, n_fft: int = 512, hop: int | None = None, window: str | torch.Tensor = "hann", center: bool = True
) -> torch.Tensor:
    """Short-time Fourier transform.

    Parameters
    ----------
    x : array-like [shape=(n_samples,)]
    n_fft : int
        Window and FFT size.
    hop : int, optional
        Hop size, default ``n_fft // 4``.
    window : str or torch.Tensor
    center : bool
        Pad the signal by ``n_fft // 2`` on both sides (reflect).

    Returns
    -------
    S : torch.Tensor [shape=(n_frames, n_fft // 2 + 1), complex]
    """
    t = _signal(x)
    if n_fft < 2:
        raise ParameterError(f"n_fft must be >= 2, got {n_fft}")
    hop = n_fft // 4 if hop is None else hop  # 0 is an error, not the default
    if hop < 1 or hop > n_fft:
        raise ParameterError(f"hop must be in [1, n_fft], got {hop}")
    if center and t.numel() <= n_fft // 2:
        t = torch.nn.functional.pad(t, (0, n_fft // 2 + 1 - t.numel()))
    if not center and t.numel() < n_fft:
        raise DataError(f"signal has {t.numel()} samples, fewer than n_fft={n_fft}")
    win = get_window(window, n_fft, dtype=t.dtype, device=t.device)
    S = torch.stft(t, n_fft, hop_length=hop, window=win, center=center, pad_mode="reflect", return_complex=True)
    return S.T.contiguous()  # (n_frames, n_bins)


def istft(
    S: torch.Tensor,
    *,
    n_fft: int = 512,
    hop: int | None = None,
    window: str | torch.Tensor = "hann",
    center: bool = True,
    length: int | None = None,
) -> torch.Tensor:
    """Inverse of :func:`stft` (weighted overlap-add).

    Parameters
    ----------
    S : torch.Tensor [shape=(n_frames, n_fft // 2 + 1), complex]
    length : int, optional
        Output length in samples (that of the analysed signal).

    Returns
    -------
    x : torch.Tensor [shape=(n_samples,)]
    """
    if S.ndim != 2 or S.shape[1] != n_fft // 2 + 1:
        raise DataError(f"S must be (n_frames, {n_fft // 2 + 1}) for n_fft={n_fft}, got {tuple(S.shape)}")
    hop = hop or n_fft // 4
    real_dtype = S.real.dtype
    win = get_window(window, n_fft, dtype=real_dtype, device=S.device)
    return torch.istft(S.T, n_fft, hop_length=hop, window=win, center=center, length=length)


def magnitude(S: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """``|S| ** power`` (``power=0.5`` is the compressed magnitude iN-NMF uses)."""
    if power <= 0:
        raise ParameterError(f"power must be > 0, got {power}")
    mag = S.abs()
    return mag if power == 1.0 else mag.pow(power)


def stft_freqs(n_fft: int, sr: float) -> np.ndarray:
    """Centre frequency in Hz of each STFT bin, ``(n_fft // 2 + 1,)``."""
    return np.arange(n_fft // 2 + 1) * (sr / n_fft)


def frame_times(n_frames: int, hop: int, sr: float) -> np.ndarray:
    """Time in seconds of each STFT frame centre (``center=True``), ``(n_frames,)``."""
    return np.arange(n_frames) * (hop / sr)
