"""Time-frequency point clouds: any TF representation as points ``(t, f, value)``.

A :class:`TFPoints` holds ``n`` points with their time in seconds, frequency in
Hz and a nonnegative value (a magnitude raised to a power ``p``, default 0.5),
plus the analysed signal's duration and sampling rate. It is built from one
STFT, a constant-Q transform, the union of several of them (a hybrid of
resolutions) or a sinusoidal analysis (spectral peaks per frame), and it is
what :class:`deepnmf.ImplicitNMF` factorises in ``mode="points"``.

Coordinate normalisation (the one used everywhere in the package)
------------------------------------------------------------------
``t_norm = t / duration`` and ``f_norm = f / (sr / 2)``: time in fractions of
the signal, frequency in fractions of the Nyquist frequency. STFT bin ``k`` of
an ``N``-point transform therefore sits at ``k / (N / 2)``, whatever ``N`` is,
so a function of ``f_norm`` can be sampled at the bins of any STFT size. (The
reference code divides by ``N/2 + 1``, which shifts every bin slightly and
differently for each ``N``; that is a slip, not a convention.)

Value scaling
-------------
Every constructor scales magnitudes so that a stationary sinusoid of amplitude
``A`` gives about ``A`` at its peak before the power is applied: STFT
magnitudes are divided by ``sum(window) / 2`` and CQT magnitudes by
``sqrt(L_k) / 2`` (``L_k`` the length of librosa's filter ``k``). Values from
different representations of one signal are then comparable, which a hybrid
point cloud needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from deepnmf.exceptions import DataError, ParameterError


def normalise_time(t: Any, duration: float) -> np.ndarray:
    """Times in seconds -> fractions of the duration, ``t / duration``."""
    if not duration > 0:
        raise ParameterError(f"duration must be positive, got {duration}")
    return np.asarray(t, dtype=np.float64) / float(duration)


def normalise_freq(f: Any, sr: float) -> np.ndarray:
    """Frequencies in Hz -> fractions of the Nyquist frequency, ``f / (sr / 2)``."""
    if not sr > 0:
        raise ParameterError(f"sr must be positive, got {sr}")
    return np.asarray(f, dtype=np.float64) / (float(sr) / 2.0)


def _signal(x: Any) -> np.ndarray:
    sig = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if sig.ndim != 1 or sig.size == 0:
        raise DataError(f"signal must be a non-empty 1-D array, got shape {sig.shape}")
    if not np.all(np.isfinite(sig)):
        raise DataError("signal contains NaN or infinite samples")
    return sig.astype(np.float64, copy=False)


def _check_power(power: float) -> float:
    if not (isinstance(power, (int, float)) and power > 0):
        raise ParameterError(f"power must be a positive number, got {power!r}")
    return float(power)


@dataclass(frozen=True)
class TFPoints:
    """A cloud of time-frequency points of one signal.

    Parameters
    ----------
    t : np.ndarray [shape=(n_points,)]
        Time of each point in seconds.
    f : np.ndarray [shape=(n_points,)]
        Frequency of each point in Hz.
    value : np.ndarray [shape=(n_points,)]
        Nonnegative value (for example ``|STFT| ** 0.5``).
    duration : float
        Duration of the analysed signal in seconds.
    sr : float
        Its sampling rate in Hz.
    group : np.ndarray [shape=(n_points,), int]
        Index into ``groups`` of the representation each point came from.
    groups : tuple of str
        Names of the representations (``"stft-1024/256"``, ``"cqt-256"``...).
    """

    t: np.ndarray
    f: np.ndarray
    value: np.ndarray
    duration: float
    sr: float
    group: np.ndarray = field(default=None)  # type: ignore[assignment]
    groups: tuple[str, ...] = ("points",)

    def __post_init__(self) -> None:
        t, f, v = (np.asarray(a, dtype=np.float64).ravel() for a in (self.t, self.f, self.value))
        if not (t.shape == f.shape == v.shape):
            raise DataError(f"t, f and value must have the same length, got {t.size}, {f.size}, {v.size}")
        if t.size == 0:
            raise DataError("a point cloud needs at least one point")
        for name, a in (("t", t), ("f", f), ("value", v)):
            if not np.all(np.isfinite(a)):
                raise DataError(f"point {name} contains NaN or infinite entries")
        if (v < 0).any():
            raise DataError(f"point values must be nonnegative (min {v.min():.3g}); use magnitudes")
        if not (self.duration > 0 and self.sr > 0):
            raise DataError(f"duration and sr must be positive, got {self.duration}, {self.sr}")
        if (f < 0).any() or (f > self.sr / 2 * (1 + 1e-9)).any():
            raise DataError(f"point frequencies must lie in [0, {self.sr / 2:g}] Hz (0 to Nyquist)")
        group = np.zeros(t.size, dtype=np.int64) if self.group is None else np.asarray(self.group, dtype=np.int64)
        if group.shape != t.shape or group.min() < 0 or group.max() >= len(self.groups):
            raise DataError("group must give, for every point, an index into groups")
        for name, a in (("t", t), ("f", f), ("value", v), ("group", group)):
            object.__setattr__(self, name, a)
        object.__setattr__(self, "duration", float(self.duration))
        object.__setattr__(self, "sr", float(self.sr))
        object.__setattr__(self, "groups", tuple(self.groups))

    def __len__(self) -> int:
        return int(self.t.size)

    @property
    def n_points(self) -> int:
        """Number of points."""
        return len(self)

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised coordinates ``(t / duration, f / (sr / 2))``, each ``(n_points,)``."""
        return normalise_time(self.t, self.duration), normalise_freq(self.f, self.sr)

    def subset(self, index: Any) -> "TFPoints":
        """The points selected by a boolean mask or integer index ``(n_points,)``."""
        index = np.asarray(index)
        return TFPoints(self.t[index], self.f[index], self.value[index], self.duration, self.sr,
                        self.group[index], self.groups)

    def select(self, name: str) -> "TFPoints":
        """The points of one representation, by its name in ``groups``."""
        if name not in self.groups:
            raise ParameterError(f"no group {name!r}; groups are {list(self.groups)}")
        return self.subset(self.group == self.groups.index(name))

    def __or__(self, other: "TFPoints") -> "TFPoints":
        return union(self, other)


