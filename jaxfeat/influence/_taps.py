r"""Dense layers of any `f(params, x)` found in its jaxpr, with activation taps.

K-FAC, EK-FAC, factored scoring and token-wise scores need, for every dense layer
$z = x W\,(+\,b)$, the layer input $\bar a$ and the output gradient
$Ds = \partial L / \partial z$ at every position $t$ of the example (a token, a
pixel, or the single position of a vector input). Rather than asking the user to
rewrite the model, the per-example function is traced to a jaxpr and re-evaluated
by a small interpreter that

* marks every `dot_general` whose one operand is a 2-D parameter leaf (after an
  optional dtype cast and an optional `transpose`) and whose other operand is not
  a parameter: a dense layer with weight $W$ (`(i, o)` as in flax's `x @ W`, or
  `(o, i)` as in `x @ W.T` or `W @ x`);
* pairs it with a bias when the layer output is next `add`-ed to a parameter leaf
  of shape `(o,)` (reshaped or broadcast, as flax's `Dense`/`nnx.Linear` do) whose
  axis lands on the layer's output-unit axis (tracked through the shape ops, so a
  per-position offset of shape `(T,)` is not taken for a bias when `T == o`);
* records the layer input and adds a zero perturbation to the layer output, so
  that a VJP with respect to the perturbations gives $Ds$ (kfac-jax's
  `layer_tags_vjp` idea, spec `influence.md` §0.4);
* records every other (live) use of a parameter leaf: an index or gather (a tied
  embedding), an elementwise op, a model output, a non-inlined higher-order
  primitive. A leaf so used also reaches the loss outside its layer, so its
  gradient is not $\sum_t Ds_t \bar a_t^\top$ and the model is not factorable.
  Likewise `+ b` is a bias only when the layer output feeds nothing but that `add`:
  otherwise $\partial L / \partial b \ne \sum_t Ds_t$.

Nested `jit` and `checkpoint` (remat) calls are inlined; other higher-order
primitives (`scan`, custom derivatives) are evaluated as they are, so a parameter
used inside them is reported as not covered (casts, transposes and shape ops pass
a leaf on; they are not uses by themselves). The per-position factors give the
per-example gradient $DW = \sum_t Ds_t \bar a_t^\top$ in the `(o, i + 1)` matrix
form of `dense_matrix` (bias column last).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core

_INLINE = ("pjit", "jit", "closed_call", "core_call", "checkpoint", "remat", "remat2")
_SHAPE_OPS = ("reshape", "broadcast_in_dim", "squeeze", "expand_dims")
_CASTS = ("convert_element_type", "copy", "copy_p")  # the same leaf, as it is
_ANY = "any"  # the axis of a size-1 leaf: wherever it lands, `+ b` is a bias


class _Origin(NamedTuple):
    """What a value of the walk derives from (see `_walk`)."""

    leaf: int  # index into tree_leaves(params)
    direct: bool  # the leaf itself, possibly cast or (flipped) transposed
    flipped: bool  # a transposed 2-D leaf
    axis: int | str | None  # a 1-D leaf's axis in this value (_ANY, None: unknown)


def _leaf_origin(i: int, leaf) -> _Origin:
    if jnp.ndim(leaf) != 1:
        return _Origin(i, True, False, None)
    return _Origin(i, True, False, _ANY if jnp.size(leaf) == 1 else 0)


def _moved_axis(eqn, axis):
    """Where a shape op puts the input axis `axis` (None when not traceable)."""
    if axis is None or axis == _ANY:
        return axis
    name, p = eqn.primitive.name, eqn.params
    if name == "broadcast_in_dim":
        return int(p["broadcast_dimensions"][axis])
    if name == "transpose":
        return list(p["permutation"]).index(axis)
    if name == "squeeze":
        return axis - sum(1 for d in p["dimensions"] if d < axis)
    if name in ("reshape", "expand_dims"):  # only unit axes inserted or removed
        shape_in = eqn.invars[0].aval.shape
        shape_out = eqn.outvars[0].aval.shape
        big_in = [i for i, n in enumerate(shape_in) if n != 1]
        big_out = [i for i, n in enumerate(shape_out) if n != 1]
        same = [shape_in[i] for i in big_in] == [shape_out[i] for i in big_out]
        if same and axis in big_in:
            return big_out[big_in.index(axis)]
    return None


class DenseTap(NamedTuple):
    """One dense layer of a traced model (indices into `tree_leaves(params)`).

    Attributes:
      weight: leaf index of $W$ (2-D).
      bias: leaf index of $b$ (`(o,)`), or `None`.
      w_in_axis: the axis of $W$ contracted with the input (0: `(i, o)`).
      w_is_lhs: whether $W$ is the left operand of the `dot_general`.
      act_axis: the contracted axis of the layer input.
      out_shape: shape of the layer output for one example.
    """

    weight: int
    bias: int | None
    w_in_axis: int
    w_is_lhs: bool
    act_axis: int
    out_shape: tuple

    @property
    def n_positions(self) -> int:
        """Positions (tokens) of one example: output entries per output unit."""
        size = 1
        for s in self.out_shape:
            size *= s
        return size // self.out_shape[0 if self.w_is_lhs else -1]


class _Ctx:
    def __init__(self, perturbs=None, shapes=()):
        self.perturbs = perturbs
        self.shapes = shapes  # of the parameter leaves
        self.found: list[dict] = []
        self.acts: list = []
        self.other: dict[int, set] = {}  # leaf -> its uses outside dense layers

    def other_use(self, leaf: int, what: str) -> None:
        self.other.setdefault(leaf, set()).add(what)


def _liveness(jaxpr, live_out):
    """Per eqn whether it is live, and how often each var is read by live code.

    `live_out[j]`: whether `jaxpr.outvars[j]` is used by the caller. Eqns with
    effects are live; dead code (traced but unused) is not a use of a parameter.
    """
    live, uses, flags = set(), {}, []
    for v, keep in zip(jaxpr.outvars, live_out, strict=True):
        if keep and not isinstance(v, jex_core.Literal):
            live.add(v)
            uses[v] = uses.get(v, 0) + 1
    for eqn in reversed(jaxpr.eqns):
        keep = bool(eqn.effects) or any(v in live for v in eqn.outvars)
        flags.append(keep)
        if keep:
            for v in eqn.invars:
                if not isinstance(v, jex_core.Literal):
                    live.add(v)
                    uses[v] = uses.get(v, 0) + 1
    return flags[::-1], live, uses


def _walk(jaxpr, consts, args, origins, ctx, live_out=None):
    """Evaluates `jaxpr`, tapping dense layers; returns outputs and their origins.

    `origins[v]` is an `_Origin` for values derived from a parameter leaf
    (`direct`: the leaf itself, possibly cast or, when `flipped`, transposed; else
    reshaped/broadcast, with a 1-D leaf's axis tracked). Live uses of such values
    other than as a dense weight or bias go to `ctx.other`.
    """
    env, origin, dot_out = {}, {}, {}
    if live_out is None:
        live_out = [True] * len(jaxpr.outvars)
    live_eqns, live, uses = _liveness(jaxpr, live_out)

    def read(v):
        return v.val if isinstance(v, jex_core.Literal) else env[v]

    def org(v):
        return None if isinstance(v, jex_core.Literal) else origin.get(v)

    env.update(zip(jaxpr.constvars, consts, strict=True))
    for v, a, o in zip(jaxpr.invars, args, origins, strict=True):
        env[v] = a
        if o is not None:
            origin[v] = o
    for eqn, is_live in zip(jaxpr.eqns, live_eqns, strict=True):
        name = eqn.primitive.name
        ins = [read(v) for v in eqn.invars]
        ins_org = [org(v) for v in eqn.invars]
        if name in _INLINE:
            inner = eqn.params["jaxpr"]  # closed (jit) or open (checkpoint)
            body, consts = (
                (inner.jaxpr, inner.consts) if hasattr(inner, "consts") else (inner, [])
            )
            inner_live = [v in live for v in eqn.outvars]
            outs, outs_org = _walk(body, consts, ins, ins_org, ctx, inner_live)
            for v, val, o in zip(eqn.outvars, outs, outs_org, strict=True):
                env[v] = val
                if o is not None:
                    origin[v] = o
            continue
        params = eqn.primitive.get_bind_params(eqn.params)
        ans = eqn.primitive.bind(*ins, **params)
        outs = ans if eqn.primitive.multiple_results else [ans]
        accounted, what = None, name  # the operand used as a dense weight or bias
        if name == "dot_general":
            tap = _match_dense(eqn, ins, ins_org)
            if tap is not None:
                k = len(ctx.acts)
                ctx.acts.append(ins[1 if tap["w_is_lhs"] else 0])
                ctx.found.append(tap)
                if ctx.perturbs is not None:
                    outs = [outs[0] + ctx.perturbs[k].astype(outs[0].dtype)]
                dot_out[eqn.outvars[0]] = k
                accounted = 0 if tap["w_is_lhs"] else 1
        elif name == "add":
            accounted, what = _match_bias(eqn, ins_org, dot_out, uses, ctx)
        if is_live and name not in _CASTS + _SHAPE_OPS + ("transpose",):
            for j, o in enumerate(ins_org):  # a parameter reaching the loss elsewhere
                if o is not None and j != accounted:
                    ctx.other_use(o.leaf, what)
        for v, val in zip(eqn.outvars, outs, strict=True):
            env[v] = val
        o = ins_org[0] if ins_org else None
        if name in _CASTS and o is not None:
            origin[eqn.outvars[0]] = o
        elif (
            name == "transpose"
            and o is not None
            and o.direct
            and tuple(eqn.params["permutation"]) == (1, 0)
        ):  # W.T of a 2-D weight: the same leaf with its axes swapped
            origin[eqn.outvars[0]] = o._replace(flipped=not o.flipped)
        elif name in _SHAPE_OPS + ("transpose",) and o is not None:
            axis = _moved_axis(eqn, o.axis)
            origin[eqn.outvars[0]] = _Origin(o.leaf, False, False, axis)
    return [read(v) for v in jaxpr.outvars], [org(v) for v in jaxpr.outvars]


def _match_dense(eqn, ins, ins_org):
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    if lb or rb or len(lc) != 1:
        return None
    for w_pos in (1, 0):
        o, other = ins_org[w_pos], ins_org[1 - w_pos]
        if o is None or not o.direct or other is not None or jnp.ndim(ins[w_pos]) != 2:
            continue
        w_c, a_c = (rc, lc) if w_pos == 1 else (lc, rc)
        # `w_in_axis` indexes the stored leaf: a transposed use swaps its axes
        w_in = int(w_c[0])
        return dict(
            weight=o.leaf,
            w_in_axis=1 - w_in if o.flipped else w_in,
            w_is_lhs=w_pos == 0,
            act_axis=int(a_c[0]),
            out_shape=tuple(eqn.outvars[0].aval.shape),
            n_out=int(jnp.shape(ins[w_pos])[1 - w_in]),
        )
    return None


def _match_bias(eqn, ins_org, dot_out, uses, ctx):
    r"""`(position of the bias b in z + b or None, what the add is otherwise)`.

    `z` is a layer output; `b` is a bias only when `z` feeds nothing but this
    `add`: were `z` used elsewhere too, $\partial L / \partial b$ would not be the
    layer's $\sum_t Ds_t$.
    """
    what = "add"
    for i in (0, 1):
        v, o = eqn.invars[i], ins_org[1 - i]
        if isinstance(v, jex_core.Literal) or v not in dot_out or o is None:
            continue
        tap = ctx.found[dot_out[v]]
        unit_axis = 0 if tap["w_is_lhs"] else len(tap["out_shape"]) - 1
        if o.axis not in (_ANY, unit_axis) or ctx.shapes[o.leaf] != (tap["n_out"],):
            continue
        if uses.get(v, 0) != 1:
            what = "add (to a layer output that is also used elsewhere)"
            continue
        if "bias" not in tap:
            tap["bias"] = o.leaf
            return 1 - i, what
    return None, what


def _run(apply_fn, params, x, perturbs):
    leaves = jax.tree_util.tree_leaves(params)
    closed = jax.make_jaxpr(apply_fn)(params, x)
    n_x = len(jax.tree_util.tree_leaves(x))
    origins = [_leaf_origin(i, leaf) for i, leaf in enumerate(leaves)] + [None] * n_x
    ctx = _Ctx(perturbs, tuple(jnp.shape(leaf) for leaf in leaves))
    args = leaves + jax.tree_util.tree_leaves(x)
    outs, outs_org = _walk(closed.jaxpr, closed.consts, args, origins, ctx)
    for o in outs_org:
        if o is not None:
            ctx.other_use(o.leaf, "the model output")
    if len(outs) != 1:
        raise ValueError(
            f"model: expected one output array per example; got {len(outs)} outputs"
        )
    return outs[0], ctx


def find_dense_layers(apply_fn, params, x) -> tuple[DenseTap, ...]:
    """The dense layers of `apply_fn(params, x)` for one example `x`, in call order.

    Runs abstractly (no FLOPs). `fit_curvature` calls it for callable models; use it
    directly to see what K-FAC/EK-FAC and token-wise scores will treat as a layer.

    Args:
      apply_fn: `apply_fn(params, x) -> (k,)` or `(T, k)` for one example (e.g.
        from `jaxfeat.ntk.from_nnx`, or a linen `module.apply`).
      params: the parameter pytree.
      x: one example (a vector, or `(T, d)` positions through per-token layers).

    Returns:
      One `DenseTap` per layer (leaf indices into `tree_leaves(params)`).

    Raises:
      ValueError: if a parameter leaf is not the weight or bias of exactly one
        dense layer, or is also used outside it (e.g. a convolution kernel, a
        shared weight such as a tied embedding/unembedding, a scale, a bias added
        to a layer output that is used elsewhere too), naming the leaf's path.

    References:
      Martens & Grosse 2015, arXiv:1503.05671 (K-FAC); Eschenhagen et al. 2023,
      arXiv:2311.00636 (K-FAC for weight-sharing layers, "expand"); kfac-jax's
      graph-matched layer tags.
    """
    leaves = jax.tree_util.tree_leaves(params)
    holder = {}  # the walk runs abstractly (eval_shape) and records the layers

    def record(p, xi):
        out, c = _run(apply_fn, p, xi, None)
        holder["ctx"] = c
        return out

    jax.eval_shape(record, params, x)
    ctx = holder["ctx"]
    taps, used = [], {}
    for k, t in enumerate(ctx.found):
        bias = t.get("bias")
        for leaf in (t["weight"], bias):
            if leaf is not None:
                used.setdefault(leaf, []).append(k)
        taps.append(
            DenseTap(
                t["weight"],
                bias,
                t["w_in_axis"],
                t["w_is_lhs"],
                t["act_axis"],
                t["out_shape"],
            )
        )
    paths = [jax.tree_util.keystr(p) for p, _ in _leaf_paths(params)]
    bad = [
        paths[i]
        for i in range(len(leaves))
        if len(used.get(i, [])) != 1 or i in ctx.other
    ]
    if bad:
        shared = "; ".join(
            f"{paths[i]} is used outside its dense layer by "
            f"{', '.join(sorted(ctx.other[i]))}"
            for i in sorted(ctx.other)
        )
        raise ValueError(
            "params: every leaf must be the weight (x @ W) or bias (+ b) of exactly "
            "one dense layer, and used nowhere else, for Kronecker factors and "
            f"token-wise scores; not so for {bad}" + (f" ({shared})" if shared else "")
        )
    return tuple(taps)


def _leaf_paths(params):
    return jax.tree_util.tree_flatten_with_path(params)[0]


def tapped_vjp(apply_fn, taps, params, x):
    """`(out, vjp_fn, acts)`: `vjp_fn(ct)` gives each layer's output gradient."""
    zeros = tuple(jnp.zeros(t.out_shape, _leaf_dtype(params)) for t in taps)

    def fwd(perturbs):
        out, ctx = _run(apply_fn, params, x, perturbs)
        return out, tuple(ctx.acts)

    out, vjp_fn, acts = jax.vjp(fwd, zeros, has_aux=True)
    return out, lambda ct: vjp_fn(ct)[0], acts


def _leaf_dtype(params):
    return jax.tree_util.tree_leaves(params)[0].dtype


def layer_factors(tap: DenseTap, act, ds):
    r"""`(abar (T, i + b), ds (..., T, o))` of one layer for one example.

    `act` is the layer input as recorded, `ds` the output gradient with any leading
    axes (pseudo-gradients); `b` is 1 when the layer has a bias.
    """
    a = jnp.moveaxis(act, tap.act_axis, -1)
    a = a.reshape(-1, a.shape[-1])
    if tap.bias is not None:
        a = jnp.concatenate([a, jnp.ones((a.shape[0], 1), a.dtype)], axis=1)
    lead = ds.ndim - len(tap.out_shape)
    if tap.w_is_lhs:
        ds = jnp.moveaxis(ds, lead, -1)
    ds = ds.reshape(*ds.shape[:lead], -1, ds.shape[-1])
    return a, ds


def leaves_to_matrix(tap: DenseTap, leaves) -> jax.Array:
    """`[W | b]` of one layer as the `(o, i + b)` matrix (one example, no batch)."""
    w = leaves[tap.weight]
    mat = w.T if tap.w_in_axis == 0 else w
    if tap.bias is not None:
        mat = jnp.concatenate([mat, leaves[tap.bias][:, None]], axis=1)
    return mat


def matrix_to_leaves(tap: DenseTap, mat, leaves: list) -> None:
    """Writes the `(o, i + b)` matrix back into `leaves` (in place, a list)."""
    if tap.bias is not None:
        leaves[tap.bias] = mat[:, -1]
        mat = mat[:, :-1]
    leaves[tap.weight] = mat.T if tap.w_in_axis == 0 else mat
