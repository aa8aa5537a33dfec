"""The enhancement experiment's models fitted by worker processes (``EnhancementConfig.jobs`` above 1).

:func:`fit_in_workers` runs two stages on a pool of spawned processes
(:func:`deepnmf.pipelines.batch.process_pool`, one torch thread each), each
job fitting models into the experiment's cache (``OUT/models``) exactly as
:func:`~deepnmf.experiments.enhancement.build_models` would in this process:

1. every dictionary (speech and each noise model, NMF and VAE-NMF) is one job,
   the VAE-NMF ones first (they take longest);
2. the networks (activation networks, the mask ensemble, DNMF) of each noise
   model are one job, so that they still share their training matrix.

``build_models`` then loads everything from the cache. Each model is seeded
as in one process; only the floating-point rounding of one thread differs.
On two cores two one-thread processes do more work than one process of two
threads: the VAE-NMF steps are short and synchronise often, and two
512-frame network steps on one thread each take 25 ms where one step on two
threads takes 16 ms.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from deepnmf.callbacks import Callback, EpochInfo, notify

__all__ = ["fit_in_workers"]

_WORKER: dict[str, Any] = {}


def _keep_corpus(corpus: Any) -> None:
    """Worker initializer: the experiment's loaded signals, sent once per worker."""
    _WORKER["corpus"] = corpus


def _dictionary_job(cfg: Any, kind: str, group: str, names: list[str] | None) -> float:
    from deepnmf.experiments.enhancement import dictionary_model

    t0 = time.perf_counter()
    dictionary_model(_WORKER["corpus"], cfg, kind, group, names)
    return time.perf_counter() - t0


def _networks_job(cfg: Any, methods: list[tuple[str, str]], group: str) -> float:
    from deepnmf.experiments.enhancement import build_models

    t0 = time.perf_counter()
    build_models(_WORKER["corpus"], cfg, methods, groups=[group])  # the dictionaries are in the cache by now
    return time.perf_counter() - t0


def fit_in_workers(corpus: Any, cfg: Any, methods: list[tuple[str, str]], progress: Callback | None = None) -> None:
    """Fit the experiment's models into its cache with ``cfg.jobs`` worker processes.

    Parameters
    ----------
    corpus : Corpus
        The loaded signals (:func:`~deepnmf.experiments.enhancement.load_corpus`), sent to each worker.
    cfg : EnhancementConfig
    methods : list of (str, str)
        From :func:`~deepnmf.experiments.enhancement.parse_methods`.
    progress : callable, optional
        Receives ``stage="workers"`` records, one per finished job.

    Notes
    -----
    With a single noise model (``pooled``) its networks are left to the calling process, whose threads all
    serve that one job. A job's error is raised here, as it would be in one process.
    """
    from deepnmf.experiments.enhancement import (NETWORK_ACTIVATIONS, _noise_groups, dictionary_kinds,
                                                 dictionary_label)
    from deepnmf.pipelines.batch import process_pool, worker_died

    groups = _noise_groups(corpus, cfg)
    kinds = sorted(dictionary_kinds(methods), key=lambda k: k != "vae-nmf")  # the longest jobs first
    dictionaries = [(k, g, n) for k in kinds for g, n in [("speech", None), *groups.items()]]
    networks = list(groups) if len(groups) > 1 and any(a in NETWORK_ACTIVATIONS for _, a in methods) else []
    total, done = len(dictionaries) + len(networks), 0
    with process_pool(cfg.jobs, _keep_corpus, (corpus,)) as pool:
        try:
            done = _wait([pool.submit(_dictionary_job, cfg, *d) for d in dictionaries],
                         [dictionary_label(*d) for d in dictionaries], 0, total, progress)
            if networks:
                _wait([pool.submit(_networks_job, cfg, methods, g) for g in networks],
                      [f"networks ({g})" for g in networks], done, total, progress)
        except BaseException as err:
            pool.shutdown(wait=False, cancel_futures=True)  # the jobs not started; running ones end first
            if isinstance(err, BrokenProcessPool):
                raise worker_died(err, "if it ran out of memory, run again with --jobs 1 (the models fitted so "
                                       "far are cached)") from err
            raise


def _wait(futures: list[Future], labels: list[str], done: int, total: int, progress: Callback | None) -> int:
    """Wait for a stage's jobs, reporting each as it ends; raise the first error. Returns the jobs done so far."""
    label = {id(f): text for f, text in zip(futures, labels)}
    for fut in as_completed(futures):
        seconds = fut.result()
        done += 1
        notify(progress, EpochInfo(done, total, stage="workers", message=f"{label[id(fut)]}: {seconds:.0f} s"))
    return done
