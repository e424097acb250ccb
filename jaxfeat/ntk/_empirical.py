r"""Empirical (finite-width) neural tangent kernels of any `f(params, x)`.

$\Theta(x, x')_{ab} = \sum_p \partial_p f_a(x)\, \partial_p f_b(x')$ for outputs
$a, b$. Three algorithms compute it:

* `"jacobian"`: per-example Jacobians by reverse mode, contracted leaf by leaf;
  memory $O(N k P)$.
* `"ntvp"`: NTK-vector products, $\Theta v = J_1 (J_2^\top v)$ by one VJP and one JVP
  per column; no Jacobian is stored.
* `"structured"`: for networks of dense layers, $\partial f/\partial W_l =
  \tilde h_l \otimes \partial f/\partial z_l$, so
  $\Theta = \sum_l (\tilde H_l \tilde H_l'^\top + s_{b,l}^2) \odot (G_l G_l'^\top)$:
  per-layer Gram products of inputs and output gradients, never the weights' size.

`"auto"` picks `"structured"` when the model's layer taps are given, else
`"jacobian"` when the Jacobians fit in `max_jacobian_floats`, else `"ntvp"`.

References:
  Jacot et al. 2018, arXiv:1806.07572; Novak, Sohl-Dickstein & Schoenholz 2022,
  "Fast Finite Width Neural Tangent Kernel", arXiv:2206.08720 (the three
  algorithms; neural-tangents `empirical_ntk_fn`). Claim NTK-1.
"""

import math
from collections.abc import Callable

import einops
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxfeat._src.checks import (
    check_choice,
    check_count,
    check_finite,
    check_tree_finite,
    is_concrete,
)

METHODS = ("auto", "jacobian", "ntvp", "structured")


def _n_params(params) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))


def _ntk_jacobian(f, params, x1, x2, trace_outputs):
    jac = jax.vmap(jax.jacrev(f), in_axes=(None, 0))
    j1 = jax.tree_util.tree_leaves(jac(params, x1))
    j2 = j1 if x2 is None else jax.tree_util.tree_leaves(jac(params, x2))
    total = 0.0
    for a, b in zip(j1, j2, strict=True):
        a = a.reshape(a.shape[0], a.shape[1], -1)  # (n, k, p_leaf)
        b = b.reshape(b.shape[0], b.shape[1], -1)
        if trace_outputs:
            total = total + einops.einsum(a, b, "n k p, m k p -> n m") / a.shape[1]
        else:
            total = total + einops.einsum(a, b, "n k p, m l p -> n m k l")
    return total


def _ntk_vector_products(f, params, x1, x2, trace_outputs):
    x2 = x1 if x2 is None else x2
    f1 = lambda p: jax.vmap(f, in_axes=(None, 0))(p, x1)
    f2 = lambda p: jax.vmap(f, in_axes=(None, 0))(p, x2)
    out2, vjp2 = jax.vjp(f2, params)
    m, k = out2.shape

    def column(idx):  # column (b, l) = idx of Theta: (n, k), or traced its l-th
        # The one-hot cotangent is built per column: a stacked identity basis was an
        # (m k)^2 array (0.4 GB at m = 1024, k = 10).
        cotangent = jax.nn.one_hot(idx, m * k, dtype=out2.dtype).reshape(m, k)
        (direction,) = vjp2(cotangent)
        col = jax.jvp(f1, (params,), (direction,))[1]
        return col[:, idx % k] if trace_outputs else col

    cols = jax.lax.map(column, jnp.arange(m * k))
    if trace_outputs:  # only the diagonal output pairs: n m k, not n m k^2, floats
        return einops.reduce(cols, "(m l) n -> n m", "mean", m=m, l=k)
    return einops.rearrange(cols, "(m l) n k -> n m k l", m=m, l=k)


def _structured_features(taps, params, x):
    """Per-layer scaled inputs, bias scales and output gradients of one example."""
    _, inputs, bias_scales = taps(params, x, deltas=None)
    dtype = inputs[0].dtype
    deltas = tuple(jnp.zeros((w,), dtype) for w in _layer_widths(taps, params, x))
    grads = jax.jacrev(lambda d: taps(params, x, deltas=d)[0])(
        deltas
    )  # each (k, n_out)
    return inputs, bias_scales, grads


