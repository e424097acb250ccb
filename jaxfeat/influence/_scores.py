r"""Pairwise and self-influence scores, streamed over the training set and sharded.

$\mathrm{score}[q, m] = g_q^\top (G + \lambda I)^{-1} g_m$ with $g = \nabla_\theta L$
at $\theta^s$: **positive = helpful** (up-weighting training example $m$ by
$\epsilon$ moves the query loss by $-\epsilon\,\mathrm{score}[q, m]$ to first
order). Scores are raw sums: no $1/N$. Query gradients are preconditioned once;
training examples are processed in chunks of `chunk_size`, each chunk laid out
over every visible device along the example axis (`jax.sharding`).
"""

import einops
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jaxfeat import ntk
from jaxfeat._src import linalg
from jaxfeat._src.arrays import leading, to_device
from jaxfeat._src.checks import (
    check_count,
    check_finite,
    is_concrete,
)
from jaxfeat._src.compile_options import CostAwareJit
from jaxfeat.influence._curvature import CurvatureState, ihvp_one
from jaxfeat.influence._grads import (
    check_targets,
    dense_matrix,
    example_loss_fn,
    grad_factors,
)
from jaxfeat.influence._stream import stream_concat
from jaxfeat.influence._taps import leaves_to_matrix
from jaxfeat.influence._validation import check_params, check_solve, check_tree_finite


def layer_groups(tree) -> list[int]:
    """Number of leaves in each top-level entry of `tree` (its "layers")."""
    children, _ = jax.tree_util.tree_flatten(tree, is_leaf=lambda t: t is not tree)
    return [len(jax.tree_util.tree_leaves(c)) for c in children]


def _generic_chunk(state, params, pq, x, y, groups):
    """Per-layer scores `(L, q, c)` from full per-example gradients of a chunk."""
    loss_fn = example_loss_fn(state.model, state.cfg.loss)
    g = jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0))(params, x, y)
    q_leaves = jax.tree_util.tree_leaves(pq)
    g_leaves = jax.tree_util.tree_leaves(g)
    terms = [
        einops.einsum(
            a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1), "q p, c p -> q c"
        )
        for a, b in zip(q_leaves, g_leaves, strict=True)
    ]
    out, start = [], 0
    for size in groups:
        out.append(sum(terms[start : start + size]))
        start += size
    return jnp.stack(out)


def _factored_chunk(state, params, pq, x, y, per_token):
    r"""Per-layer scores `(L, q, c)` (or `(L, q, T, c)`) from factors $Ds\,ar a$."""
    factors = grad_factors(
        params, x, y, model=state.model, layers=state.layers, loss=state.cfg.loss
    )
    keep = "q t c" if per_token else "q c"
    out = []
    for query, (abar, ds) in zip(pq, factors, strict=True):
        if isinstance(query, tuple):  # low rank: (left (q, o, r), right (q, r, i))
            left, right = query
            lo = einops.einsum(left, ds, "q o r, c t o -> q t c r")
            ri = einops.einsum(right, abar, "q r i, c t i -> q t c r")
            out.append(einops.reduce(lo * ri, f"q t c r -> {keep}", "sum"))
        else:
            out.append(einops.einsum(query, ds, abar, f"q o i, c t o, c t i -> {keep}"))
    return jnp.stack(out)


def _chunk_scores(state, params, pq, x, y, groups, per_layer, per_token):
    """Scores of one chunk: `(l, q, c)`, `(l, q, t, c)`, or summed over layers."""
    if state.factored:
        out = _factored_chunk(state, params, pq, x, y, per_token)
    else:
        out = _generic_chunk(state, params, pq, x, y, groups)
    return out if per_layer else jnp.sum(out, axis=0)


_chunk_jit = CostAwareJit(
    _chunk_scores, static_argnames=("groups", "per_layer", "per_token")
)


