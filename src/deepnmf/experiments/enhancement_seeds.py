"""The enhancement experiment at several seeds: how far its numbers move when everything random is drawn again.

The seed of :func:`~deepnmf.experiments.enhancement.run_enhancement` draws the
dictionaries' starts, the training mixtures, the networks' initial weights and
shuffling, the constructed babble and the noise excerpts of the test mixtures.
The intervals of one run are over its test utterances at a fixed seed, so they
say nothing about that variation; on the TIMIT sample it moved the networks'
average SDR by up to 0.8 dB (docs/enhancement.md, "Three seeds of the whole
experiment"). :func:`run_enhancement_seeds` runs the whole protocol once per
seed, each into its own folder ``OUT/seed-S`` (with its own model cache, so a
run can be resumed or extended by more seeds), and summarises every method's
average over the noises and SNRs across the seeds, and every pair's
difference seed by seed.
"""
from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from deepnmf.callbacks import Callback, EpochInfo
from deepnmf.exceptions import ParameterError

__all__ = ["check_seeds", "run_enhancement_seeds", "seed_summary", "seeds_markdown", "seeds_section", "write_seed_summary"]


def check_seeds(seeds: Sequence[Any]) -> list[int]:
    """Distinct integers ``>= 0``, in the given order (at least one)."""
    out: list[int] = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ParameterError(f"seeds must be integers >= 0, got {s!r}")
        if int(s) in out:
            raise ParameterError(f"seed {int(s)} is given twice")
        out.append(int(s))
    if not out:
        raise ParameterError("give at least one seed")
    return out


def seed_summary(per_seed: dict[int, list[dict]], key: str = "sdr") -> dict[str, Any]:
    """Every method's mean of ``key`` over the noises and SNRs at each seed, and its spread over the seeds.

    Parameters
    ----------
    per_seed : dict
        Seed -> the result rows of one run (:func:`~deepnmf.experiments.enhancement.run_enhancement`).
    key : str
        The metric (a key of the rows, e.g. ``"sdr"`` or ``"pesq"``).

    Returns
    -------
    summary : dict
        ``seeds``; ``methods``: method -> ``by_seed`` (seed -> value), ``mean``, ``sd`` (over the
        seeds, ``ddof=1``; ``None`` for one seed), ``min``, ``max``; ``differences``: one entry per
        pair of methods (``noisy`` left out) with ``a``, ``b``, ``by_seed`` (``b - a``), ``mean``
        and ``b_at_least_a`` (the seeds where ``b >= a``).
    """
    from deepnmf.experiments.enhancement_report import average_over_noises, methods_of

    seeds = list(per_seed)
    methods: list[str] = []
    for rows in per_seed.values():
        methods += [m for m in methods_of(rows) if m not in methods]
    table: dict[str, dict[str, Any]] = {}
    for m in methods:
        by_seed = {s: average_over_noises(per_seed[s], m, None, key) for s in seeds}
        vals = np.array([v for v in by_seed.values() if v is not None], dtype=np.float64)
        table[m] = {"by_seed": by_seed,
                    "mean": float(vals.mean()) if vals.size else None,
                    "sd": float(vals.std(ddof=1)) if vals.size > 1 else None,
                    "min": float(vals.min()) if vals.size else None,
                    "max": float(vals.max()) if vals.size else None}
    pairs = []
    named = [m for m in methods if m != "noisy"]
    for i, a in enumerate(named):
        for b in named[i + 1 :]:
            diff = {s: table[b]["by_seed"][s] - table[a]["by_seed"][s] for s in seeds
                    if table[a]["by_seed"][s] is not None and table[b]["by_seed"][s] is not None}
            pairs.append({"a": a, "b": b, "by_seed": diff,
                          "mean": float(np.mean(list(diff.values()))) if diff else None,
                          "b_at_least_a": sum(v >= 0 for v in diff.values())})
    return {"key": key, "seeds": seeds, "methods": table, "differences": pairs}


def seeds_markdown(summary: dict[str, Any]) -> str:
    """``seeds.md``: one row per method (a column per seed, the mean, sd and range), then every pair's
    difference per seed."""
    from deepnmf.experiments.enhancement_report import _fmt

    seeds, key = summary["seeds"], summary["key"].upper()
    lines = [f"# The enhancement experiment at {len(seeds)} seeds", "",
             f"Average {key} over the noises and SNRs of each run (`seed-S/results.md` has each run's tables and "
             "intervals over the test utterances). The seed draws the dictionaries' starts, the training mixtures, "
             "the networks, the constructed babble and the test noise excerpts.", "",
             "| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | sd | range |",
             "|---|" + "---|" * (len(seeds) + 3)]
    for m, row in summary["methods"].items():
        cells = [_fmt(row["by_seed"][s]) for s in seeds]
        span = "n/a" if row["min"] is None else f"{row['min']:.2f} to {row['max']:.2f}"
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {_fmt(row['mean'])} | {_fmt(row['sd'])} | {span} |")
    lines += ["", f"## Differences, `b - a` in {key}", "",
              "| b | a | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | seeds with b >= a |",
              "|---|---|" + "---|" * (len(seeds) + 2)]
    for d in summary["differences"]:
        cells = [_fmt(d["by_seed"].get(s)) for s in seeds]
        lines.append(f"| {d['b']} | {d['a']} | " + " | ".join(cells)
                     + f" | {_fmt(d['mean'])} | {d['b_at_least_a']} of {len(d['by_seed'])} |")
    return "\n".join(lines) + "\n"


