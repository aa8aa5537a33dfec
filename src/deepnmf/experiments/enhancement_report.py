"""Outputs of the enhancement experiment: JSON, CSV, a Markdown table like the paper's, a figure.

Rows are dicts with ``method, noise, snr, sdr, sir, sar, pesq, stoi,
n_utterances`` (plus ``pesq_wb``, ``pesq_missing``); ``None`` marks a missing
value (written ``n/a`` in the tables, empty in the CSV).
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
CSV_KEYS = ("method", "noise", "snr", "sdr", "sir", "sar", "pesq", "pesq_wb", "stoi", "n_utterances", "pesq_missing")


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


def markdown_table(rows: list[dict], *, keys: Sequence[str] = ("sdr", "sir", "sar", "pesq"), noise: str | None = None) -> str:
    """Paper layout: one line per input SNR and the average; SDR/SIR/SAR/PESQ per method."""
    sel = rows if noise is None else [r for r in rows if r["noise"] == noise]
    methods = methods_of(sel)
    snrs = sorted({r["snr"] for r in sel})
    head = "| SNR (dB) | " + " | ".join(f"{m} {k.upper().replace('_', '-')}" for m in methods for k in keys) + " |"
    lines = [head, "|" + "---|" * (1 + len(methods) * len(keys))]
    for snr in [*snrs, None]:
        label = "**Avg.**" if snr is None else f"{snr:g}"
        cells = [_fmt(average_over_noises(sel, m, snr, k)) for m in methods for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paper_table(pooled: bool) -> str:
    table = PAPER["pooled" if pooled else "per-noise"]
    lines = ["| method | SDR | SIR | SAR | PESQ |", "|---|---|---|---|---|"]
    lines += [f"| {m} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for m, vals in table.items()]
    return "\n".join(lines)


def markdown_report(rows: list[dict], info: dict[str, Any], *, pooled: bool) -> str:
    """The whole ``results.md``: averages over noises, per-noise tables, STOI and wide-band PESQ, the paper's rows."""
    noises = sorted({r["noise"] for r in rows})
    n_utt = max((r["n_utterances"] for r in rows), default=0)
    parts = [
        "# Speech enhancement results",
        "",
        f"Noises: {', '.join(noises)} ({'one pooled noise model' if pooled else 'one noise model per noise'}); "
        f"{n_utt} test utterances per cell; SDR/SIR/SAR in dB (BSS Eval, speech and noise references), "
        "PESQ narrow band (P.862.1, the paper's scale), PESQ-WB wide band, STOI. `n/a`: missing (PESQ could not be computed).",
        "",
        "## Average over the noises",
        "",
        markdown_table(rows),
        "",
        "## Intelligibility and wide-band quality (average over the noises)",
        "",
        markdown_table(rows, keys=("stoi", "pesq_wb")),
    ]
    for noise in noises:
        parts += ["", f"## Noise: {noise}", "", markdown_table(rows, noise=noise)]
    parts += ["", f"## The paper's average rows (Table {2 if pooled else 1}, TIMIT + NOISEX factory and babble)", "",
              _paper_table(pooled)]
    seconds = info.get("seconds", {})
    if seconds:
        parts += ["", "Run time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in seconds.items())]
    return "\n".join(parts) + "\n"


def write_outputs(out: Path, rows: list[dict], info: dict[str, Any], *, pooled: bool) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``results.md``, ``sdr_improvement.png`` and ``run.json``."""
    from deepnmf.plotting.enhancement import plot_sdr_improvement

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "markdown": out / "results.md",
             "figure": out / "sdr_improvement.png", "run": out / "run.json"}
    paths["json"].write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n")
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_KEYS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in CSV_KEYS})
    paths["markdown"].write_text(markdown_report(rows, info, pooled=pooled))
    plot_sdr_improvement(sdr_improvement(rows), paths["figure"], title=f"SDR improvement over the noisy mixture ({', '.join(sorted({r['noise'] for r in rows}))})")
    paths["run"].write_text(json.dumps({**info, "outputs": {k: str(v) for k, v in paths.items()}}, indent=2) + "\n")
    return paths
