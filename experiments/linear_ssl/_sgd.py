"""Online minibatch SGD on fresh samples, for checks against the population flow."""

import jax
import jax.numpy as jnp
import optax

from jaxfeat import linear_ssl as ls


def online_sgd(key, params, sampler, *, objective, lr, n_steps, batch, log_every):
    """SGD on the minibatch objective, a fresh batch from `sampler(key, n)` per step.

    Returns logged times (lr * step) and end-to-end encoders, shape (t, d, d).
    """
    loss_fn = ls.jepa_loss if objective == "jepa" else ls.mae_loss
    opt = optax.sgd(lr)

    def step(carry, i):
        p, s = carry
        x, y = sampler(jax.random.fold_in(key, i), batch)
        g = jax.grad(loss_fn)(p, x, y)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    def block(carry, j):
        steps = j * log_every + jnp.arange(log_every)
        carry, _ = jax.lax.scan(step, carry, steps)
        return carry, ls.encoder_matrix(carry[0])

    init = (params, opt.init(params))
    _, enc = jax.lax.scan(block, init, jnp.arange(n_steps // log_every))
    enc = jnp.concatenate([ls.encoder_matrix(params)[None], enc])
    t = lr * log_every * jnp.arange(enc.shape[0], dtype=enc.dtype)
    return t, enc
