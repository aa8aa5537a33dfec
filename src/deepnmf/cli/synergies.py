"""``deepnmf synergies``: muscle synergies from EMG files (load -> envelopes -> study -> files).

Thin over :func:`deepnmf.emg.io.load_recording`,
:func:`deepnmf.emg.preprocess.preprocess` and
:func:`deepnmf.experiments.synergies.run_synergy_study`.
"""
from __future__ import annotations

import contextlib
import csv
import warnings
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

from deepnmf.cli.app import app, echo, experiment_app, handle_errors, progress_bar, write_json


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show library warnings as one ``warning:`` line each (no source lines)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for w in caught:
        msg = str(w.message)
        if msg not in seen and not issubclass(w.category, DeprecationWarning):
            seen.add(msg)
            typer.secho(f"warning: {msg}", fg=typer.colors.YELLOW, err=True)


def _curve_ranks(max_curve_rank: Optional[int], n_channels: int) -> Optional[list[int]]:
    if max_curve_rank is None:
        return None
    return list(range(1, min(max_curve_rank, n_channels) + 1))


def _estimator_params(method: str, epochs: Optional[int]) -> dict[str, Any]:
    return {"max_epochs": epochs} if (method == "vae-nmf" and epochs is not None) else {}


def _envelope_options(rec, *, band, no_bandpass, notch, cutoff, envelope_fs, time_points, amplitude, drop_dead) -> dict:
    if time_points is None and rec.segments and all(s.kind == "cycle" for s in rec.segments):
        time_points = 200  # gait: 100 points of stance + 100 of swing per cycle
    return {
        "band": None if no_bandpass else (float(band[0]), float(band[1])),
        "notch": notch,
        "envelope_cutoff": cutoff,
        "envelope_fs": envelope_fs,
        "time_points": time_points,
        "amplitude": amplitude,
        "dead_channels": "drop" if drop_dead else "error",
    }


def write_activations_csv(study, env, path: Path) -> Path:
    """One row per envelope sample: movement, repetition, sample, time, S1..Sr."""
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


def write_figures(study, env, out: Path, *, rank: int) -> list[Path]:
    """Per movement: synergy bars, activations, reconstructions; plus the VAF curves."""
    from deepnmf.plotting.emg import plot_activations, plot_mean_cycle, plot_reconstruction, plot_synergies, plot_vaf_curve

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


def _suggested_ranks(curve: dict) -> dict[str, int]:
    """Rank choices from the VAF curve by the usual rules (for run.json)."""
    from deepnmf.emg.synergies import select_rank

    if not curve:
        return {}
    return {
        "threshold_0.90": select_rank(curve, rule="threshold", threshold=0.90),
        "threshold_0.95": select_rank(curve, rule="threshold", threshold=0.95),
        "plateau_gain_0.02": select_rank(curve, rule="plateau", min_gain=0.02),
    }


def _nnls_vaf(m) -> float:
    """Training VAF with exact NNLS activations for the reported synergies."""
    from deepnmf.emg.synergies import refit_activations, vaf

    return float(vaf(m.envelopes, refit_activations(m.envelopes, m.fit.synergies) @ m.fit.synergies))


def _summary(study) -> None:
    print(f"{'movement':>10}  {'VAF':>6}  held-out VAF (per left-out repetition)")
    for m in study.movements:
        held = " ".join(f"{v:.3f}" for v in (m.heldout.vaf if m.heldout is not None else []))
        print(f"{str(m.movement):>10}  {m.fit.vaf:6.3f}  {held or '-'}")


