"""``deepnmf demo``: the three systems end to end and the report (:func:`deepnmf.pipelines.demo.run_demo`)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from deepnmf.cli.app import app, echo, handle_errors, reporting


@app.command("demo")
@handle_errors
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder (report.html, report.md, one folder per job)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated data and of every model."),
    data: str = typer.Option("auto", "--data", help="auto (the real recordings when DEEPNMF_DATA or ../shared/data is there, else generated) | synthetic | real."),
    job: Optional[List[str]] = typer.Option(None, "--job", help="Only this job (repeatable): enhancement, separation, synergies."),
    quick: bool = typer.Option(False, "--quick", help="Much smaller models and data (seconds, for a smoke test)."),
) -> None:
    """Run speech enhancement, source separation and muscle synergies end to end; write a report.

    Example: deepnmf demo -o demo-output   (then open demo-output/report.html)
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from deepnmf.pipelines.demo import JOBS, run_demo

    with warnings.catch_warnings(), reporting("demo") as callback:
        warnings.simplefilter("ignore", ConvergenceWarning)  # the demo caps its iterations on purpose
        summary = run_demo(out, seed=seed, data=data, jobs=tuple(job or JOBS), quick=quick, callback=callback)
    echo(f"demo on {summary['data']} data: {summary['wall_seconds']} s wall, {summary['cpu_seconds']} s CPU")
    typer.echo(summary["report"]["html"])
