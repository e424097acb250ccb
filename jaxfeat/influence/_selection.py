r"""Influence-based data selection: the shared primitives of LESS, TAROT and BIDS.

All three score a candidate pool against a target (validation) set from per-example
gradient features (often randomly projected, `random_projection`) and differ in the
preconditioner, the normalisation and the selector (spec `influence.md` §3):

* **LESS** (Xia et al. 2024): training features are Adam update directions
  $m'/\sqrt{v' + \epsilon}$ from the warm-up optimiser state (`adam_features`),
  validation features plain gradients, both $\ell_2$-normalised; the score of a
  candidate is the mean cosine over each subtask's validation examples, then the
  max over subtasks (`less_scores`), and the top fraction is kept.
* **TAROT** (Feng et al. 2025): features centred over the union and whitened,
  $\tilde F = F W$ with $W^\top \Sigma W = I$, rows normalised
  (`whitened_features`); candidates are added by rank until the entropic optimal
  transport distance to held-out targets stops decreasing (`tarot_select`, with a
  log-domain `sinkhorn`).
* **BIDS** (Dai et al. 2025): the attribution matrix is z-scored per validation
  column (`column_zscore`), then examples are picked one by one for the task the
  current selection covers least (`bids_select`).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Float, Int

from jaxfeat._src import linalg
from jaxfeat._src.checks import (
    check_count,
    check_finite,
    check_in_range,
    check_positive,
    is_concrete,
)
from jaxfeat._src.typing import PRNGKey
from jaxfeat.influence._grads import flatten_batch


def _check_2d(name: str, x) -> Array:
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array (examples, features); got {x.shape}"
        )
    check_finite(name, x)
    return x


def _check_tasks(val_tasks, n_val: int, n_tasks: int) -> Array:
    """`val_tasks` as a 1-D integer array of length `n_val`, every task non-empty.

    Values are checked (in `[0, n_tasks)`, each task present) only when concrete.
    """
    tasks = jnp.asarray(val_tasks)
    if tasks.shape != (n_val,):
        raise ValueError(
            f"val_tasks: expected shape ({n_val},) (one task per validation "
            f"example); got {tasks.shape}"
        )
    if not jnp.issubdtype(tasks.dtype, jnp.integer):
        raise TypeError(f"val_tasks: expected integer task ids; got {tasks.dtype}")
    if is_concrete(tasks):
        v = np.asarray(tasks)
        if v.size and (v.min() < 0 or v.max() >= n_tasks):
            raise ValueError(
                f"val_tasks: expected values in [0, {n_tasks}); got range "
                f"[{v.min()}, {v.max()}]"
            )
        empty = sorted(set(range(n_tasks)) - set(v.tolist()))
        if empty:
            raise ValueError(
                f"val_tasks: every task in [0, {n_tasks}) needs a validation "
                f"example; none for tasks {empty}"
            )
    return tasks


def _check_weights(name: str, w, n: int, dtype) -> Array:
    """Marginal weights: shape `(n,)`, finite, non-negative, summing to 1."""
    w = jnp.asarray(w, dtype)
    if w.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) (as cost); got {w.shape}")
    check_positive(name, w, strict=False)
    if is_concrete(w):
        total = float(np.sum(np.asarray(w, np.float64)))
        tol = 1e-6 if np.dtype(w.dtype).itemsize >= 8 else 1e-4
        if abs(total - 1.0) > tol:
            raise ValueError(f"{name}: expected weights summing to 1; got {total!r}")
    return w


def l2_normalize(feats: ArrayLike) -> Float[Array, "n k"]:
    r"""Rows scaled to unit $\ell_2$ norm (zero rows stay zero).

    Raises:
      ValueError: if concrete `feats` hold NaN/inf.
    """
    feats = jnp.asarray(feats)
    check_finite("feats", feats)
    norm = jnp.linalg.norm(feats, axis=-1, keepdims=True)
    return feats / jnp.where(norm > 0, norm, 1.0)


def adam_features(
    grads, mu, nu, *, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> Float[Array, "n p"]:
    r"""LESS training features: the Adam update direction of every example.

    $m' = \beta_1 m + (1-\beta_1) g$, $v' = \beta_2 v + (1-\beta_2) g^2$,
    $\Gamma = m' / \sqrt{v' + \epsilon}$ (no bias correction, $\epsilon$ inside the
    root, as in LESS's code), raveled in `tree_leaves` order.

    Args:
      grads: per-example gradients, a pytree with leading axis `n`.
      mu: the optimiser's first moment (like one gradient), e.g. `state.mu` of an
        `optax.scale_by_adam` state.
      nu: its second moment (`state.nu`).
      b1: first-moment decay.
      b2: second-moment decay.
      eps: added to $v'$ under the root.

    Returns:
      Features `(n, p)`.

    Raises:
      ValueError: if `mu`/`nu` do not match one gradient, `eps < 0`, `b1` or `b2`
        is outside `[0, 1)`, or concrete `nu` is negative or any input holds
        NaN/inf.

    References:
      Xia et al. 2024, arXiv:2402.04333 (LESS), `less/data_selection`.
    """
    check_positive("eps", eps, strict=False)
    check_in_range("b1", b1, 0.0, 1.0, closed=(True, False))
    check_in_range("b2", b2, 0.0, 1.0, closed=(True, False))
    g = flatten_batch(grads)
    m = jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree_util.tree_leaves(mu)])
    v = jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree_util.tree_leaves(nu)])
    if m.shape != g.shape[1:] or v.shape != g.shape[1:]:
        raise ValueError(
            f"mu/nu: expected {g.shape[1]} entries (one gradient); got "
            f"{m.shape[0]} and {v.shape[0]}"
        )
    check_finite("grads", g)
    check_finite("mu", m)
    check_positive("nu", v, strict=False)  # a second moment: finite and >= 0
    m_new = b1 * m[None] + (1 - b1) * g
    v_new = b2 * v[None] + (1 - b2) * g**2
    return m_new / jnp.sqrt(v_new + eps)


def less_scores(
    train_feats: ArrayLike,
    val_feats: ArrayLike,
    val_tasks: ArrayLike,
    n_tasks: int,
) -> Float[Array, " n"]:
    r"""LESS score of every candidate: mean cosine per subtask, max over subtasks.

    Both feature sets are $\ell_2$-normalised first. For several checkpoints, LESS
    sums the per-checkpoint cosine matrices weighted by their learning rates
    before the aggregation; this function takes one checkpoint's features (the
    normalisation erases any weighting of them, and the max over subtasks does not
    commute with the sum over checkpoints).

    Args:
      train_feats: candidate features `(n, k)` (e.g. `adam_features`, projected).
      val_feats: validation gradient features `(m, k)`.
      val_tasks: subtask of every validation example `(m,)`, in `[0, n_tasks)`.
      n_tasks: number of subtasks (each must have an example).

    Returns:
      Scores `(n,)`; keep the top fraction.

    Raises:
      ValueError: for non-2-D or mismatched features, `val_tasks` not of shape
        `(m,)`, or (concrete) task ids outside `[0, n_tasks)` or a task without
        a validation example; TypeError: for non-integer `val_tasks`.

    References:
      Xia et al. 2024, arXiv:2402.04333, `matching.py` (mean, then max).
    """
    check_count("n_tasks", n_tasks, 1)
    tr = l2_normalize(_check_2d("train_feats", train_feats))
    va = l2_normalize(_check_2d("val_feats", val_feats))
    if tr.shape[1] != va.shape[1]:
        raise ValueError(
            f"val_feats: expected {tr.shape[1]} features (as train_feats); got "
            f"{va.shape[1]}"
        )
    tasks = _check_tasks(val_tasks, va.shape[0], n_tasks)
    onehot = jax.nn.one_hot(tasks, n_tasks, dtype=tr.dtype)  # (m, T)
    counts = onehot.sum(0)
    per_task = (tr @ va.T) @ onehot / jnp.where(counts > 0, counts, 1.0)[None]
    return jnp.max(jnp.where(counts[None] > 0, per_task, -jnp.inf), axis=1)


def whitened_features(
    cand: ArrayLike,
    target: ArrayLike,
    *,
    ridge: float = 1e-5,
    normalize: bool = True,
) -> tuple[Float[Array, "n k"], Float[Array, "m k"]]:
    r"""TAROT's whitened features: centred over the union, $\tilde F = F W$.

    $\Sigma = F^\top F / N + \mathrm{ridge}\,I$ of the centred union $F$,
    $\Sigma = LL^\top$ (Cholesky), $W = L^{-\top}$ so $W^\top \Sigma W = I$; rows
    are then $\ell_2$-normalised (`normalize`). The cosine $\hat g_c\cdot\hat g_t$
    is the whitened feature distance score; `ot_cost` gives
    $\|\hat g_c - \hat g_t\|$.

    Args:
      cand: candidate features `(n, k)`.
      target: target features `(m, k)`.
      ridge: added to the covariance diagonal ($> 0$). Absolute, as TAROT's; with
        more features than rows the covariance is singular and a ridge below the
        dtype's resolution of its largest variance leaves it so.
      normalize: normalise the whitened rows.

    Returns:
      `(cand_hat, target_hat)`.

    Raises:
      ValueError: for a `ridge` <= 0, inputs that are not 2-D with one feature
        width or (concrete) not finite, and when (concrete) the covariance plus
        `ridge` is not positive definite in the working dtype.

    References:
      Feng et al. 2025, arXiv:2412.00420 (TAROT), `wfd_estimator.get_wfd`.
    """
    check_positive("ridge", ridge)
    c = _check_2d("cand", cand)
    t = _check_2d("target", target)
    if c.shape[1] != t.shape[1]:
        raise ValueError(
            f"target: expected {c.shape[1]} features (as cand); got {t.shape[1]}"
        )
    f = jnp.concatenate([c, t])
    f = f - f.mean(0, keepdims=True)
    sigma = f.T @ f / f.shape[0] + ridge * jnp.eye(f.shape[1], dtype=f.dtype)
    chol = linalg.cholesky(sigma)
    if is_concrete(chol) and not bool(jnp.all(jnp.isfinite(chol))):
        # the absolute ridge (TAROT's) can sit below the dtype's resolution of a
        # large, rank-deficient covariance (k > N + M): the Cholesky fails as NaN
        top = float(jnp.max(jnp.diagonal(sigma)))
        raise ValueError(
            f"ridge: the covariance plus ridge is not positive definite in "
            f"{sigma.dtype} (ridge {ridge:.3g} against a largest variance "
            f"{top:.3g}: below its resolution); increase ridge (e.g. "
            f"{1e-4 * top:.3g}) or enable float64"
        )
    fw = linalg.solve_lower(chol, f.T).T  # F L^{-T}
    if normalize:
        fw = l2_normalize(fw)
    return fw[: c.shape[0]], fw[c.shape[0] :]


def ot_cost(a: ArrayLike, b: ArrayLike) -> Array:
    r"""$\|a_i - b_j\|_2$ for unit rows, as $\sqrt{|2 - 2 a_i \cdot b_j|}$ `(n, m)`.

    Raises:
      ValueError: if `a` `(n, k)` and `b` `(m, k)` are not 2-D with the same
        feature width, or concrete values are not finite.
    """
    a, b = _check_2d("a", a), _check_2d("b", b)
    _check_same_width("b", b, "a", a)
    return jnp.sqrt(jnp.abs(2.0 - 2.0 * a @ b.T))


def _check_same_width(name: str, x, other: str, y) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{name}: expected {y.shape[1]} features (as {other}); got {x.shape[1]}"
        )


def sinkhorn(
    cost: ArrayLike,
    *,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    epsilon: float = 0.01,
    n_iter: int = 500,
) -> tuple[Float[Array, "n m"], Array]:
    r"""Entropic optimal transport: log-domain Sinkhorn iterations.

    Minimises $\langle P, C\rangle - \epsilon H(P)$ over couplings of the weights
    `a` (rows) and `b` (columns); zero weights drop their rows or columns, which
    keeps one compiled shape for subsets.

    Args:
      cost: cost matrix `(n, m)`.
      a: row weights summing to 1 (default uniform).
      b: column weights summing to 1 (default uniform).
      epsilon: entropic regularisation ($> 0$; the transport cost is within
        about $\epsilon \log(nm)$ of the unregularised optimum).
      n_iter: iterations (each updates both potentials).

    Returns:
      `(plan (n, m), transport cost <P, C>)`.

    Raises:
      ValueError: if `cost` is not 2-D, `a`/`b` do not match its rows/columns,
        or (concrete) `cost` holds NaN/inf, or a weight vector is negative,
        non-finite or does not sum to 1 (within 1e-4 in float32, 1e-6 in
        float64); for `epsilon <= 0` or `n_iter < 1`.

    References:
      Cuturi 2013, arXiv:1306.0895; Feydy et al. 2019 (GeomLoss), used by TAROT.
    """
    check_positive("epsilon", epsilon)
    check_count("n_iter", n_iter, 1)
    c = jnp.asarray(cost)
    if c.ndim != 2:
        raise ValueError(f"cost: expected shape (n, m); got {c.shape}")
    check_finite("cost", c)
    n, m = c.shape
    a = (
        jnp.full((n,), 1.0 / n, c.dtype)
        if a is None
        else _check_weights("a", a, n, c.dtype)
    )
    b = (
        jnp.full((m,), 1.0 / m, c.dtype)
        if b is None
        else _check_weights("b", b, m, c.dtype)
    )
    log_a = jnp.where(a > 0, jnp.log(jnp.where(a > 0, a, 1.0)), -jnp.inf)
    log_b = jnp.where(b > 0, jnp.log(jnp.where(b > 0, b, 1.0)), -jnp.inf)

    def body(_, fg):
        f, g = fg
        f = -epsilon * jax.nn.logsumexp((g[None] - c) / epsilon + log_b[None], axis=1)
        g = -epsilon * jax.nn.logsumexp((f[:, None] - c) / epsilon + log_a[:, None], 0)
        return f, g

    f, g = lax.fori_loop(
        0, n_iter, body, (jnp.zeros(n, c.dtype), jnp.zeros(m, c.dtype))
    )
    plan = jnp.exp((f[:, None] + g[None] - c) / epsilon + log_a[:, None] + log_b[None])
    return plan, jnp.sum(jnp.where(plan > 0, plan * c, 0.0))


def tarot_select(
    key: PRNGKey,
    cand_hat: ArrayLike,
    target_hat: ArrayLike,
    *,
    n_folds: int = 5,
    max_k: int | None = None,
    epsilon: float = 0.01,
    n_iter: int = 300,
) -> Array:
    r"""TAROT's OT-based selection; the selection ratio is an output.

    The targets are split into `n_folds` folds (a seeded permutation). For each
    fold, candidates are ranked per held-in target by the whitened cosine; for
    $k = 1, 2, \ldots$ the union of every held-in target's top-$k$ candidates with
    positive score is compared with the held-out targets by the Sinkhorn transport
    cost (`ot_cost`), stopping at the first $k$ where it no longer decreases. The
    selection is the union over folds.

    Args:
      key: PRNG key for the fold split (same key, same selection).
      cand_hat: whitened, normalised candidate features `(n, k)`.
      target_hat: whitened, normalised target features `(m, k)`, `m >= n_folds`.
      n_folds: target folds (at least 2).
      max_k: largest rank tried (default all candidates).
      epsilon: Sinkhorn regularisation.
      n_iter: Sinkhorn iterations.

    Returns:
      Boolean mask `(n,)` of selected candidates.

    References:
      Feng et al. 2025, arXiv:2412.00420, `data_selector.py` (`method='otm'`).
    """
    c = _check_2d("cand_hat", cand_hat)
    t = _check_2d("target_hat", target_hat)
    _check_same_width("target_hat", t, "cand_hat", c)
    check_count("n_folds", n_folds, 2)
    if t.shape[0] < n_folds:
        raise ValueError(
            f"target_hat: needs at least n_folds={n_folds} rows; got {t.shape[0]}"
        )
    max_k = c.shape[0] if max_k is None else max_k
    check_count("max_k", max_k, 1)
    scores = t @ c.T  # (m, n)
    order = jnp.argsort(-scores, axis=1)
    positive = jnp.take_along_axis(scores, order, axis=1) > 0
    perm = jax.random.permutation(key, t.shape[0])
    folds = jnp.array_split(perm, n_folds)
    ot = jax.jit(
        lambda w, t_out: sinkhorn(
            ot_cost(c, t_out), a=w / w.sum(), epsilon=epsilon, n_iter=n_iter
        )[1]
    )
    selected = jnp.zeros(c.shape[0], bool)
    for i, held_in in enumerate(folds):
        held_out = jnp.concatenate([f for j, f in enumerate(folds) if j != i])
        best, chosen = jnp.inf, jnp.zeros(c.shape[0], bool)
        for k in range(1, max_k + 1):
            rows = order[held_in, :k][positive[held_in, :k]]
            mask = jnp.zeros(c.shape[0], bool).at[rows].set(True)
            if not bool(mask.any()):
                break
            dist = float(ot(mask.astype(c.dtype), t[held_out]))
            if dist >= best:
                break
            best, chosen = dist, mask
        selected = selected | chosen
    return selected


def column_zscore(a: ArrayLike) -> Float[Array, "n m"]:
    """BIDS normalisation: every column to mean 0 and standard deviation 1."""
    a = _check_2d("a", a)
    sd = a.std(0, keepdims=True)
    return (a - a.mean(0, keepdims=True)) / jnp.where(sd > 0, sd, 1.0)


def bids_select(
    a: ArrayLike,
    val_tasks: ArrayLike,
    n_tasks: int,
    budget: int,
) -> Int[Array, " budget"]:
    r"""BIDS iterative selection balancing the tasks (jittable; `budget` static).

    With $\tilde A$ = `column_zscore(a)` and $s_{i,k}$ the mean of row $i$ over
    task $k$'s columns, each step finds the task $k^*$ with the lowest coverage
    $u_k = \mathrm{mean}_{i\in S} s_{i,k}$ (all tied at the start: task 0) and adds
    the unselected example with the largest $s_{i,k^*}$.

    Args:
      a: attribution scores `(n, m)` (training x validation, e.g. LESS cosines).
      val_tasks: task of every validation column `(m,)`, in `[0, n_tasks)`.
      n_tasks: number of tasks (each with a column).
      budget: number of examples to select (`<= n`).

    Returns:
      Selected row indices `(budget,)` in selection order.

    Raises:
      ValueError: for a non-2-D or (concrete) non-finite `a`, `val_tasks` not of
        shape `(m,)`, (concrete) task ids outside `[0, n_tasks)` or a task without
        a column, or `budget` outside `[1, n]`; TypeError: for non-integer
        `val_tasks`.

    References:
      Dai et al. 2025, arXiv:2501.12147 (BIDS); Algorithm 1 as recalled in the spec
      (the paper's exact aggregation is unverified).
    """
    z = column_zscore(a)
    check_count("n_tasks", n_tasks, 1)
    check_count("budget", budget, 1)
    if budget > z.shape[0]:
        raise ValueError(f"budget: at most {z.shape[0]} examples; got {budget}")
    tasks = _check_tasks(val_tasks, z.shape[1], n_tasks)
    onehot = jax.nn.one_hot(tasks, n_tasks, dtype=z.dtype)
    s = z @ onehot / jnp.maximum(onehot.sum(0), 1.0)[None]  # (n, T)

    def step(i, carry):
        taken, cover, picks = carry
        u = jnp.where(i > 0, cover / jnp.maximum(i, 1), 0.0)
        k = jnp.argmin(u)
        j = jnp.argmax(jnp.where(taken, -jnp.inf, s[:, k]))
        return taken.at[j].set(True), cover + s[j], picks.at[i].set(j.astype(jnp.int32))

    init = (
        jnp.zeros(z.shape[0], bool),
        jnp.zeros(s.shape[1], z.dtype),
        jnp.zeros(budget, jnp.int32),
    )
    return lax.fori_loop(0, budget, step, init)[2]