def _layer_widths(taps, params, x):
    out = jax.eval_shape(lambda: taps(params, x, deltas=None))
    _, inputs, _ = out
    # widths of each layer's pre-activation: the next layer's input, then the output
    return tuple(h.shape[-1] for h in inputs[1:]) + (out[0].shape[-1],)


def _promote(x, params):
    # float inputs in the dtype f computes in: float32 x with float64 params kept
    # the first layer's inputs (and the deltas) in float32, a 1e-8 Gram error
    leaves = jax.tree_util.tree_leaves(params)
    if x is None or not jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return x.astype(jnp.result_type(x, *leaves))


def _ntk_structured(taps, params, x1, x2, trace_outputs):
    x1, x2 = _promote(x1, params), _promote(x2, params)
    feats = jax.vmap(_structured_features, in_axes=(None, None, 0))
    h1, sb, g1 = feats(taps, params, x1)
    h2, _, g2 = (h1, sb, g1) if x2 is None else feats(taps, params, x2)
    total = 0.0
    for a1, a2, s, d1, d2 in zip(h1, h2, sb, g1, g2, strict=True):
        s = s[0]  # the same bias scale for every example
        gram_h = einops.einsum(a1, a2, "n i, m i -> n m") + s**2
        if trace_outputs:
            gram_g = einops.einsum(d1, d2, "n k o, m k o -> n m") / d1.shape[1]
            total = total + gram_h * gram_g
        else:
            gram_g = einops.einsum(d1, d2, "n k o, m l o -> n m k l")
            total = total + gram_h[:, :, None, None] * gram_g
    return total


def _check_structure(taps, params, x):
    _, inputs, _ = jax.eval_shape(lambda: taps(params, x, deltas=None))
    widths = _layer_widths(taps, params, x)
    covered = sum((h.shape[-1] + 1) * w for h, w in zip(inputs, widths, strict=True))
    if covered != _n_params(params):
        raise ValueError(
            f"structure: the layer taps cover {covered} parameters but params has "
            f"{_n_params(params)}; the structured NTK needs every parameter to be a "
            "dense layer's weight or bias"
        )


def _jacobian_rows(x1, x2, block_size) -> int:
    """Examples whose Jacobians `"jacobian"` holds at once (both blocks if blocked)."""
    if block_size is not None:
        return 2 * block_size  # blocks are edge-padded to block_size rows
    return x1.shape[0] + (0 if x2 is None else x2.shape[0])


def choose_method(
    params,
    x_shape: tuple[int, ...],
    n_out: int,
    *,
    has_structure: bool,
    max_jacobian_floats: int = 2**27,
) -> str:
    r"""The algorithm `method="auto"` uses (see the module docstring).

    Args:
      params: the model's parameters (their size $P$ counts).
      x_shape: shape of the examples whose Jacobians `"jacobian"` would hold at
        once: `(n + m, ...)` for `x1` of `n` and `x2` of `m` examples, `(n, ...)`
        without `x2`, `(2 * block_size, ...)` when blocked (what `ntk_fn` passes).
      n_out: outputs per example $k$.
      has_structure: whether layer taps were given.
      max_jacobian_floats: `"jacobian"` while (examples) $\times k \times P$ is at
        most this.
    """
    if has_structure:
        return "structured"
    if x_shape[0] * n_out * _n_params(params) <= max_jacobian_floats:
        return "jacobian"
    return "ntvp"


