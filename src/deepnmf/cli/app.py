"""The typer application and helpers shared by the command modules.

The CLI is thin: each command parses options, loads inputs, makes one library
call and writes outputs. Library errors (``DeepNMFError``) become a one-line
message and exit code 2, never a traceback.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

import typer

app = typer.Typer(
    name="deepnmf",
    help="Nonnegative dictionary learning with deep models (NMF, VAE-NMF, iN-NMF).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
experiment_app = typer.Typer(help="Run the papers' experiment protocols.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


def handle_errors(func: Callable) -> Callable:
    """Turn deepnmf errors into a clean message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from deepnmf.exceptions import DeepNMFError

        try:
            return func(*args, **kwargs)
        except DeepNMFError as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None
        except FileNotFoundError as err:
            typer.secho(f"error: file not found: {err.filename or err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None

    return wrapper


def write_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (creating the parent folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


#: help of every ``--compile`` option (iN-NMF training with torch.compile)
COMPILE_HELP = ("iN-NMF: compile each training epoch with torch.compile (faster epochs after a 9-25 s compile; "
                "needs a C++ compiler, else trains uncompiled with a warning).")


def announce_compile() -> None:
    """Say why the first epoch of a compiled training is silent for a while."""
    echo("the first epoch compiles the training step with torch.compile (9-25 s the first time)")


def echo(msg: str) -> None:
    """Print a status line to stderr (stdout stays for results)."""
    print(msg, file=sys.stderr)


def progress_bar(total: int, description: str):
    """A rich progress bar; returns ``(progress, task_id)`` to use as a context manager."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    task = progress.add_task(description, total=total, info="")
    return progress, task
