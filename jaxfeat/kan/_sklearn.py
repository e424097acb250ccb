"""Classical selectors through scikit-learn (optional: imported only when called).

As the selector paper's code runs them (arXiv:2509.23366; spec §4): each is fit on the
standardised training fold, negative values are clipped and the vector is normalised
to sum 1. `"lasso"` uses `LassoCV` (regression) or one-vs-rest L1 logistic regression
(`C = 0.1`, liblinear); `"rf_perm"` is permutation importance of a 200-tree random
forest on the validation fold; `"mi"` is mutual information; `"svm_rfe"` recursive
feature elimination with a linear SVM (score `max_rank - rank`).
"""

import re

import numpy as np

from jaxfeat._src import checks

SKLEARN_METHODS = ("lasso", "rf_perm", "mi", "svm_rfe")


def _clip_normalize(s):
    s = np.asarray(s, np.float64)
    # A NaN score means a failed fit; it is raised, not replaced (by nan_to_num) by 0.
    if not np.all(np.isfinite(s)):
        raise ValueError("method: the estimator returned NaN or infinite scores")
    s = np.clip(s, 0.0, None)
    tot = s.sum()
    return s / tot if tot > 0 else s


def l1_penalty(version: str) -> dict:
    """`LogisticRegression` keywords for a pure L1 penalty under scikit-learn `version`.

    Before 1.8, `l1_ratio` is used only with `penalty="elasticnet"`: alone it is
    ignored (with a warning) and the default L2 penalty fits, dense. From 1.8,
    `penalty` is deprecated and `l1_ratio=1` selects L1.
    """
    major, minor = (int(p) for p in re.match(r"(\d+)\.(\d+)", version).groups())
    return {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}


def sklearn_scores(method, x_train, y_train, x_val, y_val, *, task, seed=0):
    """One classical selector's normalised `(d,)` scores on one fold.

    Args:
      method: one of `"lasso"`, `"rf_perm"`, `"mi"`, `"svm_rfe"`.
      x_train: `(N, d)` standardised training inputs.
      y_train: `(N,)` training labels or targets.
      x_val: standardised validation inputs (used by `"rf_perm"`).
      y_val: validation labels or targets (used by `"rf_perm"`).
      task: `"classification"` or `"regression"`.
      seed: `random_state` of the estimators.

    Raises:
      ImportError: scikit-learn is not installed (`pip install jaxfeat[sklearn]`).
      ValueError: shapes that do not match, NaN or infinity in any input, or
        non-finite scores from the estimator.
    """
    checks.check_choice("method", method, SKLEARN_METHODS)
    checks.check_choice("task", task, ("classification", "regression"))
    x_train, y_train = np.asarray(x_train), np.asarray(y_train)
    x_val, y_val = np.asarray(x_val), np.asarray(y_val)
    checks.check_ndim("x_train", x_train, 2, "(N, d)")
    n, d = x_train.shape
    if x_val.ndim != 2 or x_val.shape[1] != d:
        raise ValueError(f"x_val: expected shape (n_val, {d}); got {x_val.shape}")
    if y_train.shape != (n,):
        raise ValueError(f"y_train: expected shape ({n},); got {y_train.shape}")
    if y_val.shape != (x_val.shape[0],):
        raise ValueError(
            f"y_val: expected shape ({x_val.shape[0]},); got {y_val.shape}"
        )
    for name, arr in (
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_val", x_val),
        ("y_val", y_val),
    ):
        if np.issubdtype(arr.dtype, np.number):  # labels may be strings
            checks.check_finite(name, arr)
    clf = task == "classification"
    if method == "mi":
        from sklearn.feature_selection import (
            mutual_info_classif,
            mutual_info_regression,
        )

        mi = mutual_info_classif if clf else mutual_info_regression
        return _clip_normalize(mi(x_train, y_train, random_state=seed))
    if method == "rf_perm":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
        from sklearn.inspection import permutation_importance

        rf_cls = RandomForestClassifier if clf else RandomForestRegressor
        rf = rf_cls(n_estimators=200, random_state=seed).fit(x_train, y_train)
        imp = permutation_importance(rf, x_val, y_val, n_repeats=5, random_state=seed)
        return _clip_normalize(imp.importances_mean)
    if method == "lasso":
        if clf:
            import sklearn
            from sklearn.linear_model import LogisticRegression
            from sklearn.multiclass import OneVsRestClassifier

            base = LogisticRegression(
                **l1_penalty(sklearn.__version__),
                solver="liblinear",
                C=0.1,
                max_iter=5000,
            )
            ovr = OneVsRestClassifier(base).fit(x_train, y_train)
            coefs = np.stack([np.abs(e.coef_[0]) for e in ovr.estimators_])
            return _clip_normalize(coefs.mean(axis=0))
        from sklearn.linear_model import LassoCV

        return _clip_normalize(
            np.abs(LassoCV(cv=5, random_state=seed).fit(x_train, y_train).coef_)
        )
    from sklearn.feature_selection import RFE
    from sklearn.svm import SVR, LinearSVC

    est = (
        LinearSVC(C=1.0, dual=True, max_iter=5000, random_state=seed)
        if clf
        else SVR(kernel="linear", C=1.0, max_iter=5000)
    )
    rank = RFE(est, n_features_to_select=1, step=0.1).fit(x_train, y_train).ranking_
    return _clip_normalize(rank.max() - rank + 1e-12)
