"""Rank selection by held-out entries (deepnmf.models.select_rank) and ``deepnmf train --rank auto``."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepnmf.cli.main import app
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.models import select_rank


@pytest.fixture
def planted(rng):
    return rng.random((60, 3)) @ rng.random((3, 40)) + 0.01 * rng.random((60, 40))


def test_frobenius_recovers_the_planted_rank(planted):
    res = select_rank(planted, [1, 2, 3, 4, 6], random_state=0, max_iter=300)
    assert res.best_rank == 3 and res.ranks == [1, 2, 3, 4, 6]
    # the fit keeps improving with the rank, the held-out curve does not
    assert np.all(np.diff(res.train) <= 1e-9) and res.held_out[2] < res.held_out[1] < res.held_out[0]
    assert len(res.per_split) == 5 and len(res.per_split[0]) == 3


def test_kl_on_poisson_counts_recovers_the_planted_rank(rng):
    X = rng.poisson(20 * rng.random((80, 4)) @ rng.random((4, 50))).astype(float)
    res = select_rank(X, [2, 3, 4, 5, 6, 8], beta_loss="kullback-leibler", random_state=0, max_iter=400, tol=0)
    assert res.best_rank == 4
    assert res.held_out[-1] > res.held_out[2]  # overfitting shows on the hidden entries


def test_hidden_entries_never_reach_the_fit(planted, rng):
    a = select_rank(planted, [2, 3], random_state=1, max_iter=50, n_splits=2)
    b = select_rank(planted, [2, 3], random_state=1, max_iter=50, n_splits=2, mask=np.ones_like(planted))
    assert a.per_split == b.per_split and a.train == b.train
    missing = (rng.random(planted.shape) > 0.1).astype(float)
    c = select_rank(planted, [2, 3], random_state=1, max_iter=50, n_splits=2, mask=missing)
    assert c.best_rank in (2, 3) and np.isfinite(c.held_out).all()


def test_one_standard_error_rule_prefers_the_smaller_rank(planted):
    res = select_rank(planted, [3, 4, 5], random_state=0, max_iter=300, rule="1se")
    assert res.best_rank == 3 and res.rule == "1se"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"ranks": []}, ParameterError, "ranks must be positive"),
    ({"ranks": [2], "holdout": 1.0}, ParameterError, "holdout must be a fraction"),
    ({"ranks": [2], "rule": "best"}, ParameterError, "rule must be one of"),
    ({"ranks": [2], "holdout": 0.97}, DataError, "without observed entries"),
])
def test_bad_arguments(planted, kwargs, error, match):
    with pytest.raises(error, match=match):
        select_rank(planted, **kwargs)


def test_cli_train_rank_auto(tmp_path, planted):
    np.save(tmp_path / "X.npy", planted)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "X.npy"), "--model", "nmf", "--rank", "auto",
                                      "--ranks", "1,2,3,4,6", "--seed", "0", "--max-epochs", "300", "--no-figures",
                                      "--solver", "cd", "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m" / "train.json").read_text())
    assert report["rank_selection"]["best_rank"] == 3 and report["settings"]["rank"] == 3
    assert report["settings"]["params"]["solver"] == "cd"
    bad = CliRunner().invoke(app, ["train", str(tmp_path / "X.npy"), "--model", "vae-nmf", "--rank", "auto",
                                   "-o", str(tmp_path / "v")])
    assert bad.exit_code != 0 and "rank auto" in bad.output
