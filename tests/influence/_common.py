"""Tiny shared problems for the influence tests."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxfeat import influence, ntk

MLP = ntk.MLPConfig(
    in_dim=3, widths=(4,), out_dim=3, activation="tanh", b_std=0.5
)  # NTK parameterisation with biases: exercises the s_w, s_b scales


def mlp_problem(key, n=8):
    kp, kx, ky = jax.random.split(key, 3)
    params = ntk.init_mlp(kp, MLP)
    x = jax.random.normal(kx, (n, MLP.in_dim))
    y = jax.random.randint(ky, (n,), 0, MLP.out_dim)
    return params, x, y


def apply_fn(params, x):  # the same MLP as a plain f(params, x)
    return ntk.mlp_apply(params, x, MLP)


def dense_ggn(params, x):
    """Independent GGN of the mean softmax-CE loss: mean_n J^T (diag p - pp^T) J."""
    flat, unravel = ravel_pytree(params)
    f = lambda t, xi: apply_fn(unravel(t), xi)
    jac = jax.vmap(lambda xi: jax.jacobian(f)(flat, xi))(x)  # (n, k, p)
    p = jax.nn.softmax(jax.vmap(lambda xi: f(flat, xi))(x))
    m = jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]
    return jnp.einsum("nkp,nkl,nlq->pq", jac, m, jac) / x.shape[0]


def label_grads(params, x):
    """Per-example, per-label gradients in each layer's (o, i+1) matrix form."""
    k = MLP.out_dim
    lf = influence.example_loss_fn(MLP, "cross_entropy")

    def one(xi, c):
        return jax.grad(lf)(params, xi, c)

    g = jax.vmap(lambda xi: jax.vmap(lambda c: one(xi, c))(jnp.arange(k)))(x)
    p = jax.nn.softmax(jax.vmap(lambda xi: apply_fn(params, xi))(x))
    mats = [
        jax.vmap(jax.vmap(influence.dense_matrix))(layer).reshape(x.shape[0], k, -1)
        for layer in g
    ]
    return mats, p  # per layer (n, k, P_l), probabilities (n, k)


# a tiny sequence model: per-token dense layers with a fixed causal mix
T, D, H, K = 5, 3, 4, 3  # positions, input, hidden, classes
# fixed causal averaging: position t sees the mean of the hidden states <= t
MIX = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]


def seq_apply(params, x):
    """A sequence model `(T, D) -> (T, K)`: per-token dense, causal mix, dense."""
    h = jnp.tanh(x @ params["w1"] + params["b1"][None])
    return (jnp.asarray(MIX, h.dtype) @ h) @ params["w2"] + params["b2"][None]


def seq_apply_per_position(params, x):
    """`seq_apply` with one weight copy per position `(T, ...)`: their gradients
    are the per-token terms $Ds_t \\bar a_t^\\top$ (an independent oracle)."""
    h = jnp.tanh(jnp.einsum("ti,tio->to", x, params["w1"]) + params["b1"])
    m = jnp.asarray(MIX, h.dtype) @ h
    return jnp.einsum("ti,tio->to", m, params["w2"]) + params["b2"]


def seq_problem(key, n=7):
    ks = jax.random.split(key, 6)
    params = {
        "w1": jax.random.normal(ks[0], (D, H)),
        "b1": 0.3 * jax.random.normal(ks[1], (H,)),
        "w2": jax.random.normal(ks[2], (H, K)),
        "b2": 0.3 * jax.random.normal(ks[3], (K,)),
    }
    x = jax.random.normal(ks[4], (n, T, D))
    y = jax.random.randint(ks[5], (n, T), 0, K)
    return params, x, y
