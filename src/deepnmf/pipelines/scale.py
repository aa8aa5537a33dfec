"""Dictionaries from corpora larger than memory, and from many processes: ``deepnmf train --stream / --distributed``.

- **Streamed** (:func:`learn_dictionary_streamed`): the recordings are read
  file by file as :class:`~deepnmf.datasets.streaming.StreamingFrames`
  (``DataLoader`` workers optional); VAE-NMF trains on the stream through
  :func:`deepnmf.training.fit_module`, NMF as
  :class:`~deepnmf.models.minibatch.MiniBatchNMF` with ``partial_fit`` on
  each batch. Memory holds one recording per worker, the shuffle buffer and
  the model, whatever the corpus size.
- **Distributed** (:func:`learn_dictionary_distributed`, under ``torchrun``):
  VAE-NMF trains with ``DistributedDataParallel`` (each rank its block of
  every batch, replaying the one-process run); iN-NMF (grid) keeps a block
  of the frames per rank, the atom networks' gradient all-reduced; NMF is
  data-parallel
  (:func:`deepnmf.distributed.data_parallel_mu`: each rank holds a block of
  frames, the dictionary update's sums are all-reduced). Every rank returns
  the same dictionary; rank 0 alone writes it.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from deepnmf.callbacks import Callback, EpochInfo, Clock, notify, stage_reporter
from deepnmf.exceptions import ParameterError
from deepnmf.pipelines._common import send_notice
from deepnmf.pipelines.dictionary import DEFAULT_LIKELIHOOD, _paths, check_options, learn_dictionary, loss_params

STREAM_MODELS = ("vae-nmf", "nmf")
DISTRIBUTED_MODELS = ("vae-nmf", "implicit", "nmf")


def _stream(inputs: Any, *, sr: int, n_fft: int, hop: int, power: float, batch_size: int, shuffle_buffer: int,
            seed: int | None, workers: int):
    from torch.utils.data import DataLoader

    from deepnmf.datasets.streaming import StreamingFrames

    frames = StreamingFrames(_paths(inputs), sr=sr, n_fft=n_fft, hop=hop, power=power, batch_size=batch_size,
                             shuffle_buffer=shuffle_buffer, seed=0 if seed is None else int(seed))
    loader = DataLoader(frames, batch_size=None, num_workers=int(workers)) if workers else frames
    summary = {"kind": "audio-stream", "files": [str(f) for f in frames.files], "n_files": len(frames.files),
               "sr": sr, "n_fft": n_fft, "hop": hop, "power": power, "n_features": frames.n_features,
               "batch_size": batch_size, "shuffle_buffer": shuffle_buffer, "workers": int(workers)}
    return frames, loader, summary


def _minibatch_epochs(estimator: Any, frames: Any, loader: Any, max_epochs: int, callback: Callback | None) -> list[float]:
    """MiniBatchNMF on the stream: ``partial_fit`` per batch; per epoch the frame-weighted mean of the
    batch costs ``partial_fit`` records (scikit-learn's: divergence and penalties per frame)."""
    clock, curve = Clock(), []
    for epoch in range(1, max_epochs + 1):
        frames.set_epoch(epoch - 1)
        total, count = 0.0, 0
        for batch in loader:
            estimator.partial_fit(batch.numpy())
            total += float(estimator.loss_curve_[-1]) * batch.shape[0]
            count += batch.shape[0]
        curve.append(total / max(count, 1))
        if notify(callback, EpochInfo(epoch, max_epochs, {"loss": curve[-1]}, elapsed=clock())):
            break
    return curve


def learn_dictionary_streamed(inputs: Any, *, rank: int, model: str = "vae-nmf", likelihood: str | None = None,
                              max_epochs: int = 20, random_state: int | None = None, device: str = "cpu",
                              sr: int = 16000, n_fft: int = 512, hop: int = 128, power: float = 1.0,
                              batch_size: int = 256, shuffle_buffer: int = 8192, workers: int = 0,
                              callback: Callback | None = None, **params: Any) -> tuple[Any, dict[str, Any]]:
    """Learn a dictionary from audio files read lazily (the corpus never sits in memory).

    Parameters
    ----------
    inputs : path or sequence of paths
        Audio files or folders (searched recursively).
    rank, model, likelihood, max_epochs, random_state, device, sr, n_fft, hop, power, **params
        As :func:`deepnmf.pipelines.dictionary.learn_dictionary`; ``model``
        is ``"vae-nmf"`` or ``"nmf"`` (trained as MiniBatchNMF).
    batch_size, shuffle_buffer, workers
        Frames per step, frames held for shuffling, ``DataLoader`` worker processes (0: read in this process).

    Returns
    -------
    estimator : VAENMF or MiniBatchNMF (fitted)
    report : dict
        As :func:`~deepnmf.pipelines.dictionary.learn_dictionary`'s, with ``data.kind == "audio-stream"``.
    """
    from deepnmf.models.factory import make_estimator

    if model not in STREAM_MODELS:
        raise ParameterError(f"--stream trains {' or '.join(STREAM_MODELS)}; got model {model!r}")
    likelihood = likelihood or DEFAULT_LIKELIHOOD.get(model, "gaussian")
    check_options(model, likelihood, rank, max_epochs)
    frames, loader, summary = _stream(inputs, sr=sr, n_fft=n_fft, hop=hop, power=power, batch_size=batch_size,
                                      shuffle_buffer=shuffle_buffer, seed=random_state, workers=workers)
    name = "minibatch-nmf" if model == "nmf" else model
    length = {"max_iter": 1} if model == "nmf" else {"max_epochs": max_epochs}
    estimator = make_estimator(name, rank, **{**loss_params(name, likelihood, params.pop("beta_loss", None)),
                                              **length, "random_state": random_state, "device": device, **params})
    send_notice(callback, f"training {model} (rank {rank}) on a stream of {summary['n_files']} files", stage=model)
    start, report = time.perf_counter(), stage_reporter(callback, model)
    if model == "nmf":
        curve = _minibatch_epochs(estimator, frames, loader, max_epochs, report)
        estimator.n_iter_, estimator.loss_curve_ = len(curve), curve  # passes over the stream, as scikit-learn counts
        final, n_iter = {"objective": curve[-1]}, len(curve)
    else:
        estimator.fit(loader, callback=report)
        final, n_iter = {k: v[-1] for k, v in estimator.history_.items()}, int(estimator.n_iter_)
    settings = {"rank": rank, "max_epochs": max_epochs, "likelihood": likelihood, "seed": random_state,
                "device": device, "stream": True, "params": estimator._json_params()}
    return estimator, {"model": model, "settings": settings, "data": summary, "n_iter": n_iter, "final": final,
                       "seconds": round(time.perf_counter() - start, 3)}


def _nmf_data_parallel(estimator: Any, X: np.ndarray, callback: Callback | None) -> dict[str, Any]:
    """Fit ``estimator`` (an unfitted NMF) with this rank's block of ``X``'s rows; sets its fitted attributes.

    Every rank computes the same start from the whole matrix (the estimator's
    own initialisation), keeps its rows, and runs the data-parallel solver
    that matches ``solver`` (HALS for ``cd``/``auto`` on Frobenius,
    multiplicative updates for ``mu``).
    """
    from deepnmf.distributed import data_parallel_hals, data_parallel_mu, row_block

    Xt, kind = estimator._prepare_X(X, reset=True)
    k = estimator._check_params(*Xt.shape)
    if estimator.alpha_W or estimator.alpha_H not in (0, 0.0, "same"):
        raise ParameterError("distributed NMF takes no penalties yet: drop --alpha-w/--alpha-h")
    W0, H0, _ = estimator._initial_factors(Xt, k, None, None, None)
    rows = row_block(Xt.shape[0])
    common = dict(max_iter=int(estimator.max_iter), tol=float(estimator.tol), callback=callback)
    if estimator._solver == "mu":
        res = data_parallel_mu(Xt[rows].contiguous(), W0[rows].contiguous(), H0, beta=estimator.beta_, **common)
    elif estimator._solver == "cd" or (estimator._solver == "auto" and estimator.beta_ == 2.0):
        res = data_parallel_hals(Xt[rows].contiguous(), W0[rows].contiguous(), H0, n_samples=Xt.shape[0],
                                 inner=None if estimator.solver == "auto" else 1, **common)
    else:
        raise ParameterError(f"solver {estimator.solver!r} does not run distributed; use --solver mu or cd")
    estimator._H, estimator._input_kind, estimator._n_components = res.H, kind, res.H.shape[0]
    estimator.n_components_, estimator.n_iter_, estimator.loss_curve_ = res.H.shape[0], res.n_iter, res.losses
    estimator.reconstruction_err_ = float(np.sqrt(max(2.0 * res.losses[-1], 0.0)))
    estimator.components_ = estimator._output(res.H, kind)
    return {"final": {"objective": float(res.losses[-1]), "reconstruction_err": estimator.reconstruction_err_}}


def learn_dictionary_distributed(inputs: Any, *, rank: int, model: str = "vae-nmf", max_epochs: int = 200,
                                 random_state: int | None = None, callback: Callback | None = None,
                                 **options: Any) -> tuple[Any, dict[str, Any]]:
    """:func:`deepnmf.pipelines.dictionary.learn_dictionary` over the ranks of a ``torchrun`` launch.

    Joins the process group (:func:`deepnmf.distributed.setup`) when it is
    not joined yet. VAE-NMF: ``learn_dictionary`` itself, whose training
    loop splits every batch over the ranks (``DistributedDataParallel``).
    iN-NMF: ``learn_dictionary`` too, each rank training on a block of the
    frames (:class:`~deepnmf.models.implicit.ImplicitNMF` in a process group). NMF: each rank keeps a block of the
    frames and the dictionary updates are all-reduced. Each rank reads the
    inputs (give the ranks the same files); every rank returns the same
    dictionary and a report with ``distributed.world_size``.

    Parameters
    ----------
    inputs, rank, model, max_epochs, random_state, callback, **options
        As :func:`~deepnmf.pipelines.dictionary.learn_dictionary`.
    """
    from deepnmf import distributed as D
    from deepnmf.models.factory import make_estimator
    from deepnmf.pipelines.dictionary import _run_params, load_training_data

    if model not in DISTRIBUTED_MODELS:
        raise ParameterError(f"--distributed trains {', '.join(DISTRIBUTED_MODELS)}; got model {model!r}")
    if options.get("checkpoint_dir") is not None:
        raise ParameterError("checkpoints are not written in distributed training yet: drop --checkpoint-every/--resume")
    D.setup()
    info = {"world_size": D.world_size(), "backend": str(torch.distributed.get_backend())}
    if model != "nmf":  # the estimators split the frames themselves inside the process group
        est, report = learn_dictionary(inputs, rank=rank, model=model, max_epochs=max_epochs,
                                       random_state=random_state, callback=callback, **options)
        return est, {**report, "distributed": info}
    audio = {k: options.pop(k) for k in ("sr", "n_fft", "hop", "power") if k in options}
    likelihood = options.pop("likelihood", None) or DEFAULT_LIKELIHOOD["nmf"]
    check_options(model, likelihood, rank, max_epochs)
    data = load_training_data(inputs, model="nmf", **audio)
    run = _run_params("nmf", max_epochs, random_state, options.pop("device", "cpu"), False)
    estimator = make_estimator("nmf", rank, **{**loss_params("nmf", likelihood, options.pop("beta_loss", None)),
                                               **run, **{k: v for k, v in options.items() if v is not None}})
    send_notice(callback, f"training nmf (rank {rank}) on {data.describe()} over {info['world_size']} processes",
                stage=model)
    start = time.perf_counter()
    result = _nmf_data_parallel(estimator, data.X, stage_reporter(callback, model))
    settings = {"rank": rank, "max_epochs": max_epochs, "likelihood": likelihood, "seed": random_state,
                "params": estimator._json_params()}
    return estimator, {"model": model, "settings": settings, "data": data.summary, "n_iter": int(estimator.n_iter_),
                       **result, "seconds": round(time.perf_counter() - start, 3), "distributed": info}
