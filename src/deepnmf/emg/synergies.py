"""Muscle synergies: extraction with any estimator, VAF, rank choice, cross-validation, matching.

Orientation: the envelope matrix ``X`` is ``(n_samples, n_channels)`` (time x
muscles), so an estimator's ``components_`` ``(n_synergies, n_channels)`` are
the synergy vectors and its activations ``(n_samples, n_synergies)`` are the
synergies' time courses: ``X ~ H @ W`` with ``W = components_``.

Variance accounted for (uncentred, divided by the data's energy):

.. math:: \\mathrm{VAF} = 1 - \\frac{\\lVert X - H W \\rVert_F^2}{\\lVert X \\rVert_F^2}

and per channel the same ratio taken over one column.

Any estimator with ``fit_transform``, ``transform`` and ``components_``
works: ``deepnmf.NMF``, ``deepnmf.VAENMF``, scikit-learn's ``NMF``...
"""
from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from deepnmf.callbacks import Callback, EpochInfo, notify
from deepnmf.exceptions import DataError, ParameterError

METHODS = ("nmf", "vae-nmf")
HELDOUT_METHODS = ("nnls", "transform")
RANK_RULES = ("threshold", "plateau", "linear-fit")

#: VAE-NMF settings for envelope data (8-16 channels, hundreds of samples): a
#: smaller encoder than the paper's 400-400 and a larger step (3e-3; 1e-2 fits
#: worse, 1e-3 needs twice the epochs), so that one fit takes seconds on a CPU;
#: no validation split (every repetition is needed)
VAE_DEFAULTS: dict[str, Any] = {
    "likelihood": "gaussian",
    "hidden": (64, 64),
    "max_epochs": 200,
    "batch_size": 128,
    "validation_fraction": 0.0,
    "early_stopping": False,
    "lr": 3e-3,
}

#: random initialisation so that restarts differ (NNDSVD is deterministic)
NMF_DEFAULTS: dict[str, Any] = {"init": "random", "max_iter": 500, "tol": 1e-5}


# ------------------------------------------------------------------ VAF
def vaf(X: np.ndarray, X_hat: np.ndarray) -> float:
    """Total uncentred VAF, ``1 - ||X - X_hat||^2 / ||X||^2``.

    Parameters
    ----------
    X, X_hat : np.ndarray [shape=(n_samples, n_channels)]
    """
    from deepnmf.metrics import vaf as _vaf

    return _vaf(X, X_hat)


def vaf_per_channel(X: np.ndarray, X_hat: np.ndarray) -> np.ndarray:
    """Uncentred VAF of each channel (column), shape ``(n_channels,)``.

    Parameters
    ----------
    X, X_hat : np.ndarray [shape=(n_samples, n_channels)]
    """
    from deepnmf.metrics import vaf as _vaf

    return _vaf(X, X_hat, per_feature=True)


# ----------------------------------------------------------- estimators
def make_estimator(method: str, n_synergies: int, *, random_state: Any = None, **params: Any) -> Any:
    """A fresh estimator for ``method`` (``"nmf"`` or ``"vae-nmf"``) with EMG-friendly defaults.

    Built by the package's factory, :func:`deepnmf.models.make_estimator`;
    ``params`` override :data:`NMF_DEFAULTS` / :data:`VAE_DEFAULTS`.
    """
    from deepnmf.models.factory import make_estimator as build

    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    defaults = NMF_DEFAULTS if method == "nmf" else VAE_DEFAULTS
    return build(method, n_synergies, **{**defaults, **params, "random_state": random_state})


def _factory(estimator: Any, n_synergies: int, params: dict) -> Callable[[int], Any]:
    """Turn ``estimator`` (method name, instance or callable) into ``seed -> fresh estimator``."""
    if isinstance(estimator, str):
        return lambda seed: make_estimator(estimator, n_synergies, random_state=seed, **params)
    if hasattr(estimator, "fit_transform"):
        if getattr(estimator, "n_components", n_synergies) != n_synergies:
            raise ParameterError(f"the estimator has n_components={estimator.n_components}, not {n_synergies}")

        def fresh(seed: int) -> Any:
            est = copy.deepcopy(estimator)
            if "random_state" in getattr(est, "get_params", dict)():
                est.set_params(random_state=seed)
            return est

        return fresh
    if callable(estimator):
        return estimator
    raise ParameterError("estimator must be 'nmf', 'vae-nmf', an estimator with fit_transform, or a callable seed -> estimator")