def low_rank_query(
    mat: Float[ArrayLike, "q o i"], rank: int
) -> tuple[Float[Array, "q o r"], Float[Array, "q r i"]]:
    r"""Rank-`rank` SVD factors of preconditioned query gradients of one dense layer.

    $P(g_q) \approx U_r S_r V_r^\top$ is stored as `left` $= U_r S_r$ and
    `right` $= V_r^\top$, so the score with a training gradient $Ds\,\bar a^\top$
    is $\sum_r (\mathrm{left}^\top Ds)_r (\mathrm{right}\,\bar a)_r$ at cost
    $O(r(o + i))$. At `rank = min(o, i)` this is exact.

    Args:
      mat: preconditioned query gradients in matrix form, shape `(q, o, i)`.
      rank: kept singular values.

    Returns:
      `(left, right)` of shapes `(q, o, r)` and `(q, r, i)`.

    Raises:
      ValueError: if `rank < 1`, `mat` is not 3-D, or a concrete `mat` holds
        NaN/inf.

    References:
      Grosse et al. 2023, arXiv:2308.03296, §3.2.2 (query batching); kronfluence
      `query_gradient_low_rank`.
    """
    check_count("rank", rank, 1)
    mat = jnp.asarray(mat)
    if mat.ndim != 3:
        raise ValueError(f"mat: expected shape (q, o, i); got {mat.shape}")
    check_finite("mat", mat)
    return _low_rank(mat, rank)


def _low_rank(mat, rank):
    u, s, vt = linalg.svd(mat)
    r = min(rank, s.shape[-1])
    return u[..., :r] * s[..., None, :r], vt[..., :r, :]


def _layer_matrices(state, pq):
    """Preconditioned query gradients `(q, ...)` as per-layer `(q, o, i + 1)`."""
    if isinstance(state.model, ntk.MLPConfig):
        return [jax.vmap(dense_matrix)(layer) for layer in pq]
    leaves = jax.tree_util.tree_leaves(pq)
    return [
        jax.vmap(lambda *ls, t=tap: leaves_to_matrix(t, ls))(*leaves)
        for tap in state.layers
    ]


def _prepare_core(state, params, x_query, y_query, query_rank):
    loss_fn = example_loss_fn(state.model, state.cfg.loss)
    gq = jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0))(params, x_query, y_query)
    pq = jax.vmap(ihvp_one, in_axes=(None, 0))(state, gq)
    if not state.factored:
        return pq
    mats = _layer_matrices(state, pq)
    if query_rank is None:
        return tuple(mats)
    return tuple(_low_rank(m, query_rank) for m in mats)


_prepare_jit = CostAwareJit(_prepare_core, static_argnames="query_rank")


def _validate(state, params, pairs, chunk_size):
    check_params("params", params, state.treedef, state.shapes)
    for nx, x, ny, y in pairs:
        check_targets(
            nx, x, ny, y, model=state.model, params=params, loss=state.cfg.loss
        )
    if chunk_size is not None:
        check_count("chunk_size", chunk_size, 1)


