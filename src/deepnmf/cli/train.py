"""``deepnmf train``: learn a dictionary (NMF, VAE-NMF or iN-NMF) from audio files, folders or a ``.npy`` matrix.

Audio becomes a magnitude STFT (frames x bins, via :mod:`deepnmf.audio`); a
``.npy`` file must hold a nonnegative ``(n_samples, n_features)`` matrix.
iN-NMF needs the frequencies of its data, so it trains on audio only: on
the STFT grid (``--model implicit``) or on a point cloud of the
recordings, the union of an STFT at a quarter of ``--n-fft`` / ``--hop``,
one at ``--n-fft`` / ``--hop`` and a constant-Q transform
(``--model implicit-points``).
Writes the model folder (``weights.safetensors`` + ``config.json``), a
``train.json`` (settings, data summary, final loss, time) and figures of the
training curve and the dictionary.

Thin over :func:`deepnmf.pipelines.dictionary.learn_dictionary` and
:func:`deepnmf.pipelines.dictionary.write_dictionary`.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, List, Optional

import typer

from deepnmf.cli.app import COMPILE_HELP, app, echo, handle_errors, reporting
from deepnmf.exceptions import ParameterError


def _beta_option(value: Optional[str]) -> Any:
    """``--beta-loss``: a name (frobenius, kullback-leibler, itakura-saito) or a number."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _rank_option(value: str) -> int | str:
    """``--rank``: a positive integer or ``auto``."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"--rank must be an integer or auto, got {value!r}") from None


def _ranks_option(value: Optional[str]) -> list[int] | None:
    """``--ranks``: comma-separated integers."""
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"--ranks must be comma-separated integers, got {value!r}") from None


@app.command("train")
@handle_errors
def train(
    inputs: List[Path] = typer.Argument(..., help="Audio files or folders, or .npy matrices (n_samples x n_features)."),
    model: str = typer.Option("vae-nmf", "--model",
                              help="nmf | vae-nmf | implicit (iN-NMF on the STFT grid) | implicit-points "
                                   "(iN-NMF on a hybrid point cloud of the recordings)"),
    rank: str = typer.Option(..., "--rank", help="Number of dictionary atoms, or auto (NMF: chosen among --ranks by "
                                                 "the divergence of held-out entries)."),
    ranks: Optional[str] = typer.Option(None, "--ranks", help="--rank auto: comma-separated candidate ranks "
                                                              "(default 1,2,3,4,6,8,...,64 up to half the data's "
                                                              "smaller side)."),
    solver: str = typer.Option("auto", "--solver", help="NMF: auto (cd for frobenius, else mu) | cd | mu | newton-cd "
                                                        "(KL)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write (created)."),
    sr: int = typer.Option(16000, "--sr", help="Working sampling rate for audio."),
    n_fft: int = typer.Option(512, "--n-fft", help="STFT size."),
    hop: int = typer.Option(128, "--hop", help="STFT hop."),
    power: float = typer.Option(1.0, "--power", help="Spectrogram exponent: |STFT|**power."),
    max_epochs: int = typer.Option(200, "--max-epochs", help="VAE-NMF / iN-NMF epochs, NMF iterations."),
    likelihood: Optional[str] = typer.Option(None, "--likelihood",
                                             help="gaussian | poisson | exponential (NMF, iN-NMF: frobenius | KL | "
                                                  "IS); default gaussian for NMF, poisson (KL) for VAE-NMF and iN-NMF."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the training-curve and dictionary figures."),
    beta_loss: Optional[str] = typer.Option(None, "--beta-loss",
                                            help="NMF: frobenius | kullback-leibler | itakura-saito | any real beta "
                                                 "(overrides --likelihood)."),
    init: Optional[str] = typer.Option(None, "--init", help="NMF: random | nndsvd | nndsvda | nndsvdar. "
                                                             "VAE-NMF: random | nmf (the decoder starts at an NMF dictionary)."),
    kl_warmup: Optional[int] = typer.Option(None, "--kl-warmup", help="VAE-NMF: epochs over which the KL weight rises "
                                                                     "from 0 (default 0: none)."),
    kl_weight: Optional[float] = typer.Option(None, "--kl-weight", help="VAE-NMF: the KL term's weight after any "
                                                                       "warm-up (default 1: the ELBO; a beta-VAE otherwise)."),
    tol: float = typer.Option(1e-4, "--tol", help="NMF: stopping tolerance (0 runs every iteration)."),
    alpha_w: float = typer.Option(0.0, "--alpha-w", help="NMF: penalty weight on the activations."),
    alpha_h: float = typer.Option(0.0, "--alpha-h", help="NMF: penalty weight on the dictionary."),
    l1_ratio: float = typer.Option(0.0, "--l1-ratio", help="NMF: share of L1 in the penalties (0 = L2, 1 = L1)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="NMF: .npy mask of observed entries (1) and missing ones (0)."),
    fixed_components: Optional[Path] = typer.Option(None, "--fixed-components",
                                                    help="NMF: .npy atoms (n_fixed x n_features) held fixed."),
    compile_: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every",
                                         help="Write a training checkpoint into OUT/checkpoint/ every N epochs "
                                              "(iterations for NMF); 0: none."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint in OUT/checkpoint/ "
                                                        "(same inputs and options as the interrupted run)."),
    stream: bool = typer.Option(False, "--stream", help="vae-nmf | nmf (as MiniBatchNMF): read the recordings file "
                                                        "by file instead of loading the corpus into memory."),
    batch_size: int = typer.Option(256, "--batch-size", help="--stream: frames per training step."),
    shuffle_buffer: int = typer.Option(8192, "--shuffle-buffer", help="--stream: frames held for shuffling."),
    workers: int = typer.Option(0, "--workers", help="--stream: DataLoader worker processes reading the files."),
    distributed: bool = typer.Option(False, "--distributed", help="vae-nmf | implicit | nmf under torchrun "
                                                                  "(torchrun --nproc_per_node=N -m deepnmf train ...): "
                                                                  "the frames are split over the processes; rank 0 writes."),
) -> None:
    """Learn a dictionary from audio (magnitude STFT) or a matrix, save the model and train.json.

    Example: deepnmf train speech/ --model nmf --rank 40 -o speech-model
    """
    from deepnmf.pipelines.dictionary import learn_dictionary, write_dictionary

    nmf = {}
    if model == "nmf":  # the NMF-only options (other models never saw them)
        nmf = {"beta_loss": _beta_option(beta_loss), "init": init, "tol": tol, "alpha_W": alpha_w,
               "alpha_H": alpha_h, "l1_ratio": l1_ratio, "mask": mask, "fixed_components": fixed_components,
               "solver": solver}
    elif model == "vae-nmf":
        nmf = {k: v for k, v in {"init": init, "kl_warmup": kl_warmup, "kl_weight": kl_weight}.items() if v is not None}
    if model != "vae-nmf" and (kl_warmup is not None or kl_weight is not None):
        raise ParameterError(f"--kl-warmup and --kl-weight are VAE-NMF options; --model {model} has no KL term")
    if model not in ("nmf", "vae-nmf") and init is not None:
        raise ParameterError(f"--init is an NMF and VAE-NMF option; --model {model} has none")
    ckpt = {"checkpoint_dir": out / "checkpoint", "checkpoint_every": checkpoint_every, "resume": resume} \
        if checkpoint_every or resume else {}
    common = dict(model=model, rank=_rank_option(rank), likelihood=likelihood, max_epochs=max_epochs,
                  random_state=seed, device=device, sr=sr, n_fft=n_fft, hop=hop, power=power)
    scale = {"stream": stream, "distributed": distributed, "batch_size": batch_size, "shuffle_buffer": shuffle_buffer,
             "workers": workers}
    if stream or distributed:
        return _train_at_scale(list(inputs), out, figures, common, nmf, ckpt, scale)
    with reporting(model, max_epochs) as callback:
        estimator, report = learn_dictionary(list(inputs), ranks=_ranks_option(ranks), compile=compile_,
                                             callback=callback, **common, **nmf, **ckpt)
    write_dictionary(estimator, report, out, figures=figures)
    echo(f"saved {model} model to {out} ({estimator.n_iter_} epochs/iterations, {report['seconds']:.1f} s)")


def _train_at_scale(inputs: list, out: Path, figures: bool, common: dict, nmf: dict, ckpt: dict, scale: dict) -> None:
    """``--stream`` / ``--distributed``: :mod:`deepnmf.pipelines.scale`; under torchrun rank 0 alone reports and writes."""
    from deepnmf import distributed as D
    from deepnmf.pipelines.dictionary import write_dictionary
    from deepnmf.pipelines.scale import learn_dictionary_distributed, learn_dictionary_streamed

    if ckpt:
        raise ParameterError("--checkpoint-every/--resume do not combine with --stream or --distributed yet")
    if common["rank"] == "auto":
        raise ParameterError("--rank auto does not combine with --stream or --distributed: give a number of atoms")
    kept = ("beta_loss", "init", "tol", "kl_warmup", "kl_weight")
    kept += () if scale["stream"] else ("solver",)  # MiniBatchNMF has one solver
    extra = {k: v for k, v in nmf.items() if k in kept and v is not None}
    if scale["distributed"]:
        if scale["stream"]:
            raise ParameterError("give --stream or --distributed, not both (yet)")
        D.setup()
    with reporting(common["model"], common["max_epochs"]) if D.is_main() else contextlib.nullcontext() as callback:
        if scale["distributed"]:
            estimator, report = learn_dictionary_distributed(inputs, callback=callback, **common, **extra)
        else:
            estimator, report = learn_dictionary_streamed(
                inputs, callback=callback, batch_size=scale["batch_size"], shuffle_buffer=scale["shuffle_buffer"],
                workers=scale["workers"], **common, **extra)
    if D.is_main():
        write_dictionary(estimator, report, out, figures=figures)
        echo(f"saved {common['model']} model to {out} ({estimator.n_iter_} epochs/iterations, {report['seconds']:.1f} s)")
    D.teardown()
