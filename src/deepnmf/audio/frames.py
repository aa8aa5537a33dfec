"""Training matrices from files: audio (files or folders) -> magnitude STFT frames, or ``.npy`` matrices.

Orientation: the matrix is ``(n_frames, n_bins)`` (or ``(n_samples,
n_features)`` for ``.npy``), ready for any estimator's ``fit``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def load_matrix(inputs: list[Path], *, sr: int, n_fft: int, hop: int, power: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Training matrix ``(n_frames, n_features)`` and a JSON-able summary of where it came from.

    ``.npy`` inputs are stacked by rows; everything else is read as audio
    (files, or folders searched recursively) and turned into ``|STFT|**power``.
    """
    from deepnmf.exceptions import DataError

    npy = [p for p in inputs if p.suffix.lower() == ".npy"]
    if npy and len(npy) != len(inputs):
        raise DataError("give either .npy matrices or audio files/folders, not both")
    if npy:
        return _load_npy(npy)
    return _load_audio_frames(inputs, sr=sr, n_fft=n_fft, hop=hop, power=power)


def read_npy(path: str | Path) -> np.ndarray:
    """A numeric array from a ``.npy`` file (never unpickles); a clear error when it cannot be read."""
    from deepnmf.exceptions import DataError

    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read {str(path)!r} as a numeric .npy array: {err}") from err


def _load_npy(paths: list[Path]) -> tuple[np.ndarray, dict[str, Any]]:
    from deepnmf.exceptions import DataError

    blocks = []
    for p in paths:
        if not p.is_file():
            raise DataError(f"{str(p)!r} does not exist")
        block = read_npy(p)
        if block.ndim != 2:
            raise DataError(f"{str(p)!r} holds a {block.ndim}-D array; expected (n_samples, n_features)")
        if blocks and block.shape[1] != blocks[0].shape[1]:
            raise DataError(f"{str(p)!r} has {block.shape[1]} features but the first matrix has {blocks[0].shape[1]}")
        blocks.append(block)
    X = np.concatenate(blocks, axis=0)
    return X, {"kind": "matrix", "files": [str(p) for p in paths]}


def _load_audio_frames(paths: list[Path], *, sr: int, n_fft: int, hop: int, power: float):
    from deepnmf.audio.tf import magnitude, stft

    from deepnmf.audio.io import warn_if_shorter

    signals, summary = load_signals(paths, sr=sr)
    for x, name in zip(signals, summary["files"]):
        warn_if_shorter(x, n_fft, name=name)
    frames = [magnitude(stft(x, n_fft=n_fft, hop=hop), power).numpy() for x in signals]  # (n_frames, n_bins) each
    summary.update(n_fft=n_fft, hop=hop, power=power)
    return np.concatenate(frames, axis=0).astype(np.float32), summary


def load_signals(paths: list[Path], *, sr: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The recordings in audio files or folders (searched recursively), resampled to ``sr``.

    Returns
    -------
    signals : list of np.ndarray [shape=(n_samples_i,)]
        One per file, in file order; silent files are refused with a message.
    summary : dict
        JSON-able: ``kind`` ("audio"), ``files``, ``n_files``, ``seconds``, ``sr``.
    """
    from deepnmf.audio.io import check_not_silent, list_audio_files, load_audio
    from deepnmf.exceptions import DataError

    files = list_audio_files(*paths)
    if not files:
        raise DataError(f"no audio files found in {', '.join(map(str, paths))}")
    signals = []
    for f in files:
        x, _ = load_audio(f, sr=sr)
        check_not_silent(x, name=str(f))
        signals.append(x)
    seconds = sum(x.size for x in signals) / sr
    return signals, {"kind": "audio", "files": [str(f) for f in files], "n_files": len(files),
                     "seconds": round(seconds, 3), "sr": sr}
