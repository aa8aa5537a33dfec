"""Multichannel EMG recordings: the :class:`Recording` object and file loaders.

Orientation: ``Recording.data`` is ``(n_samples, n_channels)`` (time x
muscles), the same orientation as every deepnmf estimator's ``X``.

Formats
-------
``csv``
    A ``time`` column (seconds) and one column per channel; the channel names
    are the column headers. An optional label column gives movements.
``uci``
    The UCI "EMG data for gestures" text files (tab separated, gzipped or
    not): ``time`` in milliseconds, ``channel1..channel8`` in volts and
    ``class`` (0 = unmarked). The irregular time stamps are put on a uniform
    grid (sample and hold, as the armband's own output holds each value).
``ninapro``
    Ninapro ``.mat`` files: ``emg`` and ``restimulus`` (or ``stimulus``),
    ``rerepetition`` (or ``repetition``).
``gait``
    A ``csv`` recording plus cycle times (``*_cycles.csv``: one row per cycle,
    stance start and optionally swing start, in seconds).

Several files of one subject are joined with :func:`concatenate`; the
repetitions of each movement are then numbered across files.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from deepnmf.exceptions import DataError, ParameterError

FORMATS = ("csv", "uci", "ninapro", "gait")

#: names of the UCI gesture classes (0 is unmarked time between gestures)
UCI_CLASSES = {
    1: "hand at rest",
    2: "fist",
    3: "wrist flexion",
    4: "wrist extension",
    5: "radial deviation",
    6: "ulnar deviation",
    7: "extended palm",
}


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of a recording, samples ``start:stop``.

    Attributes
    ----------
    start, stop : int
        Sample indices (``stop`` excluded).
    movement : int or str
        Movement (task) label; ``"gait"`` for gait cycles.
    repetition : int
        Repetition (or cycle) number within the movement, from 1.
    kind : str
        ``"repetition"`` or ``"cycle"``.
    phases : tuple of int
        Sample indices inside ``start:stop`` where a new phase begins (for
        gait: the swing start); empty when unknown.
    """

    start: int
    stop: int
    movement: int | str
    repetition: int
    kind: str = "repetition"
    phases: tuple[int, ...] = ()

    @property
    def n_samples(self) -> int:
        return self.stop - self.start


@dataclass
class Recording:
    """Multichannel EMG with its sampling rate, channel names and labelled segments.

    Attributes
    ----------
    data : np.ndarray [shape=(n_samples, n_channels)]
        Samples, time x channels.
    fs : float
        Sampling rate in Hz (for time-normalised data: points per second of
        the average segment, see ``meta["time_normalised"]``).
    channels : list of str
        Channel (muscle) names, one per column.
    segments : list of Segment
        Labelled movements, repetitions or cycles.
    meta : dict
        Provenance: source files, format, notes from loading and preprocessing.
    """

    data: np.ndarray
    fs: float
    channels: list[str]
    segments: list[Segment] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float64)
        if self.data.ndim != 2:
            raise DataError(f"EMG data must be 2-D (n_samples, n_channels), got shape {self.data.shape}")
        if len(self.channels) != self.data.shape[1]:
            raise DataError(f"{len(self.channels)} channel names for {self.data.shape[1]} channels")
        if not np.isfinite(self.fs) or self.fs <= 0:
            raise DataError(f"sampling rate must be a positive number of Hz, got {self.fs!r}")
        self.channels = [str(c) for c in self.channels]

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.fs

    def times(self) -> np.ndarray:
        """Sample times in seconds, shape ``(n_samples,)``."""
        return np.arange(self.n_samples) / self.fs

    def movements(self) -> list[int | str]:
        """Movement labels in order of first appearance."""
        seen: dict[Any, None] = {}
        for seg in self.segments:
            seen.setdefault(seg.movement, None)
        return list(seen)

    def repetitions(self, movement: int | str) -> list[Segment]:
        """Segments of one movement, in repetition order."""
        segs = [s for s in self.segments if s.movement == movement]
        if not segs:
            known = ", ".join(map(str, self.movements())) or "none"
            raise DataError(f"movement {movement!r} is not in this recording (movements: {known})")
        return sorted(segs, key=lambda s: s.repetition)

    def segment_data(self, segment: Segment) -> np.ndarray:
        """Samples of one segment, shape ``(segment.n_samples, n_channels)``."""
        return self.data[segment.start : segment.stop]


