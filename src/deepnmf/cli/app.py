"""The typer application and helpers shared by the command modules.

The CLI is thin: each command parses options, loads inputs, makes one library
call and writes outputs. Library errors (``DeepNMFError``) become a one-line
message and exit code 2, never a traceback.
"""
from __future__ import annotations

import contextlib
import functools
import sys
from typing import Any, Callable, Iterator

import typer

from deepnmf.callbacks import Callback, EpochInfo
from deepnmf.pipelines._common import write_json  # noqa: F401 - the commands' JSON writer (one home)

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


#: help of every ``--compile`` option (iN-NMF training with torch.compile)
COMPILE_HELP = ("iN-NMF: compile each training epoch with torch.compile (faster epochs after a 9-25 s compile; "
                "needs a C++ compiler, else trains uncompiled with a warning).")


def echo(msg: str) -> None:
    """Print a status line to stderr (stdout stays for results)."""
    print(msg, file=sys.stderr)


def progress_bar(total: int | None, description: str):
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


def describe(info: EpochInfo) -> str:
    """The text beside a bar: the record's message, else its training (and validation) loss."""
    if info.message:
        return info.message
    loss = info.train.get("loss")
    text = "" if loss is None else f"loss {loss:.4g}"
    if "loss" in info.val:
        text += f" val {info.val['loss']:.4g}"
    return text


def progress_callback(progress: Any, task: Any) -> Callback:
    """A callback turning :class:`~deepnmf.callbacks.EpochInfo` records into rich progress bars.

    Parameters
    ----------
    progress, task
        A rich ``Progress`` and a task of it (see :func:`progress_bar`).

    The first stage of work moves ``task`` (renamed after the record's
    ``stage`` when it has one); each further stage gets a bar of its own.
    A bar's total is the record's ``max_epochs``, its count ``epoch``, its
    text :func:`describe`. A notice (``epoch == 0`` with a message) is
    printed on stderr instead.
    """
    bars: dict[str, Any] = {}

    def report(info: EpochInfo) -> None:
        if info.epoch == 0 and info.message:
            echo(info.message)  # stderr (above the bars in a terminal)
            return
        if info.stage not in bars:
            total = info.max_epochs or None
            if bars:
                bars[info.stage] = progress.add_task(info.stage, total=total, info="")
            else:
                bars[info.stage] = task
                progress.update(task, total=total, **({"description": info.stage} if info.stage else {}))
        progress.update(bars[info.stage], completed=info.epoch, info=describe(info))

    return report


@contextlib.contextmanager
def reporting(description: str, total: int | None = None) -> Iterator[Callback]:
    """``with reporting("train") as callback:`` progress bars for the records a pipeline sends.

    The bars appear with the first record that counts work (notices before
    it are printed, and an error before it shows no bar); ``description``
    and ``total`` are the first bar's until its record renames it. On a
    clean exit every bar is shown complete (training may stop before its
    maximum, at a tolerance or by early stopping).
    """
    live: dict[str, Any] = {}

    def callback(info: EpochInfo) -> None:
        if "report" not in live:
            if info.epoch == 0 and info.message:
                echo(info.message)
                return
            live["progress"], task = progress_bar(total, description)
            live["progress"].start()
            live["report"] = progress_callback(live["progress"], task)
        live["report"](info)

    try:
        yield callback
        for bar in live["progress"].tasks if live else []:
            if bar.total is not None:
                live["progress"].update(bar.id, completed=bar.total)
    finally:
        if live:
            live["progress"].stop()
