# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Deep linear JEPA vs MAE with `jaxfeat.linear_ssl`
#
# Littwin et al. (2024, arXiv:2407.03475) show that a deep linear JEPA
# (self-distillation with a stop-gradient target) learns features in order of their
# regression coefficient $\rho$, while MAE (reconstruction) learns them in order of
# covariance $\lambda$. This
# notebook walks through the API: data specs, closed-form critical times, exact learning
# curves, full-matrix gradient descent, and the depth experiment.
#
# Run it with `python notebooks/linear_ssl.py` (or open it with jupytext).
# `JAXFEAT_SMOKE=1` shrinks every size.

# %%
import os

os.environ.setdefault("JAX_ENABLE_X64", "1")  # closed forms are compared in float64

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from jaxfeat import linear_ssl as ls

SMOKE = os.environ.get("JAXFEAT_SMOKE") == "1"
OUT = os.environ.get("JAXFEAT_NOTEBOOK_OUT", ".")

# %% [markdown]
# ## 1. Two features: a clean one and a noisy one
# Feature A has $\lambda = 1$, $\rho = 1$; feature B has more covariance
# ($\lambda = 1.25$) but a lower regression coefficient ($\rho = 0.5$): it is noisier.

# %%
spec = ls.mode_spec(jnp.array([1.0, 1.25]), jnp.array([1.0, 0.5]))
cov = ls.population_covariances(spec)
print("x variances sigma^2 = lambda / rho:", spec.x_var)

# %% [markdown]
# ## 2. Closed-form critical times across depth
# `critical_time` is exact (partial fractions) and broadcasts over every argument, so a
# whole depth sweep is one call. The ratio $t^*_B/t^*_A > 1$ means the clean feature is
# learned first.

# %%
depths = jnp.arange(1, 7)
eps = 1e-3
ratio = {}
for objective in ("jepa", "mae"):
    t = ls.critical_time(
        spec.lam[None], spec.rho[None], eps, depths[:, None], objective=objective
    )
    ratio[objective] = t[:, 1] / t[:, 0]
    print(objective, np.round(np.asarray(ratio[objective]), 3))

# %% [markdown]
# JEPA switches to the clean feature at depth 4; MAE never does.

# %% [markdown]
# ## 3. Exact learning curves and full-matrix gradient descent
# `learning_curve` inverts the closed form. Gradient descent (`run_gd`) on the full
# matrices from the aligned init follows it, delayed by the first-order Euler term that
# `critical_time(..., lr=eta)` predicts.

# %%
L = 2 if SMOKE else 3
eps_gd, lr = 1e-2, 0.1
t_cf = ls.critical_time(spec.lam, spec.rho, eps_gd, L, objective="jepa")
n_steps = int(1.3 * float(t_cf.max()) / lr) // 10 * 10
state = ls.init_gd(ls.init_aligned(eps_gd, d=2, depth=L))
cfg = ls.GDConfig(objective="jepa", n_steps=n_steps, log_every=10)
_, log = ls.run_gd(state, cov, lr, cfg=cfg, progress=False)
w_inf = ls.fixed_point(spec.rho, L, objective="jepa").wbar
t_gd = [
    float(ls.first_crossing_time(log.t, log.encoder[:, i, i], 0.5 * w_inf[i]))
    for i in range(2)
]
pred = ls.critical_time(spec.lam, spec.rho, eps_gd, L, objective="jepa", lr=lr)
print("GD crossings:", np.round(t_gd, 3), " first-order prediction:", np.round(pred, 3))

fig = Figure(figsize=(10, 3.6), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
tc, frac = ls.learning_curve(spec.lam, spec.rho, eps_gd, L, objective="jepa")
for i, name in enumerate(("A (clean)", "B (noisy)")):
    ax1.plot(np.asarray(tc[i]), np.asarray(frac[i]), label=f"{name}: closed form")
    ax1.plot(
        np.asarray(log.t),
        np.asarray(log.encoder[:, i, i] / w_inf[i]),
        ".",
        ms=1.5,
        label=f"{name}: GD",
    )
ax1.set(
    xlabel="time t = lr * steps",
    ylabel="wbar / wbar_inf",
    title=f"JEPA, L={L}, eps={eps_gd:g}",
)
ax1.legend(fontsize=7)
for objective, mk in (("jepa", "o-"), ("mae", "s--")):
    ax2.plot(
        np.asarray(depths), np.asarray(ratio[objective]), mk, label=objective.upper()
    )
ax2.axhline(1, color="k", lw=0.7)
ax2.set(xlabel="depth L", ylabel="t*_B / t*_A", title="depth amplifies JEPA's bias")
ax2.legend()
fig.savefig(os.path.join(OUT, "linear_ssl_notebook.png"), dpi=90)

# %% [markdown]
# ## 4. Sweeps over seeds and hyper-parameters
# `sweep_gd` runs a batch of configurations as one jitted `vmap`, sharded over every
# visible device. Here: four initial scales at once.

# %%
eps_grid = jnp.array([3e-3, 1e-2, 3e-2, 1e-1])
params = jax.vmap(lambda e: ls.init_aligned(e, d=2, depth=2))(eps_grid)
covs = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (4, *a.shape)), cov)
cfg = ls.GDConfig(objective="mae", n_steps=200 if SMOKE else 2000, log_every=100)
final, logs = ls.sweep_gd(
    jax.vmap(ls.init_gd)(params), covs, 0.05, cfg=cfg, progress=False
)
print(
    "final MAE gains per init scale:\n",
    np.round(np.asarray(jnp.diagonal(logs.encoder[:, -1], axis1=1, axis2=2)), 4),
)
print("expected rho^(L/(L+1)):", np.round(np.asarray(spec.rho ** (2 / 3)), 4))
