"""``deepnmf demo``: the three systems end to end and the report (:func:`deepnmf.pipelines.demo.run_demo`)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from deepnmf.cli.app import app, echo, handle_errors, reporting


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch's intra-op threads and BLAS's limited to ``n`` for the command, restored after."""
    from deepnmf._threads import limit_threads
    from deepnmf.exceptions import ParameterError

    if n < 1:
        raise ParameterError(f"--threads must be >= 1, got {n}")
    with limit_threads(n):
        yield


@app.command("demo")
@handle_errors
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder (report.html, report.md, one folder per job)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated data and of every model."),
    data: str = typer.Option("auto", "--data", help="auto (the real recordings when DEEPNMF_DATA or ../shared/data is there, else generated) | synthetic | real."),
    job: Optional[List[str]] = typer.Option(None, "--job", help="Only this job (repeatable): enhancement, separation, synergies."),
    quick: bool = typer.Option(False, "--quick", help="Much smaller models and data (seconds, for a smoke test)."),
    threads: int = typer.Option(1, "--threads", help="CPU threads of torch and BLAS (the demo's models are small: more threads mostly spin)."),
) -> None:
    """Run speech enhancement, source separation and muscle synergies end to end; write a report.

    Example: deepnmf demo -o demo-output   (then open demo-output/report.html)
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from deepnmf.pipelines.demo import JOBS, run_demo

    with warnings.catch_warnings(), _threads(threads), reporting("demo") as callback:
        warnings.simplefilter("ignore", ConvergenceWarning)  # the demo caps its iterations on purpose
        summary = run_demo(out, seed=seed, data=data, jobs=tuple(job or JOBS), quick=quick, callback=callback)
    echo(f"demo on {summary['data']} data: {summary['wall_seconds']} s wall, {summary['cpu_seconds']} s CPU")
    typer.echo(summary["report"]["html"])
