"""EMG preprocessing: raw signal -> nonnegative envelopes ready for synergy extraction.

Orientation: arrays are ``(n_samples, n_channels)`` (time x muscles).

The chain follows muscle-synergy practice: band-pass (default 20-450 Hz),
optional mains notch, full-wave rectification, zero-phase low-pass envelope,
resampling of the envelope, optional time normalisation per cycle or segment,
amplitude normalisation per channel. Every filter runs forwards and backwards
(``scipy.signal.sosfiltfilt``), so nothing is delayed. Filters the sampling
rate cannot support are adapted or skipped with a warning, and every choice
actually made is recorded in ``meta["preprocessing"]`` of the output.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

from deepnmf.emg.io import Recording, Segment
from deepnmf.exceptions import DataError, ParameterError

AMPLITUDE_METHODS = ("max", "rms", "none")


@dataclass(frozen=True)
class EnvelopeConfig:
    """Parameters of :func:`preprocess` (all frequencies in Hz).

    Attributes
    ----------
    band : (float, float) or None
        Band-pass edges for the raw EMG; ``None`` skips it.
    band_order : int
        Butterworth order of the band-pass (doubled by zero-phase filtering).
    notch : float or None
        Mains frequency to notch out (50 or 60), or ``None``.
    notch_q : float
        Quality factor of the notch.
    envelope_cutoff : float
        Low-pass cut-off of the envelope (muscle-synergy practice: 2-20 Hz).
    envelope_order : int
        Butterworth order of the envelope low-pass.
    envelope_fs : float or None
        Rate the envelope is resampled to (``None`` keeps the input rate).
    time_points : int or None
        Points per segment (cycle or repetition) after time normalisation;
        ``None`` keeps real time. Segments with phases (gait: stance, swing)
        give each phase an equal share.
    amplitude : {"max", "rms", "none"}
        Per-channel amplitude normalisation over the labelled segments.
    dead_channels : {"error", "drop"}
        What to do with a constant or all-zero channel.
    """

    band: tuple[float, float] | None = (20.0, 450.0)
    band_order: int = 4
    notch: float | None = None
    notch_q: float = 30.0
    envelope_cutoff: float = 10.0
    envelope_order: int = 4
    envelope_fs: float | None = 100.0
    time_points: int | None = None
    amplitude: str = "max"
    dead_channels: str = "error"

    def validate(self) -> "EnvelopeConfig":
        """Check values; returns ``self``."""
        if self.band is not None:
            if len(self.band) != 2 or not 0 <= self.band[0] < self.band[1]:
                raise ParameterError(f"band must be (low, high) with 0 <= low < high Hz, got {self.band!r}")
        for name in ("envelope_cutoff", "notch_q"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.notch is not None and not self.notch > 0:
            raise ParameterError(f"notch must be a mains frequency in Hz (50 or 60) or None, got {self.notch!r}")
        if self.envelope_fs is not None and not self.envelope_fs > 0:
            raise ParameterError(f"envelope_fs must be > 0 Hz or None, got {self.envelope_fs!r}")
        if self.time_points is not None and (not isinstance(self.time_points, int) or self.time_points < 4):
            raise ParameterError(f"time_points must be an integer >= 4 or None, got {self.time_points!r}")
        if self.amplitude not in AMPLITUDE_METHODS:
            raise ParameterError(f"amplitude must be one of {', '.join(AMPLITUDE_METHODS)}; got {self.amplitude!r}")
        if self.dead_channels not in ("error", "drop"):
            raise ParameterError(f"dead_channels must be 'error' or 'drop', got {self.dead_channels!r}")
        return self


# ----------------------------------------------------------- array filters
def _zero_phase(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    from scipy.signal import sosfiltfilt

    padlen = min(3 * (2 * len(sos) + 1), x.shape[0] - 1)
    return sosfiltfilt(sos, x, axis=0, padlen=max(padlen, 0))


def bandpass(x: np.ndarray, fs: float, band: tuple[float, float], *, order: int = 4) -> tuple[np.ndarray, dict]:
    """Zero-phase Butterworth band-pass, adapted to what ``fs`` supports.

    An upper edge at or above 95 % of Nyquist is dropped (high-pass only); a
    lower edge at or above that limit skips the filter. Both warn.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples, n_channels)]
    fs : float
    band : (float, float)
    order : int

    Returns
    -------
    y : np.ndarray [shape=(n_samples, n_channels)]
    applied : dict
        ``{"type": "bandpass"|"highpass"|"lowpass"|"skipped", "edges": [...]}``.
    """
    from scipy.signal import butter

    low, high = float(band[0]), float(band[1])
    limit = 0.95 * fs / 2
    if low >= limit:
        warnings.warn(f"band-pass {low:g}-{high:g} Hz skipped: fs = {fs:g} Hz cannot support it", stacklevel=2)
        return x, {"type": "skipped", "edges": []}
    if high >= limit:
        warnings.warn(
            f"band-pass upper edge {high:g} Hz is above what fs = {fs:g} Hz supports; high-pass at {low:g} Hz only",
            stacklevel=2,
        )
        if low <= 0:
            return x, {"type": "skipped", "edges": []}
        return _zero_phase(x, butter(order, low, "highpass", fs=fs, output="sos")), {"type": "highpass", "edges": [low]}
    if low <= 0:
        return _zero_phase(x, butter(order, high, "lowpass", fs=fs, output="sos")), {"type": "lowpass", "edges": [high]}
    sos = butter(order, [low, high], "bandpass", fs=fs, output="sos")
    return _zero_phase(x, sos), {"type": "bandpass", "edges": [low, high]}


def notch(x: np.ndarray, fs: float, freq: float, *, q: float = 30.0) -> tuple[np.ndarray, bool]:
    """Zero-phase IIR notch at ``freq`` Hz; skipped (with a warning) above Nyquist.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples, n_channels)]

    Returns
    -------
    y : np.ndarray [shape=(n_samples, n_channels)]
    applied : bool
    """
    from scipy.signal import iirnotch, tf2sos

    if freq >= 0.95 * fs / 2:
        warnings.warn(f"notch at {freq:g} Hz skipped: above what fs = {fs:g} Hz supports", stacklevel=2)
        return x, False
    b, a = iirnotch(freq, q, fs=fs)
    return _zero_phase(x, tf2sos(b, a)), True


def envelope(x: np.ndarray, fs: float, cutoff: float, *, order: int = 4, rectify: bool = True) -> tuple[np.ndarray, bool]:
    """Full-wave rectification then a zero-phase low-pass; clipped at zero.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples, n_channels)]

    Returns
    -------
    env : np.ndarray [shape=(n_samples, n_channels)], nonnegative
    lowpassed : bool
        ``False`` when ``cutoff`` is too high for ``fs`` (skipped, with a warning).
    """
    from scipy.signal import butter

    y = np.abs(x) if rectify else np.asarray(x, dtype=np.float64)
    if cutoff >= 0.95 * fs / 2:
        warnings.warn(f"envelope low-pass at {cutoff:g} Hz skipped: fs = {fs:g} Hz cannot support it", stacklevel=2)
        return np.maximum(y, 0.0), False
    y = _zero_phase(y, butter(order, cutoff, "lowpass", fs=fs, output="sos"))
    # a zero-phase filter rings slightly below zero after sharp bursts
    return np.maximum(y, 0.0), True


def resample_envelope(x: np.ndarray, fs: float, fs_out: float) -> tuple[np.ndarray, float]:
    """Resample with a zero-phase polyphase filter; returns the data and the exact new rate.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples, n_channels)]

    Returns
    -------
    y : np.ndarray [shape=(n_out, n_channels)], nonnegative
    fs_out : float
    """
    from scipy.signal import resample_poly

    ratio = Fraction(fs_out / fs).limit_denominator(1000)
    if ratio == 1:
        return x, fs
    y = resample_poly(x, ratio.numerator, ratio.denominator, axis=0, padtype="line")
    return np.maximum(y, 0.0), fs * ratio.numerator / ratio.denominator


def time_normalise(x: np.ndarray, n_points: int, *, phases: tuple[int, ...] = ()) -> np.ndarray:
    """Linear interpolation of one segment onto ``n_points`` samples.

    With phase boundaries, each phase gets an equal share of the points
    (gait: stance and swing, 50 % each), as is usual in gait synergy work.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples, n_channels)]
    n_points : int
    phases : tuple of int
        Sample indices inside ``x`` where a new phase begins.

    Returns
    -------
    y : np.ndarray [shape=(n_points, n_channels)]
    """
    bounds = [0, *[p for p in phases if 0 < p < x.shape[0] - 1], x.shape[0] - 1]
    n_phase = len(bounds) - 1
    sizes = [n_points // n_phase + (i < n_points % n_phase) for i in range(n_phase)]
    pieces = []
    for (a, b), m in zip(zip(bounds[:-1], bounds[1:]), sizes):
        t_new = np.linspace(a, b, m, endpoint=(b == bounds[-1]))
        pieces.append(np.stack([np.interp(t_new, np.arange(x.shape[0]), col) for col in x.T], axis=1))
    return np.concatenate(pieces, axis=0)


def channel_scale(x: np.ndarray, method: str) -> np.ndarray:
    """Per-channel scale for amplitude normalisation, shape ``(n_channels,)``."""
    if method == "max":
        return x.max(axis=0)
    if method == "rms":
        return np.sqrt(np.mean(x**2, axis=0))
    return np.ones(x.shape[1])


def dead_channel_mask(x: np.ndarray) -> np.ndarray:
    """Channels that are constant (including all zero), shape ``(n_channels,)`` bool."""
    return np.ptp(x, axis=0) <= 1e-12 * max(float(np.abs(x).max(initial=0.0)), 1e-300)


# -------------------------------------------------------------- the chain
def _handle_dead_channels(rec: Recording, policy: str) -> tuple[Recording, list[str]]:
    if rec.n_samples < 16:
        raise DataError(f"the recording has only {rec.n_samples} samples; EMG preprocessing needs a longer signal")
    if not np.all(np.isfinite(rec.data)):
        raise DataError("the EMG contains NaN or infinite samples; remove or interpolate them first")
    dead = dead_channel_mask(rec.data)
    if not dead.any():
        return rec, []
    names = [c for c, d in zip(rec.channels, dead) if d]
    if policy == "error" or dead.all():
        raise DataError(
            f"channel(s) {', '.join(names)} are constant or all zero (a disconnected electrode?); "
            "remove them or pass dead_channels='drop'"
        )
    warnings.warn(f"dropping constant/all-zero channel(s): {', '.join(names)}", stacklevel=3)
    keep = ~dead
    kept = [c for c, k in zip(rec.channels, keep) if k]
    return replace(rec, data=rec.data[:, keep], channels=kept), names


def _scale_segments(segments: list[Segment], ratio: float, n_samples: int) -> list[Segment]:
    out = []
    for s in segments:
        a, b = int(round(s.start * ratio)), min(int(round(s.stop * ratio)), n_samples)
        phases = tuple(int(round(p * ratio)) for p in s.phases)
        if b - a >= 2:
            out.append(replace(s, start=a, stop=b, phases=phases))
    return out


def _normalise_time(data: np.ndarray, segments: list[Segment], n_points: int) -> tuple[np.ndarray, list[Segment]]:
    if not segments:
        raise DataError("time normalisation needs labelled segments (cycles or repetitions); the recording has none")
    pieces, segs = [], []
    for i, s in enumerate(segments):
        pieces.append(time_normalise(data[s.start : s.stop], n_points, phases=tuple(p for p in s.phases)))
        phase_at = (n_points // 2,) if s.phases else ()
        segs.append(replace(s, start=i * n_points, stop=(i + 1) * n_points, phases=phase_at))
    return np.concatenate(pieces, axis=0), segs


def _labelled(data: np.ndarray, segments: list[Segment]) -> np.ndarray:
    if not segments:
        return data
    return np.concatenate([data[s.start : s.stop] for s in segments], axis=0)


def _amplitude(data: np.ndarray, segments: list[Segment], method: str, channels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    scale = channel_scale(_labelled(data, segments), method)
    flat = scale <= 0
    if flat.any():
        names = ", ".join(c for c, f in zip(channels, flat) if f)
        raise DataError(f"channel(s) {names} have a zero envelope after filtering; remove them (dead_channels='drop' drops constant ones)")
    return data / scale, scale


def preprocess(recording: Recording, config: EnvelopeConfig | None = None, **overrides: Any) -> Recording:
    """Raw EMG -> nonnegative, normalised envelopes (a new :class:`Recording`).

    Parameters
    ----------
    recording : Recording
        Raw EMG, ``data`` of shape ``(n_samples, n_channels)``.
    config : EnvelopeConfig, optional
        Parameters; keyword ``overrides`` replace single fields.

    Returns
    -------
    Recording
        Envelopes, ``data`` of shape ``(n_out, n_kept_channels)``; segments
        moved to the new time base; ``meta["preprocessing"]`` records every
        parameter and what was actually applied.
    """
    cfg = replace(config or EnvelopeConfig(), **overrides).validate()
    rec, dropped = _handle_dead_channels(recording, cfg.dead_channels)
    fs, x = rec.fs, rec.data - rec.data.mean(axis=0)
    pre_rectified = bool(rec.meta.get("already_rectified", False))
    record: dict[str, Any] = {**asdict(cfg), "input_fs": fs, "dropped_channels": dropped, "notes": []}
    if pre_rectified:
        x = rec.data
        record["notes"].append("input is already rectified/smoothed: band-pass, notch and rectification skipped")
        record["bandpass_applied"], record["notch_applied"] = {"type": "skipped", "edges": []}, False
    else:
        x, record["bandpass_applied"] = bandpass(x, fs, cfg.band, order=cfg.band_order) if cfg.band else (x, {"type": "skipped", "edges": []})
        x, record["notch_applied"] = notch(x, fs, cfg.notch, q=cfg.notch_q) if cfg.notch else (x, False)
    x, record["envelope_lowpass_applied"] = envelope(x, fs, cfg.envelope_cutoff, order=cfg.envelope_order, rectify=not pre_rectified)
    segments = list(rec.segments)
    if cfg.time_points is not None:
        record["notes"].append("envelope_fs ignored: time normalisation interpolates the full-rate envelope")
    elif cfg.envelope_fs is not None and cfg.envelope_fs < fs:
        x, fs_new = resample_envelope(x, fs, cfg.envelope_fs)
        segments = _scale_segments(segments, fs_new / fs, x.shape[0])
        fs = fs_new
    record["output_fs"] = fs
    if cfg.time_points is not None:
        mean_len = np.mean([s.n_samples for s in segments]) if segments else 1.0
        x, segments = _normalise_time(x, segments, cfg.time_points)
        fs = cfg.time_points / (mean_len / fs)
        record["notes"].append(f"each segment resampled to {cfg.time_points} points; fs is nominal")
    x, scale = _amplitude(x, segments, cfg.amplitude, rec.channels)
    record["channel_scale"] = {c: float(s) for c, s in zip(rec.channels, scale)}
    meta = {**rec.meta, "preprocessing": record, "time_normalised": cfg.time_points}
    return Recording(x, float(fs), list(rec.channels), segments, meta)
