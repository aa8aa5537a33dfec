"""scikit-learn's estimator checks on deepnmf.NMF.

Expected failures and why (none today): any check listed in EXPECTED_FAILURES
is allowed to fail, with its reason; every other check must pass.
"""
import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from deepnmf import NMF

EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks([NMF(n_components=2, max_iter=2000, tol=1e-10, random_state=0)], expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)