def pairwise_scores(
    state: CurvatureState,
    params,
    x_query: ArrayLike,
    y_query: ArrayLike,
    x_train: ArrayLike,
    y_train: ArrayLike,
    *,
    chunk_size: int | None = None,
    per_layer: bool = False,
    per_token: bool = False,
    query_rank: int | None = None,
    progress: bool = False,
) -> Float[Array, "q m"] | Float[Array, "l q m"] | Float[Array, "q m t"]:
    r"""Influence of every training example on every query loss.

    $\mathrm{score}[q, m] = g_q^\top (G + \lambda I)^{-1} g_m$, $g = \nabla_\theta
    L(\theta^s)$. **Sign: positive = helpful**: up-weighting $z_m$ by $\epsilon$
    changes the query loss by $-\epsilon\,\mathrm{score}[q, m]$ to first order
    (Koh & Liang's $\mathcal I_{\rm up,loss} = -\mathrm{score}$). No $1/N$: divide
    by $N$ for the effect of removing one example from a mean loss.

    Query gradients are preconditioned once (`ihvp`), in a batch padded to a bucket
    (`query_bucket`: 8, 16, 24, ..., 64, 80, ...: at most 7 padded rows up to 64
    queries, then at most ~25%), so a new
    number of queries in the same bucket reuses the compiled programs. Training
    gradients are formed chunk by chunk (`chunk_size` examples, with a progress
    bar) and never stored.
    For an `ntk.MLPConfig` model, or a callable whose parameters all belong to
    dense layers (`state.layers`), training gradients stay factored as
    $\sum_t Ds_t \bar a_t^\top$ and are never formed. Each chunk is sharded over
    all visible devices.

    Token-wise scores (`per_token`, factored models): the training gradient of a
    sequence is a sum over positions, so the score splits into
    $\mathrm{score}_t = \sum_\ell \bar a_{\ell,t}^\top P_\ell(g_q)^\top
    Ds_{\ell,t}$, the part of the influence that flows through position $t$ (read
    it as "the prediction made at $t$"); the terms sum over $t$ to the score.

    Args:
      state: from `fit_curvature` (its model and loss are used).
      params: $\theta^s$, matching the fitted parameters.
      x_query: query inputs `(q, ...)`.
      y_query: query targets `(q, ...)`.
      x_train: training inputs `(m, ...)`.
      y_train: training targets `(m, ...)`.
      chunk_size: training examples per chunk (`None`: all at once); the scores do
        not depend on it.
      per_layer: return per-layer terms `(l, q, m)` that sum to the total (layers:
        the dense layers of a factored model, in call order; otherwise the
        top-level entries of `params`).
      per_token: return token-wise terms `(q, m, T)` (`(l, q, m, T)` with
        `per_layer`) that sum over `T` to the scores; factored models whose dense
        layers all see the same number `T` of positions.
      query_rank: keep rank-`query_rank` SVD factors of each layer's preconditioned
        query gradient (query batching; factored models only).
      progress: show a progress bar over chunks.

    Returns:
      Scores `(q, m)`; `(l, q, m)` when `per_layer`; `(q, m, T)` when `per_token`.

    Raises:
      ValueError: if `params` do not match the fitted ones, query and training
        inputs/targets disagree in shape, targets do not fit the model output
        (as in `fit_curvature`: labels in `[0, k)`, MSE targets of the output's
        shape and finite), `query_rank` or `per_token` is used without a
        factored model (or with layers of different lengths `T`), or concrete
        values are not finite (the error names `x_query`, `x_train`, or
        `lissa_scale` for a diverged LiSSA solve).
      TypeError: for non-integer cross-entropy labels, or a non-int `chunk_size`
        or `query_rank`.

    References:
      Koh & Liang 2017, arXiv:1703.04730; Grosse et al. 2023, arXiv:2308.03296,
      eq. (21) and §3.2 (layer-wise scores, query batching).
    """
    x_query, y_query = to_device(x_query), to_device(y_query)
    x_train, y_train = to_device(x_train), to_device(y_train)
    # first: the targets' checks below evaluate the model on one example of each
    if x_query.shape[1:] != x_train.shape[1:]:
        raise ValueError(
            f"x_query: expected example shape {x_train.shape[1:]} (as x_train); "
            f"got {x_query.shape[1:]}"
        )
    pairs = [("x_query", x_query, "y_query", y_query)]
    pairs.append(("x_train", x_train, "y_train", y_train))
    _validate(state, params, pairs, chunk_size)
    if y_query.shape[1:] != y_train.shape[1:]:
        raise ValueError(
            f"y_query: expected target shape {y_train.shape[1:]} (as y_train); "
            f"got {y_query.shape[1:]}"
        )
    if query_rank is not None:
        check_count("query_rank", query_rank, 1)
        if not state.factored:
            raise ValueError(
                "query_rank: query batching needs a factored model (an "
                "ntk.MLPConfig, or parameters that all belong to dense layers)"
            )
    if per_token:
        _check_tokens(state)
    check_tree_finite("params", params)
    check_finite("x_query", x_query)
    n_query = x_query.shape[0]
    xq, yq = _pad_queries(x_query, y_query)  # one compiled program per bucket
    pq = _prepare_jit(state, params, xq, yq, query_rank)
    groups = tuple(layer_groups(params))
    unchecked = [pq]

    def fn(n_chunks, xs, ys):
        out = _chunk_jit.call(
            n_chunks, state, params, pq, xs, ys, groups, per_layer, per_token
        )
        # Non-finite preconditioned queries (a diverged LiSSA, overflowing
        # gradients) are checked once the first chunk is dispatched, so preparing
        # the queries overlaps that chunk's compile.
        if unchecked:
            check_solve(state, unchecked.pop(), "x_query")
        return out

    scores = stream_concat(
        fn,
        x_train,
        y_train,
        chunk_size,
        progress,
        "influence",
        lambda out: check_finite("x_train", out),
    )
    if per_token:  # ([l,] q, t, m) -> ([l,] q, m, t)
        scores = jnp.swapaxes(scores, -1, -2)
    return leading(scores, n_query, axis=1 if per_layer else 0)  # drop padded queries


