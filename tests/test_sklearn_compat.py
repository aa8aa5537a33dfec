"""scikit-learn's own expectations, run against deepnmf.

1. ``parametrize_with_checks``: scikit-learn's estimator checks on
   ``deepnmf.NMF`` and ``deepnmf.MiniBatchNMF``.
2. scikit-learn's test module for NMF (``sklearn/decomposition/tests/test_nmf.py``
   of the installed scikit-learn) is read and executed here with its one
   import of ``NMF``, ``MiniBatchNMF`` and ``non_negative_factorization``
   pointing at deepnmf's; every test function it defines is collected as a
   test of this module under a ``test_sklearn_`` prefix, with scikit-learn's
   own parametrisations. Only tests of scikit-learn-private helpers (they
   never touch an estimator) are skipped, each with its reason.
"""
import sys
import types
import warnings
from pathlib import Path

import pytest
import sklearn
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepnmf import NMF, MiniBatchNMF

EXPECTED_FAILURES: dict[str, str] = {}

#: scikit-learn tests of its private helpers (``_initialize_nmf``, ``_beta_divergence``,
#: ``_special_sparse_dot``); they call no estimator, so they say nothing about deepnmf's
PRIVATE = {
    "test_initialize_nn_output": "tests sklearn's private _initialize_nmf only",
    "test_initialize_close": "tests sklearn's private _initialize_nmf only",
    "test_initialize_variants": "tests sklearn's private _initialize_nmf only",
    "test_beta_divergence": "tests sklearn's private _beta_divergence only",
    "test_special_sparse_dot": "tests sklearn's private _special_sparse_dot only",
    "test_nmf_underflow": "tests sklearn's private _beta_divergence only",
}

#: scikit-learn tests that pass there only through a quirk deepnmf does not copy, each with the reason
NOT_REPRODUCED = {
    "test_minibatch_nmf_partial_fit": (
        "passes in scikit-learn only because both estimators update the caller's H array in place and so end up "
        "sharing one components_ object (the batches the two see differ); deepnmf never writes into its inputs"
    ),
}

IMPORT = "from sklearn.decomposition import NMF, MiniBatchNMF, non_negative_factorization"
SOURCE = Path(sklearn.__file__).parent / "decomposition" / "tests" / "test_nmf.py"


@parametrize_with_checks(
    [NMF(n_components=2, max_iter=2000, tol=1e-10, random_state=0),
     # fresh_restarts: fit_transform equals fit().transform only then (scikit-learn's common tests set it too)
     MiniBatchNMF(n_components=2, max_iter=500, fresh_restarts=True, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES,
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def _sklearn_tests() -> types.ModuleType:
    """scikit-learn's NMF test module with deepnmf's estimators in place of its own."""
    code = SOURCE.read_text()
    if IMPORT not in code:
        raise RuntimeError(f"{SOURCE} no longer imports the estimators in one line; update tests/test_sklearn_compat.py")
    module = types.ModuleType("deepnmf_sklearn_test_nmf")
    module.__file__ = str(SOURCE)
    sys.modules[module.__name__] = module
    exec(compile(code.replace(IMPORT, "from deepnmf import NMF, MiniBatchNMF, non_negative_factorization"),
                 str(SOURCE), "exec"), module.__dict__)
    return module


def _collect(module: types.ModuleType) -> dict:
    tests = {}
    for name, fn in vars(module).items():
        if not (name.startswith("test_") and callable(fn)):
            continue
        if name in PRIVATE:
            fn = pytest.mark.skip(reason=PRIVATE[name])(fn)
        elif name in NOT_REPRODUCED:
            fn = pytest.mark.xfail(reason=NOT_REPRODUCED[name], strict=True)(fn)
        tests["test_sklearn_" + name[len("test_"):]] = fn
    return tests


if SOURCE.exists():
    globals().update(_collect(_sklearn_tests()))
