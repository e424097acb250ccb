r"""Logistic regression: exact-Hessian influence vs warm-started Newton LOO retraining.

Spec `influence.md` §4.2 and checks §5.12: binary logistic regression (n = 500,
d = 20, isotropic Gaussian features, true logits of unit scale, L2
$\lambda = 10^{-2}$ on the summed loss), Newton to convergence, then every
training point removed in turn and the model retrained by warm-started Newton.
The predicted change of a test query's loss on removing $z_m$ is
$g_q^\top H^{-1} g_m$ with $H$ the Hessian of the summed objective, which is
`pairwise_scores / n` for the mean-loss Hessian damped by $\lambda / n$
(`strategy="exact"`, `curvature="hessian"`). Also: CG and LiSSA against the exact
solve, and EK-FAC (exact Fisher, one dense layer, 0.1 x mean damping) against the
exact damped GGN of the same layer (the GGN of a linear model is not a Kronecker
product, so EK-FAC is not exact; spec measured Pearson 0.986). Float64.
"""

import dataclasses

import einops
import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import Claim, Outcome, new_figure, register_module
from experiments.influence._shared import pearson_rows, spearman_rows
from jaxfeat import influence, ntk, sharded_vmap

TITLE = "Logistic regression: exact-Hessian influence vs Newton LOO retraining"
X64 = True
ORDER = 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    n: int = 500
    d: int = 20
    lam: float = 1e-2
    n_queries: int = 10
    loo_newton_steps: int = 8
    lissa_iters: int = 2000
    extras: bool = True  # CG, LiSSA, K-FAC, strong-signal problem (compiles)
    logit_std: float = 1.0  # w_true ~ N(0, logit_std^2 / d): logits of unit scale
    strong_logit_std: float = 4.0  # a second problem, far from Kronecker GGN
    min_pearson: float = 0.98  # spec §5.12 acceptance (measured 0.9987)


SCALES = {
    "smoke": Config(n=120, d=8, n_queries=4, extras=False),
    "default": Config(),
    "paper": Config(n_queries=50),
}


def _lr_fn(theta, x):  # binary logistic regression as a 2-class softmax
    return jnp.stack([jnp.zeros_like(x[0]), x @ theta])


def _newton(theta, x, y, w, lam, steps):
    """Newton on sum_n w_n CE_n + lam/2 |theta|^2 (closed-form gradient, Hessian)."""
    eye = jnp.eye(x.shape[1], dtype=x.dtype)

    def step(t, _):
        p = jax.nn.sigmoid(x @ t)
        g = x.T @ (w * (p - y)) + lam * t
        h = einops.einsum(x, w * p * (1 - p), x, "n i, n, n j -> i j") + lam * eye
        delta = jnp.linalg.solve(h, g)
        return t - delta, jnp.max(jnp.abs(delta))

    theta, sizes = jax.lax.scan(step, theta, None, steps)
    return theta, sizes[-1]


def _problem(key, n, d, nq, logit_std):
    kx, kw, ky = jax.random.split(key, 3)
    x_all = jax.random.normal(kx, (n + nq, d))
    w_true = logit_std / jnp.sqrt(d) * jax.random.normal(kw, (d,))
    p_true = jax.nn.sigmoid(x_all @ w_true)
    y_all = (jax.random.uniform(ky, (n + nq,)) < p_true).astype(jnp.int32)
    return x_all[:n], y_all[:n], x_all[n:], y_all[n:]


def _kron_vs_ggn(x, y, xq, yq, theta, strategies=("exact", "ekfac", "kfac")):
    """Mean per-query Pearson of EK-FAC / K-FAC vs exact damped GGN (one layer)."""
    d = x.shape[1]
    layer_cfg = ntk.MLPConfig(
        in_dim=d, widths=(), out_dim=2, parameterization="standard"
    )
    layer = (ntk.Dense(jnp.stack([jnp.zeros(d), theta], 1), jnp.zeros(2)),)
    out = {}
    for strategy in strategies:
        st = influence.fit_curvature(
            layer_cfg, layer, x, y, cfg=influence.IHVPConfig(strategy=strategy)
        )
        out[strategy] = np.asarray(influence.pairwise_scores(st, layer, xq, yq, x, y))
    r = {s: float(np.mean(pearson_rows(out[s], out["exact"]))) for s in out}
    return r, out


