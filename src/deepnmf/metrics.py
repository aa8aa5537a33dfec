"""Quality measures for separated and enhanced signals, and for factorisations.

- :func:`bss_eval`: BSS Eval SDR / SIR / SAR (Vincent et al. 2006) with every
  reference passed, computed by ``fast_bss_eval`` when it is installed and by
  ``mir_eval`` otherwise (both implement the same 512-tap distortion filters).
- :func:`pesq`: ITU-T P.862 PESQ, narrow band (``"nb"``, 8 or 16 kHz) or wide
  band (``"wb"``, 16 kHz only), through the ``pesq`` package.
- :func:`stoi`: short-time objective intelligibility (Taal et al. 2011) or its
  extended form, through ``pystoi``.
- :func:`vaf`: variance accounted for, ``1 - ||X - X_hat||^2 / ||X||^2``.

Signals are 1-D ``(n_samples,)``; stacks of sources are ``(n_sources,
n_samples)``. Every function accepts numpy arrays, torch tensors or paths of
audio files (read with :func:`deepnmf.audio.io.load_audio`).

PESQ and STOI are *missing*, not fatal, when they cannot be computed (an
unsupported sampling rate, no speech detected, a signal too short): the result
is ``float("nan")`` and a :class:`MetricWarning` says why, so one bad utterance
never stops a whole results table. Bad input that no metric could use (silent
references, mismatched lengths, NaN samples) raises :class:`DataError`.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from deepnmf.exceptions import DataError, ParameterError

__all__ = ["MetricWarning", "PESQ_RATES", "bss_eval", "enhancement_scores", "mean_ignoring_missing", "pesq", "stoi", "vaf"]

#: sampling rates (Hz) the PESQ reference code accepts, per mode
PESQ_RATES = {"nb": (8000, 16000), "wb": (16000,)}

_SILENCE_RMS = 1e-8


class MetricWarning(UserWarning):
    """A metric could not be computed and is reported as missing (NaN)."""


# --------------------------------------------------------------------- inputs
def _read_signal(x: Any, *, name: str, sr: int | None) -> tuple[np.ndarray, int | None]:
    """Array, tensor or file path -> float64 1-D array (and the file's rate)."""
    if isinstance(x, (str, Path)):
        from deepnmf.audio.io import load_audio

        data, file_sr = load_audio(x, sr=sr, dtype=np.float64)
        return data, file_sr
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"{name} must be a real-valued numeric signal, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float64), None


def _read_pair(reference: Any, estimate: Any, sr: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Load a reference/estimate pair of 1-D signals with a common sampling rate."""
    ref, ref_sr = _read_signal(reference, name="reference", sr=sr)
    est, est_sr = _read_signal(estimate, name="estimate", sr=sr or ref_sr)
    rate = sr or ref_sr or est_sr
    if rate is None:
        raise ParameterError("sr (the sampling rate in Hz) is required when signals are given as arrays")
    for name, sig in (("reference", ref), ("estimate", est)):
        if sig.ndim != 1:
            raise DataError(f"{name} must be a 1-D mono signal, got shape {sig.shape}")
        _check_signal(sig, name)
    if ref.shape != est.shape:
        raise DataError(
            f"reference and estimate must have the same length, got {ref.size} and {est.size} samples"
        )
    return ref, est, int(rate)


def _check_signal(x: np.ndarray, name: str) -> None:
    if x.size == 0:
        raise DataError(f"{name} is empty")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name} contains NaN or infinite samples")


def _stack(sources: Any, *, name: str) -> np.ndarray:
    """Sequence of signals/paths or a 1-D/2-D array -> ``(n_sources, n_samples)``."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    if isinstance(sources, (list, tuple)):
        signals = [_read_signal(s, name=f"{name}[{i}]", sr=None)[0] for i, s in enumerate(sources)]
        if not signals:
            raise DataError(f"{name} holds no signals")
        lengths = {s.shape for s in signals}
        if len(lengths) != 1 or signals[0].ndim != 1:
            raise DataError(f"{name} must be 1-D signals of one common length, got shapes {sorted(lengths)}")
        arr = np.stack(signals)
    else:
        arr, _ = _read_signal(sources, name=name, sr=None)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise DataError(f"{name} must be (n_sources, n_samples), got shape {arr.shape}")
    _check_signal(arr, name)
    return np.ascontiguousarray(arr)


# ------------------------------------------------------------------ BSS Eval
def bss_eval(
    references: Any,
    estimates: Any,
    *,
    backend: Literal["auto", "fast_bss_eval", "mir_eval"] = "auto",
    compute_permutation: bool = False,
) -> dict[str, np.ndarray]:
    """BSS Eval source-to-distortion, -interference and -artifact ratios.

    Every reference must be passed (for enhancement: the clean speech *and*
    the noise), otherwise SIR is meaningless.

    Parameters
    ----------
    references : array-like [shape=(n_sources, n_samples)] or list of paths
        True sources. A 1-D array is one source.
    estimates : array-like [shape=(n_sources, n_samples)] or list of paths
        Estimated sources, in the same order unless ``compute_permutation``.
    backend : {"auto", "fast_bss_eval", "mir_eval"}
        ``"auto"`` uses ``fast_bss_eval`` when installed (much faster) and
        ``mir_eval`` otherwise.
    compute_permutation : bool
        Search for the best matching of estimates to references.

    Returns
    -------
    result : dict
        ``"sdr"``, ``"sir"``, ``"sar"``: np.ndarray [shape=(n_sources,)] in dB,
        ``"perm"``: np.ndarray [shape=(n_sources,)], the reference index of
        each estimate.

    Raises
    ------
    DataError
        Mismatched shapes, silent references or estimates, NaN samples.
    """
    ref = _stack(references, name="references")
    est = _stack(estimates, name="estimates")
    if ref.shape != est.shape:
        raise DataError(
            f"references and estimates must have the same shape (n_sources, n_samples), "
            f"got {ref.shape} and {est.shape}"
        )
    for name, arr in (("reference", ref), ("estimate", est)):
        rms = np.sqrt(np.mean(arr**2, axis=1))
        silent = np.flatnonzero(~(rms > _SILENCE_RMS))
        if silent.size:
            raise DataError(
                f"{name} source(s) {silent.tolist()} are silent; BSS Eval needs energy in every source"
            )
    if ref.shape[1] < 512:
        raise DataError(f"signals have {ref.shape[1]} samples; BSS Eval needs at least 512 (its filter length)")
    name = _bss_backend(backend)
    if name == "fast_bss_eval":
        sdr, sir, sar, perm = _fast_bss_eval(ref, est, compute_permutation)
    else:
        import mir_eval

        with warnings.catch_warnings():  # bss_eval_sources is marked deprecated in mir_eval 0.8
            warnings.simplefilter("ignore", FutureWarning)
            sdr, sir, sar, perm = mir_eval.separation.bss_eval_sources(
                ref, est, compute_permutation=compute_permutation
            )
    return {"sdr": np.asarray(sdr, float), "sir": np.asarray(sir, float),
            "sar": np.asarray(sar, float), "perm": np.asarray(perm, int)}


def _fast_bss_eval(ref: np.ndarray, est: np.ndarray, compute_permutation: bool) -> tuple:
    """fast_bss_eval through its torch backend (its numpy backend breaks on numpy >= 2)."""
    import fast_bss_eval
    import torch

    out = fast_bss_eval.bss_eval_sources(
        torch.from_numpy(ref), torch.from_numpy(est), filter_length=512,
        compute_permutation=compute_permutation,
    )
    sdr, sir, sar = (t.numpy() for t in out[:3])
    perm = out[3].numpy() if compute_permutation else np.arange(ref.shape[0])
    return sdr, sir, sar, perm


def _bss_backend(backend: str) -> str:
    if backend not in ("auto", "fast_bss_eval", "mir_eval"):
        raise ParameterError(f"backend must be 'auto', 'fast_bss_eval' or 'mir_eval', got {backend!r}")
    if backend == "mir_eval":
        return backend
    try:
        import fast_bss_eval  # noqa: F401
    except ImportError as err:
        if backend == "fast_bss_eval":
            raise ParameterError("backend='fast_bss_eval' needs the fast_bss_eval package (pip install fast_bss_eval)") from err
        return "mir_eval"
    return "fast_bss_eval"


# ---------------------------------------------------------------- PESQ, STOI
def _missing(metric: str, reason: str) -> float:
    warnings.warn(f"{metric} is missing (NaN): {reason}", MetricWarning, stacklevel=3)
    return math.nan


def pesq(
    reference: Any, estimate: Any, sr: int | None = None, *, mode: Literal["wb", "nb"] = "wb"
) -> float:
    """Perceptual evaluation of speech quality (ITU-T P.862; MOS-LQO scale).

    Parameters
    ----------
    reference, estimate : array-like [shape=(n_samples,)] or path
        Clean and processed signals (paths are read and resampled to ``sr``).
    sr : int, optional
        Sampling rate in Hz; required for arrays. Narrow band takes 8 or
        16 kHz, wide band only 16 kHz.
    mode : {"wb", "nb"}
        Wide band (P.862.2) or narrow band (P.862.1).

    Returns
    -------
    score : float
        About -0.5 to 4.5, or NaN (with a :class:`MetricWarning`) when PESQ
        cannot be computed: unsupported sampling rate, no utterance detected,
        signal too short, silent signal.
    """
    if mode not in PESQ_RATES:
        raise ParameterError(f"mode must be 'wb' or 'nb', got {mode!r}")
    ref, est, rate = _read_pair(reference, estimate, sr)
    if rate not in PESQ_RATES[mode]:
        rates = " or ".join(f"{r // 1000} kHz" for r in PESQ_RATES[mode])
        return _missing(f"PESQ-{mode}", f"{mode} mode needs {rates}, got {rate} Hz; resample first")
    for name, sig in (("reference", ref), ("estimate", est)):
        if not np.sqrt(np.mean(sig**2)) > _SILENCE_RMS:
            return _missing(f"PESQ-{mode}", f"{name} is silent")
    import pesq as pesq_lib

    try:
        return float(pesq_lib.pesq(rate, ref, est, mode))
    except pesq_lib.PesqError as err:
        return _missing(f"PESQ-{mode}", f"{type(err).__name__}: {err}")


def stoi(reference: Any, estimate: Any, sr: int | None = None, *, extended: bool = False) -> float:
    """Short-time objective intelligibility (STOI, or extended STOI).

    Parameters
    ----------
    reference, estimate : array-like [shape=(n_samples,)] or path
    sr : int, optional
        Sampling rate in Hz (any; pystoi resamples to 10 kHz); required for arrays.
    extended : bool
        Compute ESTOI (Jensen & Taal 2016) instead of STOI.

    Returns
    -------
    score : float
        Between 0 and 1 (ESTOI may dip below 0), or NaN (with a
        :class:`MetricWarning`) when too few speech frames remain after
        pystoi drops silent frames.
    """
    ref, est, rate = _read_pair(reference, estimate, sr)
    import pystoi

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = float(pystoi.stoi(ref, est, rate, extended=bool(extended)))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        name = "ESTOI" if extended else "STOI"
        return _missing(name, "too few non-silent frames (the signals are too short or silent)")
    return score


# ----------------------------------------------------------------------- VAF
def vaf(X: Any, X_hat: Any, *, per_feature: bool = False) -> float | np.ndarray:
    """Variance accounted for, ``1 - ||X - X_hat||_F^2 / ||X||_F^2`` (uncentred).

    Parameters
    ----------
    X : array-like [shape=(n_samples, n_features)]
        Data (for example time x muscles).
    X_hat : array-like [shape=(n_samples, n_features)]
        Reconstruction.
    per_feature : bool
        Return one VAF per column (per muscle) instead of the total.

    Returns
    -------
    vaf : float or np.ndarray [shape=(n_features,)]
    """
    A, _ = _read_signal(X, name="X", sr=None)
    B, _ = _read_signal(X_hat, name="X_hat", sr=None)
    if A.shape != B.shape:
        raise DataError(f"X and X_hat must have the same shape, got {A.shape} and {B.shape}")
    _check_signal(A, "X")
    _check_signal(B, "X_hat")
    axis = 0 if per_feature else None
    energy = np.sum(A**2, axis=axis)
    if np.any(energy <= 0):
        raise DataError("X has no energy (in some column); VAF is undefined")
    result = 1.0 - np.sum((A - B) ** 2, axis=axis) / energy
    return np.asarray(result, dtype=float) if per_feature else float(result)


def mean_ignoring_missing(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when none is finite)."""
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    return float(finite.mean()) if finite.size else math.nan


def enhancement_scores(clean: Any, noise: Any, estimate: Any, sr: int) -> dict[str, float]:
    """Every score of a speech estimate, as the enhancement experiment and the demo report them.

    Parameters
    ----------
    clean, noise : array-like [shape=(n_samples,)]
        The references: the clean speech and the noise that was added.
    estimate : array-like [shape=(n_samples,)]
        The enhanced (or unprocessed) signal.
    sr : int
        Sampling rate in Hz.

    Returns
    -------
    dict
        ``sdr``, ``sir``, ``sar`` (BSS Eval with both references; the speech
        estimate paired with the true noise), ``pesq`` (narrow band),
        ``pesq_wb`` (wide band, 16 kHz only, else NaN), ``stoi``. Metrics that
        cannot be computed are NaN (no warning: callers count them).
    """
    bss = bss_eval(np.stack([np.asarray(clean), np.asarray(noise)]), np.stack([np.asarray(estimate), np.asarray(noise)]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        return {"sdr": float(bss["sdr"][0]), "sir": float(bss["sir"][0]), "sar": float(bss["sar"][0]),
                "pesq": pesq(clean, estimate, sr, mode="nb"),
                "pesq_wb": pesq(clean, estimate, sr, mode="wb") if sr == 16000 else math.nan,
                "stoi": stoi(clean, estimate, sr)}