# ----------------------------------------------------------------- helpers
def _read_text_table(path: Path, *, delimiter: str | None) -> tuple[list[str], np.ndarray]:
    """Header names and a float matrix from a delimited text file (gz allowed)."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            header = fh.readline()
            sep = delimiter or ("\t" if "\t" in header else ",")
            names = [h.strip().strip('"') for h in header.rstrip("\n").split(sep)]
            values = np.loadtxt(fh, delimiter=sep, ndmin=2)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text table (binary content at byte {err.start})") from err
    except (OSError, ValueError, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataError(f"{path}: could not read a numeric table with a header row: {err}") from err
    if values.size == 0:
        raise DataError(f"{path}: no samples under the header row ({', '.join(names)})")
    if values.shape[1] != len(names):
        raise DataError(f"{path}: expected {len(names)} columns under the header, got shape {values.shape}")
    return names, values


def _read_header(path: Path) -> str:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            return fh.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise DataError(f"{path}: not a readable text file ({err})") from err


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    return path


def _fs_from_times(t: np.ndarray, path: Path) -> float:
    """Sampling rate from a time column (seconds), checking it is increasing."""
    dt = np.diff(t)
    if t.size < 2 or np.any(dt <= 0):
        raise DataError(f"{path}: the time column must be strictly increasing")
    return float(round(1.0 / np.median(dt), 6))


def _segments_from_labels(labels: np.ndarray, *, rest: Sequence[int] = (0,)) -> list[Segment]:
    """Runs of equal nonzero labels become repetitions numbered per movement."""
    labels = np.asarray(labels).astype(int)
    change = np.flatnonzero(np.diff(labels)) + 1
    starts, stops = np.r_[0, change], np.r_[change, labels.size]
    counts: dict[int, int] = {}
    segs = []
    for a, b in zip(starts, stops):
        lab = int(labels[a])
        if lab in rest:
            continue
        counts[lab] = counts.get(lab, 0) + 1
        segs.append(Segment(int(a), int(b), lab, counts[lab]))
    return segs


# ----------------------------------------------------------------- loaders
def load_csv(
    path: str | Path,
    *,
    time_column: str | None = "time",
    label_column: str | None = None,
    fs: float | None = None,
    channels: Sequence[str] | None = None,
) -> Recording:
    """Load a CSV (or TSV) with a time column and one column per channel.

    Parameters
    ----------
    path : str or Path
        File with a header row; ``.gz`` is read transparently.
    time_column : str or None
        Name of the time column (seconds). ``None`` when there is none; then
        ``fs`` is required.
    label_column : str, optional
        Integer movement labels per sample (0 = unlabelled); runs of one
        label become repetitions.
    fs : float, optional
        Sampling rate in Hz; by default from the median step of the time column.
    channels : sequence of str, optional
        Columns to keep, in this order; by default every other column.

    Returns
    -------
    Recording
    """
    path = _check_path(path)
    names, values = _read_text_table(path, delimiter=None)
    lookup = {n.lower(): i for i, n in enumerate(names)}
    reserved = set()
    if time_column is not None:
        if time_column.lower() not in lookup:
            raise DataError(f"{path}: no {time_column!r} column (columns: {', '.join(names)}); pass time_column=None and fs=...")
        t_idx = lookup[time_column.lower()]
        reserved.add(t_idx)
        fs_file = _fs_from_times(values[:, t_idx], path)
        fs = float(fs) if fs is not None else fs_file
    elif fs is None:
        raise ParameterError("without a time column the sampling rate fs must be given")
    segments: list[Segment] = []
    if label_column is not None:
        if label_column.lower() not in lookup:
            raise DataError(f"{path}: no label column {label_column!r}")
        reserved.add(lookup[label_column.lower()])
        segments = _segments_from_labels(values[:, lookup[label_column.lower()]])
    if channels is None:
        idx = [i for i in range(len(names)) if i not in reserved]
    else:
        missing = [c for c in channels if c.lower() not in lookup]
        if missing:
            raise DataError(f"{path}: channels not found: {', '.join(missing)} (columns: {', '.join(names)})")
        idx = [lookup[c.lower()] for c in channels]
    if not idx:
        raise DataError(f"{path}: no channel columns besides time/labels")
    meta = {"format": "csv", "sources": [str(path)]}
    return Recording(values[:, idx], float(fs), [names[i] for i in idx], segments, meta)


def load_uci(path: str | Path, *, fs: float = 1000.0) -> Recording:
    """Load one UCI "EMG data for gestures" series (8 Myo channels, ms time stamps).

    The time stamps are irregular (steps of 1 to ~12 ms), so samples are put
    on a uniform grid at ``fs`` by sample and hold. The armband itself holds
    each value for several stamps; ``meta["distinct_rate_hz"]`` reports how
    many distinct values per second the file really has.

    Parameters
    ----------
    path : str or Path
        ``*.txt`` or ``*.txt.gz`` with columns ``time, channel1..8, class``.
    fs : float
        Rate of the uniform grid in Hz.

    Returns
    -------
    Recording
        Segments are the runs of classes 1-7 (movement = class number),
        numbered per class.
    """
    path = _check_path(path)
    lower = [h.strip().lower() for h in _read_header(path).split("\t")]
    if len(lower) < 3 or lower[0] != "time" or lower[-1] != "class":
        raise DataError(f"{path}: not a UCI gestures file (expected tab-separated columns time, channel1.., class)")
    names, values = _read_text_table(path, delimiter="\t")
    t = values[:, 0] / 1000.0
    order = np.argsort(t, kind="stable")
    t, values = t[order], values[order]
    grid = np.arange(t[0], t[-1], 1.0 / fs)
    # sample and hold: the last stamp at or before each grid time
    idx = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, t.size - 1)
    x, labels = values[idx, 1:-1], values[idx, -1]
    changes = np.any(np.diff(values[:, 1:-1], axis=0) != 0, axis=1).sum()
    meta = {
        "format": "uci",
        "sources": [str(path)],
        "resampled_to_uniform_grid_hz": float(fs),
        "distinct_rate_hz": float(changes / max(t[-1] - t[0], 1e-9)),
        "movement_names": {k: v for k, v in UCI_CLASSES.items()},
        "units": "V",
    }
    return Recording(x, float(fs), names[1:-1], _segments_from_labels(labels), meta)


def _mat_vector(mat: dict, keys: Sequence[str], path: Path) -> np.ndarray | None:
    for key in keys:
        if key in mat:
            return np.asarray(mat[key]).reshape(-1)
    return None


def load_ninapro(path: str | Path, *, fs: float | None = None) -> Recording:
    """Load a Ninapro ``.mat`` file (``emg``, ``restimulus``/``stimulus``, ``rerepetition``/``repetition``).

    Parameters
    ----------
    path : str or Path
        The ``.mat`` file (MATLAB v5; read with ``scipy.io.loadmat``).
    fs : float, optional
        Sampling rate; by default the file's ``frequency`` entry, else 100 Hz
        (Ninapro DB1's rectified, RMS-smoothed Otto Bock electrodes).

    Returns
    -------
    Recording
        Segments: movement = stimulus label, repetition = the file's
        repetition number.
    """
    from scipy.io import loadmat

    path = _check_path(path)
    try:
        mat = loadmat(str(path))
    except (ValueError, NotImplementedError, OSError) as err:
        raise DataError(f"{path}: not a readable MATLAB v5 .mat file ({err})") from err
    if "emg" not in mat:
        raise DataError(f"{path}: no 'emg' variable (variables: {', '.join(k for k in mat if not k.startswith('__'))})")
    emg = np.asarray(mat["emg"], dtype=np.float64)
    if emg.ndim != 2:
        raise DataError(f"{path}: 'emg' must be 2-D, got shape {emg.shape}")
    stim = _mat_vector(mat, ("restimulus", "stimulus"), path)
    rep = _mat_vector(mat, ("rerepetition", "repetition"), path)
    if stim is None or rep is None:
        raise DataError(f"{path}: needs 'restimulus' or 'stimulus' and 'rerepetition' or 'repetition' variables")
    if stim.size != emg.shape[0] or rep.size != emg.shape[0]:
        raise DataError(f"{path}: label vectors have {stim.size}/{rep.size} samples, emg has {emg.shape[0]}")
    if fs is None:
        freq = _mat_vector(mat, ("frequency",), path)
        fs = float(freq[0]) if freq is not None else 100.0
    segments = []
    runs = _segments_from_labels(stim * 10_000 + rep)  # a run = one (movement, repetition)
    for seg in runs:
        m, r = int(stim[seg.start]), int(rep[seg.start])
        if m != 0 and r != 0:
            segments.append(Segment(seg.start, seg.stop, m, r))
    channels = [f"ch{i + 1}" for i in range(emg.shape[1])]
    # DB1's electrodes deliver rectified, RMS-smoothed EMG at 100 Hz: no band-pass or rectification then
    meta = {"format": "ninapro", "sources": [str(path)], "already_rectified": bool(fs <= 200 and emg.min() >= 0)}
    return Recording(emg, float(fs), channels, segments, meta)


def load_cycles(path: str | Path) -> np.ndarray:
    """Read gait cycle times: one row per cycle, stance start [, swing start] in seconds.

    Returns
    -------
    np.ndarray [shape=(n_cycles, 1 or 2)]
    """
    path = _check_path(path)
    try:
        rows = np.genfromtxt(path, delimiter=",", skip_header=0)
    except ValueError as err:
        raise DataError(f"{path}: could not read cycle times: {err}") from err
    rows = np.atleast_2d(rows)
    if rows.shape[0] == 1 and rows.size == 1:
        rows = rows.reshape(-1, 1)
    rows = rows[~np.all(np.isnan(rows), axis=1)]  # the header row reads as NaN
    if rows.size == 0 or rows.shape[1] > 2 or np.isnan(rows).any():
        raise DataError(f"{path}: expected one or two numeric columns (stance start, swing start) per cycle")
    if np.any(np.diff(rows[:, 0]) <= 0):
        raise DataError(f"{path}: cycle start times must increase")
    return rows


def _cycle_segments(cycles: np.ndarray, fs: float, t0: float, n_samples: int) -> list[Segment]:
    """Complete cycles: from each stance start to the next one."""
    idx = np.round((cycles - t0) * fs).astype(int)
    segs = []
    for i in range(idx.shape[0] - 1):
        a, b = int(idx[i, 0]), int(idx[i + 1, 0])
        if a < 0 or b > n_samples:
            continue
        phases = ()
        if idx.shape[1] == 2 and a < idx[i, 1] < b:
            phases = (int(idx[i, 1]) - a,)
        segs.append(Segment(a, b, "gait", len(segs) + 1, kind="cycle", phases=phases))
    return segs


def load_gait(path: str | Path, *, cycles: str | Path | None = None, time_column: str = "time") -> Recording:
    """Load a gait EMG CSV with its cycle times.

    Parameters
    ----------
    path : str or Path
        CSV with a time column (seconds) and one column per muscle.
    cycles : str or Path, optional
        Cycle-time file; by default the sibling file whose name ends in
        ``_cycles.csv`` (``X_emg.csv`` -> ``X_cycles.csv``).
    time_column : str
        Name of the time column.

    Returns
    -------
    Recording
        Segments are complete cycles (stance start to the next stance start),
        movement ``"gait"``, with the swing start as a phase boundary. The
        last stance start closes the previous cycle; it starts no cycle of
        its own because its end is unknown.
    """
    path = Path(path)
    rec = load_csv(path, time_column=time_column)
    cycles_path = Path(cycles) if cycles is not None else _sibling_cycles(path)
    rows = load_cycles(cycles_path)
    names, values = _read_text_table(path, delimiter=None)
    t0 = float(values[0, [n.lower() for n in names].index(time_column.lower())])
    rec.segments = _cycle_segments(rows, rec.fs, t0, rec.n_samples)
    if not rec.segments:
        raise DataError(f"{cycles_path}: no complete gait cycle inside the recording ({rec.duration:.2f} s from t={t0:.3f} s)")
    rec.meta.update(format="gait", cycles_file=str(cycles_path), n_cycle_rows=int(rows.shape[0]))
    return rec


def _sibling_cycles(path: Path) -> Path:
    stem = path.name
    for suffix in (".csv.gz", ".csv", ".txt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    base = stem[: -len("_emg")] if stem.endswith("_emg") else stem
    candidates = [path.with_name(base + "_cycles.csv"), path.with_name(stem + "_cycles.csv")]
    for cand in candidates:
        if cand.is_file():
            return cand
    raise DataError(f"no cycle-time file found for {path} (looked for {candidates[0].name}); pass cycles=...")


def list_uci_files(folder: str | Path) -> list[Path]:
    """UCI gesture series in ``folder`` and its subfolders (``*raw_data*.txt[.gz]``), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*raw_data*") if p.name.endswith((".txt", ".txt.gz")))
    if not files:
        raise DataError(f"no UCI gesture files (*raw_data*.txt or .txt.gz) under {folder}")
    return files


# ------------------------------------------------------------ combining
def concatenate(recordings: Sequence[Recording]) -> Recording:
    """Join recordings of one subject end to end; repetitions are renumbered per movement.

    Channels and sampling rates must agree.
    """
    if not recordings:
        raise DataError("no recordings to concatenate")
    first = recordings[0]
    for rec in recordings[1:]:
        if rec.channels != first.channels:
            raise DataError(f"channel names differ between files: {first.channels} vs {rec.channels}")
        if not np.isclose(rec.fs, first.fs):
            raise DataError(f"sampling rates differ between files: {first.fs} Hz vs {rec.fs} Hz; resample first")
    offset, counts, segments = 0, {}, []
    for rec in recordings:
        for seg in sorted(rec.segments, key=lambda s: s.start):
            counts[seg.movement] = counts.get(seg.movement, 0) + 1
            segments.append(replace(seg, start=seg.start + offset, stop=seg.stop + offset, repetition=counts[seg.movement]))
        offset += rec.n_samples
    meta = dict(first.meta)
    meta["sources"] = [s for rec in recordings for s in rec.meta.get("sources", [])]
    data = np.concatenate([rec.data for rec in recordings], axis=0)
    return Recording(data, first.fs, list(first.channels), segments, meta)


def load_recording(
    paths: str | Path | Sequence[str | Path],
    *,
    format: str,
    cycles: str | Path | None = None,
    **kwargs: Any,
) -> Recording:
    """Load one or several files of one subject in a given format and join them.

    Parameters
    ----------
    paths : path or sequence of paths
        Files of one subject; their repetitions add up.
    format : {"csv", "uci", "ninapro", "gait"}
        File format.
    cycles : path, optional
        Gait cycle-time file (only with one gait file).
    **kwargs
        Passed to the format's loader.

    Returns
    -------
    Recording
    """
    if format not in FORMATS:
        raise ParameterError(f"unknown EMG format {format!r}; choose one of {', '.join(FORMATS)}")
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ParameterError("give at least one EMG file")
    if cycles is not None and (format != "gait" or len(paths) != 1):
        raise ParameterError("cycles=... goes with format='gait' and a single file")
    loader = {"csv": load_csv, "uci": load_uci, "ninapro": load_ninapro, "gait": load_gait}[format]
    if format == "gait":
        kwargs["cycles"] = cycles
    recs = [loader(p, **kwargs) for p in paths]
    if len(recs) > 1 and format == "gait":
        warnings.warn("several gait files: cycles are renumbered across files", stacklevel=2)
    return recs[0] if len(recs) == 1 else concatenate(recs)
