"""Audio files: read any WAV/FLAC/OGG, mix to mono, resample; write WAV.

Signals are 1-D float arrays ``(n_samples,)`` in [-1, 1]. Only this module
(and the CLI) reads or writes audio files.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from deepnmf.exceptions import DataError, ParameterError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif")


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality).

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples,) or (n_samples, n_channels)]
    orig_sr, target_sr : int
        Sampling rates in Hz.
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ParameterError(f"sampling rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return x
    import soxr

    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    return soxr.resample(np.asarray(x, dtype=dtype), orig_sr, target_sr, quality="HQ")


def load_audio(
    path: str | Path,
    *,
    sr: int | None = 16000,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    dtype: type = np.float32,
) -> tuple[np.ndarray, int]:
    """Read an audio file, mix it down to mono and resample it.

    Parameters
    ----------
    path : str or Path
        WAV, FLAC, OGG/Vorbis or any format libsndfile reads.
    sr : int or None
        Working sampling rate in Hz; ``None`` keeps the file's rate.
    mono : bool
        Average the channels (default). Otherwise the result is
        ``(n_samples, n_channels)``.
    offset, duration : float
        Read only this excerpt, in seconds.
    dtype : numpy dtype

    Returns
    -------
    x : np.ndarray [shape=(n_samples,)]
    sr : int

    Raises
    ------
    DataError
        Missing, unreadable or empty file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file {str(path)!r} does not exist")
    try:
        info = sf.info(str(path))
        start = int(round(offset * info.samplerate))
        stop = None if duration is None else start + int(round(duration * info.samplerate))
        x, file_sr = sf.read(str(path), start=start, stop=stop, dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise DataError(f"cannot read audio file {str(path)!r}: {err}") from err
    if x.size == 0:
        raise DataError(f"audio file {str(path)!r} is empty (no samples in the requested range)")
    if mono:
        x = x.mean(axis=1)
    if sr is not None and sr != file_sr:
        x = resample(x, int(file_sr), int(sr))
        file_sr = sr
    if not np.all(np.isfinite(x)):
        raise DataError(f"audio file {str(path)!r} contains NaN or infinite samples")
    return np.ascontiguousarray(x, dtype=dtype), int(file_sr)


def save_audio(path: str | Path, x: np.ndarray, sr: int, *, subtype: str = "PCM_16") -> Path:
    """Write a mono or multichannel signal to a WAV file.

    A signal whose peak exceeds 1 is scaled down (with a warning) rather than clipped.
    """
    import soundfile as sf

    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise DataError("refusing to write an empty signal")
    if not np.all(np.isfinite(x)):
        raise DataError("refusing to write a signal with NaN or infinite samples")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        warnings.warn(f"signal peak {peak:.2f} > 1; scaled down to avoid clipping", stacklevel=2)
        x = x / peak * 0.99
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, int(sr), subtype=subtype)
    return path


def check_not_silent(x: np.ndarray, *, name: str = "signal", threshold: float = 1e-8) -> None:
    """Raise :class:`DataError` if ``x`` is empty or has (almost) no energy."""
    x = np.asarray(x)
    if x.size == 0:
        raise DataError(f"{name} is empty")
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if not rms > threshold:
        raise DataError(f"{name} is silent (RMS {rms:.3g}); nothing to analyse")


def warn_if_shorter(x: np.ndarray, n_fft: int, *, name: str = "signal") -> None:
    """Warn when ``x`` (``(n_samples,)``) is shorter than one STFT frame of ``n_fft`` samples (legal but suspicious:
    its one frame is mostly padding)."""
    if 0 < np.asarray(x).shape[0] < n_fft:
        warnings.warn(f"{name} has {np.asarray(x).shape[0]} samples, shorter than one STFT frame (n_fft={n_fft}); "
                      "its spectrum is mostly padding", UserWarning, stacklevel=3)


def list_audio_files(*paths: str | Path, recursive: bool = True) -> list[Path]:
    """Expand files and folders into a sorted list of audio files.

    Folders are searched recursively for :data:`AUDIO_SUFFIXES`.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            found.extend(sorted(q for q in p.glob(pattern) if q.suffix.lower() in AUDIO_SUFFIXES))
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(f"{str(p)!r} is neither an audio file nor a folder")
    if not found:
        raise DataError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in {', '.join(map(str, paths))}")
    return found
