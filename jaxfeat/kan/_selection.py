"""Top-k selection, fold splits, cross-validated KAN scores, stability and redundancy.

`crossval_feature_scores` is the authors' aggregation (arXiv:2509.23366; spec §1.2):
standardise on each training fold, train one KAN per fold, score on the validation
fold, normalise each fold's vector to sum 1 and average over folds. The folds are
trained in one jitted `vmap` whose fold axis is sharded over every visible device
(a `NamedSharding` on a one-axis mesh, `jaxfeat._src.sharding.shard_batch`).
"""

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from jaxfeat._src import checks
from jaxfeat._src.progress import run_chunks
from jaxfeat._src.sharding import shard_batch, unpad
from jaxfeat.kan._model import KANConfig, init_kan, kan_grids
from jaxfeat.kan._selectors import kan_attr, kan_ko, kan_l1, kan_l2, kan_si
from jaxfeat.kan._train import KANTrainConfig, _check_data, _train

METHODS = ("kan_l1", "kan_l2", "kan_si", "kan_ko", "kan_attr")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def top_k(scores: ArrayLike, k: int) -> jax.Array:
    """Indices of the `k` largest scores, ties broken by the lower index (stable).

    Args:
      scores: `(d,)` finite scores.
      k: number to keep, `1 <= k <= d`.

    Returns:
      `(k,)` int indices, best first.
    """
    checks.check_ndim("scores", scores, 1, "(d,)")
    d = np.shape(scores)[0]
    if not _is_int(k) or not 1 <= k <= d:
        raise ValueError(f"k: expected an int in 1..{d}; got {k!r}")
    checks.check_finite("scores", scores)
    s = jnp.asarray(scores)
    if not jnp.issubdtype(s.dtype, jnp.floating):  # -s wraps for unsigned ints
        s = s.astype(jnp.result_type(float))
    return jnp.argsort(-s, stable=True)[:k]


