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
# # Influence functions on a flax model, end to end
#
# Which training images made a digits classifier confident (or wrong) about a test
# image? The influence of training example $z_m$ on a query $z_q$ is
# $\mathrm{score}[q, m] = g_q^\top (G + \lambda I)^{-1} g_m$, with $g = \nabla_\theta L$
# at the trained parameters and $G$ the Gauss-Newton matrix (GGN) of the mean training
# loss (Koh & Liang 2017; Grosse et al. 2023). **Positive = helpful**: up-weighting
# $z_m$ lowers the query loss; scores are raw sums (no $1/N$). The derivations and
# their tests are in `theory/influence.md` (claims INF-1 to INF-14).
#
# This notebook trains a small flax NNX MLP with optax on sklearn's 8×8 digits,
# converts it to `f(params, x)` with `jaxfeat.ntk.from_nnx`, fits the exact damped GGN
# (a strategy that works for any model) and CG, compares with EK-FAC on the same
# network written as a `jaxfeat.ntk` MLP, and plots the most helpful and harmful
# training images of a few test queries and the training images with the largest
# self-influence. Run it with `python notebooks/influence.py`; `JAXFEAT_SMOKE=1`
# shrinks every size.

# %%
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from matplotlib.figure import Figure
from sklearn.datasets import load_digits

from jaxfeat import influence, ntk

SMOKE = os.environ.get("JAXFEAT_SMOKE") == "1"
OUT = os.environ.get("JAXFEAT_NOTEBOOK_OUT", ".")
N_TRAIN = 200 if SMOKE else 600
N_TEST = 100
HIDDEN = 16 if SMOKE else 32
STEPS = 150 if SMOKE else 600  # full-batch Adam steps
N_QUERY = 3  # test queries shown in the figure
TOP = 4  # helpful / harmful images shown per query

# %% [markdown]
# ## 1. Data and a flax NNX MLP trained with optax
# Pixels are scaled to $[0, 1]$; the network is 64 → tanh → 10 logits, trained by
# full-batch Adam on the mean cross-entropy with a small L2 penalty.

# %%
digits = load_digits()
X = digits.data / 16.0
Y = digits.target
perm = np.asarray(jax.random.permutation(jax.random.key(0), len(Y)))
tr, te = perm[:N_TRAIN], perm[N_TRAIN : N_TRAIN + N_TEST]
x_tr, y_tr = jnp.asarray(X[tr], jnp.float32), jnp.asarray(Y[tr])
x_te, y_te = jnp.asarray(X[te], jnp.float32), jnp.asarray(Y[te])


class MLP(nnx.Module):
    def __init__(self, hidden, rngs):
        self.l1 = nnx.Linear(64, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


model = MLP(HIDDEN, nnx.Rngs(0))
apply_fn, params = ntk.from_nnx(model)  # f(params, x) for ONE example x (64,)


def train_loss(p):
    logits = jax.vmap(apply_fn, in_axes=(None, 0))(p, x_tr)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_tr).mean()
    l2 = sum(jnp.sum(w**2) for w in jax.tree_util.tree_leaves(p))
    return ce + 1e-3 * l2


opt = optax.adam(1e-2)


@jax.jit
def train(p):
    def step(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(train_loss)(p)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), loss

    (p, _), losses = jax.lax.scan(step, (p, opt.init(p)), None, length=STEPS)
    return p, losses


params, losses = train(params)
logits_te = jax.vmap(apply_fn, in_axes=(None, 0))(params, x_te)
print(f"final training loss {float(losses[-1]):.3f}")
print(f"test accuracy {float(jnp.mean(jnp.argmax(logits_te, 1) == y_te)):.3f}")

# %% [markdown]
# ## 2. Per-example gradients
# `example_loss_fn` wraps any `f(params, x)` with a per-example loss;
# `per_example_grads` is `vmap(grad)` and returns a pytree like `params` with a
# leading example axis.

# %%
loss_fn = influence.example_loss_fn(apply_fn, "cross_entropy")
g_tr = influence.per_example_grads(loss_fn, params, x_tr, y_tr)
n_params = sum(leaf[0].size for leaf in jax.tree_util.tree_leaves(g_tr))
print("parameters:", n_params)
print(
    "per-example gradient leaves:",
    [leaf.shape for leaf in jax.tree_util.tree_leaves(g_tr)],
)

# %% [markdown]
# ## 3. Curvature for a generic model: exact GGN and CG
# `strategy="exact"` builds the dense GGN $J^\top(\mathrm{diag}\,p - pp^\top)J / N$
# (the true Fisher of softmax-CE, INF-4) and eigendecomposes it once; fine at a few
# thousand parameters. `strategy="cg"` only needs GGN-vector products and scales to
# any model. `damping=None` picks $\lambda = 0.1\times$ the mean eigenvalue of $G$
# (INF-10); we pass the exact fit's $\lambda$ to CG so that both solve the same system.

# %%
exact = influence.fit_curvature(
    apply_fn, params, x_tr, y_tr, cfg=influence.IHVPConfig(strategy="exact")
)
lam = float(exact.damping)
cg = influence.fit_curvature(
    apply_fn,
    params,
    x_tr,
    y_tr,
    cfg=influence.IHVPConfig(strategy="cg", damping=lam, cg_tol=1e-5, cg_maxiter=100),
)
print(f"damping lambda = 0.1 x mean eig(G) = {lam:.3g}")

xq, yq = x_te[:N_QUERY], y_te[:N_QUERY]
s_exact = influence.pairwise_scores(exact, params, xq, yq, x_tr, y_tr)
s_cg = influence.pairwise_scores(cg, params, xq, yq, x_tr, y_tr)
s_dot = influence.pairwise_scores(
    influence.fit_curvature(
        apply_fn, params, x_tr, y_tr, cfg=influence.IHVPConfig(strategy="identity")
    ),
    params,
    xq,
    yq,
    x_tr,
    y_tr,
)


