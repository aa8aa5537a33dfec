"""Muscle synergies from EMG: files -> envelopes -> per-movement study -> files (the job of ``deepnmf synergies``).

Orientation: envelopes are ``(n_samples, n_channels)`` (time x muscles);
``X ~ W @ H`` with the synergies ``H`` ``(rank, n_channels)`` (an estimator's
``components_``, built by :func:`deepnmf.emg.synergies.make_estimator`
through :func:`deepnmf.models.make_estimator`) and their activations ``W``
``(n_samples, rank)``.

Protocol per movement (:func:`run_synergy_study`): the reported synergies
and training VAF come from all repetitions of the movement; the held-out
VAF leaves out each repetition in turn, fits synergies on the others and
refits only the activations of the left-out one
(:func:`deepnmf.emg.synergies.cross_validated_vaf`); the VAF-versus-rank
curve fits each rank on all repetitions.

:func:`synergies_from_files` is the whole job on files (load, preprocess,
study); :func:`write_synergy_outputs` writes ``synergies.json``,
``activations.csv``, ``run.json`` and the figures.
"""
from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from deepnmf.callbacks import Callback
from deepnmf.emg.io import Recording
from deepnmf.emg.synergies import (
    HELDOUT_METHODS,
    METHODS,
    NMF_DEFAULTS,
    VAE_DEFAULTS,
    HeldOutResult,
    SynergyFit,
    cross_validated_vaf,
    extract_synergies,
    vaf_curve,
)
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.pipelines._common import send_notice, unit_counter, write_json
from deepnmf.report.build import environment_info

#: points per gait cycle after time normalisation: 100 of stance + 100 of swing
GAIT_TIME_POINTS = 200


# ------------------------------------------------------------ the study
@dataclass
class MovementSynergies:
    """Everything computed for one movement.

    Attributes
    ----------
    movement : int or str
    channels : list of str
    envelopes : np.ndarray [shape=(n_samples, n_channels)]
        The repetitions of the movement, concatenated.
    repetition_bounds : list of (int, int, int)
        ``(repetition, start, stop)`` rows of ``envelopes``.
    fit : SynergyFit
        Synergies fit on every repetition.
    heldout : HeldOutResult or None
        Leave-one-repetition-out results (``None`` with fewer than 2 repetitions).
    curve : dict
        ``{rank: vaf}``.
    """

    movement: int | str
    channels: list[str]
    envelopes: np.ndarray
    repetition_bounds: list[tuple[int, int, int]]
    fit: SynergyFit
    heldout: HeldOutResult | None
    curve: dict[int, float]

    def to_json(self) -> dict[str, Any]:
        """The movement entry of ``synergies.json`` (exactly the documented keys)."""
        return {
            "movement": self.movement,
            "channels": list(self.channels),
            "synergies": self.fit.synergies.tolist(),
            "vaf": float(self.fit.vaf),
            "vaf_per_channel": [float(v) for v in self.fit.vaf_per_channel],
            "heldout_vaf": [] if self.heldout is None else [float(v) for v in self.heldout.vaf],
            "vaf_curve": {str(r): float(v) for r, v in self.curve.items()},
        }