def query_bucket(n_query: int) -> int:
    """Padded query count: a multiple of max(8, 2^(bits - 3)).

    At most 7 padded rows below 64 queries (1 query pads to 8), at most ~25% above.
    """
    step = max(8, 1 << max(0, n_query.bit_length() - 3))
    return -(-n_query // step) * step


def _pad_queries(x, y):
    """Repeats the last query up to `query_bucket` rows (on the host: no compile)."""
    q = x.shape[0]
    qb = query_bucket(q)
    if qb == q or not (is_concrete(x) and is_concrete(y)):
        return x, y
    idx = np.minimum(np.arange(qb), q - 1)
    return to_device(np.asarray(x)[idx]), to_device(np.asarray(y)[idx])


def _check_tokens(state):
    if not state.factored:
        raise ValueError(
            "per_token: token-wise scores need a factored model (an ntk.MLPConfig, "
            "or parameters that all belong to dense layers)"
        )
    lengths = {t.n_positions for t in state.layers} or {1}
    if len(lengths) != 1:
        raise ValueError(
            f"per_token: the dense layers see different numbers of positions "
            f"{sorted(lengths)}; token-wise scores need one sequence length"
        )


def _self_chunk(state, params, x, y):
    loss_fn = example_loss_fn(state.model, state.cfg.loss)
    g = jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0))(params, x, y)
    pg = jax.vmap(ihvp_one, in_axes=(None, 0))(state, g)
    dots = [
        jnp.sum((a * b).reshape(a.shape[0], -1), axis=1)
        for a, b in zip(
            jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(pg), strict=True
        )
    ]
    return sum(dots)


_self_jit = CostAwareJit(_self_chunk)


def self_scores(
    state: CurvatureState,
    params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    chunk_size: int | None = None,
    progress: bool = False,
) -> Float[Array, " n"]:
    r"""Self-influence $g_m^\top (G + \lambda I)^{-1} g_m$ of every training example.

    Large values flag examples the model finds hard or mislabeled. Streamed in
    chunks and sharded like `pairwise_scores`.

    Args:
      state: from `fit_curvature`.
      params: $\theta^s$, matching the fitted parameters.
      x: inputs `(n, ...)`.
      y: targets `(n, ...)`.
      chunk_size: examples per chunk (`None`: all at once).
      progress: show a progress bar.

    Returns:
      Self-influence scores, shape `(n,)`.

    Raises:
      ValueError: as `pairwise_scores`.

    References:
      Koh & Liang 2017, arXiv:1703.04730, §5.4; Grosse et al. 2023,
      arXiv:2308.03296.
    """
    x, y = to_device(x), to_device(y)
    _validate(state, params, [("x", x, "y", y)], chunk_size)
    check_tree_finite("params", params)
    fn = lambda n_chunks, xs, ys: _self_jit.call(n_chunks, state, params, xs, ys)

    def check(out):  # NaN in x is named first; then a diverged LiSSA solve
        if is_concrete(out) and not bool(jnp.all(jnp.isfinite(out))):
            check_finite("x", x)
        check_solve(state, out, "x")

    return stream_concat(fn, x, y, chunk_size, progress, "self-influence", check)
