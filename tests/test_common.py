"""scikit-learn's own estimator checks over every public skpapers estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skpapers.utils import all_estimators

# Small, fast settings per estimator; the defaults are used where none given.
FAST_PARAMS = {}

# Checks an estimator is known to fail, with the reason. The goal is empty.
EXPECTED_FAILED_CHECKS = {
    "NMF": {},
    "BatchNormMLPClassifier": {},
}


def _instances():
    for name, Estimator in all_estimators():
        yield Estimator(**FAST_PARAMS.get(name, {}))


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


def test_every_estimator_is_checked():
    names = {name for name, _ in all_estimators()}
    assert {"NMF", "BatchNormMLPClassifier"} <= names
    assert set(EXPECTED_FAILED_CHECKS) <= names


@parametrize_with_checks(
    list(_instances()), expected_failed_checks=_expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
