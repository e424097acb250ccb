"""Elementwise nonlinearities by name, with their derivatives (for kernels)."""

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

ACTIVATIONS = ("relu", "tanh", "erf", "linear", "gelu", "softplus")


def _relu(x):
    return jnp.maximum(x, 0.0)


_FNS = {
    "relu": _relu,
    "tanh": jnp.tanh,
    "erf": erf,
    "linear": lambda x: x,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "softplus": jax.nn.softplus,
}


def activation_fn(name: str):
    """The elementwise function called `name` (see `ACTIVATIONS`)."""
    if name not in _FNS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}; got {name!r}")
    return _FNS[name]


def activation_derivative(name: str):
    """The derivative of `activation_fn(name)` (the step function for relu)."""
    if name == "relu":
        return lambda x: (x > 0).astype(x.dtype)
    return jnp.vectorize(jax.grad(activation_fn(name)))
