"""Noisy mixtures: speech plus noise at a given SNR, noise excerpts, constructed babble.

Signals are 1-D float arrays ``(n_samples,)`` at one common sampling rate.
The SNR is the energy ratio of the whole speech signal to the whole scaled
noise signal, ``10 log10(sum s^2 / sum n^2)``, as in the speech-enhancement
literature that mixes at -5, 0, 5, 10 dB.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from deepnmf.exceptions import DataError, ParameterError

__all__ = ["snr_db", "scale_to_snr", "mix_at_snr", "noise_excerpt", "split_excerpt", "babble", "change_speed"]

_SILENCE_RMS = 1e-8


def _as_signal(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D mono signal, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite samples")
    return arr


def _numpy_rng(random_state: Any) -> np.random.Generator:
    """A numpy Generator from any accepted ``random_state`` (a Generator is used as is)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    from deepnmf._utils import seed_from

    return np.random.default_rng(seed_from(random_state))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def _check_energy(x: np.ndarray, name: str) -> None:
    if not _rms(x) > _SILENCE_RMS:
        raise DataError(f"{name} is silent (RMS {_rms(x):.3g}); it cannot set or be set to an SNR")


def snr_db(signal: Any, noise: Any) -> float:
    """Signal-to-noise ratio in dB, ``10 log10(sum signal^2 / sum noise^2)``.

    Parameters
    ----------
    signal, noise : array-like [shape=(n_samples,)]
    """
    s = _as_signal(signal, "signal")
    n = _as_signal(noise, "noise")
    _check_energy(n, "noise")
    return 10.0 * math.log10(float(np.sum(s**2)) / float(np.sum(n**2)))


def scale_to_snr(speech: Any, noise: Any, snr: float) -> np.ndarray:
    """Scale ``noise`` so that ``speech`` over it has an SNR of ``snr`` dB.

    Parameters
    ----------
    speech, noise : array-like [shape=(n_samples,)]
        Equal lengths.
    snr : float
        Target SNR in dB.

    Returns
    -------
    noise : np.ndarray [shape=(n_samples,)]
        The scaled noise.
    """
    s = _as_signal(speech, "speech")
    n = _as_signal(noise, "noise")
    if s.shape != n.shape:
        raise DataError(f"speech and noise must have the same length, got {s.size} and {n.size} samples")
    if not np.isfinite(snr):
        raise ParameterError(f"snr must be a finite number of dB, got {snr!r}")
    _check_energy(s, "speech")
    _check_energy(n, "noise")
    gain = math.sqrt(float(np.sum(s**2)) / (float(np.sum(n**2)) * 10.0 ** (snr / 10.0)))
    return n * gain


