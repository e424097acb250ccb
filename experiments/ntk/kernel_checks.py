"""Kernel correctness: empirical-NTK algorithms, analytic kernels, quadrature, MC.

Every empirical-NTK algorithm against a naive Jacobian contraction; analytic ReLU and
erf NNGP/NTK against the golden table (spec B, equal to neural-tangents' `stax`) and
against Monte Carlo averages of finite wide networks; quadrature paths (any
nonlinearity, tanh included) against the closed forms.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import Claim, Outcome, new_figure, register_module
from jaxfeat import ntk
from jaxfeat._src.testing import rel_fro

TITLE = "Kernel checks: empirical-NTK algorithms, closed forms, quadrature, Monte Carlo"
X64 = True
ORDER = 1

GOLDEN_NTK = {
    0.0: [0.5, 0.0795775, 0.2355828, 0.0],
    0.1: [0.52, 0.0962158, 0.2541023, -0.0113170],
    1.0: [2.5, 1.9102202, 2.1489274, 1.5291658],
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    n: int = 12
    mc_width: int = 2048
    mc_seeds: int = 16
    mlp_widths: tuple[int, ...] = (128, 128)


SCALES = {
    "smoke": Config(n=6, mc_width=1024, mc_seeds=4, mlp_widths=(32,)),
    "default": Config(),
    "paper": Config(n=32, mc_width=4096, mc_seeds=16),
}


def _naive(f, params, x):
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = jax.vmap(lambda xi: jax.jacrev(lambda p: f(unravel(p), xi))(flat))(x)
    return jnp.einsum("nap,mbp->nmab", jac, jac)


def run(cfg: Config, key, progress: bool = True) -> Outcome:
    k1, k2, k3 = jax.random.split(key, 3)
    # 1. algorithms agree
    net = ntk.MLPConfig(in_dim=16, widths=cfg.mlp_widths, out_dim=5, b_std=0.1)
    params = ntk.init_mlp(k1, net)
    x = jax.random.normal(k2, (cfg.n, 16))
    f = functools.partial(ntk.mlp_apply, cfg=net)
    ref = _naive(f, params, x)
    alg_err = {}
    for method in ("jacobian", "ntvp", "structured"):
        got = ntk.empirical_ntk_fn(
            f,
            method=method,
            trace_outputs=False,
            structure=functools.partial(ntk.mlp_taps, cfg=net),
        )(params, x)
        alg_err[method] = float(jnp.max(jnp.abs(got - ref)) / jnp.max(jnp.abs(ref)))
    # 2. golden table
    x1 = jnp.array([[1.0, 0.0]])
    x2 = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.5, np.sqrt(3) / 2], [-1.0, 0.0]])
    gold_err = max(
        float(
            jnp.max(
                jnp.abs(
                    ntk.analytic_kernels(
                        ntk.MLPConfig(in_dim=2, widths=(1,), b_std=b), x1, x2
                    ).ntk[0]
                    - jnp.asarray(v)
                )
            )
        )
        for b, v in GOLDEN_NTK.items()
    )
    # 3. quadrature vs closed forms; 4. Monte Carlo vs analytic
    xq = jax.random.normal(k3, (cfg.n, 8))
    quad_err, mc_err, scatter = 0.0, {}, {}
    for act in ("relu", "erf"):
        kc = ntk.MLPConfig(in_dim=8, widths=(1, 1), activation=act, b_std=0.2)
        cf = ntk.analytic_kernels(kc, xq)
        for method in ("polar", "gauss_hermite") if act == "erf" else ("polar",):
            # Gauss-Hermite needs more nodes than the polar rule (see analytic_kernels)
            nodes = 96 if method == "gauss_hermite" else 64
            qd = ntk.analytic_kernels(kc, xq, method=method, n_nodes=nodes)
            quad_err = max(
                quad_err,
                float(jnp.max(jnp.abs(qd.ntk - cf.ntk))),
                float(jnp.max(jnp.abs(qd.nngp - cf.nngp))),
            )
    for act, depth in (("relu", 1), ("relu", 2), ("erf", 1), ("tanh", 1)):
        wide = ntk.MLPConfig(
            in_dim=8,
            widths=(cfg.mc_width,) * depth,
            out_dim=8,
            activation=act,
            b_std=0.2,
        )
        exact = ntk.analytic_kernels(wide, xq)
        fn = ntk.empirical_ntk_fn(
            functools.partial(ntk.mlp_apply, cfg=wide),
            structure=functools.partial(ntk.mlp_taps, cfg=wide),
        )
        taps = functools.partial(ntk.mlp_taps, cfg=wide)

        def one(k, wide=wide, fn=fn, taps=taps):
            p = ntk.init_mlp(k, wide)
            _, inputs, scales = jax.vmap(taps, in_axes=(None, 0))(p, xq)
            return inputs[-1] @ inputs[-1].T + scales[-1][0] ** 2, fn(p, xq)

        nngp, ntk_ = jax.lax.map(
            one, jax.random.split(jax.random.fold_in(key, depth), cfg.mc_seeds)
        )
        name = f"{act}-depth{depth}"
        mc_err[name] = {
            "nngp": rel_fro(nngp.mean(0), exact.nngp),
            "ntk": rel_fro(ntk_.mean(0), exact.ntk),
        }
        scatter[name] = (
            np.asarray(exact.ntk).ravel(),
            np.asarray(ntk_.mean(0)).ravel(),
        )
    worst_mc = max(max(v.values()) for v in mc_err.values())
    claims = [
        Claim(
            "NTK-1",
            "check",
            "Jacobian contraction, NTK-vector products and the structured algorithm "
            "equal a naive jacrev contraction (float64)",
            max(alg_err.values()) <= 1e-10,
            alg_err,
            "<= 1e-10 relative",
        ),
        Claim(
            "NTK-2",
            "check",
            "analytic ReLU NTK equals the golden table (neural-tangents' stax values)",
            gold_err <= 1e-6,
            gold_err,
            "<= 1e-6",
        ),
        Claim(
            "NTK-3",
            "check",
            "quadrature (polar, Gauss-Hermite) equals the ReLU/erf closed forms "
            "(depth 2)",
            quad_err <= 1e-6,
            quad_err,
            "<= 1e-6",
        ),
        Claim(
            "NTK-2.mc",
            "check",
            f"Monte Carlo kernels (width {cfg.mc_width}, {cfg.mc_seeds} draws) match "
            "the analytic NNGP/NTK (relu, erf, tanh via quadrature)",
            worst_mc <= 0.02 * (2048 / cfg.mc_width) ** 0.5 * (8 / cfg.mc_seeds) ** 0.5,
            mc_err,
            "<= 2% relative Frobenius (scaled as 1/sqrt(width * draws))",
        ),
    ]
    fig, axes = new_figure(1, 2)
    ax = axes[0][0]
    for i, (name, (a, b)) in enumerate(scatter.items()):
        ax.plot(a, b, ".", ms=3, color=f"C{i}", label=name)
    lim = [
        min(v[0].min() for v in scatter.values()),
        max(v[0].max() for v in scatter.values()),
    ]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.set_xlabel("analytic NTK")
    ax.set_ylabel(f"Monte Carlo NTK (width {cfg.mc_width})")
    ax.set_title("NTK-2: infinite width vs finite width", fontsize=8)
    ax.legend(fontsize=6)
    ax = axes[0][1]
    names = list(mc_err)
    ax.bar(
        np.arange(len(names)) - 0.2,
        [mc_err[n]["nngp"] for n in names],
        0.4,
        label="NNGP",
    )
    ax.bar(
        np.arange(len(names)) + 0.2, [mc_err[n]["ntk"] for n in names], 0.4, label="NTK"
    )
    ax.axhline(0.02, color="k", ls=":", lw=0.8)
    ax.set_xticks(range(len(names)), names, fontsize=6)
    ax.set_ylabel("relative Frobenius error")
    ax.set_title("NTK-2: Monte Carlo error (dotted: 2%)", fontsize=8)
    ax.legend(fontsize=6)
    metrics = {
        "algorithm_rel_error": alg_err,
        "golden_error": gold_err,
        "quadrature_error": quad_err,
        "monte_carlo_rel_fro": mc_err,
    }
    return Outcome(metrics, claims, fig)


EXPERIMENT = register_module(__name__)
main = EXPERIMENT.main

if __name__ == "__main__":
    raise SystemExit(EXPERIMENT.cli())