def run(cfg: Config, key, progress: bool = True) -> Outcome:
    del progress
    n, d, lam, nq = cfg.n, cfg.d, cfg.lam, cfg.n_queries
    k_main, k_strong = jax.random.split(key)
    x, y, xq, yq = _problem(k_main, n, d, nq, cfg.logit_std)
    y_f = y.astype(x.dtype)  # Newton uses float labels; influence integer ones
    newton = jax.jit(_newton, static_argnums=5)
    theta, last_step = newton(jnp.zeros(d), x, y_f, jnp.ones(n), lam, 40)
    # the n leave-one-out refits, sharded over every visible device
    retrain = sharded_vmap(
        lambda i, t, xx, yy: _newton(
            t, xx, yy, jnp.ones(n, xx.dtype).at[i].set(0.0), lam, cfg.loo_newton_steps
        ),
        in_axes=(0, None, None, None),
    )
    loo, loo_steps = retrain(jnp.arange(n), theta, x, y_f)
    lf = influence.example_loss_fn(_lr_fn, "cross_entropy")
    base = influence.per_example_losses(lf, theta, xq, yq)
    after = jax.vmap(lambda t: influence.per_example_losses(lf, t, xq, yq))(loo)
    actual = np.asarray(after - base[None]).T  # (q, n): removing m changes loss_q

    def scores(strategy, **kw):
        c = influence.IHVPConfig(
            strategy=strategy, curvature="hessian", damping=lam / n, **kw
        )
        st = influence.fit_curvature(_lr_fn, theta, x, y, cfg=c)
        return np.asarray(influence.pairwise_scores(st, theta, xq, yq, x, y)) / n

    pred = scores("exact")
    pear = pearson_rows(pred, actual)
    spear = spearman_rows(pred, actual)
    slope = (pred * actual).sum(1) / (pred**2).sum(1)  # least squares through 0
    top = np.argsort(-np.abs(pred), axis=1)[:, : max(10, n // 5)]
    pear_top = pearson_rows(
        np.take_along_axis(pred, top, 1), np.take_along_axis(actual, top, 1)
    )
    rel = lambda a: float(np.linalg.norm(a - pred) / np.linalg.norm(pred))
    cg_err = (
        rel(scores("cg", cg_tol=1e-10, cg_maxiter=500)) if cfg.extras else float("nan")
    )
    lissa_err = (
        rel(scores("lissa", lissa_iters=cfg.lissa_iters))
        if cfg.extras
        else float("nan")
    )

    # EK-FAC vs exact damped GGN on the same single dense layer (2-class softmax)
    strategies = ("exact", "ekfac", "kfac") if cfg.extras else ("exact", "ekfac")
    kron, kron_scores = _kron_vs_ggn(x, y, xq, yq, theta, strategies)
    kron.setdefault("kfac", float("nan"))
    ggn = kron_scores["exact"]
    kron_strong = {"ekfac": float("nan"), "kfac": float("nan")}
    if cfg.extras:
        xs, ys, xsq, ysq = _problem(k_strong, n, d, nq, cfg.strong_logit_std)
        ys_f = ys.astype(xs.dtype)  # Newton: float labels; influence: integer
        theta_s, _ = newton(jnp.zeros(d), xs, ys_f, jnp.ones(n), lam, 40)
        kron_strong, _ = _kron_vs_ggn(xs, ys, xsq, ysq, theta_s)

    claims = [
        Claim(
            "INF-E2",
            "check",
            "exact-Hessian influence g_q^T H^-1 g_m predicts warm-started Newton LOO "
            "retraining (Pearson per query, worst of the queries)",
            float(pear.min()) >= cfg.min_pearson,
            float(pear.min()),
            f">= {cfg.min_pearson} (spec §4.2 measured 0.9987)",
            note=f"n={n}, d={d}, {nq} queries; mean {pear.mean():.4f}, Spearman "
            f"mean {spear.mean():.4f}",
        ),
        Claim(
            "INF-E2.converged",
            "check",
            "Newton fit and every LOO retrain converged (last step size)",
            max(float(last_step), float(jnp.max(loo_steps))) <= 1e-10,
            max(float(last_step), float(jnp.max(loo_steps))),
            "<= 1e-10",
        ),
        Claim(
            "INF-E2.slope",
            "finding",
            "IF underestimates the LOO effect by a few percent (slope of actual on "
            "predicted > 1; Rubinstein & Hopkins)",
            1.0 < float(np.median(slope)) < 1.25,
            float(np.median(slope)),
            "median slope in (1, 1.25) (spec §4.2 measured 1.07)",
        ),
        Claim(
            "INF-E2.cg",
            "check",
            "CG iHVP scores equal the exact solve",
            cg_err <= 1e-6,
            cg_err,
            "relative error <= 1e-6 (cg_tol 1e-10)",
            checked=cfg.extras,
        ),
        Claim(
            "INF-E2.lissa",
            "finding",
            f"LiSSA ({cfg.lissa_iters} steps, scale 1.5 x power-iteration "
            "lambda_max) matches the exact solve",
            lissa_err <= 1e-3,
            lissa_err,
            "relative error <= 1e-3 (spec §4.2)",
            checked=cfg.extras,
        ),
        Claim(
            "INF-E2.ekfac",
            "finding",
            "EK-FAC (exact Fisher, one dense layer) agrees with the exact damped GGN "
            "influence (mean per-query Pearson)",
            kron["ekfac"] >= 0.95,
            kron["ekfac"],
            ">= 0.95 (spec §5.12 measured 0.986; K-FAC 0.985)",
            note=f"logits of std {cfg.logit_std}; K-FAC {kron['kfac']:.4f}",
        ),
        Claim(
            "INF-E2.ekfac_strong",
            "finding",
            "with strongly separated classes (logit std "
            f"{cfg.strong_logit_std}) p(1-p) varies across examples, the GGN "
            "E[p(1-p) a a^T] is far from Kronecker and EK-FAC agrees less",
            kron_strong["ekfac"] < kron["ekfac"],
            kron_strong["ekfac"],
            f"< {kron['ekfac']:.4f} (the unit-logit problem)",
            note=f"K-FAC {kron_strong['kfac']:.4f}",
            checked=cfg.extras,
        ),
    ]
    fig, axes = new_figure(1, 2)
    ax = axes[0][0]
    for q in range(min(nq, 6)):
        ax.plot(pred[q], actual[q], ".", ms=2, color=f"C{q}", label=f"query {q}")
    lim = [min(pred.min(), actual.min()), max(pred.max(), actual.max())]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.set_xlabel("predicted change of query loss, g_q^T H^-1 g_m")
    ax.set_ylabel("actual change (Newton LOO retrain)")
    ax.set_title(
        f"INF-E2: Pearson min {pear.min():.4f}, slope {np.median(slope):.3f}",
        fontsize=8,
    )
    ax.legend(fontsize=6)
    ax = axes[0][1]
    ax.plot(ggn.ravel(), kron_scores["ekfac"].ravel(), ".", ms=2)
    lim = [ggn.min(), ggn.max()]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.set_xlabel("exact damped-GGN score")
    ax.set_ylabel("EK-FAC score")
    ax.set_title(f"INF-E2.ekfac: mean Pearson {kron['ekfac']:.4f}", fontsize=8)
    metrics = {
        "pearson_per_query": pear,
        "spearman_per_query": spear,
        "pearson_top20pct_per_query": pear_top,
        "slope_per_query": slope,
        "cg_rel_error": cg_err,
        "lissa_rel_error": lissa_err,
        "ekfac_vs_ggn_pearson": kron["ekfac"],
        "kfac_vs_ggn_pearson": kron["kfac"],
        "strong_signal_kron_vs_ggn_pearson": kron_strong,
        "newton_last_step": float(last_step),
        "loo_last_step_max": float(jnp.max(loo_steps)),
        "train_accuracy": float(jnp.mean((x @ theta > 0) == (y == 1))),
    }
    return Outcome(metrics, claims, fig)


EXPERIMENT = register_module(__name__)
main = EXPERIMENT.main

if __name__ == "__main__":
    raise SystemExit(EXPERIMENT.cli())
