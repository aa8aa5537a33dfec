"""scikit-learn's estimator checks on deepnmf.VAENMF (tiny network, two epochs).

Run in float64: in the default float32 the sample-order and subset invariance
checks see differences of one float32 ulp (about 1e-7 relative) from BLAS
blocking, which those checks' 1e-7 tolerance does not allow.
"""
import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from deepnmf import VAENMF

EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks(
    [VAENMF(n_components=2, hidden=(8,), max_epochs=2, dtype="float64", random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES,
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)