@dataclass
class SynergyStudy:
    """Results of :func:`run_synergy_study` for every movement."""

    preprocessing: dict[str, Any]
    movements: list[MovementSynergies]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"preprocessing": {...}, "movements": [...]}`` as written to ``synergies.json``."""
        return {"preprocessing": _jsonable(self.preprocessing), "movements": [m.to_json() for m in self.movements]}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _defaults(method: str, n_restarts: int | None, cv_restarts: int | None, curve_method: str | None) -> tuple[int, int, str]:
    """Restart counts and curve method: fewer, and an NMF curve, for the slower VAE-NMF."""
    vae = method == "vae-nmf"
    n_restarts = n_restarts if n_restarts is not None else (2 if vae else 5)
    cv_restarts = cv_restarts if cv_restarts is not None else (1 if vae else n_restarts)
    curve_method = curve_method or ("nmf" if vae else method)
    if curve_method not in METHODS:
        raise ParameterError(f"curve_method must be one of {', '.join(METHODS)}; got {curve_method!r}")
    return n_restarts, cv_restarts, curve_method


def _movement_data(rec: Recording, movement: Any) -> tuple[list[np.ndarray], list[tuple[int, int, int]]]:
    reps, bounds, pos = [], [], 0
    for seg in rec.repetitions(movement):
        X = rec.segment_data(seg)
        reps.append(X)
        bounds.append((seg.repetition, pos, pos + X.shape[0]))
        pos += X.shape[0]
    return reps, bounds


def _select_movements(rec: Recording, movements: Sequence[Any] | None) -> list[Any]:
    available = rec.movements()
    if not available:
        raise DataError("the recording has no labelled movements, repetitions or cycles")
    if movements is None:
        return available
    chosen = []
    for m in movements:
        match = [a for a in available if a == m or str(a) == str(m)]
        if not match:
            raise DataError(f"movement {m!r} is not in the recording (movements: {', '.join(map(str, available))})")
        chosen.append(match[0])
    return chosen


def analyse_movement(
    rec: Recording,
    movement: Any,
    *,
    rank: int,
    method: str = "nmf",
    n_restarts: int = 5,
    cv_restarts: int = 5,
    curve_method: str = "nmf",
    curve_ranks: Sequence[int] | None = None,
    heldout: str = "nnls",
    estimator_params: dict | None = None,
    random_state: int = 0,
    step: Callable[[str], Any] | None = None,
) -> MovementSynergies:
    """Synergies, training and held-out VAF and the VAF curve of one movement.

    Parameters
    ----------
    rec : Recording
        Envelopes (``data`` of shape ``(n_samples, n_channels)``).
    movement : int or str
    rank : int
    method : {"nmf", "vae-nmf"}
    n_restarts, cv_restarts : int
        Restarts of the reported fit and of each cross-validation fold.
    curve_method : {"nmf", "vae-nmf"}
        Method of the VAF-versus-rank curve.
    curve_ranks : sequence of int, optional
        Ranks of the curve (default ``1..n_channels``; empty: no curve).
    heldout : {"nnls", "transform"}
        Activations of held-out repetitions, see
        :func:`deepnmf.emg.synergies.refit_activations`.
    estimator_params : dict, optional
        Constructor overrides for ``method``.
    random_state : int
    step : callable, optional
        Called with a short description after each unit of work (progress).

    Returns
    -------
    MovementSynergies
    """
    tick = step or (lambda _msg: None)
    reps, bounds = _movement_data(rec, movement)
    X = np.concatenate(reps, axis=0)
    params = estimator_params if curve_method == method else None
    fit = extract_synergies(X, rank, estimator=method, n_restarts=n_restarts, random_state=random_state,
                            estimator_params=estimator_params, callback=lambda info: tick(info.message))
    heldout_res = None
    if len(reps) >= 2:
        heldout_res = cross_validated_vaf(reps, rank, estimator=method, n_restarts=cv_restarts, heldout=heldout,
                                          random_state=random_state + 1, estimator_params=estimator_params,
                                          callback=lambda info: tick(info.message))
    else:
        warnings.warn(
            f"movement {movement}: only {len(reps)} repetition, so no held-out VAF "
            "(cross-validation needs at least 2 repetitions)",
            stacklevel=2,
        )
    ranks = list(range(1, X.shape[1] + 1)) if curve_ranks is None else list(curve_ranks)
    curve = {}
    if ranks:
        curve = vaf_curve(X, ranks, estimator=curve_method, n_restarts=max(1, min(n_restarts, 3)),
                          random_state=random_state + 2, estimator_params=params,
                          callback=lambda info: tick(info.message))
    return MovementSynergies(movement, list(rec.channels), X, bounds, fit, heldout_res, curve)


def run_synergy_study(
    rec: Recording,
    *,
    rank: int = 4,
    method: str = "nmf",
    movements: Sequence[Any] | None = None,
    n_restarts: int | None = None,
    cv_restarts: int | None = None,
    curve_method: str | None = None,
    curve_ranks: Sequence[int] | None = None,
    heldout: str = "nnls",
    estimator_params: dict | None = None,
    random_state: int = 0,
    callback: Callback | None = None,
    stage: str | None = None,
) -> SynergyStudy:
    """Run :func:`analyse_movement` for every (or the chosen) movement.

    ``n_restarts`` defaults to 5 (NMF) or 2 (VAE-NMF); ``cv_restarts`` to
    ``n_restarts`` (NMF) or 1 (VAE-NMF); ``curve_method`` to ``"nmf"`` for
    VAE-NMF (a VAE-NMF curve costs a full training per rank) and to
    ``method`` otherwise. See :func:`analyse_movement` for the rest.

    ``callback`` receives an :class:`~deepnmf.callbacks.EpochInfo` after each
    unit of work (a restart, a held-out repetition, a rank of the curve):
    ``epoch`` units done of ``max_epochs`` (:func:`work_units`), ``stage``
    (default ``"synergies (<method>)"``) and what was done in ``message``.

    Returns
    -------
    SynergyStudy
    """
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ParameterError(f"rank must be an integer >= 1, got {rank!r}")
    if rank > rec.n_channels:
        raise ParameterError(f"rank {rank} is larger than the number of channels ({rec.n_channels}); choose at most {rec.n_channels}")
    n_restarts, cv_restarts, curve_method = _defaults(method, n_restarts, cv_restarts, curve_method)
    total = work_units(rec, rank=rank, method=method, movements=movements, n_restarts=n_restarts,
                       cv_restarts=cv_restarts, curve_ranks=curve_ranks)
    step = unit_counter(callback, stage or f"synergies ({method})", total)
    results = []
    for i, movement in enumerate(_select_movements(rec, movements)):
        results.append(analyse_movement(
            rec, movement, rank=rank, method=method, n_restarts=n_restarts, cv_restarts=cv_restarts,
            curve_method=curve_method, curve_ranks=curve_ranks, heldout=heldout,
            estimator_params=estimator_params, random_state=random_state + 10 * i, step=step,
        ))
    settings = {
        "rank": rank, "method": method, "n_restarts": n_restarts, "cv_restarts": cv_restarts,
        "curve_method": curve_method, "heldout_activations": heldout, "random_state": random_state,
        # the constructor arguments actually used: the EMG defaults with the caller's overrides
        "estimator_params": _jsonable({**(VAE_DEFAULTS if method == "vae-nmf" else NMF_DEFAULTS), **(estimator_params or {})}),
    }
    return SynergyStudy(dict(rec.meta.get("preprocessing", {})), results, settings)


def work_units(rec: Recording, *, rank: int, method: str, movements: Sequence[Any] | None = None,
               n_restarts: int | None = None, cv_restarts: int | None = None,
               curve_ranks: Sequence[int] | None = None) -> int:
    """How many ``step`` calls :func:`run_synergy_study` makes (for a progress bar)."""
    n_restarts, cv_restarts, _ = _defaults(method, n_restarts, cv_restarts, None)
    total = 0
    for m in _select_movements(rec, movements):
        n_reps = len(rec.repetitions(m))
        n_curve = rec.n_channels if curve_ranks is None else len(list(curve_ranks))
        total += n_restarts + (n_reps if n_reps >= 2 else 0) + n_curve
    return total




# ------------------------------------------------------------ from files
def estimator_overrides(method: str, epochs: int | None) -> dict[str, Any]:
    """Constructor overrides of ``method`` for a number of VAE-NMF epochs (none for NMF or ``epochs=None``)."""
    return {"max_epochs": epochs} if (method == "vae-nmf" and epochs is not None) else {}


def curve_ranks_up_to(max_rank: int | None, n_channels: int) -> list[int] | None:
    """Ranks ``1..min(max_rank, n_channels)`` of the VAF curve (``None``: every rank; 0: no curve)."""
    if max_rank is None:
        return None
    return list(range(1, min(max_rank, n_channels) + 1))


def check_synergy_options(method: str, heldout: str = "nnls", curve_method: str | None = None) -> None:
    """The method choices, checked before anything slow is loaded."""
    from deepnmf._utils import check_choice

    check_choice(method, "method", METHODS)
    check_choice(heldout, "heldout", HELDOUT_METHODS)
    if curve_method is not None:
        check_choice(curve_method, "curve_method", METHODS)


def load_envelopes(files: Sequence[str | Path], *, format: str, cycles: str | Path | None = None,  # noqa: A002
                   label_column: str | None = None, **envelope: Any) -> tuple[Recording, Recording]:
    """Raw EMG files of one subject and their envelopes.

    Parameters
    ----------
    files : sequence of paths
        Files of one subject (their repetitions add up).
    format : {"csv", "uci", "ninapro", "gait"}
    cycles : path, optional
        Gait cycle times (default: the sibling ``*_cycles.csv``).
    label_column : str, optional
        CSV only: the column of movement labels.
    **envelope
        Fields of :class:`deepnmf.emg.preprocess.EnvelopeConfig` (``band``,
        ``notch``, ``envelope_cutoff``, ``envelope_fs``, ``time_points``,
        ``amplitude``, ``dead_channels``). Without ``time_points``, gait
        cycles are normalised to :data:`GAIT_TIME_POINTS` points.

    Returns
    -------
    recording, envelopes : Recording
        The raw EMG and its envelopes (``data`` ``(n_samples, n_channels)``).
    """
    from deepnmf.emg.io import load_recording
    from deepnmf.emg.preprocess import preprocess

    extra = {"label_column": label_column} if (label_column and format == "csv") else {}
    rec = load_recording(list(files), format=format, cycles=cycles, **extra)
    if envelope.get("time_points") is None and rec.segments and all(s.kind == "cycle" for s in rec.segments):
        envelope["time_points"] = GAIT_TIME_POINTS
    return rec, preprocess(rec, **envelope)


@dataclass
class SynergyRun:
    """What :func:`synergies_from_files` computed: the inputs, the envelopes and the study."""

    files: list[str]
    format: str
    recording: Recording
    envelopes: Recording
    study: SynergyStudy

    def run_info(self) -> dict[str, Any]:
        """``run.json``: the study's settings, inputs and the extra numbers of every movement."""
        movements = self.study.movements
        other = "transform" if self.study.settings["heldout_activations"] == "nnls" else "nnls"

        def held(m: MovementSynergies, attr: str) -> list:
            value = getattr(m.heldout, attr) if m.heldout is not None else None
            return value.tolist() if value is not None else []

        return {**self.study.settings, "files": self.files, "format": self.format,
                "envelope_fs": self.envelopes.fs, "channels": self.envelopes.channels,
                "restart_vafs": {str(m.movement): m.fit.restart_vafs for m in movements},
                "heldout_vaf_per_channel": {str(m.movement): held(m, "vaf_per_channel") for m in movements},
                "heldout_fold_train_vaf": {str(m.movement): held(m, "train_vaf") for m in movements},
                "suggested_rank": {str(m.movement): suggested_ranks(m.curve) for m in movements},
                # the same fits judged the other way: NNLS activations for training, the other held-out method
                "train_vaf_nnls": {str(m.movement): nnls_vaf(m) for m in movements},
                "heldout_vaf_" + other: {str(m.movement): held(m, "vaf_other") for m in movements}}

    def describe(self) -> str:
        """One line: files, channels, rate and movements."""
        rec = self.recording
        return (f"{len(self.files)} file(s): {rec.n_channels} channels at {rec.fs:g} Hz, "
                f"movements {', '.join(map(str, self.envelopes.movements()))}")


