r"""Ridge regression: leave-one-out retraining equals IF / (1 - leverage) exactly.

Spec `influence.md` §4.1 and check §5.11. For ridge regression
$\hat\theta = (X^\top X + \lambda I)^{-1} X^\top y$ with $H = X^\top X + \lambda I$,
residual $r_i = x_i^\top\hat\theta - y_i$ and leverage $h_{ii} = x_i^\top H^{-1} x_i$,
Sherman-Morrison gives $\theta_{-i} - \hat\theta = H^{-1} x_i r_i / (1 - h_{ii})$.
The influence term $H^{-1} x_i r_i$ comes from `jaxfeat.influence` (per-example MSE
gradients and the `exact` iHVP of the mean-loss Hessian $X^\top X / n$ damped by
$\lambda / n$, divided by $n$); the truth is an independent refit without each point
(`numpy.linalg.solve` on the remaining $n - 1$ rows). Float64.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import Claim, Outcome, new_figure, register_module
from jaxfeat import influence

TITLE = "Ridge regression: LOO parameter change equals IF / (1 - leverage) exactly"
X64 = True
ORDER = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    n: int = 200
    d: int = 10
    lam: float = 1.0
    noise: float = 0.3
    tol: float = 1e-10  # spec §4.1 measured 1.3e-15


SCALES = {
    "smoke": Config(n=60, d=5),
    "default": Config(),
    "paper": Config(n=1000, d=50),
}


def _linear(theta, x):
    return jnp.atleast_1d(x @ theta)


def run(cfg: Config, key, progress: bool = True) -> Outcome:
    del progress
    n, d, lam = cfg.n, cfg.d, cfg.lam
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (n, d))
    y = x @ jnp.linspace(-1.0, 1.0, d) + cfg.noise * jax.random.normal(ky, (n,))
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    h = xn.T @ xn + lam * np.eye(d)
    theta = np.linalg.solve(h, xn.T @ yn)

    # IF term from jaxfeat: (X^T X / n + lam / n)^{-1} x_i r_i / n = H^{-1} x_i r_i
    icfg = influence.IHVPConfig(
        strategy="exact", loss="mse", curvature="hessian", damping=lam / n
    )
    state = influence.fit_curvature(
        _linear, jnp.asarray(theta), x, y[:, None], cfg=icfg
    )
    lf = influence.example_loss_fn(_linear, "mse")
    g = influence.per_example_grads(lf, jnp.asarray(theta), x, y[:, None])
    if_change = np.asarray(influence.ihvp(state, g)) / n  # (n, d)
    lev = np.einsum("nd,nd->n", xn, np.linalg.solve(h, xn.T).T)

    # truth: refit without each point (independent of the influence code)
    loo = np.stack(
        [
            np.linalg.solve(
                np.delete(xn, i, 0).T @ np.delete(xn, i, 0) + lam * np.eye(d),
                np.delete(xn, i, 0).T @ np.delete(yn, i, 0),
            )
            for i in range(n)
        ]
    )
    actual = loo - theta[None]
    predicted = if_change / (1.0 - lev)[:, None]
    err = float(np.max(np.abs(actual - predicted)))
    scale = float(np.max(np.abs(actual)))
    plain_err = float(np.max(np.abs(actual - if_change)))  # without the leverage
    # the residual-times-input gradient itself: g_i = x_i r_i
    resid = xn @ theta - yn
    grad_err = float(np.max(np.abs(np.asarray(g) - xn * resid[:, None])))

    claims = [
        Claim(
            "INF-E1",
            "check",
            "ridge LOO parameter change (refit without each point) equals "
            "jaxfeat's IF term H^-1 x_i r_i divided by (1 - leverage), float64",
            err <= cfg.tol,
            err,
            f"max abs difference <= {cfg.tol:g} (spec §4.1: 1.3e-15)",
            note=f"n={n}, d={d}, lambda={lam}; largest LOO change {scale:.3g}",
        ),
        Claim(
            "INF-E1.grad",
            "check",
            "per-example MSE gradients equal x_i r_i",
            grad_err <= 1e-12,
            grad_err,
            "<= 1e-12",
        ),
        Claim(
            "INF-E1.leverage",
            "finding",
            "without the 1/(1 - h_ii) factor the IF term misses LOO by O(h_ii)",
            plain_err > 1e3 * max(err, 1e-16),
            plain_err,
            "> 1000 x the corrected error",
        ),
    ]
    fig, axes = new_figure(1, 2)
    ax = axes[0][0]
    ax.plot(actual.ravel(), if_change.ravel(), ".", ms=3, alpha=0.5, label="IF")
    ax.plot(actual.ravel(), predicted.ravel(), ".", ms=3, label="IF / (1 - h)")
    lim = [actual.min(), actual.max()]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.set_xlabel("actual LOO change of theta")
    ax.set_ylabel("predicted")
    ax.set_title(f"INF-E1: max |LOO - IF/(1-h)| = {err:.1e}", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[0][1]
    ax.semilogy(lev, np.max(np.abs(actual - if_change), 1), ".", ms=3, label="IF")
    ax.semilogy(
        lev,
        np.maximum(np.max(np.abs(actual - predicted), 1), 1e-18),
        ".",
        ms=3,
        label="IF / (1 - h)",
    )
    ax.set_xlabel("leverage h_ii")
    ax.set_ylabel("max abs error per point")
    ax.legend(fontsize=7)
    metrics = {
        "max_abs_error": err,
        "max_abs_error_without_leverage": plain_err,
        "max_loo_change": scale,
        "grad_error": grad_err,
        "leverage_range": [float(lev.min()), float(lev.max())],
    }
    return Outcome(metrics, claims, fig)


EXPERIMENT = register_module(__name__)
main = EXPERIMENT.main

if __name__ == "__main__":
    raise SystemExit(EXPERIMENT.cli())