def kfold_indices(
    key: ArrayLike, y, n_splits: int | np.integer = 5, *, stratified: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled (stratified) k-fold `(train_idx, val_idx)` pairs as NumPy arrays.

    Stratified folds deal each class's shuffled indices round-robin over the folds.
    The splits are not sklearn's bit for bit; pass sklearn folds to reproduce a paper
    run exactly.

    Args:
      key: PRNG key for the shuffle.
      y: `(N,)` labels (any values when `stratified=False`).
      n_splits: number of folds, `2 <= n_splits <= N`.
      stratified: keep class proportions in every fold.

    Raises:
      ValueError: `y` not 1-D or with NaN or infinity, `n_splits` outside `2..N`,
        non-integer float `y` with `stratified=True` (each value would be a class of
        its own and the folds would ignore `key`).
    """
    y = np.asarray(y)
    checks.check_ndim("y", y, 1, "(N,)")
    if np.issubdtype(y.dtype, np.number):
        checks.check_finite("y", y)  # NaN != NaN would leave its rows in no fold
    n = y.shape[0]
    if not _is_int(n_splits) or not 2 <= n_splits <= n:
        raise ValueError(f"n_splits: expected an int in 2..{n}; got {n_splits!r}")
    n_splits = int(n_splits)
    if stratified and np.issubdtype(y.dtype, np.floating) and np.any(y != np.round(y)):
        raise ValueError(
            "y: stratified folds need class labels; got non-integer values (regression "
            "targets?): pass stratified=False"
        )
    perm = np.asarray(jax.random.permutation(key, n))
    fold = np.full(n, -1, np.int64)
    if stratified:
        offset = 0
        for c in np.unique(y):
            idx = perm[np.isin(perm, np.flatnonzero(y == c))]
            fold[idx] = (np.arange(idx.size) + offset) % n_splits
            offset += idx.size
    else:
        fold[perm] = np.arange(n) % n_splits
    if np.any(fold < 0):  # every row must be in exactly one validation fold
        raise ValueError("y: some rows matched no class; expected comparable labels")
    return [
        (np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_splits)
    ]


def jaccard_stability(per_fold_scores: ArrayLike, k: int) -> tuple[float, float]:
    """Mean and standard deviation (ddof 0) of top-`k` Jaccard over pairs of folds.

    `per_fold_scores` is `(F, d)`, `F >= 2`; each fold's top-`k` set comes from
    `top_k`.

    Raises:
      ValueError: fewer than 2 folds, NaN or infinite scores, `k` outside `1..d`.
    """
    checks.check_ndim("per_fold_scores", per_fold_scores, 2, "(F, d)")
    if np.shape(per_fold_scores)[0] < 2:
        raise ValueError(
            "per_fold_scores: expected at least 2 folds (pairs of folds are "
            f"compared); got {np.shape(per_fold_scores)[0]}"
        )
    sets = [set(np.asarray(top_k(s, k)).tolist()) for s in np.asarray(per_fold_scores)]
    jac = [len(a & b) / len(a | b) for i, a in enumerate(sets) for b in sets[i + 1 :]]
    return float(np.mean(jac)), float(np.std(jac))


def redundancy(x: ArrayLike, selected: Sequence[int] | None = None) -> float:
    """Mean absolute Pearson correlation over distinct pairs of (selected) columns.

    Constant columns have no correlation and are skipped.

    Raises:
      ValueError: `x` not 2-D or with NaN or infinity; `selected` not distinct
        column indices in `0..d-1`.
    """
    checks.check_ndim("x", x, 2, "(N, d)")
    x = np.asarray(x, np.float64)
    checks.check_finite("x", x)
    if selected is not None:
        sel = np.asarray(selected)
        d = x.shape[1]
        if (
            sel.ndim != 1
            or (sel.size and not np.issubdtype(sel.dtype, np.integer))
            or np.any(sel < 0)
            or np.any(sel >= d)
            or np.unique(sel).size != sel.size
        ):
            raise ValueError(
                f"selected: expected distinct column indices in 0..{d - 1}; "
                f"got {selected!r}"
            )
        x = x[:, sel.astype(np.int64)]
    x = x[:, x.std(axis=0) > 0]
    if x.shape[1] < 2:
        return 0.0
    c = np.abs(np.corrcoef(x, rowvar=False))
    iu = np.triu_indices(c.shape[0], 1)
    return float(c[iu].mean())


def _check_folds(folds, n, min_val):
    if len(folds) < 1:
        raise ValueError("folds: expected at least one (train_idx, val_idx) pair")
    for f, fold in enumerate(folds):
        if len(fold) != 2:
            raise ValueError(
                f"folds: expected (train_idx, val_idx) pairs; fold {f} has "
                f"{len(fold)} parts"
            )
        for part, idx, least in (
            ("train", fold[0], 1),
            ("validation", fold[1], min_val),
        ):
            idx = np.asarray(idx)
            if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
                raise ValueError(
                    f"folds: expected 1-D integer indices; fold {f}'s {part} part "
                    f"has shape {idx.shape} and dtype {idx.dtype}"
                )
            if idx.size < least:
                raise ValueError(
                    f"folds: expected at least {least} {part} rows; fold {f} has "
                    f"{idx.size}"
                )
            if np.any(idx < 0) or np.any(idx >= n):
                raise ValueError(
                    f"folds: expected indices in 0..{n - 1}; fold {f}'s {part} part "
                    f"has range [{idx.min()}, {idx.max()}]"
                )


class CVScores(NamedTuple):
    """Cross-validated scores.

    Attributes:
      mean: method name -> `(d,)` fold-averaged normalised scores.
      per_fold: method name -> `(F, d)` each fold's normalised scores.
      final_loss: `(F,)` last-epoch training loss of each fold's KAN.
    """

    mean: dict
    per_fold: dict
    final_loss: ArrayLike


def _standardize(xtr, xval):
    mu = xtr.mean(axis=0)
    sd = xtr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)  # sklearn's StandardScaler leaves constants at 0
    return (xtr - mu) / sd, (xval - mu) / sd


def _score(method, params, xv, yv, grids, cfg, task):
    if method == "kan_l1":
        return kan_l1(params, xv, grids=grids, cfg=cfg)
    if method == "kan_l2":
        return kan_l2(params, xv, grids=grids, cfg=cfg)
    if method == "kan_si":
        return kan_si(params, xv, grids=grids, cfg=cfg)
    if method == "kan_ko":
        return kan_ko(params, xv, yv, grids=grids, cfg=cfg, task=task)
    return kan_attr(params, xv, grids=grids, cfg=cfg)


@functools.partial(jax.jit, static_argnames=("cfg", "dtype"))
def _init_folds(keys, cfg, dtype):
    return jax.vmap(lambda k: init_kan(k, cfg, dtype=dtype))(keys)


@functools.partial(jax.jit, static_argnames=("cfg", "tcfg"))
def _train_folds(keys, params, xs, ys, ws, grids, cfg, tcfg):
    # One compiled program per (cfg, tcfg, shapes): repeated calls reuse it. The fold
    # axis arrives sharded over the device mesh, so XLA partitions the vmap.
    one = lambda k, p, x, y, w: _train(k, p, x, y, grids, w, cfg, tcfg)
    return jax.vmap(one)(keys, params, xs, ys, ws)


@functools.partial(jax.jit, static_argnames=("methods", "cfg", "task"))
def _score_all(params, xv, yv, grids, methods, cfg, task):
    return {m: _score(m, params, xv, yv, grids, cfg, task) for m in methods}


def crossval_feature_scores(
    key: ArrayLike,
    x,
    y,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    cfg: KANConfig,
    train_cfg: KANTrainConfig,
    methods: Sequence[str] = ("kan_l1", "kan_l2", "kan_si", "kan_ko"),
    same_init: bool = True,
    progress: bool = False,
) -> CVScores:
    """Trains a KAN per training fold and scores the features on its validation fold.

    Args:
      key: PRNG key (initialisation and minibatch order).
      x: `(N, d)` raw features (standardised per training fold here).
      y: `(N,)` integer labels or regression targets (not scaled).
      folds: `(train_idx, val_idx)` pairs, e.g. `kfold_indices(y)` or sklearn's
        (a list, or the generator `split()` returns).
      cfg: architecture; `cfg.widths[0]` must equal `d`.
      train_cfg: training settings; `train_cfg.task` picks the KO loss.
      methods: any of `"kan_l1"`, `"kan_l2"`, `"kan_si"`, `"kan_ko"`, `"kan_attr"`
        (the `"paper"` definitions).
      same_init: one initialisation for every fold (the authors re-seed torch with 0).
      progress: show a progress bar over the folds' scoring.

    Returns:
      A `CVScores`.

    Raises:
      ValueError: the checks of `train_kan` (shapes against `cfg`, NaN or infinity,
        labels outside `[0, C)`, a regression `cfg` with more than one output), an
        unknown method, no folds, or a fold with an empty part or indices outside
        `0..N-1` (`kan_attr` needs 2 validation rows per fold).
      TypeError: non-integer labels for classification.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    # the same checks as train_kan, which the vmapped folds below bypass
    _check_data(x, y, None, cfg, train_cfg)
    for m in methods:
        checks.check_choice("methods", m, METHODS)
    folds = list(folds)  # sklearn's split() is a generator, read more than once
    _check_folds(folds, x.shape[0], 2 if "kan_attr" in methods else 1)
    dtype = jnp.zeros(()).dtype
    std = [_standardize(x[tr], x[va]) for tr, va in folds]
    n_max = max(len(tr) for tr, _ in folds)
    xs = np.zeros((len(folds), n_max, x.shape[1]))
    ys = np.zeros((len(folds), n_max), y.dtype)
    ws = np.zeros((len(folds), n_max))
    for f, ((tr, _), (xtr, _)) in enumerate(zip(folds, std, strict=True)):
        xs[f, : len(tr)] = xtr
        ys[f, : len(tr)] = y[tr]
        ws[f, : len(tr)] = 1.0
    grids = kan_grids(cfg, dtype=dtype)
    k_init, k_train = jax.random.split(key)
    init_keys = (
        jnp.stack([k_init] * len(folds))
        if same_init
        else jax.random.split(k_init, len(folds))
    )
    params0 = _init_folds(init_keys, cfg, dtype)
    batched, n_folds = shard_batch(
        (
            jax.random.split(k_train, len(folds)),
            params0,
            jnp.asarray(xs, dtype),
            jnp.asarray(ys),
            jnp.asarray(ws, dtype),
        )
    )
    params, losses = unpad(_train_folds(*batched, grids, cfg, train_cfg), n_folds)

    def chunk(carry, f):
        p = jax.tree_util.tree_map(lambda a: a[f], params)
        xv = jnp.asarray(std[f][1], dtype)
        yv = jnp.asarray(y[folds[f][1]])
        return carry, _score_all(p, xv, yv, grids, tuple(methods), cfg, train_cfg.task)

    _, outs = run_chunks(chunk, None, len(folds), desc="KAN scores", progress=progress)
    per_fold = {m: jnp.stack([o[m] for o in outs]) for m in methods}
    mean = {m: jnp.mean(v, axis=0) for m, v in per_fold.items()}
    return CVScores(mean=mean, per_fold=per_fold, final_loss=losses[:, -1])