def union(*clouds: TFPoints) -> TFPoints:
    """Union of point clouds of the same signal (a hybrid of representations).

    Raises
    ------
    DataError
        If the clouds disagree on sampling rate or duration (beyond 1 ms).
    """
    if not clouds:
        raise ParameterError("union needs at least one point cloud")
    first = clouds[0]
    for c in clouds[1:]:
        if c.sr != first.sr or abs(c.duration - first.duration) > 1e-3:
            raise DataError(
                f"cannot unite clouds of different signals: sr {c.sr:g} vs {first.sr:g} Hz, "
                f"duration {c.duration:.3f} vs {first.duration:.3f} s"
            )
    groups: list[str] = []
    labels = []
    for c in clouds:
        remap = []
        for name in c.groups:
            if name not in groups:
                groups.append(name)
            remap.append(groups.index(name))
        labels.append(np.asarray(remap, dtype=np.int64)[c.group])
    cat = lambda attr: np.concatenate([getattr(c, attr) for c in clouds])  # noqa: E731
    return TFPoints(cat("t"), cat("f"), cat("value"), first.duration, first.sr, np.concatenate(labels), tuple(groups))


def from_spectrogram(
    V: Any, *, times: Any, freqs: Any, duration: float, sr: float, name: str = "grid"
) -> TFPoints:
    """Points of a nonnegative matrix on a time x frequency grid.

    Parameters
    ----------
    V : array-like [shape=(n_frames, n_bins)]
        Nonnegative values.
    times : array-like [shape=(n_frames,)]
        Frame times in seconds.
    freqs : array-like [shape=(n_bins,)]
        Bin frequencies in Hz.
    duration, sr : float
    name : str
        Group name of these points.
    """
    V = np.asarray(V.detach().cpu().numpy() if hasattr(V, "detach") else V, dtype=np.float64)
    times, freqs = np.asarray(times, dtype=np.float64), np.asarray(freqs, dtype=np.float64)
    if V.ndim != 2 or V.shape != (times.size, freqs.size):
        raise DataError(f"V must be (len(times), len(freqs)) = ({times.size}, {freqs.size}), got {V.shape}")
    T, Fq = np.meshgrid(times, freqs, indexing="ij")  # (n_frames, n_bins) each
    return TFPoints(T.ravel(), Fq.ravel(), V.ravel(), duration, sr, None, (name,))


def from_stft(
    x: Any, sr: float, *, n_fft: int, hop: int | None = None, window: str = "sqrt-hann", power: float = 0.5
) -> TFPoints:
    """Points of an STFT: ``(m hop / sr, k sr / n_fft, (|S| / (sum(w) / 2)) ** power)``.

    Parameters
    ----------
    x : array-like [shape=(n_samples,)]
    sr : float
    n_fft : int
    hop : int, optional
        Default ``n_fft // 2`` (the reference recipe).
    window : str
        One of :data:`deepnmf.audio.tf.WINDOWS`.
    power : float
        Exponent applied to the magnitude.
    """
    import torch

    from deepnmf.audio.tf import frame_times, get_window, stft, stft_freqs

    sig, power = _signal(x), _check_power(power)
    hop = hop or n_fft // 2
    S = stft(torch.from_numpy(sig), n_fft=n_fft, hop=hop, window=window)  # (n_frames, n_bins)
    gain = float(get_window(window, n_fft, dtype=torch.float64).sum()) / 2
    V = (S.abs() / gain).pow(power).numpy()
    return from_spectrogram(V, times=frame_times(V.shape[0], hop, sr), freqs=stft_freqs(n_fft, sr),
                            duration=sig.size / sr, sr=sr, name=f"stft-{n_fft}/{hop}")


