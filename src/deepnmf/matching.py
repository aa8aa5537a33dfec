"""Matching learned components to reference ones (cosine similarity, optimal assignment)."""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnmf.exceptions import DataError


def cosine_assignment(reference: Any, estimate: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one pairing of rows by cosine similarity (Hungarian algorithm).

    Parameters
    ----------
    reference : array [shape=(n_ref, n_features)]
    estimate : array [shape=(n_est, n_features)]

    Returns
    -------
    rows, cols : np.ndarray [shape=(min(n_ref, n_est),)]
        ``reference[rows[i]]`` is paired with ``estimate[cols[i]]``.
    cosines : np.ndarray [shape=(min(n_ref, n_est),)]

    Raises
    ------
    DataError
        Shapes that do not match, or an all-zero row (cosine undefined).
    """
    from scipy.optimize import linear_sum_assignment

    A = np.asarray(reference, dtype=np.float64)
    B = np.asarray(estimate, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
        raise DataError(f"cannot match components of shapes {A.shape} and {B.shape}")
    na, nb = np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)
    if np.any(na == 0) or np.any(nb == 0):
        raise DataError("a component is all zero; cosine similarity is undefined")
    sim = (A / na[:, None]) @ (B / nb[:, None]).T
    rows, cols = linear_sum_assignment(sim, maximize=True)
    return rows, cols, sim[rows, cols]


def match_components(reference: Any, estimate: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pair each reference row with a distinct estimated row, maximising total cosine similarity.

    Parameters
    ----------
    reference : array [shape=(n_ref, n_features)]
    estimate : array [shape=(n_est, n_features)], ``n_est >= n_ref``

    Returns
    -------
    order : np.ndarray [shape=(n_ref,)]
        ``estimate[order[i]]`` is matched to ``reference[i]``.
    cosines : np.ndarray [shape=(n_ref,)]
        Cosine similarity of each matched pair.
    """
    n_ref, n_est = np.shape(reference)[0], np.shape(estimate)[0]
    if n_est < n_ref:
        raise DataError(f"{n_est} estimated components cannot cover {n_ref} reference ones")
    rows, cols, cosines = cosine_assignment(reference, estimate)
    order = np.empty(n_ref, dtype=int)
    order[rows] = cols
    sims = np.empty(n_ref)
    sims[rows] = cosines
    return order, sims
