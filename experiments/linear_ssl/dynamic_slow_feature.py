"""Dynamic AR(1) model: deep JEPA prefers the slow feature, MAE the high-variance one.

Spec section 3.3. Consecutive frames of a noisy AR(1) process: a slow feature
(a 0.95, s^2 1, noise 0.1: lambda 0.95, rho 0.86) and a fast, high-variance one
(a 0.4, s^2 3, noise 0.1: lambda 1.2, rho 0.39). MAE learns the fast feature first at
every depth; JEPA switches to the slow one with depth (the "slow features" bias of
Sobal et al. 2022, arXiv:2211.10831).
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from experiments._common import Claim, Outcome, new_figure, register_module
from experiments.linear_ssl._shared import (
    pair_ratio_over_depth,
    plot_curves,
    plot_ratio_over_depth,
)
from jaxfeat import linear_ssl as ls

TITLE = "Dynamic AR(1) model: deep JEPA learns the slow feature first"
X64 = False
ORDER = 6  # position in `jaxfeat list` and REPORT.md


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    ar: tuple[float, float] = (0.95, 0.4)  # slow, fast
    state_var: tuple[float, float] = (1.0, 3.0)
    noise_var: tuple[float, float] = (0.1, 0.1)
    eps: float = 1e-3
    depths: tuple[int, ...] = (1, 2, 3, 4, 5)
    mc_steps: int = 400_000


SCALES = {
    "smoke": Config(depths=(1, 4), mc_steps=40_000),
    "default": Config(),
    "paper": Config(mc_steps=2_000_000),
}


def run(cfg: Config, key, progress: bool = True) -> Outcome:
    ar, s2, n2 = (jnp.asarray(v) for v in (cfg.ar, cfg.state_var, cfg.noise_var))
    spec = ls.dynamic_ar1(ar, s2, n2)
    seq = ls.sample_dynamic_ar1(key, ar, s2, n2, cfg.mc_steps + 1)
    emp = ls.empirical_covariances(seq[:-1], seq[1:])
    lam_hat = jnp.diag(emp.yx)
    rho_hat = lam_hat / jnp.diag(emp.xx)
    err = jnp.concatenate([lam_hat / spec.lam - 1, rho_hat / spec.rho - 1])
    mc_err = float(jnp.max(jnp.abs(err)))
    # AR(1) samples are correlated: the effective sample size shrinks by
    # (1 + a^2)/(1 - a^2) ~ 20 at a = 0.95; 4 sd of a relative covariance error.
    n_eff = cfg.mc_steps / ((1 + max(cfg.ar) ** 2) / (1 - max(cfg.ar) ** 2))
    mc_tol = 4 * np.sqrt(3 / n_eff)
    depths, ratio = pair_ratio_over_depth(spec, cfg.eps, cfg.depths)
    slow_first = [L for L, r in zip(depths, ratio["jepa"], strict=True) if r > 1]
    claims = [
        Claim(
            "LSSL-12.ar1",
            "check",
            "sampled AR(1) frames reproduce lambda = a s^2, rho = a s^2/(s^2 + n^2)",
            mc_err <= mc_tol,
            mc_err,
            f"<= {mc_tol:.3g}",
        ),
        Claim(
            "LSSL-12.slow_mae",
            "finding",
            "MAE learns the fast, high-variance feature first at every depth",
            bool(np.all(ratio["mae"] < 1)),
            ratio["mae"].tolist(),
            "t*_fast/t*_slow < 1 at every L",
        ),
        Claim(
            "LSSL-12.slow_jepa",
            "finding",
            "JEPA learns the fast feature first when shallow and the slow one once "
            "deep enough",
            bool(
                ratio["jepa"][0] < 1
                and slow_first
                and slow_first == depths[depths.index(slow_first[0]) :]
            ),
            {
                "ratio_fast_over_slow": ratio["jepa"].tolist(),
                "slow_first_at": slow_first,
            },
            "fast first at L = 1, slow first from some depth on",
        ),
    ]
    fig, axes = new_figure(1, 3, width=4.4)
    plot_ratio_over_depth(
        axes[0][0],
        depths,
        ratio,
        "$t^*_{fast}/t^*_{slow}$ (> 1: slow first)",
        f"LSSL-12: AR(1) frames, $\\varepsilon$={cfg.eps:g}",
    )
    L_plot = max(depths)
    for ax, obj in zip(axes[0][1:], ("jepa", "mae"), strict=True):
        t, frac = ls.learning_curve(spec.lam, spec.rho, cfg.eps, L_plot, objective=obj)
        labels = [
            f"{n} (a={a:g}, $\\lambda$={lam:.2f}, $\\rho$={r:.2f})"
            for n, a, lam, r in zip(
                ("slow", "fast"),
                cfg.ar,
                spec.lam.tolist(),
                spec.rho.tolist(),
                strict=True,
            )
        ]
        plot_curves(
            ax, t, frac, labels, f"LSSL-12: {obj.upper()}, L={L_plot}", cmap="Oranges"
        )
    metrics = {
        "lam": spec.lam,
        "rho": spec.rho,
        "lam_hat": lam_hat,
        "rho_hat": rho_hat,
        "depths": depths,
        "ratio_fast_over_slow": {k: v.tolist() for k, v in ratio.items()},
    }
    return Outcome(metrics, claims, fig)


EXPERIMENT = register_module(__name__)
main = EXPERIMENT.main

if __name__ == "__main__":
    raise SystemExit(EXPERIMENT.cli())
