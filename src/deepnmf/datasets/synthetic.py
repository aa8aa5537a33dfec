"""Generated data with known ground truth (the embedded default data of the project).

- :func:`planted_nmf`: ``X = W @ H`` (+ noise) with Gamma activations and sparse nonnegative atoms.
- :func:`harmonic_notes`: a real audio signal made of harmonic "notes" (each a
  pitch with a spectral envelope) switched on and off over time; its
  magnitude STFT is a natural NMF input whose true atoms are the notes' spectra.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepnmf.exceptions import ParameterError


def planted_nmf(
    n_samples: int = 500,
    n_features: int = 64,
    n_components: int = 10,
    *,
    noise: float = 0.01,
    shape: float = 1.0,
    sparsity: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nonnegative data with a planted factorisation.

    Returns
    -------
    X : np.ndarray [shape=(n_samples, n_features)]
        ``Z @ W_true`` plus ``noise`` times half-normal noise (relative to the mean).
    Z : np.ndarray [shape=(n_samples, n_components)]
        Gamma(shape, 1) activations.
    W_true : np.ndarray [shape=(n_components, n_features)]
        Atoms with unit L2 norm and about ``sparsity`` zeros.
    """
    rng = np.random.default_rng(seed)
    W = rng.random((n_components, n_features)) * (rng.random((n_components, n_features)) > sparsity)
    W[np.arange(n_components), rng.integers(0, n_features, n_components)] += 1.0  # no empty atom
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    Z = rng.gamma(shape, 1.0, size=(n_samples, n_components))
    X = Z @ W
    X += noise * X.mean() * np.abs(rng.standard_normal(X.shape))
    return X, Z, W


@dataclass
class NotesSignal:
    """A generated mixture of harmonic notes and its ground truth."""

    audio: np.ndarray  #: (n_samples,) signal in [-1, 1]
    sr: int
    pitches: np.ndarray  #: (n_notes,) fundamental frequencies in Hz
    gates: np.ndarray  #: (n_notes, n_samples) amplitude envelope of each note
    sources: np.ndarray  #: (n_notes, n_samples) each note's own signal


def harmonic_notes(
    n_notes: int = 4,
    *,
    duration: float = 6.0,
    sr: int = 16000,
    n_harmonics: int = 12,
    seed: int = 0,
) -> NotesSignal:
    """A signal of ``n_notes`` harmonic tones, each played several times.

    Each note has a fixed pitch (110-880 Hz), a harmonic spectrum with a
    note-specific decay, and is struck a few times with a decaying amplitude
    envelope; notes overlap in time. Small noise is added.
    """
    if n_notes < 1 or duration <= 0 or sr < 4000:
        raise ParameterError("need n_notes >= 1, duration > 0 and sr >= 4000")
    rng = np.random.default_rng(seed)
    n = int(duration * sr)
    t = np.arange(n) / sr
    pitches = 110.0 * 2 ** (rng.permutation(36)[:n_notes] / 12.0)
    sources = np.zeros((n_notes, n))
    gates = np.zeros((n_notes, n))
    for i, f0 in enumerate(pitches):
        decay = rng.uniform(0.5, 1.5)
        tone = sum(
            (h ** -decay) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
            for h in range(1, n_harmonics + 1)
            if h * f0 < sr / 2
        )
        onsets = np.sort(rng.uniform(0, duration - 0.5, size=max(2, int(duration / 1.5))))
        for onset in onsets:
            start = int(onset * sr)
            length = int(rng.uniform(0.3, 0.9) * sr)
            env = np.exp(-np.arange(min(length, n - start)) / (0.35 * sr))
            gates[i, start:start + env.size] = np.maximum(gates[i, start:start + env.size], env)
        sources[i] = gates[i] * tone
    audio = sources.sum(0) + 1e-3 * rng.standard_normal(n)
    scale = 0.9 / np.max(np.abs(audio))
    return NotesSignal((audio * scale).astype(np.float32), sr, pitches, gates, sources * scale)
