"""The estimators' numbers use the shared ranges (the same rules as the study and the CLI)."""

from __future__ import annotations

import numpy as np
import pytest

from deeplsm.classical import SVRLSM, MassUnivariateLSM
from deeplsm.exceptions import DeepLSMError


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_permutations": True}, "n_permutations = True: must be an integer >= 0"),
    ({"n_permutations": 10.0}, "n_permutations = 10.0: must be an integer >= 0"),
    ({"n_permutations": "100"}, "n_permutations = '100': must be an integer >= 0"),
    ({"alpha": "0.05"}, "alpha = '0.05': must be a number > 0 and < 1"),
    ({"cfwer_v": 2.0}, "cfwer_v = 2.0: must be an integer >= 1"),
    ({"min_subjects": "3"}, "min_subjects = '3': must be an integer >= 1, or a number > 0 and < 1"),
    ({"correction": "cluster", "cluster_p": 1.0}, "cluster_p = 1.0: must be a number > 0 and < 1"),
])
def test_vlsm_parameters(cohort, rng, kwargs, message):
    with pytest.raises(DeepLSMError) as err:
        MassUnivariateLSM(**{"min_subjects": 3, "n_permutations": 10, **kwargs}).fit(cohort, rng.random(40))
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"C": "30"}, "C = '30': must be a number > 0"),
    ({"gamma": float("inf")}, "gamma = inf: must be a number > 0"),
    ({"epsilon": -0.1}, "epsilon = -0.1: must be a number >= 0"),
    ({"n_permutations": False}, "n_permutations = False: must be an integer >= 0"),
    ({"cv": 2.0}, "cv = 2.0: must be an integer >= 2, or None"),
])
def test_svr_parameters(cohort, rng, kwargs, message):
    with pytest.raises(DeepLSMError) as err:
        SVRLSM(**{"min_subjects": 3, "n_permutations": 0, **kwargs}).fit(cohort, rng.random(40))
    assert str(err.value).startswith(message)


def test_numpy_integers_are_integers(cohort, rng):
    y = rng.random(40)
    a = MassUnivariateLSM(min_subjects=np.int64(3), n_permutations=np.int64(20), random_state=0)
    a.fit(cohort, y)
    b = MassUnivariateLSM(min_subjects=3, n_permutations=20, random_state=0).fit(cohort, y)
    np.testing.assert_array_equal(a.null_max_, b.null_max_)
