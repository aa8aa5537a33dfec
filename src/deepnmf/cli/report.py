"""``deepnmf report DIR``: the HTML page and Markdown twin of any output folder (:func:`deepnmf.report.build_report`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from deepnmf.cli.app import app, echo, handle_errors


@app.command("report")
@handle_errors
def report_command(
    folder: Path = typer.Argument(..., help="An output folder of demo, train, enhance, separate, synergies or experiment."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder of report.html and report.md (default: FOLDER)."),
    title: Optional[str] = typer.Option(None, "--title", help="Page title."),
) -> None:
    """Build report.html (self-contained: figures and audio embedded) and report.md of an output folder.

    Example: deepnmf report synergy-output   (writes synergy-output/report.html and report.md)
    """
    from deepnmf.report import build_report

    files = build_report(folder, title=title, out=out)
    echo(f"wrote {files.markdown}")
    typer.echo(str(files.html))
