"""Data sets, folds, configs and plots shared by the kan experiments.

Everything follows the selector paper's released code (Akazan & Mbingui 2025,
arXiv:2509.23366; spec `kan.md` §1.2, §1.4, §2): scikit-learn's bundled or generated
data sets, `StratifiedKFold`/`KFold(5, shuffle=True, random_state=42)` score folds, a
`[d, 2d + 1, C]` KAN with `G = 2`, `K = 1` trained by minibatch Adam.
scikit-learn is imported inside the functions (it is a test extra, not a dependency).
"""

import contextlib
import dataclasses
import warnings

import numpy as np

from jaxfeat import kan

KAN_METHODS = ("kan_l1", "kan_l2", "kan_si", "kan_ko")
LABELS = {
    "kan_l1": "KAN-L1",
    "kan_l2": "KAN-L2",
    "kan_si": "KAN-SI",
    "kan_ko": "KAN-KO",
    "kan_attr": "KAN-ATTR",
    "lasso": "LASSO",
    "rf_perm": "Permutation (RF)",
    "mi": "Mutual Information",
    "svm_rfe": "SVM-RFE",
    "all": "All Features",
}
# Ground truth of the paper's synthetic sets (spec §2.1) and of Friedman #1.
INFORMATIVE = {
    "make_classification": (0, 1, 2, 5, 8),
    "make_regression": (1, 2, 3, 6, 9),
    "friedman1": (0, 1, 2, 3, 4),
}
CLASSIFICATION = ("breast_cancer", "wine", "digits", "iris", "make_classification")
REGRESSION = ("diabetes", "make_regression", "friedman1")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set: raw features, targets, task and (if known) informative columns."""

    name: str
    x: np.ndarray
    y: np.ndarray
    task: str
    informative: tuple[int, ...] | None = None

    @property
    def n_out(self) -> int:
        """KAN outputs: one logit per class, or 1 for regression."""
        if self.task == "regression":
            return 1
        return int(np.unique(self.y).size)


def load_dataset(name: str, *, seed: int = 0) -> Dataset:
    """One of the paper's data sets (`digits` is `load_digits(n_class=3)`).

    `friedman1` stands in for California housing, which needs a download (spec
    §2.1): `make_friedman1(n_samples=1000, n_features=10, noise=1.0,
    random_state=seed)`. `seed` only affects `friedman1`.
    """
    from sklearn import datasets as ds

    task = "regression" if name in REGRESSION else "classification"
    if name == "breast_cancer":
        x, y = ds.load_breast_cancer(return_X_y=True)
    elif name == "wine":
        x, y = ds.load_wine(return_X_y=True)
    elif name == "digits":
        x, y = ds.load_digits(n_class=3, return_X_y=True)
    elif name == "iris":
        x, y = ds.load_iris(return_X_y=True)
    elif name == "make_classification":
        x, y = ds.make_classification(
            n_samples=500, n_features=10, n_informative=5, random_state=0
        )
    elif name == "diabetes":
        x, y = ds.load_diabetes(return_X_y=True)
    elif name == "make_regression":
        x, y = ds.make_regression(
            n_samples=500, n_features=10, n_informative=5, noise=0.1, random_state=0
        )
    elif name == "friedman1":
        x, y = ds.make_friedman1(
            n_samples=1000, n_features=10, noise=1.0, random_state=seed
        )
    else:
        raise ValueError(f"name: unknown data set {name!r}")
    return Dataset(
        name, np.asarray(x, np.float64), np.asarray(y), task, INFORMATIVE.get(name)
    )


def cv_splitter(task: str, seed: int):
    """`StratifiedKFold` (classification) or `KFold`, 5 shuffled splits."""
    from sklearn.model_selection import KFold, StratifiedKFold

    cls = StratifiedKFold if task == "classification" else KFold
    return cls(5, shuffle=True, random_state=seed)


def folds(y, task: str, *, seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """The paper's score folds (`random_state=42`), or the evaluation folds (0)."""
    y = np.asarray(y)
    return list(cv_splitter(task, seed).split(np.zeros((y.size, 1)), y))


def paper_kan(d: int, n_out: int, task: str, epochs: int = 100):
    """The paper's `[d, 2d + 1, C]` KAN (`G = 2`, `K = 1`) and its Adam recipe."""
    cfg = kan.KANConfig(widths=(d, 2 * d + 1, n_out), grid_size=2, order=1)
    train = kan.KANTrainConfig(
        task=task, epochs=epochs, batch_size=64, learning_rate=1e-3
    )
    return cfg, train


@contextlib.contextmanager
def quiet_sklearn():
    """Silences scikit-learn's convergence/deprecation warnings; one BLAS thread.

    The suite turns warnings into errors; the paper's estimators (liblinear L1
    logistic regression, `LinearSVC`, `LogisticRegression` on raw features) warn
    about convergence on some folds, as they did for the authors. On small problems
    multi-threaded OpenBLAS is much slower than one thread (measured 25x for
    `LogisticRegression` on breast_cancer on a loaded 2-core machine).
    """
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def standardize(xtr, xva):
    """`StandardScaler` fit on the training fold (constant columns stay 0)."""
    mu = xtr.mean(axis=0)
    sd = xtr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return (xtr - mu) / sd, (xva - mu) / sd


def sklearn_fold_scores(method: str, data: Dataset, fold_list) -> np.ndarray:
    """`(F, d)` normalised scores of a scikit-learn selector on each fold."""
    out = []
    with quiet_sklearn():
        for tr, va in fold_list:
            xtr, xva = standardize(data.x[tr], data.x[va])
            out.append(
                kan.sklearn_scores(
                    method, xtr, data.y[tr], xva, data.y[va], task=data.task
                )
            )
    return np.stack(out)


def recall_at(scores, truth, k: int | None = None) -> float:
    """Fraction of `truth` among the `k` (default `len(truth)`) top-scored columns.

    Columns tied at the k-th score share the slots left: each true one among them
    counts `slots / ties` (the expected recall when ties are broken at random).
    `kan.top_k` breaks ties toward lower indices, and the true columns are the low
    indices of every data set here, so its order credited tied scores (all-zero
    KO, LASSO's exact zeros) as found: an all-zero vector had recall 1 on Friedman1.
    """
    s = np.asarray(scores, dtype=np.float64)
    k = len(truth) if k is None else k
    if not 1 <= k <= s.shape[-1]:
        raise ValueError(f"k: expected 1 <= k <= {s.shape[-1]}; got {k}")
    kth = np.sort(s)[::-1][k - 1]
    above, tied = s > kth, s == kth
    idx = np.asarray(list(truth), dtype=np.int64)
    found = above[idx].sum() + tied[idx].sum() * (k - above.sum()) / tied.sum()
    return float(found / len(idx))


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)


def score_bars(ax, scores: dict, informative, title: str) -> None:
    """Grouped bars of each selector's scores, informative columns shaded."""
    names = list(scores)
    d = len(next(iter(scores.values())))
    width = 0.8 / len(names)
    for j in informative or ():
        ax.axvspan(j - 0.45, j + 0.45, color="gold", alpha=0.25, lw=0)
    for i, name in enumerate(names):
        ax.bar(
            np.arange(d) - 0.4 + (i + 0.5) * width,
            np.asarray(scores[name]),
            width,
            label=LABELS.get(name, name),
            color=f"C{i}",
        )
    ax.set_xticks(range(d))
    ax.set_xlabel("feature (shaded: informative)")
    ax.set_ylabel("fold-averaged score (sums to 1)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, ncols=2)
