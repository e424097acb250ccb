"""Helpers and claim logic of the ntk experiments, against hand cases."""

import math

from experiments.ntk._shared import least, worst


def test_worst_and_least_propagate_nan():
    """Python's max skips a NaN that is not first (max(0.1, nan) == 0.1), so a
    diverged cell could pass `<= tol`; these return NaN, which fails any claim."""
    assert worst([0.1, 0.3, 0.2]) == 0.3 and least([0.1, 0.3, 0.2]) == 0.1
    assert math.isnan(worst([0.1, float("nan"), 0.2]))
    assert math.isnan(least(v for v in (0.1, float("nan"))))
    assert not worst([0.01, float("nan")]) <= 0.05
    assert max([0.01, float("nan")]) <= 0.05  # the bug these replace
