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
# # Shortcut learning with `jaxfeat.ntk`
#
# Hermann et al. (2024, arXiv:2310.16228) build data with a core feature $z_c$ and a
# shortcut $z_s$ whose *predictivity* $\rho$ and *availability* (amplification
# $\alpha$) are set independently, and measure a model's *shortcut bias*: its extra
# reliance on $z_s$ over an optimal (LDA) classifier. This notebook walks through the
# framework, the kernels, and the NTK account of the bias.
#
# `JAXFEAT_SMOKE=1` shrinks every size.

# %%
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from jaxfeat import ntk

SMOKE = os.environ.get("JAXFEAT_SMOKE") == "1"
OUT = os.environ.get("JAXFEAT_NOTEBOOK_OUT", ".")
N = 400 if SMOKE else 1600

# %% [markdown]
# ## 1. Data: predictivity and availability
# The shortcut is as predictive as the core ($\rho_s = \rho_c = 0.9$) but three times
# more available ($\alpha_s = 3$).

# %%
key = jax.random.key(0)
emb = ntk.make_embedding(key, 100)
train = ntk.sample_shortcut_data(
    jax.random.fold_in(key, 1), N, emb, rho_s=0.9, rho_c=0.9, alpha_s=3.0
)
grid = ntk.probe_grid(0.9, 0.9)
x_grid = ntk.embed(grid, emb, 3.0, 1.0)
lda = ntk.lda_decision(ntk.lda_fit(train.x, train.y), x_grid)
print("LDA reliance:", float(ntk.reliance(lda, grid)))

# %% [markdown]
# ## 2. Kernels: empirical and infinite width
# The structured empirical NTK of a wide ReLU network agrees with the analytic NTK.

# %%
cfg = ntk.MLPConfig(in_dim=100, widths=(256 if SMOKE else 1024,), b_std=0.1)
params = ntk.init_mlp(jax.random.fold_in(key, 2), cfg)
ntk_fn = ntk.empirical_ntk_fn(
    functools.partial(ntk.mlp_apply, cfg=cfg),
    structure=functools.partial(ntk.mlp_taps, cfg=cfg),
)
x8 = train.x[:8]
emp = ntk_fn(params, x8)
exact = ntk.analytic_kernels(cfg, x8).ntk
print(
    "relative error, empirical vs infinite width:",
    float(jnp.linalg.norm(emp - exact) / jnp.linalg.norm(exact)),
)

# %% [markdown]
# ## 3. Bias along NTK gradient flow
# The linear kernel converges to the unbiased solution; the ReLU NTK keeps a bias
# toward the more available feature for much longer.

# %%
times = jnp.geomspace(1e-1, 1e5, 20)
curves = {}
for name, kc in (
    ("linear", ntk.MLPConfig(in_dim=100, widths=(), b_std=0.1)),
    ("relu", ntk.MLPConfig(in_dim=100, widths=(1,), b_std=0.1)),
):
    ktt = ntk.analytic_kernels(kc, train.x).ntk
    kgt = ntk.analytic_kernels(kc, x_grid, train.x).ntk
    curves[name] = ntk.kernel_shortcut_bias(ktt, kgt, train.y, times, grid, lda)
    print(name, np.round(np.asarray(curves[name])[::4], 3))

fig = Figure(figsize=(5, 3.5), layout="constrained")
ax = fig.subplots()
for name, b in curves.items():
    ax.plot(np.asarray(times), np.asarray(b), label=name)
ax.set(
    xscale="log",
    xlabel="time t",
    ylabel="shortcut bias",
    title="rho_s = rho_c = 0.9, alpha_s = 3",
)
ax.legend()
fig.savefig(os.path.join(OUT, "ntk_shortcut_notebook.png"), dpi=90)

# %% [markdown]
# ## 4. A trained network
# Five seeds of a one-hidden-layer ReLU network, trained in one vmapped program.

# %%
net = ntk.MLPConfig(in_dim=100, widths=(64,), parameterization="standard", b_std=1.0)
tc = ntk.TrainConfig(steps=100 if SMOKE else 200, batch_size=64, eval_every=50)
val = ntk.sample_shortcut_data(
    jax.random.fold_in(key, 3), 400, emb, rho_s=0.9, rho_c=0.9, alpha_s=3.0
)
fit = jax.vmap(
    functools.partial(ntk.train_classifier, net=net, train=tc),
    in_axes=(0, None, None, None, None, None),
)
res = fit(jax.random.split(key, 5), train.x, train.y, val.x, val.y, 1e-3)
biases = [
    float(
        ntk.shortcut_bias(
            jax.vmap(functools.partial(ntk.mlp_apply, cfg=net), in_axes=(None, 0))(
                jax.tree_util.tree_map(lambda a, i=i: a[i], res.final), x_grid
            )[:, 0],
            lda,
            grid,
        )
    )
    for i in range(5)
]
print("trained ReLU biases:", np.round(biases, 3))
