"""iN-NMF protocols on TIMIT: resolution transfer and two-speaker separation.

Both follow Subramani et al. (2024), see ``papers/NOTES.md`` section 2:

- **resolution transfer**: one speaker, 20 s of speech, compressed magnitude
  ``|STFT| ** 0.5`` (sqrt-Hann windows, hop = size / 2, 16 kHz); an
  ``ImplicitNMF`` trained at size 2000 is sampled at the bins of other sizes
  and only its activations are refitted; it is compared, by the mean
  generalised KL divergence, with KL-NMF fitted directly at each size;
- **two-speaker separation**: mixtures at 0 dB of a disjoint 5 s test
  excerpt of two speakers, each speaker's dictionary learned from 20 s of
  their speech; separation at STFT sizes 1000-2500 with NMF refitted at
  each size and iN-NMF trained at 2000 only (:func:`deepnmf.separation.separate`).

Speech of a TIMIT speaker is the concatenation of their sentences (sorted by
file name, silences kept as recorded; ``trim=True`` drops the leading and
trailing ``h#`` silences of the ``.phn`` files); the first ``train_seconds``
train, the next ``test_seconds`` test. Speakers with fewer than 25 s are
left out of the protocols (in the TIMIT sample: ``dr2-marc0``, 24.7 s).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from deepnmf.exceptions import DataError, ParameterError

SR = 16000
SIZES = (1000, 1500, 2000, 2500)


# ------------------------------------------------------------------ data
def _speech_span(wav: Path, n_samples: int) -> tuple[int, int]:
    """Sample range of a TIMIT sentence without its leading/trailing ``h#`` silence."""
    phn = wav.with_suffix(".phn")
    if not phn.is_file():
        return 0, n_samples
    rows = [line.split() for line in phn.read_text().splitlines() if line.strip()]
    start, stop = 0, n_samples
    if rows and rows[0][2] == "h#":
        start = int(rows[0][1])
    if rows and rows[-1][2] == "h#":
        stop = int(rows[-1][0])
    return (start, stop) if stop > start else (0, n_samples)


def load_speaker(folder: str | Path, *, sr: int = SR, trim: bool = False) -> np.ndarray:
    """Concatenated speech of one TIMIT speaker folder.

    Parameters
    ----------
    folder : str or Path
        Folder with the speaker's ``.wav`` (and ``.phn``) files.
    sr : int
    trim : bool
        Drop each sentence's leading and trailing ``h#`` silence.

    Returns
    -------
    x : np.ndarray [shape=(n_samples,)]
    """
    from deepnmf.audio.io import load_audio

    wavs = sorted(Path(folder).glob("*.wav"))
    if not wavs:
        raise DataError(f"no .wav files in {str(folder)!r}")
    parts = []
    for wav in wavs:
        x, _ = load_audio(wav, sr=sr)
        a, b = _speech_span(wav, x.size) if trim and sr == SR else (0, x.size)
        parts.append(x[a:b])
    return np.concatenate(parts)


def split_speaker(x: np.ndarray, *, sr: int = SR, train_seconds: float = 20.0,
                  test_seconds: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """First ``train_seconds`` for training, the next ``test_seconds`` for testing (disjoint)."""
    n_train, n_test = int(train_seconds * sr), int(test_seconds * sr)
    if x.size < n_train + n_test:
        raise DataError(
            f"speaker has {x.size / sr:.1f} s of speech; {train_seconds + test_seconds:g} s are needed"
        )
    return x[:n_train], x[n_train:n_train + n_test]


def timit_speakers(root: str | Path | None = None) -> list[Path]:
    """Speaker folders of the TIMIT sample (``dr*-*``), sorted."""
    from deepnmf.datasets.paths import shared_data_dir

    root = Path(root) if root is not None else shared_data_dir("speech", "timit-sample")
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"no speaker folders in {str(root)!r}")
    return folders
