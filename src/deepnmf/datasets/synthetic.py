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


# ------------------------------------------------------------ speech-like audio and noises
#: (F1, F2, F3) in Hz of a few vowels (adult average), scaled per speaker by a vocal-tract factor
_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
                    [660, 1720, 2410], [570, 840, 2410], [440, 1020, 2240], [490, 1350, 1690]], dtype=float)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
NOISE_KINDS = ("white", "pink", "brown", "hum", "machine", "babble")


@dataclass
class SpeechSignal:
    """A generated speech-like utterance and its ground truth."""

    audio: np.ndarray  #: (n_samples,) signal, peak 0.9
    sr: int
    f0: np.ndarray  #: (n_samples,) pitch contour in Hz (0 where unvoiced or silent)
    gate: np.ndarray  #: (n_samples,) amplitude envelope of the voiced syllables
    formants: np.ndarray  #: (n_samples, 3) formant track F1-F3 in Hz


def _speaker_voice(speaker: int) -> tuple[float, float]:
    """Base pitch (Hz) and vocal-tract factor of a generated speaker (even: lower voices, odd: higher)."""
    rng = np.random.default_rng(1000 + speaker)
    low = speaker % 2 == 0
    f0 = rng.uniform(95, 135) if low else rng.uniform(185, 245)
    return float(f0), float(rng.uniform(0.92, 1.02) if low else rng.uniform(1.08, 1.2))


def _syllable_plan(n: int, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample voiced gate, fricative gate and vowel index of a sequence of syllables and pauses."""
    gate, fric, vowel = np.zeros(n), np.zeros(n), np.zeros(n, dtype=int)
    pos = int(rng.uniform(0.05, 0.15) * sr)
    while pos < n:
        if rng.random() < 0.35:  # a fricative onset (unvoiced noise)
            length = int(rng.uniform(0.04, 0.09) * sr)
            end = min(n, pos + length)
            fric[pos:end] = np.hanning(length)[: end - pos]
            pos = end
        length = int(rng.uniform(0.12, 0.3) * sr)
        env = np.sin(np.linspace(0, np.pi, length)) ** 0.6 * rng.uniform(0.5, 1.0)
        end = min(n, pos + length)
        gate[pos:end] = env[: max(0, end - pos)]
        vowel[pos:end] = rng.integers(len(_VOWELS))
        pos = end + int((rng.uniform(0.15, 0.35) if rng.random() < 0.25 else rng.uniform(0.01, 0.05)) * sr)
    return gate, fric, vowel


def _formant_envelope(freqs: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Spectral envelope ``(n_samples, n_harmonics)`` of resonances at ``formants`` ``(n_samples, 3)``."""
    env = np.zeros_like(freqs)
    for i, gain in enumerate((1.0, 0.6, 0.3)):
        F, B = formants[:, i : i + 1], _BANDWIDTHS[i]
        env += gain / (1.0 + ((freqs - F) / B) ** 2)
    return env * (1.0 + freqs / 500.0) ** -0.5  # a gentle spectral tilt


def speech_like(duration: float = 3.0, *, sr: int = 16000, speaker: int = 0, seed: int = 0) -> SpeechSignal:
    """A speech-like utterance: harmonic syllables with formant envelopes, a pitch contour and fricatives.

    Parameters
    ----------
    duration : float
        Seconds.
    sr : int
        Sampling rate in Hz (at least 8000).
    speaker : int
        The voice: base pitch (95-135 Hz for even speakers, 185-245 Hz for
        odd ones) and vocal-tract length (formant scale).
    seed : int
        The content: syllables, vowels, pauses and intonation.

    Returns
    -------
    signal : SpeechSignal
        ``audio`` ``(n_samples,)`` with its pitch contour, gate and formant track.
    """
    if duration <= 0 or sr < 8000:
        raise ParameterError(f"need duration > 0 and sr >= 8000, got duration={duration}, sr={sr}")
    rng = np.random.default_rng([speaker, seed])
    n = int(duration * sr)
    t = np.arange(n) / sr
    base, tract = _speaker_voice(speaker)
    f0 = base * (1.0 - 0.12 * t / duration) * (1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 0.9) * t
                                                                    + rng.uniform(0, 2 * np.pi)))
    gate, fric, vowel = _syllable_plan(n, sr, rng)
    targets = _VOWELS[vowel] * tract * rng.uniform(0.95, 1.05, size=3)
    smooth = np.hanning(int(0.03 * sr))
    formants = np.stack([np.convolve(targets[:, i], smooth / smooth.sum(), mode="same") for i in range(3)], axis=1)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    n_harm = int(sr / 2 / f0.min())
    harmonics = np.arange(1, n_harm + 1)
    freqs = f0[:, None] * harmonics[None, :]  # (n_samples, n_harmonics)
    amp = _formant_envelope(freqs, formants) * (freqs < sr / 2 - 200)
    voiced = (amp * np.sin(phase[:, None] * harmonics[None, :])).sum(1) * gate
    hiss = np.diff(rng.standard_normal(n + 1)) * fric * 0.15  # high-passed noise for the fricatives
    audio = voiced + hiss + 1e-4 * rng.standard_normal(n)
    scale = 0.9 / np.max(np.abs(audio))
    f0_track = np.where(gate > 0.05, f0, 0.0)
    return SpeechSignal((audio * scale).astype(np.float32), sr, f0_track, gate * scale, formants)


def _spectral_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ``~ 1 / f**exponent``."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    return np.fft.irfft(spec / f ** (exponent / 2), n)


def noise_signal(kind: str, duration: float = 3.0, *, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A generated noise of one of :data:`NOISE_KINDS`, peak 0.9.

    ``white``, ``pink`` (1/f), ``brown`` (1/f^2); ``hum`` (mains hum at
    50 Hz with harmonics and a little broadband noise); ``machine``
    (band-passed noise amplitude-modulated at a motor rate, with a tonal
    whine); ``babble`` (six generated speakers summed).

    Returns
    -------
    noise : np.ndarray [shape=(n_samples,)], float32
    """
    if kind not in NOISE_KINDS:
        raise ParameterError(f"kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    if duration <= 0 or sr < 8000:
        raise ParameterError(f"need duration > 0 and sr >= 8000, got duration={duration}, sr={sr}")
    rng = np.random.default_rng(seed)
    n = int(duration * sr)
    t = np.arange(n) / sr
    if kind in ("white", "pink", "brown"):
        x = _spectral_noise(n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind], rng)
    elif kind == "hum":
        x = sum(np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 12))
        x = x + 0.05 * _spectral_noise(n, 1.0, rng) / 0.01
    elif kind == "machine":
        band = np.convolve(_spectral_noise(n, 0.5, rng), np.hanning(9), mode="same")
        rate = rng.uniform(8, 25)
        x = band * (1.0 + 0.6 * np.sin(2 * np.pi * rate * t)) + 0.3 * np.std(band) * np.sin(2 * np.pi * rng.uniform(600, 1500) * t)
    else:
        x = sum(speech_like(duration, sr=sr, speaker=100 + i, seed=seed * 10 + i).audio for i in range(6))
    x = np.asarray(x, dtype=float)
    return (0.9 * x / np.max(np.abs(x))).astype(np.float32)