def synergies_from_files(
    files: Sequence[str | Path],
    *,
    format: str,  # noqa: A002 - the loaders' name
    rank: int = 4,
    method: str = "nmf",
    movements: Sequence[Any] | None = None,
    cycles: str | Path | None = None,
    label_column: str | None = None,
    n_restarts: int | None = None,
    cv_restarts: int | None = None,
    curve_method: str | None = None,
    max_curve_rank: int | None = None,
    heldout: str = "nnls",
    epochs: int | None = None,
    random_state: int = 0,
    callback: Callback | None = None,
    **envelope: Any,
) -> SynergyRun:
    """Muscle synergies of one subject's EMG files: load, preprocess, :func:`run_synergy_study`.

    Parameters
    ----------
    files, format, cycles, label_column, **envelope
        See :func:`load_envelopes`.
    rank, method, movements, n_restarts, cv_restarts, curve_method, heldout, random_state
        See :func:`run_synergy_study`.
    max_curve_rank : int, optional
        Largest rank of the VAF curve (default: the channel count; 0: no curve).
    epochs : int, optional
        VAE-NMF training epochs (default :data:`deepnmf.emg.synergies.VAE_DEFAULTS`).
    callback : callable, optional
        Receives a notice describing the data (``epoch=0``), then the study's
        work units (:class:`~deepnmf.callbacks.EpochInfo`).

    Returns
    -------
    SynergyRun
    """
    from deepnmf.emg.io import FORMATS, load_recording

    check_synergy_options(method, heldout, curve_method)  # fail before the slow loading
    if format not in FORMATS:
        load_recording(list(files), format=format)  # raises the loaders' message
    rec, env = load_envelopes(files, format=format, cycles=cycles, label_column=label_column, **envelope)
    run = SynergyRun([str(f) for f in files], format, rec, env, None)
    send_notice(callback, run.describe())
    run.study = run_synergy_study(
        env, rank=rank, method=method, movements=movements, n_restarts=n_restarts, cv_restarts=cv_restarts,
        curve_ranks=curve_ranks_up_to(max_curve_rank, env.n_channels), curve_method=curve_method,
        heldout=heldout, estimator_params=estimator_overrides(method, epochs), random_state=random_state,
        callback=callback)
    return run