def from_cqt(
    x: Any, sr: float, *, hop: int = 256, fmin: float = 32.70, n_bins: int = 84,
    bins_per_octave: int = 12, power: float = 0.5,
) -> TFPoints:
    """Points of a constant-Q transform (:func:`deepnmf.audio.cqt.cqt`), amplitude-normalised.

    Parameters
    ----------
    x : array-like [shape=(n_samples,)]
    sr : float
    hop, fmin, n_bins, bins_per_octave
        As in :func:`deepnmf.audio.cqt.cqt`.
    power : float
    """
    import librosa

    from deepnmf.audio.cqt import cqt, cqt_freqs
    from deepnmf.audio.tf import frame_times

    sig, power = _signal(x), _check_power(power)
    C = cqt(sig, sr, hop=hop, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave)  # (n_frames, n_bins)
    freqs = cqt_freqs(fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave)
    lengths, _ = librosa.filters.wavelet_lengths(freqs=freqs, sr=sr)
    V = (np.abs(C) / (np.sqrt(lengths) / 2)) ** power
    return from_spectrogram(V, times=frame_times(V.shape[0], hop, sr), freqs=freqs,
                            duration=sig.size / sr, sr=sr, name=f"cqt-{hop}")


def from_peaks(
    x: Any, sr: float, *, n_fft: int = 2048, hop: int | None = None, max_peaks: int = 30,
    threshold_db: float = -60.0, window: str = "hann", power: float = 0.5,
) -> TFPoints:
    """Sinusoidal analysis: the spectral peaks of every STFT frame.

    A peak is a bin whose magnitude exceeds both neighbours and lies within
    ``threshold_db`` of the loudest bin of the signal; its frequency and
    amplitude are refined by a parabola through the log magnitudes of the
    three bins (amplitudes within about 4 % for a Hann window). At most
    ``max_peaks`` loudest peaks are kept per frame.

    Parameters
    ----------
    x : array-like [shape=(n_samples,)]
    sr : float
    n_fft, hop : int
        Analysis STFT (hop default ``n_fft // 4``).
    max_peaks : int
    threshold_db : float
        Negative; peaks quieter than this relative to the maximum are dropped.
    window : str
    power : float

    Returns
    -------
    points : TFPoints
        Group ``"peaks-<n_fft>"``; frequencies are off the STFT grid.
    """
    import torch

    from deepnmf.audio.tf import get_window, stft

    sig, power = _signal(x), _check_power(power)
    if max_peaks < 1:
        raise ParameterError(f"max_peaks must be >= 1, got {max_peaks}")
    if threshold_db >= 0:
        raise ParameterError(f"threshold_db must be negative, got {threshold_db}")
    hop = hop or n_fft // 4
    gain = float(get_window(window, n_fft, dtype=torch.float64).sum()) / 2
    A = (stft(torch.from_numpy(sig), n_fft=n_fft, hop=hop, window=window).abs() / gain).numpy()  # (n_frames, n_bins)
    frames, bins, delta, amp = _parabolic_peaks(A, threshold_db, max_peaks)
    return TFPoints(frames * hop / sr, (bins + delta) * sr / n_fft, amp**power, sig.size / sr, sr, None,
                    (f"peaks-{n_fft}",))


def _parabolic_peaks(A: np.ndarray, threshold_db: float, max_peaks: int):
    """Local maxima of ``A`` ``(n_frames, n_bins)`` along bins, refined by parabolas in log magnitude."""
    floor = A.max() * 10 ** (threshold_db / 20)
    if not floor > 0:
        raise DataError("the signal is silent: no spectral peaks")
    mid = A[:, 1:-1]
    is_peak = (mid > A[:, :-2]) & (mid >= A[:, 2:]) & (mid > floor)
    frames, bins = np.nonzero(is_peak)
    bins = bins + 1
    la, lb, lc = (np.log(A[frames, bins + d] + 1e-12) for d in (-1, 0, 1))
    denom = la - 2 * lb + lc
    delta = np.where(denom < 0, 0.5 * (la - lc) / np.where(denom < 0, denom, -1.0), 0.0)
    amp = np.exp(lb - 0.25 * (la - lc) * delta)
    # keep the max_peaks loudest per frame: rank peaks inside each frame by amplitude
    order = np.lexsort((-amp, frames))
    frames, bins, delta, amp = frames[order], bins[order], delta[order], amp[order]
    starts = np.searchsorted(frames, frames, side="left")
    keep = (np.arange(frames.size) - starts) < max_peaks
    return frames[keep], bins[keep].astype(np.float64), delta[keep], amp[keep]


def hybrid(
    x: Any, sr: float, *, stfts: Sequence[tuple[int, int]] = ((128, 32), (1024, 256)),
    cqt: dict | None = None, window: str = "sqrt-hann", power: float = 0.5,
) -> TFPoints:
    """Union of several STFTs (``(n_fft, hop)`` pairs) and optionally a CQT of one signal.

    ``cqt`` holds keyword arguments of :func:`from_cqt` (``{}`` for its
    defaults, ``None`` for no CQT). The default is the reference demo's mix
    of STFT 128/32 and 1024/256 (add ``cqt={}`` for its CQT).
    """
    parts = [from_stft(x, sr, n_fft=n, hop=h, window=window, power=power) for n, h in stfts]
    if cqt is not None:
        parts.append(from_cqt(x, sr, power=power, **cqt))
    return union(*parts)