def pearson(a, b):
    return np.mean(
        [
            np.corrcoef(ai, bi)[0, 1]
            for ai, bi in zip(np.asarray(a), np.asarray(b), strict=True)
        ]
    )


print(f"CG vs exact, mean per-query Pearson {pearson(s_cg, s_exact):.4f}")
print(f"gradient dot product vs exact       {pearson(s_dot, s_exact):.3f}")

# %% [markdown]
# ## 4. EK-FAC directly on the flax model
# `kfac`/`ekfac` need each dense layer's input $\bar a$ and output gradient $Ds$
# (INF-5). `fit_curvature` finds the layers in the jaxpr of `apply_fn`: every
# `x @ W (+ b)` whose `W` is a parameter, here the two `nnx.Linear` layers; nothing in
# the module changes. EK-FAC is an approximation (block-diagonal, Kronecker eigenbasis,
# INF-7, INF-8), so compare it with the exact GGN scores above.

# %%
print(influence.find_dense_layers(apply_fn, params, x_tr[0]))
ekfac = influence.fit_curvature(
    apply_fn, params, x_tr, y_tr, cfg=influence.IHVPConfig()
)
s_ekfac = influence.pairwise_scores(ekfac, params, xq, yq, x_tr, y_tr)
print(f"EK-FAC vs exact GGN, mean per-query Pearson {pearson(s_ekfac, s_exact):.3f}")
per_layer = influence.pairwise_scores(ekfac, params, xq, yq, x_tr, y_tr, per_layer=True)
print(
    "EK-FAC layer-wise terms sum to the total:",
    bool(jnp.allclose(per_layer.sum(0), s_ekfac, rtol=1e-4, atol=1e-4)),
)

# %% [markdown]
# The same weights as a `jaxfeat.ntk` MLP (an `nnx.Linear` is the standard
# parameterisation of `ntk.Dense(w, b)`) go through jaxfeat's hand-written MLP path:
# the two routes agree to float32 round-off.

# %%
mlp = ntk.MLPConfig(
    in_dim=64,
    widths=(HIDDEN,),
    out_dim=10,
    activation="tanh",
    parameterization="standard",
)
layers = tuple(
    ntk.Dense(params[name]["kernel"][...], params[name]["bias"][...])
    for name in ("l1", "l2")
)
ek_mlp = influence.fit_curvature(mlp, layers, x_tr, y_tr, cfg=influence.IHVPConfig())
s_mlp = influence.pairwise_scores(ek_mlp, layers, xq, yq, x_tr, y_tr)
rel = float(jnp.linalg.norm(s_mlp - s_ekfac) / jnp.linalg.norm(s_mlp))
print(f"flax-layer EK-FAC vs ntk-MLP EK-FAC: relative difference {rel:.1e}")
assert rel < 1e-3

# %% [markdown]
# ## 5. Most helpful and harmful training images
# For each query, the training images with the largest positive scores (their
# gradients align with the query's under $(G + \lambda I)^{-1}$: mostly the same digit)
# and the most negative ones (up-weighting them would raise the query loss).

# %%
fig = Figure(figsize=(2 * TOP + 2, 1.3 * (2 * N_QUERY + 1)), layout="constrained")
axes = fig.subplots(2 * N_QUERY + 1, 2 * TOP + 1)
for ax in axes.ravel():
    ax.set_axis_off()
s_np = np.asarray(s_exact)
for q in range(N_QUERY):
    order = np.argsort(-s_np[q])
    for row, idx, kind in (
        (2 * q, order[:TOP], "helpful"),
        (2 * q + 1, order[::-1][:TOP], "harmful"),
    ):
        if row == 2 * q:
            axes[row, 0].imshow(np.asarray(xq[q]).reshape(8, 8), cmap="gray_r")
            axes[row, 0].set_title(f"query {q}: label {int(yq[q])}", fontsize=7)
        for j, m in enumerate(idx):
            ax = axes[row, 1 + j]
            ax.imshow(np.asarray(x_tr[m]).reshape(8, 8), cmap="gray_r")
            ax.set_title(f"{kind} y={int(y_tr[m])}\n{s_np[q, m]:+.2g}", fontsize=6)

# %% [markdown]
# ## 6. Self-influence
# $g_m^\top (G + \lambda I)^{-1} g_m$ is large for examples the model finds hard:
# atypical or ambiguous digits, mislabeled ones.

# %%
self_s = np.asarray(influence.self_scores(exact, params, x_tr, y_tr))
top_self = np.argsort(-self_s)[: 2 * TOP + 1]
pred_tr = np.asarray(jnp.argmax(jax.vmap(apply_fn, in_axes=(None, 0))(params, x_tr), 1))
print("largest self-influence:", np.round(self_s[top_self], 2))
print("their labels:", np.asarray(y_tr)[top_self], "predicted:", pred_tr[top_self])
print("median self-influence:", float(np.median(self_s)))
for j, m in enumerate(top_self):
    ax = axes[-1, j]
    ax.imshow(np.asarray(x_tr[m]).reshape(8, 8), cmap="gray_r")
    ax.set_title(f"self y={int(y_tr[m])} p={pred_tr[m]}\n{self_s[m]:.2g}", fontsize=6)
fig.suptitle(
    "INF: exact damped-GGN influence. Rows: query | most helpful, then most "
    "harmful training images; bottom: largest self-influence",
    fontsize=8,
)
fig.savefig(os.path.join(OUT, "influence_notebook.png"), dpi=90)
