"""Matching learned components to reference ones (cosine similarity, optimal assignment)."""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnmf.exceptions import DataError


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
    from scipy.optimize import linear_sum_assignment

    A = np.asarray(reference, dtype=np.float64)
    B = np.asarray(estimate, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
        raise DataError(f"cannot match components of shapes {A.shape} and {B.shape}")
    if B.shape[0] < A.shape[0]:
        raise DataError(f"{B.shape[0]} estimated components cannot cover {A.shape[0]} reference ones")
    An = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
    Bn = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-300)
    sim = An @ Bn.T
    rows, cols = linear_sum_assignment(-sim)
    order = np.empty(A.shape[0], dtype=int)
    order[rows] = cols
    return order, sim[np.arange(A.shape[0]), order]