def empirical_ntk_fn(
    f: Callable,
    *,
    method: str = "auto",
    trace_outputs: bool = True,
    block_size: int | None = None,
    structure: Callable | None = None,
    max_jacobian_floats: int = 2**27,
) -> Callable:
    r"""Builds `ntk_fn(params, x1, x2=None)`, the empirical NTK of `f`.

    Args:
      f: `f(params, x) -> (k,)` for one example `x` (batching is done inside).
      method: `"auto"`, `"jacobian"`, `"ntvp"` or `"structured"`.
      trace_outputs: if True, return $\frac1k\sum_a \Theta_{aa}$ (neural-tangents'
        `trace_axes=(-1,)`: the mean over outputs), shape `(n, m)`; else the full
        kernel, shape `(n, m, k, k)`.
      block_size: compute the kernel in `block_size x block_size` blocks of
        examples (`lax.map`, sequential) to bound memory; `None` does one block.
      structure: layer taps `taps(params, x, deltas) -> (out, inputs,
        bias_scales)` of a dense network (e.g. `functools.partial(mlp_taps,
        cfg=cfg)`); required by `"structured"`.
      max_jacobian_floats: `"auto"` uses `"jacobian"` while $N k P$ stays below,
        $N$ the examples whose Jacobians are held at once ($n + m$, or
        $2\times$`block_size` when blocked).

    Returns:
      `ntk_fn(params, x1, x2=None)` with `x1` of shape `(n, ...)` and `x2` of shape
      `(m, ...)` (default `x1`); pure, and usable under `jit` and `vmap`.

    The layer taps must describe the same network as `f`: when `params` and `x1`
    are concrete, `ntk_fn` compares the taps' output and one-example kernel with
    `f`'s (a forward pass and a Jacobian on `x1[0]`) and raises if they differ,
    once per input signature (structure,
    shapes, dtypes), so repeated calls cost only the compiled kernel; under
    `jit`/`vmap` this is not checked.

    Raises:
      ValueError: for an unknown `method`, `"structured"` without `structure`, a
        structure that does not cover every parameter or (when concrete) whose
        output differs from `f`, `block_size < 1`, or (from `ntk_fn`) an `x1`/`x2`
        that is not a batch of `f`'s inputs, or NaN/inf in concrete `x1`, `x2` or
        `params` (checked when the kernel is not finite).
    """
    check_choice("method", method, METHODS)
    if block_size is not None:
        check_count("block_size", block_size, 1)
    if method == "structured" and structure is None:
        raise ValueError("structure: the structured method needs the layer taps")

    def one_block(params, x1, x2, chosen):
        if chosen == "jacobian":
            return _ntk_jacobian(f, params, x1, x2, trace_outputs)
        if chosen == "ntvp":
            return _ntk_vector_products(f, params, x1, x2, trace_outputs)
        return _ntk_structured(structure, params, x1, x2, trace_outputs)

    def ntk_fn(params, x1, x2=None):
        out_shape = jax.eval_shape(f, params, x1[0]).shape
        if len(out_shape) != 1:
            raise ValueError(
                f"f: expected an output of shape (k,) for one example; got {out_shape}"
            )
        if x2 is not None and x2.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"x2: expected examples of shape {x1.shape[1:]} (as x1); "
                f"got {x2.shape[1:]}"
            )
        if structure is not None and method in ("auto", "structured"):
            _check_structure(structure, params, x1[0])
        chosen = method
        if method == "auto":
            chosen = choose_method(
                params,
                (_jacobian_rows(x1, x2, block_size), *x1.shape[1:]),
                out_shape[0],
                has_structure=structure is not None,
                max_jacobian_floats=max_jacobian_floats,
            )
        if block_size is None:
            return one_block(params, x1, x2, chosen)
        return _blocked(
            lambda a, b: one_block(params, a, b, chosen),
            x1,
            x1 if x2 is None else x2,
            block_size,
        )

    # One compiled program per (params, inputs) shape; composes with outer jit/vmap.
    jitted = jax.jit(ntk_fn)

    checked = set()  # input signatures already validated (like jit's own cache)

    def checked_ntk_fn(
        params, x1: Float[Array, "n ..."], x2: Float[Array, "m ..."] | None = None
    ) -> Float[Array, "n m ..."]:
        sig = _signature(params, x1, x2)
        if sig is None or sig not in checked:
            _validate(params, x1, x2)
            if sig is not None and is_concrete((params, x1)):
                checked.add(sig)
        out = jitted(params, x1, x2)
        # NaN/inf inputs give a non-finite kernel: checking the (small) output
        # first keeps the common case free of host transfers of the inputs
        if is_concrete(out) and not bool(jnp.all(jnp.isfinite(out))):
            for name, arr in (("x1", x1), ("x2", x2)):
                if arr is not None:
                    check_finite(name, arr)
            check_tree_finite("params", params)
        return out

    def _validate(params, x1, x2):
        for name, x in (("x1", x1), ("x2", x2)):
            if x is None:
                continue
            if jnp.ndim(x) < 1:
                raise ValueError(f"{name}: expected a batch of examples (n, ...)")
            try:
                jax.eval_shape(f, params, x[0])
            except Exception as err:  # re-raised naming the argument
                raise ValueError(
                    f"{name}: expected a batch (n, ...) of f's inputs; f fails on "
                    f"one example {name}[0] of shape {jnp.shape(x)[1:]}: {err}"
                ) from err
        if structure is not None and method in ("auto", "structured"):
            _check_taps_match_f(f, structure, params, x1)

    checked_ntk_fn.lower = jitted.lower  # ahead-of-time compilation, as jax.jit's
    return checked_ntk_fn


