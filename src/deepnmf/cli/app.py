"""The typer application and helpers shared by the command modules.

The CLI is thin: each command parses options, loads inputs, makes one library
call and writes outputs. Errors are one line on stderr, never a traceback
(unless ``--debug``):

- a wrong option or option value (a usage error, a ``ParameterError``): exit 2;
- bad data (``DataError``, ``ModelFileError``, a missing or unreadable file): exit 1,
  the message naming the file and the problem;
- anything unexpected: exit 1, with ``--debug`` for the traceback.

Every command (and ``deepnmf`` itself) takes ``--quiet`` / ``-q`` (no progress
bars or status lines) and ``--debug`` (tracebacks).
"""
from __future__ import annotations

import contextlib
import functools
import sys
import time
from typing import Any, Callable, Iterator

import typer
from typer.core import TyperGroup

from deepnmf.callbacks import Callback, EpochInfo
from deepnmf.pipelines._common import write_json  # noqa: F401 - the commands' JSON writer (one home)


class _State:
    """The global flags of one invocation (reset by :class:`DeepNMFGroup`)."""

    quiet = False
    debug = False


STATE = _State()


def _one_line(err: Any) -> str:
    """A usage error as one line, with where to find help."""
    ctx = getattr(err, "ctx", None)
    where = ctx.command_path if ctx is not None else "deepnmf"
    message = " ".join(err.format_message().split())
    return f"error: {message} (see '{where} --help')"


class DeepNMFGroup(TyperGroup):
    """The ``deepnmf`` group: one-line usage errors (exit 2), flags reset per invocation."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # noqa: D102 - click entry point
        from typer import _click

        STATE.quiet = STATE.debug = False
        try:
            rv = super().main(args=args, prog_name=prog_name or "deepnmf", complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except _click.exceptions.ClickException as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # bare `deepnmf` / `deepnmf experiment`: the help
                typer.echo(err.format_message(), err=True)
            else:
                typer.secho(_one_line(err), fg=typer.colors.RED, err=True)
            code = err.exit_code
        except typer.Abort:
            typer.secho("error: aborted", fg=typer.colors.RED, err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="deepnmf",
    cls=DeepNMFGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
experiment_app = typer.Typer(help="Run the papers' experiment protocols.\n\n"
                                  "Example: deepnmf experiment synergies -o synergy-study",
                             no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


QUIET_HELP = "No progress bars or status lines (results and errors only)."
DEBUG_HELP = "Show the traceback of an error."


@app.callback()
def _global_options(
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    debug: bool = typer.Option(False, "--debug", help=DEBUG_HELP),
) -> None:
    """Nonnegative dictionary learning with deep models (NMF, VAE-NMF, iN-NMF).

    Example: deepnmf demo (the three systems on built-in data; open demo-output/report.html)
    """
    STATE.quiet, STATE.debug = STATE.quiet or quiet, STATE.debug or debug


def _with_common_options(wrapper: Callable, func: Callable) -> None:
    """Add ``--quiet``/``-q`` and ``--debug`` to the command's signature (the wrapper consumes them)."""
    import inspect

    sig = inspect.signature(func)
    extra = [inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                               default=typer.Option(False, "--quiet", "-q", help=QUIET_HELP)),
             inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                               default=typer.Option(False, "--debug", help=DEBUG_HELP))]
    wrapper.__signature__ = sig.replace(parameters=list(sig.parameters.values()) + extra)


def _fail(message: str, code: int) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def handle_errors(func: Callable) -> Callable:
    """One-line errors: option errors exit 2, data errors 1, anything else 1 (traceback with ``--debug``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, quiet: bool = False, debug: bool = False, **kwargs: Any) -> Any:
        from deepnmf.exceptions import DeepNMFError, ParameterError

        STATE.quiet, STATE.debug = STATE.quiet or quiet, STATE.debug or debug
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except Exception as err:  # noqa: BLE001 - the CLI's one place that reports every error
            if STATE.debug:
                raise
            if isinstance(err, ParameterError):
                _fail(str(err), 2)
            if isinstance(err, DeepNMFError):
                _fail(str(err), 1)
            if isinstance(err, FileNotFoundError):
                _fail(f"file not found: {err.filename or err}", 1)
            if isinstance(err, OSError):
                _fail(f"{err.filename or ''}: {err.strerror or err}".lstrip(": "), 1)
            _fail(f"unexpected {type(err).__name__}: {err} (run again with --debug for the traceback)", 1)

    _with_common_options(wrapper, func)
    return wrapper


#: help of every ``--compile`` option (iN-NMF training with torch.compile)
COMPILE_HELP = ("iN-NMF: compile each training epoch with torch.compile (faster epochs after a 9-25 s compile; "
                "needs a C++ compiler, else trains uncompiled with a warning).")


def exit_on_failures(failed: dict[str, str]) -> None:
    """After a batch: one red line per failed file (``path: error``) and exit 1, or nothing when none failed."""
    if failed:
        for path, message in failed.items():
            typer.secho(f"failed: {path}: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


def echo(msg: str) -> None:
    """Print a status line to stderr (stdout stays for results); nothing with ``--quiet``."""
    if not STATE.quiet:
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
        disable=STATE.quiet,
    )
    if not progress.console.is_terminal:  # a log file or a pipe: progress_callback writes lines instead
        progress.disable = True
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


#: seconds between two progress lines of one stage where stderr is not a terminal
LINE_EVERY_S = 30.0


class _LineLog:
    """Progress as plain stderr lines, for logs: a stage's first record, its last, and one every ``LINE_EVERY_S``."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last: dict[str, float] = {}

    def __call__(self, info: EpochInfo) -> None:
        now = time.monotonic()
        stage = info.stage or "progress"
        done = bool(info.max_epochs) and info.epoch >= info.max_epochs
        if stage in self.last and not done and now - self.last[stage] < LINE_EVERY_S:
            return
        self.last[stage] = now
        elapsed = int(now - self.start)
        count = f"{info.epoch}/{info.max_epochs}" if info.max_epochs else f"{info.epoch}"
        text = describe(info)
        echo(f"[{elapsed // 60}:{elapsed % 60:02d}] {stage}: {count}" + (f" {text}" if text else ""))


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

    Where stderr is not a terminal (a log file, a pipe, a CI job), where
    live bars would show nothing until the end, every stage writes plain
    lines instead: ``[elapsed] stage: epoch/total text`` when it starts,
    when it completes and at most every ``LINE_EVERY_S`` seconds between.
    """
    bars: dict[str, Any] = {}
    lines = _LineLog() if not progress.console.is_terminal else None

    def report(info: EpochInfo) -> None:
        if info.epoch == 0 and info.message:
            echo(info.message)  # stderr (above the bars in a terminal)
            return
        if lines is not None:
            lines(info)
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
