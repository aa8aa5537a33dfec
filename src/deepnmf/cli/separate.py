"""``deepnmf separate`` and the iN-NMF protocols ``deepnmf experiment transfer|separation``.

Thin over :func:`deepnmf.pipelines.separation.separate_with_examples` and the
runners of :mod:`deepnmf.experiments.transfer`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from deepnmf.cli.app import COMPILE_HELP, app, experiment_app, handle_errors, reporting, write_json


def _load(path: Path, sr: int):
    """A recording resampled to ``sr``; silent files are refused with their name."""
    from deepnmf.audio.io import check_not_silent, load_audio

    x, _ = load_audio(path, sr=sr)
    check_not_silent(x, name=str(path))
    return x


def _check_separate_options(model: str, n_examples: int, n_fft: int, train_n_fft: int) -> None:
    """The option errors of ``deepnmf separate``, before any file is read."""
    from deepnmf.exceptions import ParameterError
    from deepnmf.pipelines.separation import MODELS

    if model not in MODELS:
        raise ParameterError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    if n_examples < 2:
        raise ParameterError("give at least two --source-example recordings (one per source)")
    if model == "nmf" and train_n_fft != n_fft:
        raise ParameterError("NMF dictionaries only work at the size they were learned at: drop --train-n-fft or use --model implicit")


@app.command("separate")
@handle_errors
def separate_command(
    mixture: List[Path] = typer.Argument(..., help="Mono (or downmixed) recording of the mixture, or folders / several files / .txt lists of mixtures (then OUT/<name>/source_i.wav each)."),
    source_example: List[Path] = typer.Option(..., "--source-example", help="Example recording of one source; give one per source, in output order."),
    model: str = typer.Option("nmf", "--model", help="Dictionary model: nmf (learned at --n-fft) or implicit (learned once at --train-n-fft, sampled at --n-fft)."),
    n_fft: int = typer.Option(2000, "--n-fft", help="STFT size of the separation (hop n_fft/2, sqrt-Hann)."),
    train_n_fft: Optional[int] = typer.Option(None, "--train-n-fft", help="STFT size the dictionaries are learned at (default --n-fft; implicit only may differ)."),
    rank: int = typer.Option(20, "--rank", help="Atoms per source."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: source_1.wav, source_2.wav, ... and separation.json."),
    sr: int = typer.Option(16000, "--sr", help="Working sampling rate (files are resampled)."),
    power: float = typer.Option(0.5, "--power", help="Magnitude exponent p of the modelled spectrograms."),
    epochs: int = typer.Option(5000, "--epochs", help="Most training epochs of implicit dictionaries."),
    tol: float = typer.Option(1e-3, "--tol", help="Implicit: stop once the loss falls by less than this (relative) over 100 epochs; 0 runs every epoch."),
    iterations: int = typer.Option(500, "--iterations", help="Multiplicative-update iterations of NMF dictionaries."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    save_models: Optional[Path] = typer.Option(None, "--save-models", help="Also save each learned dictionary model in this folder."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    compile_: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes for folders of mixtures (the dictionaries are learned once)."),
) -> None:
    """Separate a mixture with one dictionary per source learned from example recordings.

    Example: deepnmf separate mix.wav --source-example a.wav --source-example b.wav -o separated
    """
    from deepnmf.audio.io import save_audio
    from deepnmf.pipelines.separation import separate_with_examples

    train_n_fft = train_n_fft or n_fft
    _check_separate_options(model, len(source_example), n_fft, train_n_fft)
    examples = [_load(path, sr) for path in source_example]
    learn = dict(sr=sr, model=model, rank=rank, power=power, random_state=seed, max_epochs=epochs, tol=tol,
                 max_iter=iterations, device=device, compile=compile_)
    if len(mixture) > 1 or mixture[0].is_dir() or mixture[0].suffix.lower() in (".txt", ".lst"):
        return _separate_many(mixture, out, examples, learn, dict(sr=sr, n_fft=n_fft, power=power), train_n_fft, jobs)
    mixture = mixture[0]
    x = _load(mixture, sr)
    with reporting("source 1") as callback:
        estimates, models = separate_with_examples(x, examples, n_fft=n_fft, train_n_fft=train_n_fft,
                                                   callback=callback, return_models=True, **learn)
    for i, est in enumerate(models if save_models is not None else [], start=1):
        est.save(save_models / f"source_{i}")
    written = [str(save_audio(out / f"source_{i}.wav", est, sr)) for i, est in enumerate(estimates, start=1)]
    write_json(out / "separation.json", {
        "mixture": str(mixture), "source_examples": [str(p) for p in source_example], "model": model,
        "n_fft": n_fft, "train_n_fft": train_n_fft, "rank": rank, "sr": sr, "power": power,
        "epochs": epochs if model == "implicit" else None, "tol": tol if model == "implicit" else None,
        "trained_epochs": [int(m.n_iter_) for m in models], "iterations": iterations if model == "nmf" else None,
        "seed": seed, "compile": compile_ if model == "implicit" else None, "outputs": written,
    })
    for path in written:
        typer.echo(path)


def _separate_many(mixtures: List[Path], out: Path, examples: list, learn: dict, settings: dict, train_n_fft: int,
                   jobs: int) -> None:
    """Folder mode: learn the dictionaries once into OUT/models, then separate every mixture with them."""
    from deepnmf.cli.app import echo, exit_on_failures
    from deepnmf.pipelines.batch import separate_folder
    from deepnmf.pipelines.separation import learn_source_models

    with reporting("source 1") as callback:
        models = learn_source_models(examples, n_fft=train_n_fft, callback=callback, **learn)
    folders = [est.save(out / "models" / f"source_{i}") for i, est in enumerate(models, start=1)]
    with reporting("separate files") as callback:
        result = separate_folder(mixtures, out, folders, jobs=jobs, callback=callback, **settings)
    echo(f"wrote {len(result.written)} separations to {out} ({len(result.skipped)} already there, skipped; "
         f"{len(result.failed)} failed) in {result.seconds:.1f} s")
    write_json(out / "separation.json", {"mixtures": [str(m) for m in mixtures], "models": [str(f) for f in folders],
                                          **settings, "jobs": jobs, **result.summary()})
    exit_on_failures(result.failed)


def _protocol_config(rank, train_n_fft, sizes, epochs, iterations, seed, model_dir, device, compile_=False, tol=0.0):
    from deepnmf.experiments.transfer import ProtocolConfig

    return ProtocolConfig(rank=rank, train_n_fft=train_n_fft, sizes=tuple(sizes), max_epochs=epochs, tol=tol,
                          nmf_iter=iterations, refit_iter=iterations, random_state=seed,
                          model_dir=model_dir, device=device, compile=compile_)


def _speakers(data: Optional[Path], max_speakers: Optional[int]):
    from deepnmf.experiments.transfer import timit_speakers, usable_speakers

    speakers = usable_speakers(timit_speakers(data))
    return speakers[:max_speakers] if max_speakers else speakers


_SIZES_HELP = "STFT sizes to evaluate (repeat the option)."


@experiment_app.command("transfer")
@handle_errors
def transfer_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (transfer.json, transfer.md, figures)."),
    data: Optional[Path] = typer.Option(None, "--data", help="TIMIT sample folder (default: shared data speech/timit-sample)."),
    max_speakers: Optional[int] = typer.Option(None, "--max-speakers", help="Use only the first N speakers."),
    size: List[int] = typer.Option([1000, 1500, 2000, 2500], "--size", help=_SIZES_HELP),
    train_n_fft: int = typer.Option(2000, "--train-n-fft"),
    rank: int = typer.Option(20, "--rank"),
    epochs: int = typer.Option(1000, "--epochs"),
    iterations: int = typer.Option(500, "--iterations"),
    seed: int = typer.Option(0, "--seed"),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Cache of trained models (reused when present)."),
    device: str = typer.Option("cpu", "--device"),
    compile_: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
) -> None:
    """Resolution transfer: iN-NMF trained at one STFT size vs KL-NMF fitted at each size (TIMIT).

    Example: deepnmf experiment transfer -o transfer --max-speakers 2
    """
    from deepnmf.experiments.transfer import resolution_transfer, transfer_table, write_transfer

    cfg = _protocol_config(rank, train_n_fft, size, epochs, iterations, seed, model_dir or out / "models", device,
                           compile_)
    speakers = _speakers(data, max_speakers)
    with reporting("transfer") as callback:
        result = resolution_transfer(speakers, cfg, progress=callback)
    write_transfer(result, out, speaker=speakers[0], cfg=cfg)
    typer.echo(transfer_table(result["summary"]))


@experiment_app.command("separation")
@handle_errors
def separation_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (separation.json, separation.md, figure)."),
    data: Optional[Path] = typer.Option(None, "--data", help="TIMIT sample folder (default: shared data speech/timit-sample)."),
    max_speakers: Optional[int] = typer.Option(None, "--max-speakers", help="Use only the first N speakers."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", help="Use only the first N speaker pairs."),
    size: List[int] = typer.Option([1000, 1500, 2000, 2500], "--size", help=_SIZES_HELP),
    train_n_fft: int = typer.Option(2000, "--train-n-fft"),
    rank: int = typer.Option(20, "--rank"),
    epochs: int = typer.Option(3000, "--epochs", help="iN-NMF training epochs (3000 brings it within 0.25 dB of NMF on TIMIT; the reference recipe used 1000)."),
    tol: float = typer.Option(0.0, "--tol", help="iN-NMF: stop once the loss falls by less than this (relative) over 100 epochs, within --epochs (deepnmf separate's default: 1e-3 within 5000)."),
    iterations: int = typer.Option(500, "--iterations"),
    seed: int = typer.Option(0, "--seed"),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Cache of trained models (reused when present)."),
    device: str = typer.Option("cpu", "--device"),
    compile_: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
) -> None:
    """Two-speaker separation at 0 dB: NMF refitted per STFT size vs iN-NMF trained once (TIMIT).

    Example: deepnmf experiment separation -o separation --max-pairs 1
    """
    from deepnmf.experiments.transfer import separation_table, two_speaker_separation, write_separation

    cfg = _protocol_config(rank, train_n_fft, size, epochs, iterations, seed, model_dir or out / "models", device,
                           compile_, tol)
    with reporting("separation") as callback:
        result = two_speaker_separation(_speakers(data, max_speakers), cfg, max_pairs=max_pairs, progress=callback)
    write_separation(result, out)
    typer.echo(separation_table(result["summary"]))
