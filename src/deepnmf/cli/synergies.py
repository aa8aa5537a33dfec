"""``deepnmf synergies`` and ``deepnmf experiment synergies``: muscle synergies from EMG files.

Thin over :func:`deepnmf.pipelines.synergies.synergies_from_files` (load ->
envelopes -> study) with :func:`deepnmf.pipelines.synergies.write_synergy_outputs`,
and over :func:`deepnmf.experiments.synergies.uci_protocol`.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from deepnmf.cli.app import app, echo, experiment_app, handle_errors, reporting


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
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write PNG figures."),
) -> None:
    """Extract muscle synergies per movement: VAF, held-out VAF, VAF curve, figures.

    Example: deepnmf synergies walk.csv --format gait -o gait-synergies
    """
    from deepnmf.pipelines.synergies import summary_table, synergies_from_files, write_synergy_outputs

    envelope = {"band": None if no_bandpass else (float(band[0]), float(band[1])), "notch": notch,
                "envelope_cutoff": cutoff, "envelope_fs": envelope_fs, "time_points": time_points,
                "amplitude": amplitude, "dead_channels": "drop" if drop_dead_channels else "error"}
    with _warnings_to_stderr(), reporting(f"synergies ({method})") as callback:
        run = synergies_from_files(
            files, format=format, rank=rank, method=method, movements=movement, cycles=cycles,
            label_column=label_column, n_restarts=restarts, cv_restarts=cv_restarts, curve_method=curve_method,
            max_curve_rank=max_curve_rank, heldout=heldout, epochs=epochs, random_state=seed, callback=callback,
            **envelope)
    write_synergy_outputs(run, out, figures=figures)
    print(summary_table(run.study))
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
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """The VAE-NMF paper's synergy protocol on the UCI gestures: every subject, NMF vs VAE-NMF, rank 4.

    Example: deepnmf experiment synergies -o uci-synergies
    """
    from deepnmf.experiments.synergies import uci_protocol, uci_report, write_uci_protocol

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    with _warnings_to_stderr(), reporting("subject 1") as callback:
        result = uci_protocol(data, rank=rank, methods=chosen, n_restarts=restarts, epochs=epochs,
                              random_state=seed, callback=callback)
    write_uci_protocol(result, out)
    print(uci_report(result))
