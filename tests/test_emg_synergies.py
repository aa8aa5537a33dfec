"""Synergy extraction: VAF, planted synergies, restarts, frozen-synergy activations, CV, rank choice, matching."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepnmf.datasets.synthetic_emg import make_synthetic_emg
from deepnmf.emg.io import load_recording
from deepnmf.emg.preprocess import preprocess
from deepnmf.emg.synergies import (
    cross_validated_vaf,
    extract_synergies,
    match_synergies,
    normalise_synergies,
    refit_activations,
    select_rank,
    vaf,
    vaf_curve,
    vaf_per_channel,
)
from deepnmf.exceptions import DataError, ParameterError

FAST_NMF = {"max_iter": 300, "tol": 1e-5}


@pytest.fixture(scope="module")
def synthetic():
    """Planted synergies -> raw EMG -> envelopes (4 repetitions, 8 channels)."""
    syn = make_synthetic_emg(n_channels=8, n_synergies=4, n_repetitions=4, random_state=0)
    env = preprocess(syn.recording)
    reps = [env.segment_data(s) for s in env.segments]
    return syn, env, reps


def test_vaf_matches_the_naive_uncentred_formula(rng):
    X = rng.random((50, 6))
    Y = X + 0.1 * rng.standard_normal(X.shape)
    naive = 1 - sum((X[i, j] - Y[i, j]) ** 2 for i in range(50) for j in range(6)) / sum(X[i, j] ** 2 for i in range(50) for j in range(6))
    assert vaf(X, Y) == pytest.approx(naive)
    per = vaf_per_channel(X, Y)
    for j in range(6):
        assert per[j] == pytest.approx(1 - np.sum((X[:, j] - Y[:, j]) ** 2) / np.sum(X[:, j] ** 2))
    # uncentred: a constant offset the model misses still costs VAF relative to the energy,
    # and dividing by the reconstruction's energy instead would give a different number
    assert vaf(X, 0.5 * X) == pytest.approx(0.75)


def test_normalise_synergies_keeps_the_product(rng):
    W, H = rng.random((3, 5)) * 4, rng.random((20, 3))
    Wn, Hn = normalise_synergies(W, H)
    np.testing.assert_allclose(np.linalg.norm(Wn, axis=1), 1.0)
    np.testing.assert_allclose(Hn @ Wn, H @ W)
    norms = np.linalg.norm(Hn, axis=0)
    assert np.all(np.diff(norms) <= 0)  # ordered by energy


def test_planted_synergies_are_recovered(synthetic):
    syn, env, reps = synthetic
    X = np.concatenate(reps)
    fit = extract_synergies(X, 4, n_restarts=3, random_state=0, estimator_params=FAST_NMF)
    expected = syn.expected_synergies(env.meta["preprocessing"]["channel_scale"])
    match = match_synergies(expected, fit.synergies)
    assert match.mean_cosine >= 0.95
    assert fit.vaf > 0.97
    assert fit.synergies.min() >= 0 and fit.activations.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(fit.synergies, axis=1), 1.0)


def test_restarts_keep_the_best_and_differ(synthetic):
    _, _, reps = synthetic
    X = np.concatenate(reps)
    fit = extract_synergies(X, 3, n_restarts=4, random_state=1, estimator_params={"max_iter": 30, "tol": 0.0})
    assert len(fit.restart_vafs) == 4
    assert fit.vaf == max(fit.restart_vafs)
    assert len(set(np.round(fit.restart_vafs, 10))) > 1  # random initialisations differ
    assert fit.vaf == pytest.approx(vaf(X, fit.reconstruction))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_any_estimator_works_scikit_learn_agrees(synthetic):
    from sklearn.decomposition import NMF as SkNMF

    _, _, reps = synthetic
    X = np.concatenate(reps)
    ours = extract_synergies(X, 4, n_restarts=2, random_state=0, estimator_params=FAST_NMF)
    theirs = extract_synergies(X, 4, estimator=SkNMF(4, init="random", max_iter=500, tol=1e-6), n_restarts=2, random_state=0)
    assert theirs.vaf == pytest.approx(ours.vaf, abs=0.01)
    assert match_synergies(ours.synergies, theirs.synergies).mean_cosine > 0.98
    # a factory whose estimators have another rank is caught
    with pytest.raises(ParameterError, match="the estimator returned components"):
        extract_synergies(X, 4, estimator=lambda seed: SkNMF(3, init="random", random_state=seed, max_iter=50), n_restarts=1)


def test_nnls_activations_satisfy_the_kkt_conditions(rng):
    W = rng.random((3, 7))
    X = rng.random((25, 7))
    H = refit_activations(X, W)
    assert H.min() >= 0
    grad = (H @ W - X) @ W.T  # gradient of 0.5 ||X - H W||^2 with respect to H
    assert np.all(grad[H == 0] >= -1e-9)
    np.testing.assert_allclose(grad[H > 0], 0.0, atol=1e-8)


def test_transform_activations_use_the_estimator(synthetic):
    _, _, reps = synthetic
    X_train, X_test = np.concatenate(reps[:3]), reps[3]
    fit = extract_synergies(X_train, 4, n_restarts=1, random_state=0, estimator_params=FAST_NMF)
    H_mu = refit_activations(X_test, fit, method="transform")
    H_nnls = refit_activations(X_test, fit.synergies)
    # MU with a frozen dictionary approaches the exact NNLS optimum from below
    assert vaf(X_test, H_mu @ fit.synergies) <= vaf(X_test, H_nnls @ fit.synergies) + 1e-9
    assert vaf(X_test, H_mu @ fit.synergies) > vaf(X_test, H_nnls @ fit.synergies) - 0.02


def test_heldout_vaf_per_repetition(synthetic):
    _, _, reps = synthetic
    res = cross_validated_vaf(reps, 4, n_restarts=1, random_state=0, estimator_params=FAST_NMF)
    assert res.vaf.shape == (4,) and res.vaf_per_channel.shape == (4, 8)
    assert np.all(res.vaf > 0.9)
    # fixed synergies generalise to a new repetition but do not beat a fit on it
    assert res.vaf.mean() <= res.train_vaf.mean() + 0.01
    # the estimator's own transform (MU, dictionary frozen) never beats exact NNLS
    assert res.vaf_other.shape == (4,) and np.all(res.vaf_other <= res.vaf + 1e-9)
    with pytest.raises(DataError, match="cross-validation needs at least 2 repetitions of the movement, got 1"):
        cross_validated_vaf(reps[:1], 4)


def test_rank_larger_than_channel_count_is_rejected(synthetic):
    _, _, reps = synthetic
    with pytest.raises(ParameterError, match=r"rank 9 is larger than the number of channels \(8\)"):
        extract_synergies(reps[0], 9)
    with pytest.raises(ParameterError, match="method must be one of 'nmf', 'vae-nmf'|estimator must be"):
        extract_synergies(reps[0], 2, estimator=42)


def test_bad_envelopes_are_rejected(rng):
    X = rng.random((30, 4))
    X[:, 2] = 0.0
    with pytest.raises(DataError, match=r"channel\(s\) 2 are all zero"):
        extract_synergies(X, 2)
    with pytest.raises(DataError, match="negative values"):
        extract_synergies(-X - 1, 2)


def test_vaf_curve_rises_to_one(synthetic):
    _, _, reps = synthetic
    X = np.concatenate(reps)
    curve = vaf_curve(X, estimator_params=FAST_NMF, n_restarts=1, random_state=0)
    values = np.array(list(curve.values()))
    assert list(curve) == list(range(1, 9))
    assert np.all(np.diff(values) > -0.005)
    assert values[-1] > 0.999
    assert select_rank(curve, threshold=0.95) == 4  # four planted synergies


def test_select_rank_rules():
    curve = {1: 0.55, 2: 0.75, 3: 0.88, 4: 0.90, 5: 0.945, 6: 0.955, 7: 0.965, 8: 0.975}
    assert select_rank(curve, rule="threshold", threshold=0.9) == 4
    assert select_rank(curve, rule="threshold", threshold=0.99) == 8  # none reaches it: the largest
    # gains 0.2, 0.13, 0.02, 0.045, 0.01, ...: the first below 0.02 follows rank 5
    assert select_rank(curve, rule="plateau", min_gain=0.02) == 5
    # from rank 5 on the curve is exactly a straight line; from rank 4 it is not
    assert select_rank(curve, rule="linear-fit", mse_tol=1e-5) == 5
    with pytest.raises(ParameterError, match="rule must be one of"):
        select_rank(curve, rule="elbow")


def test_matching_agrees_with_brute_force(rng):
    A, B = rng.random((4, 8)), rng.random((4, 8))
    match = match_synergies(A, B)
    cos = (A / np.linalg.norm(A, axis=1, keepdims=True)) @ (B / np.linalg.norm(B, axis=1, keepdims=True)).T
    best = max(sum(cos[i, p[i]] for i in range(4)) for p in itertools.permutations(range(4)))
    assert match.cosine.sum() == pytest.approx(best)
    perm = rng.permutation(4)
    same = match_synergies(A, 3.0 * A[perm])
    np.testing.assert_allclose(same.cosine, 1.0)
    np.testing.assert_array_equal(perm[same.estimate_index], same.reference_index)


def test_real_gesture_rank4_vaf_and_heldout(data_dir):
    paths = [data_dir / "emg" / "uci-gestures" / f for f in ("1_raw_data_13-12_22.03.16.txt.gz", "2_raw_data_13-13_22.03.16.txt.gz")]
    env = preprocess(load_recording(paths, format="uci"))
    reps = [env.segment_data(s) for s in env.repetitions(3)]  # wrist flexion
    assert len(reps) == 4
    fit = extract_synergies(np.concatenate(reps), 4, n_restarts=2, random_state=0, estimator_params=FAST_NMF)
    assert fit.vaf >= 0.9
    res = cross_validated_vaf(reps, 4, n_restarts=1, random_state=0, estimator_params=FAST_NMF)
    assert res.vaf.shape == (4,) and np.all(res.vaf > 0.8)


def test_vae_nmf_recovers_planted_synergies(synthetic):
    syn, env, reps = synthetic
    X = np.concatenate(reps)
    # a single short VAE run can settle in a poor optimum (VAF ~0.93): restarts keep the best
    fit = extract_synergies(X, 4, estimator="vae-nmf", n_restarts=2, random_state=0, estimator_params={"max_epochs": 50})
    assert len(fit.restart_vafs) == 2
    expected = syn.expected_synergies(env.meta["preprocessing"]["channel_scale"])
    assert match_synergies(expected, fit.synergies).mean_cosine >= 0.95
    assert fit.vaf > 0.95
    # the encoder's activations, re-ordered and re-scaled like the synergies, give the training fit back
    H_enc = refit_activations(X, fit, method="transform")
    np.testing.assert_allclose(H_enc @ fit.synergies, fit.reconstruction, rtol=1e-4, atol=1e-6)
    # exact NNLS activations can only do better than the encoder's for the same synergies
    assert vaf(X, refit_activations(X, fit.synergies) @ fit.synergies) >= fit.vaf - 1e-9


def test_progress_records_carry_each_units_vaf(synthetic):
    """Restarts, folds and ranks report through EpochInfo: counted units and the VAF each one reached."""
    _, _, reps = synthetic
    X = np.concatenate(reps)
    infos = []
    fit = extract_synergies(X, 3, n_restarts=3, random_state=0, estimator_params=FAST_NMF, callback=infos.append)
    assert [(i.epoch, i.max_epochs, i.message) for i in infos] == [(k, 3, f"restart {k}") for k in (1, 2, 3)]
    assert [i.train["vaf"] for i in infos] == fit.restart_vafs
    infos.clear()
    held = cross_validated_vaf(reps, 3, n_restarts=1, random_state=0, estimator_params=FAST_NMF, callback=infos.append)
    assert [i.epoch for i in infos] == [1, 2, 3, 4] and [i.train["vaf"] for i in infos] == list(held.vaf)
    infos.clear()
    curve = vaf_curve(X, [1, 3], n_restarts=1, random_state=0, estimator_params=FAST_NMF, callback=infos.append)
    assert [(i.message, i.train["vaf"]) for i in infos] == [("rank 1", curve[1]), ("rank 3", curve[3])]


def test_make_estimator_is_the_factory_with_emg_defaults():
    from deepnmf.emg.synergies import NMF_DEFAULTS, VAE_DEFAULTS, make_estimator
    from deepnmf.models import make_estimator as factory

    nmf = make_estimator("nmf", 3, random_state=5, tol=1e-3)
    assert nmf.get_params() == factory("nmf", 3, **{**NMF_DEFAULTS, "tol": 1e-3}, random_state=5).get_params()
    vae = make_estimator("vae-nmf", 2)
    assert {k: vae.get_params()[k] for k in VAE_DEFAULTS} == VAE_DEFAULTS
    with pytest.raises(ParameterError, match="takes no parameter 'hidden'"):
        make_estimator("nmf", 3, hidden=(8,))
    with pytest.raises(ParameterError, match="method must be one of nmf, vae-nmf; got 'pca'"):
        make_estimator("pca", 3)
