"""Folders of files: one job per file over a pool of worker processes.

:func:`run_batch` maps a per-file function over inputs with
:class:`concurrent.futures.ProcessPoolExecutor` (``spawn`` start: safe with
torch's threads), writing each output to a temporary name beside it and
renaming it into place, so an interrupted batch never leaves a half-written
output, and a rerun skips the outputs that exist. A file that fails is
recorded with its error and the batch goes on. :func:`enhance_folder` is the
job of ``deepnmf enhance DIR -o OUTDIR --jobs N``, :func:`separate_folder` of
``deepnmf separate DIR ... -o OUTDIR --jobs N`` (one output folder per mixture).
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

from deepnmf._utils import check_positive_int
from deepnmf.callbacks import Callback, EpochInfo, notify
from deepnmf.exceptions import DataError, DeepNMFError

__all__ = ["BatchResult", "plan_outputs", "process_pool", "worker_died", "run_batch", "enhance_folder", "separate_folder"]

TMP_TAG = ".partial-"


@dataclass
class BatchResult:
    """What a batch did.

    Attributes
    ----------
    written : list of Path
        Outputs written by this run.
    skipped : list of Path
        Outputs that already existed (left untouched).
    failed : dict
        Input path -> one-line error, for the files that failed.
    seconds : float
        Wall-clock time of the batch.
    """

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-able counts, the failures and the time."""
        return {"written": len(self.written), "skipped": len(self.skipped), "failed": dict(self.failed),
                "n_failed": len(self.failed), "seconds": self.seconds}