def _seeds(random_state: Any, n: int) -> list[int]:
    from deepnmf._utils import seed_from

    rng = np.random.default_rng(seed_from(random_state))
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]


# ------------------------------------------------------------ extraction
@dataclass
class SynergyFit:
    """Result of :func:`extract_synergies`.

    Attributes
    ----------
    synergies : np.ndarray [shape=(n_synergies, n_channels)]
        Synergy vectors, unit Euclidean norm, ordered by decreasing share of
        the reconstruction's energy.
    activations : np.ndarray [shape=(n_samples, n_synergies)]
        Time courses (scaled so that ``activations @ synergies`` is the model).
    vaf : float
        Total VAF of the best restart.
    vaf_per_channel : np.ndarray [shape=(n_channels,)]
    restart_vafs : list of float
        VAF of every restart, in order.
    estimator : object
        The fitted estimator of the best restart.
    """

    synergies: np.ndarray
    activations: np.ndarray
    vaf: float
    vaf_per_channel: np.ndarray
    restart_vafs: list[float] = field(default_factory=list)
    estimator: Any = None
    #: row norms of the estimator's components_ and the order applied (for its transform)
    component_norms: np.ndarray | None = None
    component_order: np.ndarray | None = None

    @property
    def reconstruction(self) -> np.ndarray:
        """``activations @ synergies``, shape ``(n_samples, n_channels)``."""
        return self.activations @ self.synergies


def check_envelopes(X: Any, n_synergies: int | None = None, *, name: str = "X") -> np.ndarray:
    """Validate an envelope matrix (2-D, finite, nonnegative, no silent channel) and a rank.

    Parameters
    ----------
    X : array-like [shape=(n_samples, n_channels)]

    Returns
    -------
    X : np.ndarray [shape=(n_samples, n_channels)], float64
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{name} must be a non-empty 2-D array (n_samples, n_channels), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise DataError(f"{name} contains NaN or infinite values")
    if X.min() < 0:
        raise DataError(f"{name} has negative values (min {X.min():.3g}); synergies need rectified envelopes")
    silent = np.flatnonzero(np.sum(X**2, axis=0) <= 0)
    if silent.size:
        raise DataError(f"{name}: channel(s) {', '.join(map(str, silent))} are all zero; VAF per channel is undefined, drop them")
    if n_synergies is not None:
        if isinstance(n_synergies, bool) or not isinstance(n_synergies, numbers.Integral) or n_synergies < 1:
            raise ParameterError(f"the number of synergies must be an integer >= 1, got {n_synergies!r}")
        if n_synergies > X.shape[1]:
            raise ParameterError(
                f"rank {n_synergies} is larger than the number of channels ({X.shape[1]}); "
                "choose at most one synergy per channel"
            )
        if n_synergies > X.shape[0]:
            raise DataError(f"{name} has {X.shape[0]} samples, fewer than the {n_synergies} synergies asked for")
    return X


def normalise_synergies(W: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm synergy vectors, scale moved into the activations, sorted by energy.

    Parameters
    ----------
    W : np.ndarray [shape=(n_synergies, n_channels)]
    H : np.ndarray [shape=(n_samples, n_synergies)]

    Returns
    -------
    W : np.ndarray [shape=(n_synergies, n_channels)]
    H : np.ndarray [shape=(n_samples, n_synergies)]
    """
    W, H, _, _ = _normalise(W, H)
    return W, H