def _signature(params, x1, x2):
    """Hashable structure, shapes and dtypes of the inputs (None if unhashable)."""
    try:
        leaves, treedef = jax.tree_util.tree_flatten((params, x1, x2))
        sig = (treedef, tuple((jnp.shape(v), jnp.result_type(v)) for v in leaves))
        hash(sig)
        return sig
    except TypeError:
        return None


def _check_taps_match_f(f, taps, params, x1):
    r"""Raises if concrete taps and `f` disagree at x1[0]: output or kernel.

    One forward pass and one example's Jacobian kernel $J J^\top$ against the
    structured one: catches taps built for another network (a different
    activation, config or bias scale), which would give a wrong kernel silently.
    The output alone misses a bias scale when the biases are 0.
    """
    if not is_concrete((params, x1)):
        return
    # float16/bfloat16: both kernels' round-off (~eps of the sums) would exceed any
    # tolerance that still tells networks apart, so the check runs in float32.
    params, x1 = jax.tree_util.tree_map(_at_least_float32, (params, x1))
    want = np.asarray(f(params, x1[0]))
    if not np.all(np.isfinite(want)):  # NaN inputs, not a taps mismatch
        check_finite("x1", x1[:1])
        check_tree_finite("params", params)
    got = np.asarray(taps(params, x1[0], deltas=None)[0])
    same = got.shape == want.shape and np.allclose(got, want, rtol=0, atol=_tol(want))
    if not same:
        diff = np.max(np.abs(got - want)) if got.shape == want.shape else "shape"
        raise ValueError(
            "structure: the layer taps' output differs from f(params, x) on x1[0] "
            f"(max difference {diff}); the taps must describe the same network as f"
        )
    one = x1[:1]
    k_f = np.asarray(_ntk_jacobian(f, params, one, None, False))
    k_taps = np.asarray(_ntk_structured(taps, params, one, None, False))
    if not np.allclose(k_taps, k_f, rtol=0, atol=_tol(k_f)):
        raise ValueError(
            "structure: the layer taps' NTK differs from the Jacobian NTK of f on "
            f"x1[0] (max difference {np.max(np.abs(k_taps - k_f)):.3g} of "
            f"{np.max(np.abs(k_f)):.3g}); the taps must describe the same network "
            "as f (scales s_w, s_b included)"
        )


def _at_least_float32(a):
    a = jnp.asarray(a)
    low = jnp.issubdtype(a.dtype, jnp.floating) and a.dtype.itemsize < 4
    return a.astype(jnp.float32) if low else a


def _tol(ref):
    """Round-off bound: 1e-4 (float32) or 1e-9 (float64) of max(|ref|, 1)."""
    scale = max(float(np.max(np.abs(ref), initial=0.0)), 1.0)
    return (1e-4 if ref.dtype == np.float32 else 1e-9) * scale


def _blocked(kernel, x1, x2, b):
    """Evaluates `kernel` on b x b blocks with `lax.map` (edge-padded, then cut)."""
    n, m = x1.shape[0], x2.shape[0]

    def split(x):
        pad = -x.shape[0] % b
        x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
        return x.reshape(x.shape[0] // b, b, *x.shape[1:])

    rows = jax.lax.map(
        lambda xa: jax.lax.map(lambda xb: kernel(xa, xb), split(x2)), split(x1)
    )  # (n_blocks, m_blocks, b, b, ...)
    theta = einops.rearrange(rows, "i j a c ... -> (i a) (j c) ...")
    return theta[:n, :m]