def _expand(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """(file, its path relative to the output folder) for folders, files and ``.txt`` lists of paths."""
    from deepnmf.audio.io import list_audio_files

    pairs: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            pairs += [(f, f.relative_to(item)) for f in list_audio_files(item)]
        elif item.suffix.lower() in (".txt", ".lst") and item.is_file():
            listed = [Path(line.strip()) for line in item.read_text().splitlines() if line.strip()]
            pairs += [(p if p.is_absolute() else item.parent / p, Path(p.name)) for p in listed]
        elif item.is_file():
            pairs.append((item, Path(item.name)))
        else:
            raise DataError(f"{str(item)!r} is neither an audio file, a folder nor a .txt list of files")
    if not pairs:
        raise DataError(f"no audio files found in {', '.join(map(str, inputs))}")
    return pairs


def plan_outputs(inputs: Sequence[str | Path], out_dir: str | Path, *, suffix: str = ".wav") -> list[tuple[Path, Path]]:
    """(input file, output file) pairs; a folder's layout is kept under ``out_dir``.

    Raises
    ------
    DataError
        No inputs, a missing input, or two inputs that would write one output.
    """
    seen: dict[Path, Path] = {}
    plan = []
    for src, rel in _expand(inputs):
        dst = Path(out_dir) / rel.with_suffix(suffix)
        if dst in seen:
            raise DataError(f"{src} and {seen[dst]} would both be written to {dst}; give them in separate runs")
        seen[dst] = src
        plan.append((src, dst))
    return plan


def _temporary(dst: Path) -> Path:
    return dst.with_name(f"{dst.stem}{TMP_TAG}{os.getpid()}{dst.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _run_one(work: Callable[[Path, Path], None], src: Path, dst: Path) -> None:
    """``work(src, tmp)`` then rename ``tmp`` (a file, or a folder of outputs) to ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(dst)
    try:
        work(src, tmp)
        os.replace(tmp, dst)
    finally:
        _remove(tmp)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _worker_init(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # one thread per worker process: the pool is the parallelism
    # BLAS too, for the life of the worker: numpy's OpenBLAS keeps a thread busy-waiting after each call, and
    # with every core running a worker it takes their cycles (two one-thread VAE-NMF fits ran 3x slower)
    threadpool_limits(1)
    if initializer is not None:
        initializer(*initargs)


def process_pool(jobs: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes, started by ``spawn`` (safe with torch's threads), one torch thread each.

    Parameters
    ----------
    jobs : int
        Worker processes.
    initializer, initargs
        Run once in each worker after its thread count is set (load models there).

    Returns
    -------
    concurrent.futures.ProcessPoolExecutor
        Use it as a context manager; what it runs must be module-level functions (they are sent by name).
    """
    return ProcessPoolExecutor(max_workers=check_positive_int(jobs, "jobs"), mp_context=get_context("spawn"),
                               initializer=_worker_init, initargs=(initializer, initargs))


def worker_died(err: BaseException, hint: str = "") -> DeepNMFError:
    """The error to raise when a pool's worker process died (killed, for example for memory): one line, a hint."""
    return DeepNMFError(f"a worker process died ({err}){'; ' + hint if hint else ''}")


def _remove_stale(plan: list[tuple[Path, Path]]) -> None:
    for folder in {dst.parent for _, dst in plan if dst.parent.is_dir()}:
        for stale in folder.glob(f"*{TMP_TAG}*"):
            _remove(stale)


def run_batch(plan: list[tuple[Path, Path]], work: Callable[[Path, Path], None], *, jobs: int = 1,
              initializer: Callable[..., None] | None = None, initargs: tuple = (),
              callback: Callback | None = None) -> BatchResult:
    """Run ``work(src, tmp_dst)`` for every planned file whose output does not exist yet.

    Parameters
    ----------
    plan : list of (Path, Path)
        From :func:`plan_outputs`.
    work : callable
        A module-level function (it is sent to the workers) that reads
        ``src`` and writes its output to the path it is given; the batch
        renames that file into place once ``work`` returns.
    jobs : int
        Worker processes (1: in this process, no pool).
    initializer, initargs
        Run once in each worker before any file (load models there), or once
        here when ``jobs == 1`` and there is work to do.
    callback : callable, optional
        Receives an :class:`~deepnmf.callbacks.EpochInfo` (``stage="files"``,
        ``epoch`` files done of ``max_epochs``, ``message`` the file) per file.

    Returns
    -------
    BatchResult
    """
    jobs = check_positive_int(jobs, "jobs")
    t0, result = time.perf_counter(), BatchResult()
    _remove_stale(plan)
    todo = [(s, d) for s, d in plan if not d.exists()]
    result.skipped = [d for s, d in plan if d.exists()]

    def record(i: int, src: Path, dst: Path, err: BaseException | None) -> None:
        if err is None:
            result.written.append(dst)
        else:
            result.failed[str(src)] = _one_line(err)
        notify(callback, EpochInfo(epoch=i, max_epochs=len(todo), stage="files", elapsed=time.perf_counter() - t0,
                                   message=f"{src.name}: {'failed' if err else 'done'}"))

    if jobs == 1:
        if initializer is not None and todo:
            initializer(*initargs)
        for i, (src, dst) in enumerate(todo, 1):
            try:
                _run_one(work, src, dst)
                record(i, src, dst, None)
            except Exception as err:  # noqa: BLE001 - one file's failure is reported, the batch goes on
                record(i, src, dst, err)
    else:
        with process_pool(int(jobs), initializer, initargs) as pool:
            futures = {pool.submit(_run_one, work, s, d): (s, d) for s, d in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                src, dst = futures[fut]
                record(i, src, dst, fut.exception())
    result.seconds = time.perf_counter() - t0
    return result


# ------------------------------------------------------------ enhancement
_ENHANCER: dict[str, Any] = {}


def _load_enhancer_once(sources: dict[str, Any]) -> None:
    from deepnmf.pipelines.enhancement import load_enhancer

    _ENHANCER["enhancer"] = load_enhancer(**sources)


def _enhance_one(src: Path, dst: Path) -> None:
    from deepnmf.audio.io import load_audio, save_audio

    enh = _ENHANCER["enhancer"]
    y, sr = load_audio(src, sr=enh.stft.sr)
    save_audio(dst, enh.enhance(y), sr)


def enhance_folder(inputs: Sequence[str | Path], out_dir: str | Path, *, jobs: int = 1,
                   callback: Callback | None = None, **sources: Any) -> BatchResult:
    """Enhance every audio file of folders/files/lists into ``out_dir`` (WAV, same layout).

    Parameters
    ----------
    inputs : sequence of path
        Folders (searched recursively), audio files, or ``.txt`` files listing paths.
    out_dir : path
        Output folder; outputs that exist already are skipped.
    jobs : int
        Worker processes; each loads the models once.
    callback : callable, optional
        Per-file progress (see :func:`run_batch`).
    **sources
        The arguments of :func:`deepnmf.pipelines.enhancement.load_enhancer`
        (model folders and settings; none: the shipped models).

    Returns
    -------
    BatchResult
    """
    plan = plan_outputs(inputs, out_dir, suffix=".wav")
    sources = {k: (str(v) if isinstance(v, Path) else v) for k, v in sources.items()}
    if jobs > 1:
        _load_enhancer_once(sources)  # bad model options fail here with their message, not inside every worker
    return run_batch(plan, _enhance_one, jobs=jobs, initializer=_load_enhancer_once, initargs=(sources,),
                     callback=callback)


# ------------------------------------------------------------- separation
_SEPARATOR: dict[str, Any] = {}


def _load_separator(model_dirs: list[str], settings: dict[str, Any]) -> None:
    from deepnmf.io.model_files import load_model

    _SEPARATOR.clear()
    _SEPARATOR.update(models=[load_model(d) for d in model_dirs], settings=dict(settings))


def _separate_one(src: Path, dst: Path) -> None:
    from deepnmf.audio.io import check_not_silent, load_audio, save_audio
    from deepnmf.pipelines.separation import separate

    settings = _SEPARATOR["settings"]
    x, _ = load_audio(src, sr=settings["sr"])
    check_not_silent(x, name=str(src))
    estimates = separate(x, _SEPARATOR["models"], **settings)
    dst.mkdir(parents=True)
    for i, est in enumerate(estimates, start=1):
        save_audio(dst / f"source_{i}.wav", est, settings["sr"])


def separate_folder(inputs: Sequence[str | Path], out_dir: str | Path, models: Sequence[str | Path], *,
                    sr: int, n_fft: int, power: float = 0.5, jobs: int = 1,
                    callback: Callback | None = None) -> BatchResult:
    """Separate every mixture of folders/files/lists with saved source dictionaries.

    Parameters
    ----------
    inputs : sequence of path
        Mixtures: folders (searched recursively), audio files or ``.txt`` lists.
    out_dir : path
        ``out_dir/<mixture name>/source_1.wav, source_2.wav, ...`` (a folder
        per mixture, renamed into place when complete; existing ones skipped).
    models : sequence of path
        One dictionary model folder per source, in output order (NMF at
        ``n_fft``, or iN-NMF at any size).
    sr, n_fft, power
        As :func:`deepnmf.pipelines.separation.separate`.
    jobs : int
        Worker processes; each loads the dictionaries once.

    Returns
    -------
    BatchResult
    """
    plan = plan_outputs(inputs, out_dir, suffix="")
    model_dirs = [str(m) for m in models]
    settings = {"sr": int(sr), "n_fft": int(n_fft), "power": float(power)}
    if jobs > 1:
        _load_separator(model_dirs, settings)  # bad model folders fail here with their message, not in every worker
    return run_batch(plan, _separate_one, jobs=jobs, initializer=_load_separator, initargs=(model_dirs, settings),
                     callback=callback)
