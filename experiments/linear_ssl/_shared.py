"""Plotting and ODE-check helpers shared by the linear_ssl experiments."""

import jax.numpy as jnp
import numpy as np
from matplotlib import colormaps

import jaxfeat
from jaxfeat import linear_ssl as ls


def shades(n: int, cmap: str = "viridis_r"):
    """`n` colours from light to dark."""
    cm = colormaps[cmap]
    return [cm(0.35 + 0.6 * i / max(n - 1, 1)) for i in range(n)]


def plot_curves(ax, t, frac, labels, title, *, cmap="Blues", log_x=False):
    """Learning curves wbar/wbar_inf against time, darker = later in `labels`."""
    t, frac = np.asarray(t), np.asarray(frac)
    for i, (lab, col) in enumerate(zip(labels, shades(len(labels), cmap), strict=True)):
        ax.plot(t[i], frac[i], color=col, label=lab, lw=1.8)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("time $t$ (gradient-flow units, $\\eta\\cdot$steps)")
    ax.set_ylabel(r"$\bar w(t)/\bar w^\infty$")
    ax.set_title(title, fontsize=9)
    if log_x:
        ax.set_xscale("log")
    else:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    ax.legend(fontsize=7, loc="lower right")


def ode_critical_times(lam, rho, eps, depth, *, objective, n_steps, max_depth):
    """Critical times (p = 0.5) by RK4 integration of the end-to-end ODE.

    Every argument has one leading batch axis (one configuration per entry); the batch
    runs as one sharded, jitted vmap over all devices. The horizon is 1.3x the closed
    form, which only sizes the step: the crossing itself is found on the RK4 path
    (Hermite interpolation, `first_crossing_time`).
    """
    lam, rho, eps, depth = (jnp.asarray(v) for v in (lam, rho, eps, depth))
    t_cf = ls.critical_time(
        lam, rho, eps, depth, objective=objective, max_depth=max_depth
    )
    w_inf = ls.fixed_point(rho, depth, objective=objective).wbar

    def one(lam, rho, eps, depth, t_max, thr):
        t, w, dw = ls.integrate_mode(
            lam, rho, eps, depth, objective=objective, t_max=t_max, n_steps=n_steps
        )
        return ls.first_crossing_time(t, w, thr, dw)

    return jaxfeat.sharded_vmap(one)(lam, rho, eps, depth, 1.3 * t_cf, 0.5 * w_inf)


def order_of(t_star) -> list[int]:
    """1-based feature indices in the order they are learned (earliest first)."""
    return [int(i) + 1 for i in np.argsort(np.asarray(t_star), kind="stable")]


def grid(*axes):
    """Flattened Cartesian grid of the given 1-D sequences (one array per axis)."""
    mesh = np.meshgrid(*[np.asarray(a) for a in axes], indexing="ij")
    return [jnp.asarray(m.reshape(-1)) for m in mesh]


def max_rel(a, b) -> float:
    """Largest relative difference |a/b - 1|."""
    return float(jnp.max(jnp.abs(jnp.asarray(a) / jnp.asarray(b) - 1)))


def pair_ratio_over_depth(spec, eps, depths):
    """t*(feature 2) / t*(feature 1) for both objectives over the valid depths.

    A depth is valid when eps is at least 2x below every threshold p * rho^L (p = 0.5);
    closer to it the features start almost saturated and orders are degenerate.
    Returns `(valid_depths, {"jepa": ratios, "mae": ratios})`.
    """
    valid = [L for L in depths if eps <= 0.25 * float(spec.rho.min()) ** L]
    ratio = {}
    for obj in ("jepa", "mae"):
        t = ls.critical_time(
            spec.lam[None],
            spec.rho[None],
            eps,
            jnp.asarray(valid)[:, None],
            objective=obj,
        )
        ratio[obj] = np.asarray(t[:, 1] / t[:, 0])
    return valid, ratio


def plot_ratio_over_depth(ax, depths, ratio, ylabel, title):
    """JEPA and MAE ratios against depth with the parity line."""
    ax.plot(depths, ratio["jepa"], "o-", color="C3", label="JEPA")
    ax.plot(depths, ratio["mae"], "s--", color="C2", label="MAE")
    ax.axhline(1, color="k", lw=0.7)
    ax.set_xlabel("encoder depth L")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