def _normalise(W: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`normalise_synergies` plus the row norms and the order applied."""
    W = np.clip(np.asarray(W, dtype=np.float64), 0.0, None)
    H = np.clip(np.asarray(H, dtype=np.float64), 0.0, None)
    norms = np.linalg.norm(W, axis=1)
    norms[norms == 0] = 1.0
    W, H = W / norms[:, None], H * norms[None, :]
    order = np.argsort(-np.linalg.norm(H, axis=0), kind="stable")
    return W[order], H[:, order], norms, order


def _as_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _fit_once(make: Callable[[int], Any], X: np.ndarray, seed: int, rank: int) -> tuple[Any, np.ndarray, np.ndarray]:
    est = make(seed)
    H = _as_numpy(est.fit_transform(X))
    W = _as_numpy(est.components_)
    if W.shape != (rank, X.shape[1]) or H.shape != (X.shape[0], rank):
        raise ParameterError(f"the estimator returned components {W.shape} / activations {H.shape} for data {X.shape}")
    return est, W, H


def extract_synergies(
    X: Any,
    n_synergies: int,
    *,
    estimator: Any = "nmf",
    n_restarts: int = 5,
    random_state: Any = None,
    estimator_params: dict | None = None,
    callback: Callback | None = None,
) -> SynergyFit:
    """Extract muscle synergies, keeping the best of several restarts (highest VAF).

    Parameters
    ----------
    X : array-like [shape=(n_samples, n_channels)]
        Nonnegative envelopes (time x muscles).
    n_synergies : int
        Rank, at most the number of channels.
    estimator : {"nmf", "vae-nmf"}, estimator or callable
        A method name (see :func:`make_estimator`), an unfitted estimator
        (copied per restart with a new ``random_state``), or a callable
        ``seed -> estimator``.
    n_restarts : int
        Independent fits; the one with the highest VAF is kept.
    random_state : int, generator or None
        Seeds the restarts.
    estimator_params : dict, optional
        Extra constructor arguments when ``estimator`` is a method name.
    callback : callable, optional
        Called after each restart with an :class:`~deepnmf.callbacks.EpochInfo`:
        ``epoch`` restarts done of ``max_epochs``, ``train={"vaf": ...}`` of
        that restart, ``message="restart <i>"``.

    Returns
    -------
    SynergyFit
    """
    X = check_envelopes(X, n_synergies)
    if isinstance(n_restarts, bool) or not isinstance(n_restarts, numbers.Integral) or n_restarts < 1:
        raise ParameterError(f"n_restarts must be an integer >= 1, got {n_restarts!r}")
    make = _factory(estimator, n_synergies, dict(estimator_params or {}))
    best, vafs = None, []
    for i, seed in enumerate(_seeds(random_state, n_restarts)):
        est, W, H = _fit_once(make, X, seed, n_synergies)
        W, H, norms, order = _normalise(W, H)  # clipping makes a soft-constrained W exactly nonnegative
        score = vaf(X, H @ W)
        vafs.append(score)
        if best is None or score > best[0]:
            best = (score, est, W, H, norms, order)
        notify(callback, EpochInfo(i + 1, n_restarts, {"vaf": float(score)}, message=f"restart {i + 1}"))
    score, est, W, H, norms, order = best
    return SynergyFit(W, H, float(score), vaf_per_channel(X, H @ W), vafs, est, norms, order)


# ------------------------------------------------- frozen-synergy activations
def refit_activations(X: Any, synergies: "np.ndarray | SynergyFit", *, method: str = "nnls") -> np.ndarray:
    """Activations of new data with the synergies frozen.

    Parameters
    ----------
    X : array-like [shape=(n_samples, n_channels)]
    synergies : np.ndarray [shape=(n_synergies, n_channels)] or SynergyFit
        The frozen synergies (a :class:`SynergyFit` for ``method="transform"``).
    method : {"nnls", "transform"}
        ``"nnls"``: exact nonnegative least squares per sample, the
        activations that maximise the VAF for these synergies; the same
        yardstick for every estimator. ``"transform"``: the fitted
        estimator's own ``transform`` (multiplicative updates with a frozen
        dictionary for NMF, the encoder's mean for VAE-NMF).

    Returns
    -------
    H : np.ndarray [shape=(n_samples, n_synergies)]
        Activations for the (normalised, ordered) synergies: ``H @ W``
        reconstructs ``X``.
    """
    X = check_envelopes(X)
    fit = synergies if isinstance(synergies, SynergyFit) else None
    W = fit.synergies if fit is not None else np.asarray(synergies, dtype=np.float64)
    if W.ndim != 2 or W.shape[1] != X.shape[1]:
        raise DataError(f"synergies must be (n_synergies, {X.shape[1]}), got shape {W.shape}")
    if method == "nnls":
        from scipy.optimize import nnls

        return np.stack([nnls(W.T, row)[0] for row in X])
    if method == "transform":
        if fit is None or fit.estimator is None:
            raise ParameterError("method='transform' needs the SynergyFit that holds the fitted estimator")
        H = np.clip(_as_numpy(fit.estimator.transform(X)), 0.0, None)
        return (H * fit.component_norms[None, :])[:, fit.component_order]
    raise ParameterError(f"method must be one of {', '.join(HELDOUT_METHODS)}; got {method!r}")


# ------------------------------------------------------- cross-validation
@dataclass
class HeldOutResult:
    """Leave-one-repetition-out VAF (:func:`cross_validated_vaf`).

    Attributes
    ----------
    vaf : np.ndarray [shape=(n_repetitions,)]
        VAF of each held-out repetition (synergies fit on the others).
    vaf_per_channel : np.ndarray [shape=(n_repetitions, n_channels)]
    train_vaf : np.ndarray [shape=(n_repetitions,)]
        Training VAF of each fold.
    vaf_other : np.ndarray [shape=(n_repetitions,)]
        Held-out VAF with the other activation method (``"transform"`` when
        ``heldout="nnls"`` and the reverse), for comparison.
    """

    vaf: np.ndarray
    vaf_per_channel: np.ndarray
    train_vaf: np.ndarray
    vaf_other: np.ndarray | None = None


def cross_validated_vaf(
    repetitions: Sequence[Any],
    n_synergies: int,
    *,
    estimator: Any = "nmf",
    n_restarts: int = 3,
    heldout: str = "nnls",
    random_state: Any = None,
    estimator_params: dict | None = None,
    callback: Callback | None = None,
) -> HeldOutResult:
    """VAF on held-out repetitions: fit synergies on the others, refit only activations.

    Parameters
    ----------
    repetitions : sequence of array-like [shape=(n_samples_i, n_channels)]
        Envelopes of each repetition (cycle) of one movement; at least 2.
    n_synergies : int
    estimator, n_restarts, random_state, estimator_params
        As in :func:`extract_synergies`.
    heldout : {"nnls", "transform"}
        How activations of the held-out repetition are found (synergies
        frozen), see
        :func:`refit_activations`.
    callback : callable, optional
        Called after each fold with an :class:`~deepnmf.callbacks.EpochInfo`:
        ``epoch`` folds done of ``max_epochs``, ``train={"vaf": ...}`` of the
        held-out repetition, ``message="held-out repetition <k>"``.

    Returns
    -------
    HeldOutResult
    """
    reps = [check_envelopes(r, name=f"repetition {i + 1}") for i, r in enumerate(repetitions)]
    if len(reps) < 2:
        raise DataError(
            f"cross-validation needs at least 2 repetitions of the movement, got {len(reps)}; "
            "load more files of the subject or skip the held-out VAF"
        )
    if len({r.shape[1] for r in reps}) != 1:
        raise DataError("all repetitions must have the same channels")
    if heldout not in HELDOUT_METHODS:
        raise ParameterError(f"heldout must be one of {', '.join(HELDOUT_METHODS)}; got {heldout!r}")
    seeds = _seeds(random_state, len(reps))
    other = "transform" if heldout == "nnls" else "nnls"
    scores, per_channel, train, others = [], [], [], []
    for k, test in enumerate(reps):
        X_train = np.concatenate([r for i, r in enumerate(reps) if i != k], axis=0)
        fit = extract_synergies(X_train, n_synergies, estimator=estimator, n_restarts=n_restarts,
                                random_state=seeds[k], estimator_params=estimator_params)
        X_hat = refit_activations(test, fit, method=heldout) @ fit.synergies
        scores.append(vaf(test, X_hat))
        per_channel.append(vaf_per_channel(test, X_hat))
        train.append(fit.vaf)
        if hasattr(fit.estimator, "transform"):
            others.append(vaf(test, refit_activations(test, fit, method=other) @ fit.synergies))
        notify(callback, EpochInfo(k + 1, len(reps), {"vaf": float(scores[-1])}, message=f"held-out repetition {k + 1}"))
    other_vaf = np.array(others) if len(others) == len(reps) else None
    return HeldOutResult(np.array(scores), np.array(per_channel), np.array(train), other_vaf)


# --------------------------------------------------------------- rank choice
def vaf_curve(
    X: Any,
    ranks: Sequence[int] | None = None,
    *,
    estimator: Any = "nmf",
    n_restarts: int = 3,
    random_state: Any = None,
    estimator_params: dict | None = None,
    callback: Callback | None = None,
) -> dict[int, float]:
    """Best training VAF for each rank: the VAF-versus-rank curve.

    Parameters
    ----------
    X : array-like [shape=(n_samples, n_channels)]
    ranks : sequence of int, optional
        Ranks to try; by default ``1 .. n_channels``.
    estimator, n_restarts, random_state, estimator_params
        As in :func:`extract_synergies`.
    callback : callable, optional
        Called after each rank with an :class:`~deepnmf.callbacks.EpochInfo`:
        ``epoch`` ranks done of ``max_epochs``, ``train={"vaf": ...}``,
        ``message="rank <r>"``.

    Returns
    -------
    dict
        ``{rank: vaf}`` in increasing rank.
    """
    X = check_envelopes(X)
    ranks = list(range(1, X.shape[1] + 1)) if ranks is None else sorted(set(int(r) for r in ranks))
    seeds = _seeds(random_state, len(ranks))
    curve = {}
    for done, (r, seed) in enumerate(zip(ranks, seeds), start=1):
        est = estimator
        if hasattr(estimator, "set_params") and "n_components" in estimator.get_params():
            est = copy.deepcopy(estimator).set_params(n_components=r)
        curve[r] = extract_synergies(X, r, estimator=est, n_restarts=n_restarts, random_state=seed,
                                     estimator_params=estimator_params).vaf
        notify(callback, EpochInfo(done, len(ranks), {"vaf": float(curve[r])}, message=f"rank {r}"))
    return curve


def select_rank(
    curve: dict[int, float],
    *,
    rule: str = "threshold",
    threshold: float = 0.9,
    min_gain: float = 0.02,
    mse_tol: float = 1e-4,
) -> int:
    """Choose a rank from a VAF-versus-rank curve.

    Parameters
    ----------
    curve : dict
        ``{rank: vaf}``.
    rule : {"threshold", "plateau", "linear-fit"}
        ``"threshold"``: smallest rank with VAF >= ``threshold``.
        ``"plateau"``: smallest rank after which one more synergy adds less
        than ``min_gain``. ``"linear-fit"``: smallest rank from which the
        rest of the curve is a straight line (mean squared residual of a
        linear fit < ``mse_tol``).

    Returns
    -------
    int
        The chosen rank; the largest rank tried when no rank qualifies.
    """
    if not curve:
        raise ParameterError("the VAF curve is empty")
    ranks = sorted(curve)
    values = np.array([curve[r] for r in ranks])
    if rule == "threshold":
        if not 0 < threshold <= 1:
            raise ParameterError(f"threshold must be in (0, 1], got {threshold!r}")
        ok = np.flatnonzero(values >= threshold)
        return int(ranks[ok[0]]) if ok.size else int(ranks[-1])
    if rule == "plateau":
        gains = np.diff(values)
        ok = np.flatnonzero(gains < min_gain)
        return int(ranks[ok[0]]) if ok.size else int(ranks[-1])
    if rule == "linear-fit":
        for i, r in enumerate(ranks[:-1]):
            x, y = np.array(ranks[i:], dtype=float), values[i:]
            resid = y - np.polyval(np.polyfit(x, y, 1), x)
            if np.mean(resid**2) < mse_tol:
                return int(r)
        return int(ranks[-1])
    raise ParameterError(f"rule must be one of {', '.join(RANK_RULES)}; got {rule!r}")


# ----------------------------------------------------------------- matching
@dataclass
class SynergyMatch:
    """Optimal pairing of two synergy sets (:func:`match_synergies`).

    Attributes
    ----------
    reference_index, estimate_index : np.ndarray [shape=(n_pairs,)]
        Paired rows.
    cosine : np.ndarray [shape=(n_pairs,)]
        Cosine similarity of each pair.
    """

    reference_index: np.ndarray
    estimate_index: np.ndarray
    cosine: np.ndarray

    @property
    def mean_cosine(self) -> float:
        return float(self.cosine.mean())


def match_synergies(reference: Any, estimate: Any) -> SynergyMatch:
    """Pair synergies of two solutions to maximise the total cosine similarity.

    Parameters
    ----------
    reference : array-like [shape=(n_ref, n_channels)]
    estimate : array-like [shape=(n_est, n_channels)]
        With different counts, ``min(n_ref, n_est)`` pairs are formed.

    Returns
    -------
    SynergyMatch
    """
    from deepnmf.matching import cosine_assignment

    return SynergyMatch(*cosine_assignment(reference, estimate))
