"""Outputs of the enhancement experiment: JSON, CSV, a Markdown table like the paper's, a figure.

Rows are dicts with ``method, noise, snr, sdr, sir, sar, pesq, stoi,
n_utterances`` (plus ``pesq_wb``, ``pesq_missing``, ``<metric>_ci95``,
``utterances`` and ``per_utterance``); ``None`` marks a missing value (written
``n/a`` in the tables, empty in the CSV).

Intervals are 95% percentile-bootstrap intervals over the test utterances
(:func:`deepnmf.stats.bootstrap_ci`): for an average over noises or SNRs each
utterance contributes its mean over those cells. Two methods are compared on
(utterance, noise) units, each the mean over the SNRs, with a Wilcoxon
signed-rank test and Holm's correction over all pairs of methods.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: the VAE-NMF paper's average rows (SDR, SIR, SAR, PESQ): Table 1 per-noise models, Table 2 pooled
PAPER = {
    "per-noise": {"NMF": (8.86, 12.71, 12.41, 2.50), "DNMF": (9.96, 13.65, 13.48, 2.54),
                  "DNN": (11.34, 15.25, 13.86, 2.66), "VAE-NMF": (11.47, 15.42, 13.95, 2.62)},
    "pooled": {"NMF": (7.50, 12.39, 10.68, 2.35), "DNMF": (9.40, 12.95, 13.14, 2.46),
               "DNN": (11.25, 15.19, 13.30, 2.62), "VAE-NMF": (11.37, 16.40, 13.21, 2.59)},
}
METRIC_KEYS = ("sdr", "sir", "sar", "pesq", "pesq_wb", "stoi")
CSV_KEYS = ("method", "noise", "snr", "sdr", "sir", "sar", "pesq", "pesq_wb", "stoi", "n_utterances", "pesq_missing",
            *(f"{k}_ci95_{side}" for k in METRIC_KEYS for side in ("low", "high")))
LABELS = {"sdr": "SDR (dB)", "sir": "SIR (dB)", "sar": "SAR (dB)", "pesq": "PESQ (narrow band)",
          "pesq_wb": "PESQ (wide band)", "stoi": "STOI"}


def _mean(values: Sequence[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def methods_of(rows: list[dict]) -> list[str]:
    """Method names in first-seen order, ``noisy`` first."""
    seen: list[str] = []
    for r in rows:
        if r["method"] not in seen:
            seen.append(r["method"])
    return sorted(seen, key=lambda m: (m != "noisy", seen.index(m)))


def average_over_noises(rows: list[dict], method: str, snr: float | None, key: str) -> float | None:
    """Mean of ``key`` over the noises (and over SNRs when ``snr`` is None)."""
    return _mean([r[key] for r in rows if r["method"] == method and (snr is None or r["snr"] == snr)])


def sdr_improvement(rows: list[dict]) -> dict[str, dict[float, float]]:
    """Method -> SNR -> SDR minus the noisy mixture's SDR, averaged over the noises."""
    snrs = sorted({r["snr"] for r in rows})
    out: dict[str, dict[float, float]] = {}
    for m in methods_of(rows):
        if m == "noisy":
            continue
        out[m] = {}
        for snr in snrs:
            a, b = average_over_noises(rows, m, snr, "sdr"), average_over_noises(rows, "noisy", snr, "sdr")
            if a is not None and b is not None:
                out[m][snr] = a - b
    return out


def unit_values(rows: list[dict], method: str, key: str, *, snr: float | None = None, noise: str | None = None,
                by_noise: bool = False) -> dict[tuple, float]:
    """Per-unit means of ``key`` for one method over the selected cells.

    Parameters
    ----------
    rows : list of dict
        Results rows carrying ``utterances`` and ``per_utterance``.
    method, key : str
        Method name and metric.
    snr, noise : optional
        Restrict to one SNR / one noise (``None``: all).
    by_noise : bool
        Units are (utterance, noise) pairs instead of utterances.

    Returns
    -------
    dict
        Unit -> mean of its finite values over the selected cells (units with
        none are left out).
    """
    acc: dict[tuple, list[float]] = {}
    for r in rows:
        if r["method"] != method or (snr is not None and r["snr"] != snr) or (noise is not None and r["noise"] != noise):
            continue
        for utt, v in zip(r.get("utterances", ()), r.get("per_utterance", {}).get(key, ())):
            if v is not None and math.isfinite(v):
                acc.setdefault((utt, r["noise"]) if by_noise else (utt,), []).append(float(v))
    return {u: float(np.mean(v)) for u, v in acc.items()}