def seeds_section(summary: dict[str, Any]) -> dict[str, Any]:
    """What ``deepnmf report`` shows of a several-seed run (``section.json``): the two tables of
    :func:`seeds_markdown` and the figure."""
    seeds = summary["seeds"]
    methods = [[m, *(row["by_seed"][s] for s in seeds), row["mean"], row["sd"]] for m, row in summary["methods"].items()]
    pairs = [[d["b"], d["a"], *(d["by_seed"].get(s) for s in seeds), d["mean"], f"{d['b_at_least_a']} of {len(d['by_seed'])}"]
             for d in summary["differences"]]
    key = summary["key"].upper()
    return {
        "title": f"Enhancement experiment at {len(seeds)} seeds",
        "what": ("The whole experiment once per seed (the seed-S sections below); here each method's average "
                 f"{key} over the noises and SNRs at every seed, and every pair's difference seed by seed."),
        "tables": [{"caption": f"average {key} (dB) per seed", "columns": ["method", *(f"seed {s}" for s in seeds), "mean", "sd"],
                    "rows": methods},
                   {"caption": f"difference b - a in {key} (dB)", "columns": ["b", "a", *(f"seed {s}" for s in seeds), "mean",
                                                                           "seeds with b >= a"], "rows": pairs}],
        "figures": [{"file": "seeds.png", "caption": f"average {key} per method: a dot per seed, a bar at the mean"}],
        "settings": {"seeds": seeds},
    }


def _tagged(progress: Callback | None, seed: int, n_seeds: int) -> Callback | None:
    """``progress`` with every record's stage prefixed by the seed (so a bar says which run it is in)."""
    if progress is None:
        return None

    def tag(info: EpochInfo) -> Any:
        return progress(dataclasses.replace(info, stage=f"seed {seed} ({n_seeds} seeds): {info.stage}"))

    return tag


def run_enhancement_seeds(cfg, seeds: Sequence[int], progress: Callback | None = None) -> dict[str, Any]:
    """Run :func:`~deepnmf.experiments.enhancement.run_enhancement` once per seed and summarise.

    Parameters
    ----------
    cfg : EnhancementConfig
        The settings; its ``random_state`` is replaced by each seed and its ``out`` by ``out/seed-S``.
    seeds : sequence of int
        Distinct seeds ``>= 0``.
    progress : callable, optional
        Receives every run's progress records in turn.

    Returns
    -------
    summary : dict
        :func:`seed_summary` of the SDR, also written to ``out/seeds.json`` (with the PESQ and STOI
        summaries), ``out/seeds.md``, ``out/seeds.png`` (each method's value at every seed,
        :func:`~deepnmf.plotting.enhancement.plot_seed_spread`) and ``out/section.json`` (what
        ``deepnmf report out`` shows, :func:`seeds_section`).
    """
    from deepnmf.experiments.enhancement import run_enhancement

    seeds = check_seeds(seeds)  # (the settings are checked by the first run before it reads anything)
    out = Path(cfg.out)
    per_seed = {s: run_enhancement(replace(cfg, random_state=s, out=out / f"seed-{s}"), _tagged(progress, s, len(seeds)))
                for s in seeds}
    return write_seed_summary(per_seed, out)


def write_seed_summary(per_seed: dict[int, list[dict]], out: str | Path) -> dict[str, Any]:
    """Write the across-seed summary of runs already made into ``out``: ``seeds.json`` (SDR, PESQ and STOI
    :func:`seed_summary`), ``seeds.md``, ``seeds.png`` and ``section.json``; return the SDR summary.

    ``per_seed`` maps each seed to its run's rows (``results.json``), so runs made one at a time
    (``--seed S``) can be summarised as ``--seeds`` would.
    """
    from deepnmf.plotting.enhancement import plot_seed_spread

    out = Path(out)
    summaries = {key: seed_summary(per_seed, key) for key in ("sdr", "pesq", "stoi")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps(summaries, indent=2, allow_nan=False) + "\n")
    (out / "seeds.md").write_text(seeds_markdown(summaries["sdr"]))
    (out / "section.json").write_text(json.dumps(seeds_section(summaries["sdr"]), indent=2, allow_nan=False) + "\n")
    plot_seed_spread({m: row["by_seed"] for m, row in summaries["sdr"]["methods"].items()}, out / "seeds.png")
    return summaries["sdr"]
