"""``deepnmf enhance`` (one file) and ``deepnmf experiment enhancement`` (the paper's tables).

Each command parses its options, makes one library call
(:func:`deepnmf.pipelines.enhancement.enhance_file`,
:func:`deepnmf.experiments.enhancement.run_enhancement`) and writes the outputs.
Options that take several values accept them space-separated after one flag
(``--snr -5 0 5 10``, ``--noise a.wav b.wav``), repeated flags, or commas.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperCommand

from deepnmf.cli.app import app, echo, experiment_app, handle_errors, progress_bar, progress_callback, write_json

_MULTI = ("--train-speech", "--test-speech", "--noise", "--snr", "--methods", "--seeds")


def _is_value(token: str) -> bool:
    """A token that is an option value, not a flag (negative numbers are values)."""
    if not token.startswith("-") or token == "-":
        return True
    try:
        float(token)
        return True
    except ValueError:
        return False


class MultiValueCommand(TyperCommand):
    """Rewrites ``--flag a b c`` into ``--flag a --flag b --flag c`` for the flags in ``_MULTI``."""

    def parse_args(self, ctx, args):  # noqa: D102 - click hook
        rewritten, current = [], None
        for token in args:
            if token in _MULTI:
                current = token
                continue
            if current is not None and _is_value(token):
                rewritten += [current, token]
                continue
            current = None
            rewritten.append(token)
        return super().parse_args(ctx, rewritten)


def _split(values: List[str]) -> List[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _widths(text: str) -> tuple[int, ...]:
    from deepnmf.exceptions import ParameterError

    try:
        widths = tuple(int(v) for v in _split([text]))
    except ValueError as err:
        raise ParameterError(f"--dnn-hidden takes comma-separated layer widths, got {text!r}") from err
    if not widths or min(widths) < 1:
        raise ParameterError(f"--dnn-hidden needs at least one positive width, got {text!r}")
    return widths


@experiment_app.command("enhancement", cls=MultiValueCommand)
@handle_errors
def enhancement_command(
    train_speech: List[Path] = typer.Option(..., "--train-speech", help="Folders/files of training speech (searched recursively; each folder of utterances is one speaker)."),
    test_speech: List[Path] = typer.Option(..., "--test-speech", help="Folders/files of test speech (other speakers)."),
    noise: List[str] = typer.Option(..., "--noise", help="Noise files, or 'babble' (constructed from training speakers)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: results.json/csv/md, sdr_improvement.png, run.json, models/."),
    snr: List[str] = typer.Option(["-5", "0", "5", "10"], "--snr", help="Input SNRs in dB."),
    methods: List[str] = typer.Option(["nmf+mu,vae-nmf+dnn,dnmf"], "--methods", help="DICTIONARY+ACTIVATIONS (nmf|vae-nmf + mu|dnn|encoder) or the baselines dnn-mask (DNN mask) and dnmf (discriminative NMF), comma-separated."),
    n_test: int = typer.Option(4, "--n-test", help="Test utterances per (noise, SNR) cell, round robin over the test speakers; files named as a training file (TIMIT's SA sentences, read by every speaker) only when the others run out."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Worker processes: the dictionaries, then each noise model's networks, train in parallel (one thread each), and the enhanced utterances are scored while the next are enhanced (1: all in this process)."),
    pooled: bool = typer.Option(False, "--pooled", help="One noise model from all noises pooled (the paper's Table 2)."),
    rank: int = typer.Option(40, "--rank", help="Atoms per dictionary."),
    power: Optional[float] = typer.Option(None, "--power", help="Gain exponent p in S^p/(S^p+N^p) (the paper: 2; default 0.5 for mu, 1 for dnn/encoder)."),
    floor: Optional[float] = typer.Option(None, "--floor", help="Lowest gain (default 0: none)."),
    exponent: Optional[float] = typer.Option(None, "--exponent", help="The gain raised to this power at enhancement time (default 2 for dnn and dnn-mask, 1 otherwise; chosen on validation speakers)."),
    sparsity: float = typer.Option(0.0, "--sparsity", help="L1 penalty on the activations (mu and network targets)."),
    vae_epochs: int = typer.Option(30, "--vae-epochs", help="VAE-NMF training epochs."),
    vae_likelihood: Optional[str] = typer.Option(None, "--vae-likelihood", help="VAE-NMF likelihood: poisson (default), gaussian or exponential."),
    vae_kl_warmup: Optional[int] = typer.Option(None, "--vae-kl-warmup", help="VAE-NMF: epochs over which the KL weight rises from 0 to 1 (default 10; 0: none)."),
    vae_kl_weight: Optional[float] = typer.Option(None, "--vae-kl-weight", help="VAE-NMF: the KL term's weight after the warm-up (default 1: the ELBO)."),
    vae_init: Optional[str] = typer.Option(None, "--vae-init", help="VAE-NMF decoder start: nmf (default: the NMF dictionary of the same frames) or random."),
    dnn_epochs: Optional[int] = typer.Option(None, "--dnn-epochs", help="Most epochs of the activation networks (default: the experiment's)."),
    dnn_copies: Optional[int] = typer.Option(None, "--dnn-copies", help="Training mixtures per training utterance for the activation networks (default: the experiment's)."),
    dnn_max_mixtures: Optional[int] = typer.Option(None, "--dnn-max-mixtures", help="At most this many training mixtures per activation network (default 1000; utterances drawn at random beyond it)."),
    dnn_hidden: Optional[str] = typer.Option(None, "--dnn-hidden", help="Hidden widths of the networks, comma-separated (recurrent: the first is dense)."),
    dnn_batch_size: Optional[int] = typer.Option(None, "--dnn-batch-size", help="Frames per Adam step of the networks (default: the experiment's)."),
    dnn_lr: Optional[float] = typer.Option(None, "--dnn-lr", help="Adam's learning rate for the networks (default: the experiment's)."),
    dnn_lr_schedule: Optional[str] = typer.Option(None, "--dnn-lr-schedule", help="The networks' learning rate over the epochs: constant or cosine (default: the experiment's)."),
    dnn_objective: Optional[str] = typer.Option(None, "--dnn-objective", help="+dnn networks: activations (Kang et al.'s targets), signal (masked magnitudes through the dictionaries) or phase (the same, phase-sensitive targets)."),
    dnn_noise_aware: Optional[bool] = typer.Option(None, "--dnn-noise-aware/--no-dnn-noise-aware", help="Feed the networks each utterance's noise estimate beside every frame (noise-aware training)."),
    dnn_noise_window: Optional[int] = typer.Option(None, "--dnn-noise-window", help="Noise-aware networks: frames on each side of a running noise estimate (default 0: one estimate per utterance)."),
    dnn_context_bands: Optional[int] = typer.Option(None, "--dnn-context-bands", help="Feed the networks the context frames and the noise estimate in this many mel-like bands (the current frame keeps every bin; default 64; 0: every bin)."),
    dnn_recurrent: Optional[str] = typer.Option(None, "--dnn-recurrent", help="gru or lstm: recurrent activation and mask networks (Huang et al.); bgru or blstm: bidirectional."),
    dnn_discriminative: Optional[float] = typer.Option(None, "--dnn-discriminative", help="Huang et al.'s discriminative weight for signal objectives."),
    dnn_loss_scale: Optional[str] = typer.Option(None, "--dnn-loss-scale", help="Signal objectives (+dnn and dnn-mask networks): the units of each training mixture in the loss, mixture, noise or speech (its RMS magnitude is 1), hence its weight; sdr: noise units, each mixture reweighted by its error as training goes (default mixture)."),
    mask_objective: Optional[str] = typer.Option(None, "--mask-objective", help="dnn-mask: mask (ratio-mask error), signal (Huang et al.) or phase (phase-sensitive signal approximation)."),
    mask_output: Optional[str] = typer.Option(None, "--mask-output", help="dnn-mask: sigmoid or joint (Huang et al.'s joint mask layer)."),
    mask_networks: Optional[int] = typer.Option(None, "--mask-networks", help="dnn-mask: an ensemble of this many networks, masks averaged (default 2)."),
    mask_copies: Optional[int] = typer.Option(None, "--mask-copies", help="dnn-mask: training mixtures per training utterance (default 10)."),
    mask_epochs: Optional[int] = typer.Option(None, "--mask-epochs", help="dnn-mask: training epochs (default 3)."),
    mask_max_mixtures: Optional[int] = typer.Option(None, "--mask-max-mixtures", help="dnn-mask: at most this many training mixtures per network (default 1000)."),
    dnmf_solver: str = typer.Option("mu", "--dnmf-solver", help="dnmf: mu (Weninger et al.'s multiplicative updates) or adam (projected Adam)."),
    dnmf_epochs: int = typer.Option(200, "--dnmf-epochs", help="dnmf: training epochs of the reconstruction dictionary."),
    dnmf_max_mixtures: Optional[int] = typer.Option(None, "--dnmf-max-mixtures", help="dnmf: at most this many training mixtures, one per utterance drawn at random (default 300)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    seeds: List[str] = typer.Option([], "--seeds", help="Run the whole experiment once per seed (e.g. 0 1 2) into OUT/seed-S and summarise how each method moves across the seeds in OUT/seeds.md (instead of --seed)."),
) -> None:
    """Run the VAE-NMF paper's speech-enhancement experiment and write its tables.

    Example: deepnmf experiment enhancement --train-speech train/ --test-speech test/ --noise factory.wav babble -o enh
    """
    from deepnmf.exceptions import ParameterError
    from deepnmf.experiments.enhancement import EnhancementConfig, parse_methods, run_enhancement

    try:
        snrs = [float(v) for v in _split(snr)]
    except ValueError as err:
        raise ParameterError(f"--snr takes numbers of dB, got {snr}") from err
    method_names = _split(methods)
    parse_methods(method_names)  # fail fast, before reading any audio
    given = {"dnn_epochs": dnn_epochs, "dnn_copies": dnn_copies, "dnn_max_mixtures": dnn_max_mixtures, "dnn_hidden": None if dnn_hidden is None else _widths(dnn_hidden),
             "dnn_batch_size": dnn_batch_size, "dnn_lr": dnn_lr, "dnn_lr_schedule": dnn_lr_schedule, "dnn_noise_aware": dnn_noise_aware,
             "dnn_noise_window": dnn_noise_window, "dnn_context_bands": dnn_context_bands,
             "dnn_objective": dnn_objective, "dnn_recurrent": dnn_recurrent, "dnn_discriminative": dnn_discriminative,
             "dnn_loss_scale": dnn_loss_scale,
             "mask_objective": mask_objective, "mask_output": mask_output, "mask_networks": mask_networks,
             "mask_copies": mask_copies, "mask_epochs": mask_epochs, "mask_max_mixtures": mask_max_mixtures,
             "dnmf_max_mixtures": dnmf_max_mixtures,
             "vae_likelihood": vae_likelihood, "vae_kl_warmup": vae_kl_warmup,
             "vae_kl_weight": vae_kl_weight, "vae_init": vae_init}
    networks = {k: v for k, v in given.items() if v is not None}  # the rest: EnhancementConfig's defaults (networks, VAE)
    cfg = EnhancementConfig(train_speech=train_speech, test_speech=test_speech, noises=_split(noise), out=out,
                            snrs=snrs, methods=method_names, n_test=n_test, jobs=jobs, pooled=pooled, n_components=rank,
                            power=power, floor=floor, exponent=exponent, sparsity=sparsity, vae_epochs=vae_epochs,
                            dnmf_solver=dnmf_solver, dnmf_epochs=dnmf_epochs,
                            random_state=seed, **networks)
    if seeds:
        return _run_seeds(cfg, seeds)
    progress, task = progress_bar(1, "enhancement")
    with progress:
        run_enhancement(cfg, progress=progress_callback(progress, task))
    echo(f"wrote {out / 'results.md'}, results.json, results.csv, sdr_improvement.png")
    typer.echo((out / "results.md").read_text())


def _run_seeds(cfg, seeds: List[str]) -> None:
    """``--seeds``: the experiment once per seed, then the summary across them (``seeds.md``)."""
    from deepnmf.exceptions import ParameterError
    from deepnmf.experiments.enhancement_seeds import check_seeds, run_enhancement_seeds

    try:
        numbers = [int(v) for v in _split(seeds)]
    except ValueError as err:
        raise ParameterError(f"--seeds takes integers, got {' '.join(seeds)}") from err
    chosen = check_seeds(numbers)
    progress, task = progress_bar(1, "enhancement")
    with progress:
        run_enhancement_seeds(cfg, chosen, progress=progress_callback(progress, task))
    out = Path(cfg.out)
    echo(f"wrote {out / 'seeds.md'}, seeds.json and one run per seed in {out}/seed-*")
    typer.echo((out / "seeds.md").read_text())


def _enhance_many(inputs: List[Path], out: Path, jobs: int, sources: dict, report: Optional[Path]) -> None:
    """``deepnmf enhance DIR -o OUTDIR``: every file, a progress bar, a failure summary; exit 1 if any failed."""
    from deepnmf.cli.app import exit_on_failures, reporting
    from deepnmf.pipelines.batch import enhance_folder

    with reporting("enhance files") as callback:
        result = enhance_folder(inputs, out, jobs=jobs, callback=callback, **sources)
    echo(f"wrote {len(result.written)} files to {out} ({len(result.skipped)} already there, skipped; "
         f"{len(result.failed)} failed) in {result.seconds:.1f} s")
    if report is not None:
        write_json(report, {"inputs": [str(p) for p in inputs], "out": str(out), "jobs": jobs, **result.summary()})
    exit_on_failures(result.failed)


@app.command("enhance")
@handle_errors
def enhance_command(
    noisy: List[Path] = typer.Argument(..., help="Noisy speech file (any rate; resampled to the models' rate), or folders / several files / .txt lists of files."),
    output: Path = typer.Option(..., "-o", "--out", "--output", help="Enhanced WAV file to write; with a folder or several inputs, the output folder."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes for folders of files (each loads the models once)."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Shipped speech dictionary: nmf (the default without model options) or vae-nmf."),
    speech_model: Optional[Path] = typer.Option(None, "--speech-model", help="Speech dictionary model folder."),
    noise_model: Optional[Path] = typer.Option(None, "--noise-model", help="Noise dictionary model folder."),
    network: Optional[Path] = typer.Option(None, "--network", help="Activation-network folder (implies --activations dnn)."),
    model: Optional[Path] = typer.Option(None, "--model", help="A saved enhancer folder (Enhancer, MaskEnhancer or DNMFEnhancer) instead of the three above."),
    mask_network: Optional[Path] = typer.Option(None, "--mask-network", help="A DNN mask baseline folder (no dictionaries)."),
    activations: Optional[str] = typer.Option(None, "--activations", help="mu, dnn, encoder or semi (learn free_noise noise atoms on the file; default: dnn with --network, semi with the shipped models, else mu)."),
    free_noise: Optional[int] = typer.Option(None, "--free-noise", help="semi: noise atoms learned on the noisy file (shipped models: 4)."),
    power: Optional[float] = typer.Option(None, "--power", help="Gain exponent p (default 2)."),
    floor: Optional[float] = typer.Option(None, "--floor", help="Lowest gain (default 0)."),
    exponent: Optional[float] = typer.Option(None, "--exponent", help="The gain raised to this power before the floor (default 1; the experiment uses 2 for networks); also for --mask-network."),
    sparsity: Optional[float] = typer.Option(None, "--sparsity", help="L1 penalty on the mu activations."),
    figure: Optional[Path] = typer.Option(None, "--figure", help="Also draw noisy/gain/enhanced spectrograms here (PNG)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write settings and timing as JSON here."),
) -> None:
    """Enhance one noisy speech file with speech and noise dictionaries.

    With no model options, the shipped speech and noise models are used, and
    noise atoms are learned on the noisy file itself (semi-supervised NMF).

    Example: deepnmf enhance noisy.wav -o clean.wav   (folders: deepnmf enhance noisy/ -o clean/ --jobs 2)
    """
    import numpy as np

    from deepnmf.audio.io import save_audio
    from deepnmf.pipelines.enhancement import enhance_file

    sources = dict(model=model, speech_model=speech_model, noise_model=noise_model, network=network,
                   mask_network=mask_network, pretrained=pretrained, activations=activations, power=power,
                   floor=floor, exponent=exponent, sparsity=sparsity, free_noise=free_noise)
    if len(noisy) > 1 or noisy[0].is_dir() or noisy[0].suffix.lower() in (".txt", ".lst"):
        return _enhance_many(noisy, output, jobs, sources, report)
    noisy = noisy[0]
    result = enhance_file(noisy, **sources)
    save_audio(output, result.enhanced, result.sr)
    echo(f"wrote {output} ({len(result.noisy) / result.sr:.1f} s of audio enhanced in {result.seconds:.2f} s, "
         f"activations={result.settings['activations']})")
    if figure is not None:
        from deepnmf.plotting.enhancement import plot_enhancement

        Y = result.noisy_magnitude()
        plot_enhancement(Y, result.gain, Y * result.gain, figure, sr=result.sr, hop=result.stft.hop)
    if report is not None:
        write_json(report, {"input": str(noisy), "output": str(output), "seconds": result.seconds,
                            "mean_gain": float(np.mean(result.gain)), **result.settings})
