"""The NTK account of shortcut bias: kernel gradient flow and bias(t) vs availability.

Kernel models trained by MSE gradient flow from f = 0 on the two-feature data: the
linear kernel, the infinite-width NTKs of one-hidden-layer ReLU and erf networks (erf
is tanh's closed-form surrogate here; `analytic_kernels` handles tanh by quadrature,
checked in `kernel_checks`, but 1600^2 quadrature pairs are slow on CPU), the
empirical NTK of a finite ReLU network at init, and deeper ReLU NTKs. bias(t) curves
show the regimes: at small t every kernel is the availability-weighted (alpha^2)
first-step classifier; the linear kernel then reaches the unbiased LDA solution
quickly while nonlinear kernels keep an availability bias for long times.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import Claim, Outcome, new_figure, register_module
from experiments.ntk._shared import (
    build_cells,
    cell_data,
    count_diverged,
    least,
    mean_ci,
    train_cells,
    worst,
)
from jaxfeat import ntk

TITLE = "NTK gradient flow predicts shortcut bias: nonlinear kernels stay biased longer"
X64 = True
ORDER = 2


# The 30 x 30 probe grid's reliance of a line differs from the continuum closed form
# R(r) by its discretisation: up to 0.0655 over slopes r (near r = 1, where the line
# runs along the grid's diagonal; 0.035 elsewhere), the same for every rho_s (the
# grid scales with mu_s). tests/ntk/test_shortcut.py measures it. The bound 0.05
# used before failed at default scale (0.0504, the cell rho_s = rho_c, alpha_s = 1).
GRID_LINE_TOL = 0.07


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    d: int = 100
    rho_c: float = 0.9
    rho_s: tuple[float, ...] = (0.7, 0.8, 0.9)
    alphas: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)
    n_train: int = 1600
    b_std: float = 0.1
    t_probe: float = 100.0
    t_late: float = 1e4
    n_times: int = 25
    empirical_width: int = 512
    # trained networks overlaid on the kernel predictions (same data, same axes)
    trained_seeds: int = 5
    trained_steps: tuple[int, ...] = (200, 3000)
    trained_width: int = 128


SCALES = {
    "smoke": Config(
        trained_seeds=2,
        trained_steps=(50,),
        trained_width=32,
        rho_s=(0.9,),
        alphas=(1.0, 3.0),
        n_train=400,
        n_times=8,
        empirical_width=128,
    ),
    "default": Config(),
    "paper": Config(
        rho_s=(0.6, 0.7, 0.8, 0.9), n_train=3200, n_times=40, empirical_width=2048
    ),
}


def _kernels(cfg):
    b = cfg.b_std
    return {
        "linear": ntk.MLPConfig(in_dim=cfg.d, widths=(), b_std=b),
        "relu": ntk.MLPConfig(in_dim=cfg.d, widths=(1,), b_std=b),
        "erf": ntk.MLPConfig(in_dim=cfg.d, widths=(1,), activation="erf", b_std=b),
        "relu_depth3": ntk.MLPConfig(in_dim=cfg.d, widths=(1, 1, 1), b_std=b),
    }


def run(cfg: Config, key, progress: bool = True) -> Outcome:
    k_emb, k_data, k_net = jax.random.split(key, 3)
    emb = ntk.make_embedding(k_emb, cfg.d)
    # the log grid plus the two times the claims name (the nearest grid point was
    # t = 37 and 13895 at smoke scale, 84 and 8377 at paper scale)
    grid_t = np.geomspace(1e-1, 1e5, cfg.n_times)
    times_np = np.unique(np.concatenate([grid_t, [cfg.t_probe, cfg.t_late]]))
    times = jnp.asarray(times_np)
    i_probe = int(np.flatnonzero(times_np == cfg.t_probe)[0])
    i_late = int(np.flatnonzero(times_np == cfg.t_late)[0])
    kernels = _kernels(cfg)
    emp_cfg = ntk.MLPConfig(
        in_dim=cfg.d, widths=(cfg.empirical_width,), b_std=cfg.b_std
    )
    emp_params = ntk.init_mlp(k_net, emp_cfg)
    emp_fn = ntk.empirical_ntk_fn(
        functools.partial(ntk.mlp_apply, cfg=emp_cfg),
        structure=functools.partial(ntk.mlp_taps, cfg=emp_cfg),
        block_size=400,
    )
    curves, early_err, continuum_err = {}, 0.0, 0.0
    for rho_s in cfg.rho_s:
        for alpha in cfg.alphas:
            tr, _, grid, xg, lda = cell_data(
                jax.random.fold_in(k_data, 0),  # the draw build_cells uses below
                emb,
                rho_s=rho_s,
                rho_c=cfg.rho_c,
                alpha_s=alpha,
                n_train=cfg.n_train,
                n_val=2,
            )
            for name, kc in kernels.items():
                ktt = ntk.analytic_kernels(kc, tr.x).ntk
                kgt = ntk.analytic_kernels(kc, xg, tr.x).ntk
                curves[(name, rho_s, alpha)] = np.asarray(
                    ntk.kernel_shortcut_bias(ktt, kgt, tr.y, times, grid, lda)
                )
                if name == "linear":
                    # t -> 0: f ~ sum_i y_i Theta(x, x_i), a line weighting feature i by
                    # alpha_i^2 mu_i; its grid reliance has the closed form R(r).
                    f0 = kgt @ tr.y
                    # the line's coefficients are the sample class means of z
                    mu_hat = jnp.mean(tr.y[:, None] * tr.z, axis=0)
                    mu_s, mu_c = ntk.latent_means(rho_s), ntk.latent_means(cfg.rho_c)
                    closed = ntk.reliance_of_line(
                        alpha**2 * mu_hat[0], mu_hat[1], mu_s, mu_c
                    )
                    line = alpha**2 * mu_hat[0] * grid[:, 0] + mu_hat[1] * grid[:, 1]
                    r_kernel = float(ntk.reliance(f0, grid))
                    early_err = worst(
                        [early_err, abs(r_kernel - float(ntk.reliance(line, grid)))]
                    )
                    continuum_err = worst(
                        [continuum_err, abs(r_kernel - float(closed))]
                    )
            ktt = emp_fn(emp_params, tr.x)
            kgt = emp_fn(emp_params, xg, tr.x)
            curves[("relu_empirical", rho_s, alpha)] = np.asarray(
                ntk.kernel_shortcut_bias(ktt, kgt, tr.y, times, grid, lda)
            )
    # Trained networks on the same (rho_top, alpha) cells, early and converged.
    rho_top = max(cfg.rho_s)
    cells = build_cells(
        k_data,
        emb,
        [(rho_top, a) for a in cfg.alphas],
        rho_c=cfg.rho_c,
        n_train=cfg.n_train,
        n_val=400,
    )
    trained = {}
    for name, widths in (("linear", ()), ("relu", (cfg.trained_width,))):
        net = ntk.MLPConfig(
            in_dim=cfg.d, widths=widths, parameterization="standard", b_std=1.0
        )
        for steps in cfg.trained_steps:
            every = max(1, steps // 10)
            tc = ntk.TrainConfig(
                steps=steps // every * every, batch_size=64, eval_every=every
            )
            final, _, _ = train_cells(k_net, net, cells, tc, 1e-3, cfg.trained_seeds)
            trained[(name, steps)] = mean_ci(final)
    at = lambda name, rho, a, i: float(curves[(name, rho, a)][i])
    hi = [a for a in cfg.alphas if a >= 3]
    lin_conv = worst(abs(at("linear", r, a, -1)) for r in cfg.rho_s for a in cfg.alphas)
    gap = (
        least(
            at("relu", r, a, i_probe) - at("linear", r, a, i_probe)
            for r in cfg.rho_s
            for a in hi
        )
        if hi
        else float("nan")
    )
    relu_a1 = worst(abs(at("relu", r, 1.0, i_probe)) for r in cfg.rho_s)
    relu_late = worst(
        abs(at(k, r, a, i_late))
        for k in ("relu", "linear")
        for r in cfg.rho_s
        for a in cfg.alphas
    )
    deeper = all(
        at("relu_depth3", r, a, i_probe) >= at("relu", r, a, i_probe)
        for r in cfg.rho_s
        for a in hi
    )
    emp_err = worst(
        abs(at("relu_empirical", r, a, i_probe) - at("relu", r, a, i_probe))
        for r in cfg.rho_s
        for a in cfg.alphas
    )
    claims = [
        Claim(
            "NTK-9",
            "check",
            "early-time (first-step) linear-kernel classifier sum_i y_i Theta(x, x_i) "
            "is the line alpha_s^2 mu_s z_s + alpha_c^2 mu_c z_c: equal grid reliance",
            early_err <= 2 / 900 and continuum_err <= GRID_LINE_TOL,
            {
                "max_abs_difference": early_err,
                "vs_continuum_closed_form_R(r)": continuum_err,
            },
            f"<= 2/900 (grid ties); continuum within {GRID_LINE_TOL} (the 30x30 "
            "grid's own error for lines)",
        ),
        Claim(
            "NTK-8",
            "check",
            "the linear kernel trained to convergence (t = 1e5) is unbiased",
            lin_conv <= 0.02,
            lin_conv,
            "|bias| <= 0.02",
        ),
        Claim(
            "NTK-10.order",
            "finding",
            f"at t = {cfg.t_probe:g}, ReLU-NTK bias exceeds linear-kernel bias by "
            ">= 0.1 whenever alpha_s >= 3",
            bool(hi) and gap >= 0.1,
            gap,
            ">= 0.1 (spec C6)",
        ),
        Claim(
            "NTK-10.alpha1",
            "finding",
            f"at t = {cfg.t_probe:g} and equal availability, the ReLU NTK is unbiased",
            relu_a1 < 0.05,
            relu_a1,
            "|bias| < 0.05 (spec C6)",
        ),
        Claim(
            "NTK-10.late",
            "finding",
            f"both biases fade by t = {cfg.t_late:g}",
            relu_late <= 0.1,
            relu_late,
            "|bias| <= 0.1 (spec C6)",
        ),
        Claim(
            "NTK-12.kernel_probe",
            "finding",
            "a deeper (3-hidden-layer) ReLU NTK is at least as biased as the "
            "1-hidden-layer one at alpha_s >= 3",
            deeper,
            deeper,
            True,
            checked=bool(hi),
            note="" if hi else "needs an alpha_s >= 3",
        ),
        Claim(
            "NTK-10.empirical",
            "finding",
            f"the empirical NTK of a width-{cfg.empirical_width} ReLU net predicts the "
            "same bias as the infinite-width NTK",
            emp_err <= 0.1,
            emp_err,
            "max |difference| <= 0.1",
        ),
    ]
    fig, axes = new_figure(1, 3, width=4.4)
    ax = axes[0][0]
    for name, col in (
        ("linear", "k"),
        ("relu", "C3"),
        ("erf", "C1"),
        ("relu_depth3", "C4"),
        ("relu_empirical", "C3"),
    ):
        ls_ = ":" if name == "relu_empirical" else "-"
        ax.plot(
            np.asarray(times),
            curves[(name, rho_top, max(cfg.alphas))],
            ls_,
            color=col,
            label=name,
        )
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("time t (lr * steps; rate lambda/n)")
    ax.set_ylabel("shortcut bias")
    ax.set_title(
        f"NTK-10: bias(t), rho_s={rho_top:g}, alpha_s={max(cfg.alphas):g}", fontsize=8
    )
    ax.legend(fontsize=6)
    for k, ((name, steps), (m, c)) in enumerate(trained.items()):
        ax = axes[0][1] if steps == min(cfg.trained_steps) else axes[0][2]
        ax.errorbar(
            np.asarray(cfg.alphas) + 0.06 * (k % 2),
            m,
            yerr=c,
            fmt="s--",
            color="k" if name == "linear" else "C3",
            alpha=0.6,
            label=f"trained {name}, {steps} steps",
        )
    for ax, idx, lab in (
        (axes[0][1], i_probe, f"t={cfg.t_probe:g}"),
        (axes[0][2], i_late, f"t={cfg.t_late:g}"),
    ):
        for name, col in (
            ("linear", "k"),
            ("relu", "C3"),
            ("relu_depth3", "C4"),
        ):
            ax.plot(
                cfg.alphas,
                [curves[(name, rho_top, a)][idx] for a in cfg.alphas],
                "o-",
                color=col,
                label=name,
            )
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel("availability alpha_s / alpha_c")
        ax.set_ylabel("shortcut bias")
        ax.set_title(
            f"NTK-10: kernel-predicted bias at {lab}, rho_s={rho_top:g}", fontsize=8
        )
        ax.legend(fontsize=6)
    metrics = {
        "times": np.asarray(times).tolist(),
        "bias": {
            f"{k[0]}|rho_s={k[1]:g}|alpha_s={k[2]:g}": v.tolist()
            for k, v in curves.items()
        },
        "early_time_max_error": early_err,
        "early_time_vs_continuum": continuum_err,
        "trained_diverged_cells": count_diverged(*(v[0] for v in trained.values())),
        "trained": {
            f"{n}|{st}": {"alphas": list(cfg.alphas), "mean": v[0], "ci95": v[1]}
            for (n, st), v in trained.items()
        },
    }
    return Outcome(metrics, claims, fig)


EXPERIMENT = register_module(__name__)
main = EXPERIMENT.main

if __name__ == "__main__":
    raise SystemExit(EXPERIMENT.cli())