@app.command("synergies")
@handle_errors
def synergies_command(
    files: List[Path] = typer.Argument(..., help="EMG files of one subject (their repetitions add up)."),
    format: str = typer.Option(..., "--format", "-f", help="csv | uci | ninapro | gait"),
    rank: int = typer.Option(4, "--rank", "-r", help="Number of synergies."),
    method: str = typer.Option("nmf", "--method", "-m", help="nmf | vae-nmf"),
    movement: Optional[List[str]] = typer.Option(None, "--movement", help="Only this movement (repeatable)."),
    cycles: Optional[Path] = typer.Option(None, "--cycles", help="Gait cycle times (default: sibling *_cycles.csv)."),
    label_column: Optional[str] = typer.Option(None, help="csv: column of movement labels (0 = unlabelled)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    restarts: Optional[int] = typer.Option(None, help="Restarts per fit (default 5 for nmf, 2 for vae-nmf)."),
    cv_restarts: Optional[int] = typer.Option(None, help="Restarts per cross-validation fold (default: restarts; 1 for vae-nmf)."),
    curve_method: Optional[str] = typer.Option(None, help="Method of the VAF-vs-rank curve (default nmf)."),
    max_curve_rank: Optional[int] = typer.Option(None, help="Largest rank of the VAF curve (default: channel count; 0: none)."),
    heldout: str = typer.Option("nnls", help="Held-out activations: nnls | transform (the estimator's own)."),
    epochs: Optional[int] = typer.Option(None, help="VAE-NMF training epochs (default 200)."),
    band: tuple[float, float] = typer.Option((20.0, 450.0), help="Band-pass edges in Hz."),
    no_bandpass: bool = typer.Option(False, "--no-bandpass", help="Skip the band-pass."),
    notch: Optional[float] = typer.Option(None, help="Mains notch frequency (50 or 60 Hz)."),
    cutoff: float = typer.Option(10.0, help="Envelope low-pass cut-off in Hz."),
    envelope_fs: float = typer.Option(100.0, help="Envelope sampling rate in Hz."),
    time_points: Optional[int] = typer.Option(None, help="Points per cycle/repetition (time normalisation; gait default 200)."),
    amplitude: str = typer.Option("max", help="Per-channel amplitude normalisation: max | rms | none."),
    drop_dead_channels: bool = typer.Option(False, help="Drop constant/all-zero channels instead of stopping."),
    seed: int = typer.Option(0, help="Random seed."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write PNG figures."),
) -> None:
    """Extract muscle synergies per movement: VAF, held-out VAF, VAF curve, figures."""
    from deepnmf._utils import check_choice
    from deepnmf.emg.io import FORMATS, load_recording
    from deepnmf.emg.preprocess import preprocess
    from deepnmf.emg.synergies import HELDOUT_METHODS, METHODS
    from deepnmf.experiments.synergies import run_synergy_study, work_units

    check_choice(method, "method", METHODS)  # fail before the slow loading
    check_choice(heldout, "heldout", HELDOUT_METHODS)
    if curve_method is not None:
        check_choice(curve_method, "curve_method", METHODS)
    if format not in FORMATS:
        load_recording(files, format=format)  # raises the library's message
    with _warnings_to_stderr():
        extra = {"label_column": label_column} if (label_column and format == "csv") else {}
        rec = load_recording(files, format=format, cycles=cycles, **extra)
        opts = _envelope_options(rec, band=band, no_bandpass=no_bandpass, notch=notch, cutoff=cutoff,
                                 envelope_fs=envelope_fs, time_points=time_points, amplitude=amplitude,
                                 drop_dead=drop_dead_channels)
        env = preprocess(rec, **opts)
    echo(f"{len(files)} file(s): {rec.n_channels} channels at {rec.fs:g} Hz, movements {', '.join(map(str, env.movements()))}")
    curve_ranks = _curve_ranks(max_curve_rank, env.n_channels)
    kwargs = dict(rank=rank, method=method, movements=movement, n_restarts=restarts, cv_restarts=cv_restarts,
                  curve_ranks=curve_ranks)
    total = work_units(env, **kwargs)
    progress, task = progress_bar(total, f"synergies ({method})")
    with progress, _warnings_to_stderr():
        study = run_synergy_study(env, **kwargs, curve_method=curve_method, heldout=heldout,
                                  estimator_params=_estimator_params(method, epochs), random_state=seed,
                                  step=lambda msg: progress.update(task, advance=1, info=msg))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "synergies.json", study.to_json())
    write_activations_csv(study, env, out / "activations.csv")
    run_info = {**study.settings, "files": [str(f) for f in files], "format": format,
                "envelope_fs": env.fs, "channels": env.channels,
                "restart_vafs": {str(m.movement): m.fit.restart_vafs for m in study.movements},
                "heldout_vaf_per_channel": {str(m.movement): (m.heldout.vaf_per_channel.tolist() if m.heldout else [])
                                            for m in study.movements},
                "heldout_fold_train_vaf": {str(m.movement): (m.heldout.train_vaf.tolist() if m.heldout else [])
                                           for m in study.movements},
                "suggested_rank": {str(m.movement): _suggested_ranks(m.curve) for m in study.movements},
                # the same fits judged the other way: NNLS activations for training, the other held-out method
                "train_vaf_nnls": {str(m.movement): _nnls_vaf(m) for m in study.movements},
                "heldout_vaf_" + ("transform" if heldout == "nnls" else "nnls"): {
                    str(m.movement): (m.heldout.vaf_other.tolist() if m.heldout is not None and m.heldout.vaf_other is not None else [])
                    for m in study.movements}}
    write_json(out / "run.json", run_info)
    if figures:
        write_figures(study, env, out / "figures", rank=rank)
    _summary(study)
    echo(f"wrote {out / 'synergies.json'}, {out / 'activations.csv'}" + (f", {out / 'figures'}/" if figures else ""))


@experiment_app.command("synergies")
@handle_errors
def synergies_experiment(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    data: Optional[Path] = typer.Option(None, help="Folder of UCI gesture files (default: the shared emg/uci-gestures)."),
    rank: int = typer.Option(4, help="Number of synergies."),
    methods: str = typer.Option("nmf,vae-nmf", help="Comma-separated methods to compare."),
    restarts: Optional[int] = typer.Option(None, help="Restarts per fit (default 5 for nmf, 2 for vae-nmf)."),
    epochs: Optional[int] = typer.Option(None, help="VAE-NMF training epochs (default 200)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """The VAE-NMF paper's synergy protocol on the UCI gestures: every subject, NMF vs VAE-NMF, rank 4."""
    from deepnmf.datasets.paths import shared_data_dir
    from deepnmf.emg.io import UCI_CLASSES, list_uci_files, load_recording
    from deepnmf.emg.preprocess import preprocess
    from deepnmf._utils import check_choice
    from deepnmf.emg.synergies import METHODS
    from deepnmf.experiments.synergies import compare_methods, group_uci_subjects, rows_to_markdown, work_units
    from deepnmf.plotting.emg import plot_vaf_comparison

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    for m in chosen:
        check_choice(m, "method", METHODS)
    folder = data or shared_data_dir("emg", "uci-gestures")
    subjects = group_uci_subjects(list_uci_files(folder))
    report, results = ["# Muscle synergies on the UCI gestures", "",
                       f"rank {rank}; training VAF on all 4 repetitions; held-out VAF: leave one repetition out, "
                       "synergies frozen, NNLS activations.", ""], {}
    for s, files in enumerate(subjects, start=1):
        name = f"subject {s} ({', '.join(f.name for f in files)})"
        echo(f"{name}: {', '.join(chosen)}")
        with _warnings_to_stderr():
            env = preprocess(load_recording(files, format="uci"))
        total = sum(work_units(env, rank=rank, method=m, n_restarts=restarts) for m in chosen)
        progress, task = progress_bar(total, f"subject {s}")
        with progress, _warnings_to_stderr():
            res = compare_methods(env, rank=rank, methods=chosen, random_state=seed, n_restarts=restarts,
                                  estimator_params={m: _estimator_params(m, epochs) for m in chosen},
                                  step=lambda msg: progress.update(task, advance=1, info=msg))
        for m, study in res["studies"].items():
            write_json(out / f"subject{s}-{m}" / "synergies.json", study.to_json())
        plot_vaf_comparison(res["rows"], chosen, out / f"subject{s}_vaf.png", title=f"subject {s}: rank {rank}")
        report.append(rows_to_markdown(name, res["rows"], chosen, UCI_CLASSES))
        results[f"subject{s}"] = {"files": [str(f) for f in files], "rows": res["rows"]}
    write_json(out / "results.json", results)
    (out / "results.md").write_text("\n".join(report))
    print("\n".join(report))
