r"""Parameters used both in a dense layer and elsewhere are not Kronecker-factorable.

A tied embedding/unembedding weight `E` (an index `E[tok]` and the dense layer
`h @ E.T`) or a bias added to a layer output that also feeds other ops: the
gradient of such a leaf is not the layer's $\sum_t Ds_t \bar a_t^\top$.
`find_dense_layers` names the leaf, K-FAC/EK-FAC refuse the model, and the
unfactored strategies score it with full per-example gradients.

All under x64: the oracle is a dense float64 computation from `jax.grad` /
`jax.jacobian` of the flattened parameters, so agreement is to round-off (1e-10
relative).
"""

import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree

from jaxfeat import influence

V, D, T, N = 5, 3, 4, 6  # vocabulary, width, positions, examples
DAMPING = 0.1


def _tied(p, tok):  # tied embedding / unembedding, one token -> (V,)
    return jnp.tanh(p["E"][tok]) @ p["E"].T


def _tied_seq(p, toks):  # the same over a sequence of tokens -> (T, V)
    return jnp.tanh(p["E"][toks]) @ p["E"].T


def _bias_reuse(p, x):  # the pre-bias output z also feeds `0.3 * z`
    z = x @ p["w"]
    return jnp.tanh(z + p["b"]) + 0.3 * z


def _unshared(p, x):  # every leaf in one dense layer: must stay factored
    z = x @ p["w1"].T  # an (o, i) weight, no bias
    _ = jnp.sum(p["w1"] ** 2)  # dead code is not a use
    h = jnp.tanh(z) + 0.3 * z  # a bias-free layer output may feed several ops
    return p["w2"] @ h + p["b2"]  # W @ x with a bias


def _problem(which, key):
    ks = jax.random.split(key, 5)
    if which in ("tied", "tied_seq"):
        params = {"E": jax.random.normal(ks[0], (V, D))}
        shape = (N,) if which == "tied" else (N, T)
        x = jax.random.randint(ks[1], shape, 0, V)
        y = jax.random.randint(ks[2], shape, 0, V)
        return (_tied if which == "tied" else _tied_seq), params, x, y
    x = jax.random.normal(ks[1], (N, D))
    y = jax.random.randint(ks[2], (N,), 0, V)
    if which == "bias_reuse":
        params = {
            "w": jax.random.normal(ks[0], (D, V)),
            "b": jax.random.normal(ks[3], (V,)),
        }
        return _bias_reuse, params, x, y
    params = {
        "w1": jax.random.normal(ks[0], (4, D)),
        "w2": jax.random.normal(ks[3], (V, 4)),
        "b2": jax.random.normal(ks[4], (V,)),
    }
    return _unshared, params, x, y


def _reference(f, params, xq, yq, xt, yt, damping):
    """`g_q^T (G + damping I)^{-1} g_t` (`g_q^T g_t` for `damping=None`), densely.

    Softmax cross-entropy summed over positions; `G` is the mean GGN.
    """
    flat, unravel = ravel_pytree(params)

    def logits(theta, xi):
        out = f(unravel(theta), xi)
        return out.reshape(-1, out.shape[-1])  # (positions, V)

    def loss(theta, xi, yi):
        out = logits(theta, xi)
        picked = jnp.take_along_axis(out, yi.reshape(-1, 1), axis=-1)[:, 0]
        return jnp.sum(jax.nn.logsumexp(out, axis=-1) - picked)

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))
    gq, gt = grads(flat, xq, yq), grads(flat, xt, yt)
    if damping is None:
        return gq @ gt.T

    def ggn(xi):
        jac = jax.jacobian(logits)(flat, xi)  # (t, V, P)
        p = jax.nn.softmax(logits(flat, xi))
        m = jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]
        return jnp.einsum("tkp,tkl,tlq->pq", jac, m, jac)

    g = jnp.mean(jax.vmap(ggn)(xt), axis=0)
    return gq @ jnp.linalg.solve(g + damping * jnp.eye(flat.size), gt.T)


def _rel(a, b):
    return float(jnp.linalg.norm(jnp.ravel(a - b)) / jnp.linalg.norm(jnp.ravel(b)))


SHARED = {"tied": "E", "tied_seq": "E", "bias_reuse": "b"}


@pytest.mark.parametrize("which", list(SHARED))
def test_shared_leaf_is_named(key, which):
    f, params, x, y = _problem(which, key)
    name = rf"\['{SHARED[which]}'\]"
    with pytest.raises(ValueError, match=rf"not so for .*{name}.*used outside"):
        influence.find_dense_layers(f, params, x[0])
    with pytest.raises(ValueError, match=rf"strategy 'ekfac'.*{name}"):
        influence.fit_curvature(f, params, x, y, cfg=influence.IHVPConfig())


@pytest.mark.parametrize("strategy", ["identity", "exact"])
@pytest.mark.parametrize("which", list(SHARED))
def test_shared_leaf_scores_use_full_gradients(key, x64, which, strategy):
    f, params, x, y = _problem(which, key)
    damping = DAMPING if strategy == "exact" else None
    cfg = influence.IHVPConfig(strategy=strategy, damping=damping)
    state = influence.fit_curvature(f, params, x, y, cfg=cfg)
    scores = influence.pairwise_scores(state, params, x[:3], y[:3], x, y)
    expected = _reference(f, params, x[:3], y[:3], x, y, damping)
    assert _rel(scores, expected) < 1e-10
    self_s = influence.self_scores(state, params, x, y)
    diag = jnp.diag(_reference(f, params, x, y, x, y, damping))
    assert _rel(self_s, diag) < 1e-10
    assert not state.factored  # scored with full per-example gradients


@pytest.mark.parametrize("strategy", ["identity", "exact"])
def test_unshared_layers_stay_factored(key, x64, strategy):
    f, params, x, y = _problem("unshared", key)
    layers = influence.find_dense_layers(f, params, x[0])
    assert [(t.bias is None, t.w_in_axis, t.w_is_lhs) for t in layers] == [
        (True, 1, False),
        (False, 1, True),
    ]
    damping = DAMPING if strategy == "exact" else None
    cfg = influence.IHVPConfig(strategy=strategy, damping=damping)
    state = influence.fit_curvature(f, params, x, y, cfg=cfg)
    assert state.factored
    scores = influence.pairwise_scores(state, params, x[:3], y[:3], x, y)
    expected = _reference(f, params, x[:3], y[:3], x, y, damping)
    assert _rel(scores, expected) < 1e-10