def mix_at_snr(
    speech: Any, noise: Any, snr: float, *, peak: float | None = 0.99
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix speech and noise at ``snr`` dB.

    Parameters
    ----------
    speech : array-like [shape=(n_samples,)]
    noise : array-like [shape=(n_noise_samples,)]
        At least as long as ``speech``; its first ``n_samples`` are used
        (cut an excerpt first with :func:`noise_excerpt`).
    snr : float
        Input SNR in dB.
    peak : float or None
        If the mixture's peak exceeds this value, all three signals are
        scaled down together (so they stay consistent and the mixture can be
        written without clipping); ``None`` never rescales.

    Returns
    -------
    mixture, speech, noise : np.ndarray [shape=(n_samples,)]
        ``mixture == speech + noise`` exactly, with the requested SNR.
    """
    s = _as_signal(speech, "speech")
    n = _as_signal(noise, "noise")
    if n.size < s.size:
        raise DataError(
            f"noise has {n.size} samples but the speech has {s.size}; use a longer noise excerpt"
        )
    n = scale_to_snr(s, n[: s.size], snr)
    mixture = s + n
    top = float(np.max(np.abs(mixture)))
    if peak is not None and top > peak:
        factor = peak / top
        s, n = s * factor, n * factor
        mixture = s + n
    return mixture, s, n


def noise_excerpt(
    noise: Any, length: int, *, start: int | None = None, stop: int | None = None, random_state: Any = None
) -> np.ndarray:
    """Cut ``length`` samples out of ``noise[start:stop]`` at a random offset.

    Parameters
    ----------
    noise : array-like [shape=(n_samples,)]
    length : int
        Excerpt length in samples.
    start, stop : int, optional
        Region to draw from (for example the test part of a noise file).
    random_state : int, numpy Generator or None

    Returns
    -------
    excerpt : np.ndarray [shape=(length,)]
    """
    n = _as_signal(noise, "noise")
    region = n[slice(start, stop)]
    if length < 1:
        raise ParameterError(f"length must be >= 1 sample, got {length}")
    if region.size < length:
        raise DataError(
            f"the noise region has {region.size} samples, fewer than the {length} needed; "
            "use a longer noise file or shorter utterances"
        )
    rng = _numpy_rng(random_state)
    offset = int(rng.integers(0, region.size - length + 1))
    return region[offset : offset + length].copy()


def split_excerpt(n_samples: int, *, train_samples: int, max_train_fraction: float = 0.7) -> tuple[slice, slice]:
    """Split a noise recording into a first (training) part and a disjoint later (test) part.

    The training part is the first ``train_samples`` samples, or the first
    ``max_train_fraction`` of the file when that is shorter.

    Returns
    -------
    train, test : slice
    """
    if n_samples < 2:
        raise DataError(f"a noise recording of {n_samples} samples cannot be split")
    if not 0 < max_train_fraction < 1:
        raise ParameterError(f"max_train_fraction must be in (0, 1), got {max_train_fraction}")
    cut = min(int(train_samples), int(n_samples * max_train_fraction))
    cut = max(cut, 1)
    return slice(0, cut), slice(cut, n_samples)


def babble(
    voices: Sequence[Any], length: int, *, random_state: Any = None, min_voices: int = 2
) -> np.ndarray:
    """Constructed babble: a sum of several talkers at equal level.

    Each voice (one speaker's speech, for example that speaker's utterances
    concatenated) is looped to ``length`` samples from a random offset,
    normalised to unit RMS, and the voices are summed; the sum is scaled to
    unit RMS. Use talkers who are not in the test set.

    Parameters
    ----------
    voices : sequence of array-like [shape=(n_samples_i,)]
        One signal per talker (six or more sound like a crowd).
    length : int
        Output length in samples.
    random_state : int, numpy Generator or None
    min_voices : int
        Fewest talkers accepted.

    Returns
    -------
    babble : np.ndarray [shape=(length,)]
    """
    if len(voices) < min_voices:
        raise DataError(f"babble needs at least {min_voices} talkers, got {len(voices)}")
    if length < 1:
        raise ParameterError(f"length must be >= 1 sample, got {length}")
    rng = _numpy_rng(random_state)
    total = np.zeros(length)
    for i, voice in enumerate(voices):
        v = _as_signal(voice, f"voices[{i}]")
        _check_energy(v, f"voices[{i}]")
        reps = int(math.ceil((length + v.size) / v.size))
        looped = np.tile(v, reps)
        offset = int(rng.integers(0, v.size))
        segment = looped[offset : offset + length]
        total += segment / _rms(segment) if _rms(segment) > _SILENCE_RMS else 0.0
    return total / _rms(total)


def change_speed(x: Any, factor: float, *, max_denominator: int = 50) -> np.ndarray:
    """Play a signal ``factor`` times faster: tempo, pitch and formants all scale by ``factor``.

    Speed perturbation (Ko et al. 2015): resampling a recording by ``1 / factor``
    and reading it at the original rate, which makes a talker sound like
    another (a shorter or longer vocal tract), a cheap way to multiply the
    speakers of a small training set. The ratio is approximated by a fraction
    with denominator at most ``max_denominator`` and applied by polyphase
    filtering (:func:`scipy.signal.resample_poly`, anti-aliased).

    Parameters
    ----------
    x : array-like [shape=(n_samples,)]
    factor : float
        Speed factor, in ``[0.5, 2]``; 1 returns a copy.
    max_denominator : int

    Returns
    -------
    y : np.ndarray [shape=(round(n_samples / factor),)]
    """
    from fractions import Fraction

    from scipy.signal import resample_poly

    arr = _as_signal(x, "the signal")
    if not (np.isfinite(factor) and 0.5 <= factor <= 2.0):
        raise ParameterError(f"the speed factor must be in [0.5, 2], got {factor}")
    ratio = Fraction(float(factor)).limit_denominator(max_denominator)
    if ratio == 1:
        return arr.copy()
    # n / factor samples: up by the denominator, down by the numerator
    return resample_poly(arr, ratio.denominator, ratio.numerator)
