"""Data and plotting helpers shared by the ntk experiments."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxfeat import ntk


def cell_data(key, emb, *, rho_s, rho_c, alpha_s, n_train, n_val, sigma_sc=0.0):
    """Train/validation sets, the probe grid (latents and inputs) and LDA decisions."""
    k1, k2 = jax.random.split(key)
    kw = dict(rho_s=rho_s, rho_c=rho_c, alpha_s=alpha_s, sigma_sc=sigma_sc)
    tr = ntk.sample_shortcut_data(k1, n_train, emb, **kw)
    va = ntk.sample_shortcut_data(k2, n_val, emb, **kw)
    grid = ntk.probe_grid(rho_s, rho_c)
    xg = ntk.embed(grid, emb, alpha_s, 1.0)
    lda = ntk.lda_decision(ntk.lda_fit(tr.x, tr.y), xg)
    return tr, va, grid, xg, lda


def network_bias(params, net, xg, grid, lda_decision):
    """Shortcut bias of one trained network on the probe grid; NaN if it diverged.

    A network whose grid outputs are not all finite has no decisions: its bias is
    NaN (eager or traced), never a number computed from NaN signs.
    """
    out = jax.vmap(functools.partial(ntk.mlp_apply, cfg=net), in_axes=(None, 0))(
        params, xg
    )[:, 0]
    finite = jnp.all(jnp.isfinite(out))
    bias = ntk.shortcut_bias(jnp.where(finite, out, 0.0), lda_decision, grid)
    return jnp.where(finite, bias, jnp.nan)


def worst(values) -> float:
    """`max` of some numbers that is NaN when any is.

    Python's `max` skips a NaN that is not first, so a diverged cell could pass
    a claim.
    """
    return float(np.max(np.asarray(list(values), dtype=np.float64)))


def least(values) -> float:
    """`min` of some numbers that is NaN when any is (see `worst`)."""
    return float(np.min(np.asarray(list(values), dtype=np.float64)))


def count_diverged(*stats):
    """Number of NaN entries (diverged runs) in the given arrays or `mean_ci` pairs."""
    leaves = jax.tree_util.tree_leaves(stats)
    return int(sum(np.sum(np.isnan(np.asarray(leaf, float))) for leaf in leaves))


def mean_ci(samples, axis=-1):
    """Mean and 95% normal-approximation half-width over `axis`.

    A diverged run (NaN sample, see `network_bias`) makes its mean and CI NaN: it
    is reported as NaN (and fails any claim on it), never averaged away.
    """
    s = np.asarray(samples)
    n = s.shape[axis]
    sd = s.std(axis=axis, ddof=1) if n > 1 else np.zeros(s.mean(axis=axis).shape)
    return s.mean(axis=axis), 1.96 * sd / np.sqrt(n)


def heat(ax, values, xlabels, ylabels, title, *, vmin=-0.5, vmax=1.0, ci=None):
    """A labelled heatmap with the values (and CIs) printed in the cells."""
    im = ax.imshow(
        np.asarray(values),
        cmap="RdBu_r",
        vmin=vmin,
        vmax=vmax,
        origin="lower",
        aspect="auto",
    )
    ax.set_xticks(range(len(xlabels)), [f"{v:g}" for v in xlabels])
    ax.set_yticks(range(len(ylabels)), [f"{v:g}" for v in ylabels])
    for i in range(len(ylabels)):
        for j in range(len(xlabels)):
            txt = f"{values[i][j]:.2f}"
            if ci is not None:
                txt += f"\n±{ci[i][j]:.2f}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=6)
    ax.set_title(title, fontsize=8)
    return im


def build_cells(key, emb, cells, *, rho_c, n_train, n_val, sigma_sc=0.0):
    """Stacked data of every (rho_s, alpha_s) cell: each field gains a leading axis.

    Cells with the same rho_s share one latent draw (the key depends on rho_s only),
    so comparisons across availability are paired: only the embedding changes.
    """
    rows = sorted({r for r, _ in cells})
    out = [
        cell_data(
            jax.random.fold_in(key, rows.index(r)),
            emb,
            rho_s=r,
            rho_c=rho_c,
            alpha_s=a,
            n_train=n_train,
            n_val=n_val,
            sigma_sc=sigma_sc,
        )
        for r, a in cells
    ]
    return jax.tree_util.tree_map(lambda *xs: jax.numpy.stack(xs), *out)


def train_cells(key, net, data, train, lr, n_seeds):
    """Trains `n_seeds` networks per cell, cells sharded over every device.

    Returns biases `(cells, seeds)` at the final and best-validation checkpoints and
    the final validation accuracies.
    """
    import jaxfeat

    tr, va, grid, xg, lda = data

    def one_cell(x, y, xv, yv, xg_c, grid_c, lda_c):
        def one_seed(k):
            res = ntk.train_classifier(k, x, y, xv, yv, lr, net=net, train=train)
            return (
                network_bias(res.final, net, xg_c, grid_c, lda_c),
                network_bias(res.best, net, xg_c, grid_c, lda_c),
                res.val_accuracy[-1],
            )

        return jax.vmap(one_seed)(jax.random.split(key, n_seeds))

    run = jaxfeat.sharded_vmap(one_cell)
    final, best, acc = run(tr.x, tr.y, va.x, va.y, xg, grid, lda)
    return np.asarray(final), np.asarray(best), np.asarray(acc)
