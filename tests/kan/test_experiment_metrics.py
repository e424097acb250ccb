"""Metrics the kan experiments' claims are computed from, against hand counts."""

import numpy as np
import pytest

from experiments.kan._shared import recall_at
from experiments.kan.selector_benchmark import _valid_scores


def test_recall_at_gives_ties_fractional_credit():
    """top_k breaks ties toward lower indices and the true columns are the low
    indices, so an all-zero score vector had recall 1 on Friedman1's {0..4}."""
    truth = (0, 1, 2, 3, 4)
    assert recall_at(np.zeros(10), truth) == pytest.approx(0.5)  # 5 slots, 10 tied
    s = np.zeros(10)
    s[[0, 1, 3]] = [0.5, 0.3, 0.2]  # 3 found; 2 slots shared by 7 tied, 2 of them true
    assert recall_at(s, truth) == pytest.approx((3 + 2 * 2 / 7) / 5)
    s = np.arange(10.0)[::-1]  # no ties: exactly the top 5
    assert recall_at(s, truth) == 1.0
    assert recall_at(s, (5, 6, 7, 8, 9)) == 0.0
    assert recall_at(s, (0, 9), k=3) == 0.5
    with pytest.raises(ValueError, match="^k: "):
        recall_at(s, truth, k=11)


def test_valid_scores_accepts_means_over_inner_folds():
    """A nested score is a mean over 5 inner folds; one all-zero KO fold makes it sum
    to 0.8, which the check called invalid."""
    inner = np.array(
        [[0.5, 0.5, 0], [0.2, 0.8, 0], [0, 0, 0], [0.6, 0.4, 0], [1, 0, 0]]
    )
    good = {"kan_ko": inner}
    assert _valid_scores(good, {"kan_ko": inner.mean(0)[None]}, np.zeros(1))
    # per-fold vectors must still sum to 1 or 0, and nothing may be negative or NaN
    assert not _valid_scores({"kan_ko": inner * 0.9}, {}, np.zeros(1))
    assert not _valid_scores(good, {"kan_ko": -inner.mean(0)[None]}, np.zeros(1))
    assert not _valid_scores(good, {}, np.array([np.nan]))
    assert not _valid_scores(good, {"kan_ko": 2 * inner.mean(0)[None]}, np.zeros(1))