def _cell(rows: list[dict], method: str, key: str, snr: float | None, noise: str | None) -> str:
    from deepnmf.stats import bootstrap_ci

    if (method, key) == ("noisy", "sar"):  # BSS Eval's ceiling for a signal without artefacts (kept in the JSON/CSV)
        return "–"

    sel = rows if noise is None else [r for r in rows if r["noise"] == noise]
    mean = average_over_noises(sel, method, snr, key)
    ci = bootstrap_ci(list(unit_values(sel, method, key, snr=snr).values()))
    digits = 3 if key == "stoi" else 2
    return _fmt(mean, digits) + ("" if ci is None or mean is None else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]")


def markdown_table(rows: list[dict], key: str = "sdr", *, noise: str | None = None) -> str:
    """The paper's layout: one row per method, one column per input SNR and the average.

    Each cell is the mean and its 95% bootstrap interval over the test
    utterances; ``noise`` restricts the table to one noise (default: the
    average over the noises).
    """
    sel = rows if noise is None else [r for r in rows if r["noise"] == noise]
    snrs = sorted({r["snr"] for r in sel})
    lines = [f"| method | " + " | ".join(f"{snr:g} dB" for snr in snrs) + " | **Avg.** |",
             "|---|" + "---|" * (len(snrs) + 1)]
    for m in methods_of(sel):
        lines.append(f"| {m} | " + " | ".join(_cell(sel, m, key, snr, None) for snr in [*snrs, None]) + " |")
    return "\n".join(lines)


def pairwise_comparisons(rows: list[dict], key: str = "sdr") -> list[dict[str, Any]]:
    """Every pair of methods (``noisy`` included) compared on paired (utterance, noise) units.

    Returns
    -------
    list of dict
        ``a``, ``b``, ``n``, ``mean_diff`` (a - b), ``ci95``, ``p_value``
        (Wilcoxon signed-rank), ``p_holm`` (Holm-adjusted over the pairs) and
        ``significant`` (``p_holm < 0.05``).
    """
    from deepnmf.stats import holm_adjust, paired_comparison

    methods = methods_of(rows)
    units = {m: unit_values(rows, m, key, by_noise=True) for m in methods}
    out = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            common = sorted(set(units[a]) & set(units[b]))
            res = paired_comparison([units[a][u] for u in common], [units[b][u] for u in common])
            out.append({"a": a, "b": b, **res})
    for res, p in zip(out, holm_adjust([r["p_value"] for r in out])):
        res["p_holm"] = p
        res["significant"] = p is not None and p < 0.05
    return out


def comparisons_table(comparisons: list[dict[str, Any]], key: str = "sdr") -> str:
    """Markdown table of :func:`pairwise_comparisons`."""
    lines = [f"| A | B | mean {key.upper()} A - B [95% CI] | units | p (Wilcoxon) | p (Holm) | significant |",
             "|---|---|---|---|---|---|---|"]
    for c in comparisons:
        ci = "" if c["ci95"] is None else f" [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]"
        lines.append(f"| {c['a']} | {c['b']} | {_fmt(c['mean_diff'])}{ci} | {c['n']} | {_fmt(c['p_value'], 4)} | "
                     f"{_fmt(c['p_holm'], 4)} | {'yes' if c['significant'] else 'no'} |")
    return "\n".join(lines)


