"""``deepnmf demo``: the main job on built-in generated data (:func:`deepnmf.pipelines.demo.run_demo`)."""
from __future__ import annotations

from pathlib import Path

import typer

from deepnmf.cli.app import app, echo, handle_errors


@app.command("demo")
@handle_errors
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder."),
    seed: int = typer.Option(0, help="Seed of the generated data and of the model."),
    n_notes: int = typer.Option(4, help="Number of generated notes (= NMF rank)."),
) -> None:
    """Factorise a generated spectrogram with known ground truth; write a figure and a JSON summary."""
    from deepnmf.pipelines.demo import run_demo

    echo(f"generating {n_notes} harmonic notes and factorising their spectrogram ...")
    summary = run_demo(out, seed=seed, n_notes=n_notes)
    echo(
        f"KL-NMF rank {n_notes}: {summary['model']['n_iter']} iterations in {summary['fit_seconds']} s; "
        f"mean cosine of learned atoms to the true note spectra {summary['mean_atom_cosine']:.3f}"
    )
    echo(f"wrote {out}/summary.json, {out}/nmf.png, {out}/notes.wav, {out}/model/")
