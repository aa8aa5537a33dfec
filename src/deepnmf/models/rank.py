r"""Rank selection for NMF by cross-validation over held-out entries.

Orientation: ``X`` (n_samples, n_features) ~ ``W`` (n_samples, k) @ ``H`` (k, n_features).

For each of ``n_splits`` random splits a share ``holdout`` of the entries
of ``X`` is hidden through the mask of :class:`~deepnmf.NMF` (the model
never sees them, not even in its start), an NMF of every candidate rank is
fitted on the rest, and the divergence of the hidden entries from the
model is averaged over them. The held-out curve falls while the rank adds
structure and rises once the extra atoms fit noise; the chosen rank
minimises its mean over the splits, or with ``rule="1se"`` is the smallest
rank within one standard error of that minimum (Breiman's rule: the
simpler model when the data cannot tell them apart).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from deepnmf._utils import as_tensor, check_choice, check_finite_nonnegative, seed_from
from deepnmf.callbacks import Callback, stage_reporter
from deepnmf.divergences import beta_divergence
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.models.factory import make_estimator


@dataclass
class RankSelection:
    """Result of :func:`select_rank`.

    Attributes
    ----------
    ranks : list of int
        The candidate ranks, ascending.
    held_out : list of float
        Mean over splits of the mean divergence per held-out entry, per rank.
    held_out_std : list of float
        Its standard error over the splits.
    train : list of float
        Mean divergence per observed (training) entry, per rank.
    per_split : list of list of float
        ``[rank][split]`` held-out divergences.
    best_rank : int
        The chosen rank.
    rule : str
    """

    ranks: list[int]
    held_out: list[float]
    held_out_std: list[float]
    train: list[float]
    per_split: list[list[float]] = field(repr=False)
    best_rank: int
    rule: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for ``train.json``)."""
        return asdict(self)


def _check(X: Any, ranks: Sequence[int], holdout: float, n_splits: int, rule: str):
    Xt = as_tensor(X, name="X")[0]
    check_finite_nonnegative(Xt, "X")
    ranks = sorted({int(r) for r in ranks})
    if not ranks or ranks[0] < 1:
        raise ParameterError(f"ranks must be positive integers, got {ranks!r}")
    if not 0.0 < float(holdout) < 1.0:
        raise ParameterError(f"holdout must be a fraction in (0, 1), got {holdout!r}")
    if int(n_splits) < 1:
        raise ParameterError(f"n_splits must be >= 1, got {n_splits!r}")
    check_choice(rule, "rule", ("min", "1se"))
    return Xt, ranks


def _held_out_masks(shape: tuple[int, int], holdout: float, n_splits: int, random_state: Any, M0):
    """``n_splits`` boolean masks of hidden entries (each leaves every row and column some observed entry)."""
    rng = np.random.default_rng(seed_from(random_state))
    observed = None if M0 is None else M0.cpu().numpy() != 0
    masks = []
    for _ in range(n_splits):
        hidden = rng.random(shape) < holdout
        if observed is not None:
            hidden &= observed
        train = ~hidden if observed is None else observed & ~hidden
        if not (train.any(1).all() and train.any(0).all()) or not hidden.any():
            raise DataError("the held-out share leaves a row or column of X without observed entries (or hides "
                            "nothing); lower holdout or use more data")
        masks.append(hidden)
    return masks


def select_rank(
    X: Any,
    ranks: Sequence[int],
    *,
    beta_loss: str | float = "frobenius",
    holdout: float = 0.1,
    n_splits: int = 3,
    rule: str = "min",
    mask: Any = None,
    random_state: Any = None,
    estimator: str = "nmf",
    callback: Callback | None = None,
    **params: Any,
) -> RankSelection:
    r"""Choose the NMF rank by the divergence of randomly held-out entries.

    Parameters
    ----------
    X : array-like or torch.Tensor [shape=(n_samples, n_features)]
        Nonnegative data.
    ranks : sequence of int
        Candidate ranks.
    beta_loss : str or float
        Divergence that is fitted and measured on the held-out entries.
    holdout : float in (0, 1)
        Share of entries hidden in each split.
    n_splits : int
        Random splits; the curve is their mean.
    rule : {"min", "1se"}
        The rank of the lowest mean held-out divergence, or the smallest rank
        within one standard error of it.
    mask : array [shape=(n_samples, n_features)], optional
        Entries missing from the start (0); never held out or scored.
    random_state : int, generator or None
        Seeds the splits and the fits.
    estimator : {"nmf", "minibatch-nmf"}
        Built by :func:`deepnmf.models.make_estimator`.
    callback : callable, optional
        Gets the fits' :class:`~deepnmf.callbacks.EpochInfo` records with
        ``stage="rank K split S"``.
    **params
        Other constructor arguments (``max_iter``, ``tol``, ``init``, ``solver``...).

    Returns
    -------
    RankSelection

    Examples
    --------
    >>> import numpy as np
    >>> from deepnmf.models import select_rank
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((60, 3)) @ rng.random((3, 40)) + 0.01 * rng.random((60, 40))
    >>> select_rank(X, [1, 2, 3, 4, 6], random_state=0, max_iter=300).best_rank
    3
    """
    Xt, ranks = _check(X, ranks, holdout, n_splits, rule)
    M0 = None if mask is None else as_tensor(mask, name="mask", dtype=Xt.dtype)[0]
    hidden = _held_out_masks(tuple(Xt.shape), holdout, n_splits, random_state, M0)
    seed = seed_from(random_state)
    scores = np.zeros((len(ranks), n_splits))
    train = np.zeros((len(ranks), n_splits))
    for s, H_mask in enumerate(hidden):
        test = torch.from_numpy(H_mask.astype(np.float64)).to(Xt)
        fit_mask = (1.0 - test) if M0 is None else M0 * (1.0 - test)
        for r, k in enumerate(ranks):
            est = make_estimator(estimator, k, beta_loss=beta_loss, random_state=seed + s, **params)
            W = est.fit_transform(Xt, mask=fit_mask, callback=stage_reporter(callback, f"rank {k} split {s}"))
            model = torch.as_tensor(W) @ torch.as_tensor(est.components_)
            scores[r, s] = float(beta_divergence(Xt, model, beta_loss, mask=test, reduction="mean"))
            train[r, s] = float(beta_divergence(Xt, model, beta_loss, mask=fit_mask, reduction="mean"))
    return _choose(ranks, scores, train, rule)


def _choose(ranks: list[int], scores: np.ndarray, train: np.ndarray, rule: str) -> RankSelection:
    mean = scores.mean(1)
    stderr = scores.std(1, ddof=1) / np.sqrt(scores.shape[1]) if scores.shape[1] > 1 else np.zeros(len(ranks))
    best = int(np.argmin(mean))
    if rule == "1se":
        best = int(np.flatnonzero(mean <= mean[best] + stderr[best])[0])
    return RankSelection(ranks, mean.tolist(), stderr.tolist(), train.mean(1).tolist(), scores.tolist(),
                         ranks[best], rule)
