"""Classical selectors through scikit-learn: the LASSO baseline is really L1."""

import numpy as np
import pytest

from jaxfeat import kan
from jaxfeat.kan._sklearn import l1_penalty

sklearn = pytest.importorskip("sklearn")


def test_l1_penalty_keywords_by_version():
    """Before 1.8 `l1_ratio` alone is ignored (the default L2 fits, dense); from 1.8
    `penalty` is deprecated. The keywords must select L1 under both."""
    assert l1_penalty("1.4.2") == {"penalty": "l1"}
    assert l1_penalty("1.7.2") == {"penalty": "l1"}
    assert l1_penalty("1.8.0") == {"l1_ratio": 1.0}
    assert l1_penalty("1.9.1") == {"l1_ratio": 1.0}
    assert l1_penalty("2.0.dev0") == {"l1_ratio": 1.0}
    assert l1_penalty("1.10rc1") == {"l1_ratio": 1.0}  # a pre-release minor


def test_lasso_scores_are_sparse_on_wine():
    """L1 logistic regression at C = 0.1 on standardised wine zeroes some of the 13
    coefficients in every one-vs-rest fit, so the mean |coef| has exact zeros (an
    L2 fit has none); the scores sum to 1."""
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    s = kan.sklearn_scores("lasso", x, y, x, y, task="classification")
    assert s.sum() == pytest.approx(1.0, abs=1e-12)
    assert int(np.sum(s == 0)) >= 2, s