# ------------------------------------------------------------ outputs
def suggested_ranks(curve: dict[int, float]) -> dict[str, int]:
    """Rank choices from a VAF curve by the usual rules (empty without a curve)."""
    from deepnmf.emg.synergies import select_rank

    if not curve:
        return {}
    return {
        "threshold_0.90": select_rank(curve, rule="threshold", threshold=0.90),
        "threshold_0.95": select_rank(curve, rule="threshold", threshold=0.95),
        "plateau_gain_0.02": select_rank(curve, rule="plateau", min_gain=0.02),
    }


def nnls_vaf(movement: MovementSynergies) -> float:
    """Training VAF with exact NNLS activations for the reported synergies."""
    from deepnmf.emg.synergies import refit_activations, vaf

    X, H = movement.envelopes, movement.fit.synergies  # (n_samples, n_channels), (rank, n_channels)
    return float(vaf(X, refit_activations(X, H) @ H))


def summary_table(study: SynergyStudy) -> str:
    """Plain-text table: per movement, training VAF and the held-out VAF of each left-out repetition."""
    lines = [f"{'movement':>10}  {'VAF':>6}  held-out VAF (per left-out repetition)"]
    for m in study.movements:
        held = " ".join(f"{v:.3f}" for v in (m.heldout.vaf if m.heldout is not None else []))
        lines.append(f"{str(m.movement):>10}  {m.fit.vaf:6.3f}  {held or '-'}")
    return "\n".join(lines)


