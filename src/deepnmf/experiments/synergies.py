"""Synergy study: per movement, synergies, VAF, held-out VAF and the VAF-versus-rank curve.

This is what ``deepnmf synergies`` runs; it takes preprocessed envelopes
(:func:`deepnmf.emg.preprocess.preprocess`) and returns plain results that the
CLI writes as ``synergies.json``, a CSV of activations and figures.

Orientation: envelopes are ``(n_samples, n_channels)``; synergies
``(rank, n_channels)``; activations ``(n_samples, rank)``.

Protocol per movement: the reported synergies and training VAF come from all
repetitions of the movement; the held-out VAF leaves out each repetition in
turn, fits synergies on the others and refits only the activations of the
left-out one (:func:`deepnmf.emg.synergies.cross_validated_vaf`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from deepnmf.emg.io import Recording
from deepnmf.emg.synergies import (
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
    step: Callable[[str], None] | None = None,
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
                            estimator_params=estimator_params, callback=lambda i, v: tick(f"restart {i + 1}"))
    heldout_res = None
    if len(reps) >= 2:
        heldout_res = cross_validated_vaf(reps, rank, estimator=method, n_restarts=cv_restarts, heldout=heldout,
                                          random_state=random_state + 1, estimator_params=estimator_params,
                                          callback=lambda k: tick(f"held-out repetition {k + 1}"))
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
                          callback=lambda r, v: tick(f"rank {r}"))
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
    step: Callable[[str], None] | None = None,
) -> SynergyStudy:
    """Run :func:`analyse_movement` for every (or the chosen) movement.

    ``n_restarts`` defaults to 5 (NMF) or 2 (VAE-NMF); ``cv_restarts`` to
    ``n_restarts`` (NMF) or 1 (VAE-NMF); ``curve_method`` to ``"nmf"`` for
    VAE-NMF (a VAE-NMF curve costs a full training per rank) and to
    ``method`` otherwise. See :func:`analyse_movement` for the rest.

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


# ------------------------------------------------ UCI protocol (two methods)
def group_uci_subjects(paths: Sequence[Any]) -> list[list[Any]]:
    """Group UCI gesture files by subject.

    Files in different folders (the original layout, one folder per subject)
    are grouped by folder. In one folder, the name ``S_raw_data_HH-MM_DD.MM.YY``
    gives the series ``S`` and the session time: each series-1 file is paired
    with the series-2 file of the same date recorded closest after it.

    Returns
    -------
    list of list of paths, one list per subject, series in order.
    """
    import re
    from pathlib import Path

    paths = [Path(p) for p in paths]
    if len({p.parent for p in paths}) > 1:
        groups: dict[Path, list[Path]] = {}
        for p in sorted(paths):
            groups.setdefault(p.parent, []).append(p)
        return list(groups.values())
    pattern = re.compile(r"^(\d+)_raw_data_(\d+)-(\d+)_(\d+\.\d+\.\d+)")
    parsed = []
    for p in sorted(paths):
        m = pattern.match(p.name)
        if not m:
            raise DataError(f"{p.name}: not a UCI gestures file name (S_raw_data_HH-MM_DD.MM.YY.txt[.gz])")
        parsed.append((int(m.group(1)), int(m.group(2)) * 60 + int(m.group(3)), m.group(4), p))
    firsts = [q for q in parsed if q[0] == 1]
    seconds = [q for q in parsed if q[0] != 1]
    groups_list = []
    for series, minute, date, p in firsts:
        later = [q for q in seconds if q[2] == date and q[1] >= minute]
        group = [p]
        if later:
            best = min(later, key=lambda q: q[1] - minute)
            seconds.remove(best)
            group.append(best[3])
        groups_list.append(group)
    groups_list += [[q[3]] for q in seconds]
    return groups_list


def compare_methods(
    rec: Recording,
    *,
    rank: int = 4,
    methods: Sequence[str] = ("nmf", "vae-nmf"),
    random_state: int = 0,
    step: Callable[[str], None] | None = None,
    estimator_params: dict[str, dict] | None = None,
    **study_kwargs: Any,
) -> dict[str, Any]:
    """Run the study with each method on the same envelopes and match their synergies.

    ``estimator_params`` maps a method to its constructor overrides; other
    keywords go to :func:`run_synergy_study`.

    Returns
    -------
    dict
        ``{"studies": {method: SynergyStudy}, "rows": [...]}`` where each row
        holds a movement's training and held-out VAF per method and, with two
        methods, the mean matched cosine between their synergies.
    """
    from deepnmf.emg.synergies import match_synergies

    params = estimator_params or {}
    studies = {m: run_synergy_study(rec, rank=rank, method=m, random_state=random_state, step=step,
                                    estimator_params=params.get(m), **study_kwargs)
               for m in methods}
    rows = []
    for i, movement in enumerate(studies[methods[0]].movements):
        row: dict[str, Any] = {"movement": movement.movement}
        for m in methods:
            res = studies[m].movements[i]
            held = res.heldout.vaf if res.heldout is not None else np.array([])
            row[m] = {"vaf": float(res.fit.vaf), "heldout_vaf": held.tolist(),
                      "heldout_mean": float(held.mean()) if held.size else None}
        if len(methods) == 2:
            a, b = (studies[m].movements[i].fit.synergies for m in methods)
            row["matched_cosine"] = match_synergies(a, b).mean_cosine
        rows.append(row)
    return {"studies": studies, "rows": rows}


def rows_to_markdown(subject: str, rows: list[dict[str, Any]], methods: Sequence[str], names: dict | None = None) -> str:
    """A Markdown table: per movement, training VAF and held-out VAF (mean, min) per method."""
    names = names or {}
    head = ["movement"] + [f"{m} {k}" for m in methods for k in ("VAF", "held-out mean", "held-out min")]
    if len(methods) == 2:
        head.append("matched cosine")
    lines = [f"### {subject}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        label = f"{row['movement']}" + (f" {names[row['movement']]}" if row["movement"] in names else "")
        cells = [label]
        for m in methods:
            held = row[m]["heldout_vaf"]
            cells += [f"{row[m]['vaf']:.3f}", f"{np.mean(held):.3f}" if held else "-", f"{np.min(held):.3f}" if held else "-"]
        if len(methods) == 2:
            cells.append(f"{row['matched_cosine']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
