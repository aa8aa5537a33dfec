"""The VAE-NMF paper's synergy protocol on the UCI gestures: every subject, NMF vs VAE-NMF.

The per-movement study (synergies, training and held-out VAF, the
VAF-versus-rank curve) is the pipeline's
(:func:`deepnmf.pipelines.synergies.run_synergy_study`, importable from here
too); this module groups the UCI files by subject, runs the study with each
method on the same envelopes, matches the methods' synergies and writes the
tables (``deepnmf experiment synergies``).

Orientation: envelopes are ``(n_samples, n_channels)``; synergies
``(rank, n_channels)``; activations ``(n_samples, rank)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from deepnmf.callbacks import Callback
from deepnmf.emg.io import Recording
from deepnmf.exceptions import DataError
from deepnmf.pipelines._common import send_notice, write_json
from deepnmf.pipelines.synergies import (  # noqa: F401 - the study, importable from the protocol's module
    MovementSynergies,
    SynergyStudy,
    analyse_movement,
    estimator_overrides,
    run_synergy_study,
    work_units,
)


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
    callback: Callback | None = None,
    stage: str = "",
    estimator_params: dict[str, dict] | None = None,
    **study_kwargs: Any,
) -> dict[str, Any]:
    """Run the study with each method on the same envelopes and match their synergies.

    ``estimator_params`` maps a method to its constructor overrides; other
    keywords go to :func:`run_synergy_study`. ``callback`` receives each
    study's work units, with stage ``"<stage> <method>"`` (``stage`` given)
    or ``"synergies (<method>)"``.

    Returns
    -------
    dict
        ``{"studies": {method: SynergyStudy}, "rows": [...]}`` where each row
        holds a movement's training and held-out VAF per method and, with two
        methods, the mean matched cosine between their synergies.
    """
    from deepnmf.emg.synergies import match_synergies

    params = estimator_params or {}
    studies = {m: run_synergy_study(rec, rank=rank, method=m, random_state=random_state, callback=callback,
                                    stage=f"{stage} {m}" if stage else None, estimator_params=params.get(m),
                                    **study_kwargs)
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


def uci_protocol(
    folder: str | Path | None = None,
    *,
    rank: int = 4,
    methods: Sequence[str] = ("nmf", "vae-nmf"),
    n_restarts: int | None = None,
    epochs: int | None = None,
    random_state: int = 0,
    callback: Callback | None = None,
) -> dict[str, Any]:
    """Every subject of the UCI gestures, each method, the same envelopes (:func:`compare_methods`).

    Parameters
    ----------
    folder : path, optional
        UCI gesture files (default: the shared data's ``emg/uci-gestures``).
    rank, methods, n_restarts, random_state
        See :func:`compare_methods`.
    epochs : int, optional
        VAE-NMF training epochs (default 200).
    callback : callable, optional
        A notice per subject, then the studies' work units (stage
        ``"subject <s> <method>"``).

    Returns
    -------
    dict
        ``rank``, ``methods`` and ``subjects``: per subject ``name``,
        ``files``, ``rows`` (see :func:`compare_methods`) and ``studies``.
    """
    from deepnmf._utils import check_choice
    from deepnmf.datasets.paths import shared_data_dir
    from deepnmf.emg.io import list_uci_files, load_recording
    from deepnmf.emg.preprocess import preprocess
    from deepnmf.emg.synergies import METHODS

    methods = list(methods)
    for m in methods:
        check_choice(m, "method", METHODS)
    files_of = group_uci_subjects(list_uci_files(folder or shared_data_dir("emg", "uci-gestures")))
    subjects = []
    for s, files in enumerate(files_of, start=1):
        name = f"subject {s} ({', '.join(f.name for f in files)})"
        send_notice(callback, f"{name}: {', '.join(methods)}")
        env = preprocess(load_recording(files, format="uci"))
        res = compare_methods(env, rank=rank, methods=methods, random_state=random_state, n_restarts=n_restarts,
                              estimator_params={m: estimator_overrides(m, epochs) for m in methods},
                              callback=callback, stage=f"subject {s}")
        subjects.append({"name": name, "files": [str(f) for f in files], **res})
    return {"rank": rank, "methods": methods, "subjects": subjects}


def uci_report(result: dict[str, Any]) -> str:
    """The Markdown report of :func:`uci_protocol`: the protocol in a line, then a table per subject."""
    from deepnmf.emg.io import UCI_CLASSES

    lines = ["# Muscle synergies on the UCI gestures", "",
             f"rank {result['rank']}; training VAF on all 4 repetitions; held-out VAF: leave one repetition out, "
             "synergies frozen, NNLS activations.", ""]
    lines += [rows_to_markdown(s["name"], s["rows"], result["methods"], UCI_CLASSES) for s in result["subjects"]]
    return "\n".join(lines)


def write_uci_protocol(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Per subject and method ``synergies.json`` and a VAF figure; ``results.json``, ``results.md`` and
    ``run.json`` (rank, methods, the machine)."""
    from deepnmf.plotting.emg import plot_vaf_comparison
    from deepnmf.report import environment_info

    out = Path(out)
    paths = []
    for s, subject in enumerate(result["subjects"], start=1):
        for m, study in subject["studies"].items():
            paths.append(write_json(out / f"subject{s}-{m}" / "synergies.json", study.to_json()))
        paths.append(plot_vaf_comparison(subject["rows"], result["methods"], out / f"subject{s}_vaf.png",
                                         title=f"subject {s}: rank {result['rank']}"))
    results = {f"subject{s}": {"files": subject["files"], "rows": subject["rows"]}
               for s, subject in enumerate(result["subjects"], start=1)}
    paths.append(write_json(out / "results.json", results))
    paths.append(write_json(out / "run.json", {"rank": result["rank"], "methods": list(result["methods"]),
                                               "environment": environment_info()}))
    (out / "results.md").write_text(uci_report(result))
    return paths + [out / "results.md"]