def write_activations_csv(study: SynergyStudy, env: Recording, path: str | Path) -> Path:
    """One row per envelope sample: movement, repetition, sample, time, S1..Sr."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rank = study.movements[0].fit.synergies.shape[0] if study.movements else 0
    points = env.meta.get("time_normalised")
    # real time in seconds, or the position in the cycle (percent) after time normalisation
    time_name, per_unit = ("cycle_percent", points / 100.0) if points else ("time", env.fs)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["movement", "repetition", "sample", time_name, *[f"S{k + 1}" for k in range(rank)]])
        for m in study.movements:
            for rep, start, stop in m.repetition_bounds:
                for i in range(start, stop):
                    row = m.fit.activations[i]
                    out.writerow([m.movement, rep, i - start, f"{(i - start) / per_unit:.6g}", *[f"{v:.6g}" for v in row]])
    return path


def write_synergy_figures(study: SynergyStudy, env: Recording, out: str | Path, *, rank: int) -> list[Path]:
    """Per movement: synergy bars, activations, reconstructions (and the mean cycle); plus the VAF curves."""
    from deepnmf.plotting.emg import plot_activations, plot_mean_cycle, plot_reconstruction, plot_synergies, plot_vaf_curve

    out = Path(out)
    points = env.meta.get("time_normalised")
    # time-normalised data are plotted in cycles (repetitions), real time in seconds
    fs = float(points) if points else env.fs
    time_label = "cycles (time-normalised)" if points else "time within the movement's repetitions (s)"
    names = env.meta.get("movement_names", {})
    paths = []
    for m in study.movements:
        tag = f"movement-{m.movement}"
        label = f"{m.movement}" + (f" ({names[m.movement]})" if m.movement in names else "")
        paths.append(plot_synergies(m.fit.synergies, m.channels, out / f"{tag}_synergies.png", title=f"movement {label}: synergies"))
        paths.append(plot_activations(m.fit.activations, fs, out / f"{tag}_activations.png", bounds=m.repetition_bounds,
                                      title=f"movement {label}: activations", time_label=time_label))
        paths.append(plot_reconstruction(m.envelopes, m.fit.reconstruction, m.channels, m.fit.vaf_per_channel,
                                         out / f"{tag}_reconstruction.png", fs=fs, vaf=m.fit.vaf,
                                         title=f"movement {label}", time_label=time_label))
        if points and all(stop - start == points for _, start, stop in m.repetition_bounds):
            paths.append(plot_mean_cycle(m.fit.activations, int(points), out / f"{tag}_mean_cycle.png",
                                         title=f"movement {label}: mean activation per cycle (± 1 sd)"))
    curves = {str(m.movement): m.curve for m in study.movements if m.curve}
    if curves:
        paths.append(plot_vaf_curve(curves, out / "vaf_curve.png", rank=rank))
    return paths


def write_synergy_outputs(run: SynergyRun, out: str | Path, *, figures: bool = True) -> list[Path]:
    """``synergies.json``, ``activations.csv``, ``run.json`` (with the machine, :func:`environment_info`)
    and (``figures``) ``figures/*.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json(out / "synergies.json", run.study.to_json()),
             write_activations_csv(run.study, run.envelopes, out / "activations.csv"),
             write_json(out / "run.json", {**run.run_info(), "environment": environment_info()})]
    if figures:
        paths += write_synergy_figures(run.study, run.envelopes, out / "figures", rank=run.study.settings["rank"])
    return paths