def _paper_table(pooled: bool) -> str:
    table = PAPER["pooled" if pooled else "per-noise"]
    lines = ["| method | SDR | SIR | SAR | PESQ |", "|---|---|---|---|---|"]
    lines += [f"| {m} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for m, vals in table.items()]
    return "\n".join(lines)


def markdown_report(rows: list[dict], info: dict[str, Any], *, pooled: bool) -> str:
    """The whole ``results.md``: per-metric tables (average over the noises, then per noise),
    the pairwise significance of SDR/PESQ/STOI differences, the paper's rows."""
    noises = sorted({r["noise"] for r in rows})
    n_utt = max((r["n_utterances"] for r in rows), default=0)
    parts = [
        "# Speech enhancement results",
        "",
        f"Noises: {', '.join(noises)} ({'one pooled noise model' if pooled else 'one noise model per noise'}); "
        f"{n_utt} test utterances per cell; SDR/SIR/SAR in dB (BSS Eval, speech and noise references), "
        "PESQ narrow band (P.862.1, the paper's scale), PESQ-WB wide band, STOI. `n/a`: missing (PESQ could not be computed). "
        "The noisy input's SAR is shown as `–`: it has no artefacts, and BSS Eval's figure there (about 150 dB) is its "
        "numerical ceiling, not a measurement (results.json keeps it). "
        "Each cell: mean [95% bootstrap interval over the test utterances].",
    ]
    for key in METRIC_KEYS:
        parts += ["", f"## {LABELS[key]}, average over the noises", "", markdown_table(rows, key)]
    for noise in noises:
        for key in ("sdr", "sir", "sar", "pesq"):
            parts += ["", f"## Noise {noise}: {LABELS[key]}", "", markdown_table(rows, key, noise=noise)]
    units = "(utterance, noise) units, each the mean over the SNRs"
    for key in ("sdr", "pesq", "stoi"):
        parts += ["", f"## Which {LABELS[key]} differences are significant", "",
                  f"Paired over {units}; two-sided Wilcoxon signed-rank test, Holm-corrected over all pairs; "
                  "significant: adjusted p < 0.05.", "", comparisons_table(pairwise_comparisons(rows, key), key)]
    parts += ["", f"## The paper's average rows (Table {2 if pooled else 1}, TIMIT + NOISEX factory and babble)", "",
              _paper_table(pooled)]
    seconds = info.get("seconds", {})
    if seconds:
        parts += ["", "Run time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in seconds.items())]
    return "\n".join(parts) + "\n"


def _csv_row(r: dict) -> dict[str, Any]:
    flat = {k: r.get(k) for k in CSV_KEYS}
    for k in METRIC_KEYS:
        ci = r.get(f"{k}_ci95")
        flat[f"{k}_ci95_low"], flat[f"{k}_ci95_high"] = (None, None) if ci is None else ci
    return {k: "" if v is None else v for k, v in flat.items()}


def write_outputs(out: Path, rows: list[dict], info: dict[str, Any], *, pooled: bool) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``results.md``, ``comparisons.json``
    (pairwise significance of SDR/PESQ/STOI), ``sdr_improvement.png`` and ``run.json``."""
    from deepnmf.plotting.enhancement import plot_sdr_improvement
    from deepnmf.report import environment_info

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "markdown": out / "results.md",
             "figure": out / "sdr_improvement.png", "run": out / "run.json", "comparisons": out / "comparisons.json"}
    paths["json"].write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n")
    comparisons = {key: pairwise_comparisons(rows, key) for key in ("sdr", "pesq", "stoi")}
    paths["comparisons"].write_text(json.dumps(comparisons, indent=2, allow_nan=False) + "\n")
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_KEYS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow(_csv_row(r))
    paths["markdown"].write_text(markdown_report(rows, info, pooled=pooled))
    plot_sdr_improvement(sdr_improvement(rows), paths["figure"], title=f"SDR improvement over the noisy mixture ({', '.join(sorted({r['noise'] for r in rows}))})")
    run = {**info, "outputs": {k: str(v) for k, v in paths.items()}, "environment": environment_info()}
    paths["run"].write_text(json.dumps(run, indent=2) + "\n")
    return paths
