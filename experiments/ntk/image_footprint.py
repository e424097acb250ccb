"""Availability as pixel footprint: a small CNN on procedurally drawn 32x32 images.

Sec. 4 of Hermann et al. 2024 (arXiv:2310.16228), scaled to a CPU: each image shows a
circle (the shortcut, z_s) and a square (the core, z_c) whose grey levels encode the
latent values; the circle's area is alpha_s times the square's (availability =
footprint; the paper's exact scaling, area or side, could not be confirmed). A small
flax CNN is trained with optax (MSE on +-1, Adam), several seeds in one vmapped
program, and probed on the 30x30 latent grid rendered as images; the optimal
reference is LDA on the latents (alpha-invariant).
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments._common import Claim, Outcome, new_figure, register_module
from experiments.ntk._shared import mean_ci
from jaxfeat import ntk

TITLE = "Pixel footprint as availability: a small CNN prefers the larger object"
X64 = False
ORDER = 5
SIZE = 32


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    rho_s: float = 0.9
    rho_c: float = 0.9
    alphas: tuple[float, ...] = (1.0, 3.0, 5.0)
    square_side: int = 6
    n_train: int = 2000
    n_val: int = 500
    channels: int = 8  # XLA's CPU convolutions are slow: 16 channels cost 6x per step
    n_seeds: int = 3
    steps: int = 250
    batch_size: int = 32
    lr: float = 2e-3


SCALES = {
    "smoke": Config(
        alphas=(1.0, 5.0),
        n_train=256,
        n_val=64,
        channels=4,
        n_seeds=2,
        steps=40,
        batch_size=16,
    ),
    "default": Config(),
    "paper": Config(
        alphas=(1.0, 2.0, 3.0, 4.0, 5.0), n_seeds=5, steps=2000, channels=32
    ),
}


class SmallCNN(nn.Module):
    """Two 3x3 convolutions (ReLU, 2x2 average pooling), global pooling, a readout."""

    channels: int

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(self.channels, (3, 3))(x))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(2 * self.channels, (3, 3))(x))
        return nn.Dense(1)(jnp.mean(x, axis=(-3, -2)))[..., 0]


def intensity(z, mu):
    """Grey level in [0.1, 1] of a latent value (0.55 at z = 0)."""
    return 0.1 + 0.9 * jnp.clip(z / (6 * mu) + 0.5, 0.0, 1.0)


def render(z, centres, mu, alpha, side):
    """One image `(32, 32, 1)`: circle (area alpha * side^2) and square (side^2)."""
    yy, xx = jnp.meshgrid(jnp.arange(SIZE) + 0.5, jnp.arange(SIZE) + 0.5, indexing="ij")
    radius = jnp.sqrt(alpha / jnp.pi) * side
    (cy_s, cx_s), (cy_c, cx_c) = centres[0], centres[1]
    circle = ((yy - cy_s) ** 2 + (xx - cx_s) ** 2 <= radius**2).astype(jnp.float32)
    square = (jnp.abs(yy - cy_c) <= side / 2) & (jnp.abs(xx - cx_c) <= side / 2)
    img = circle * intensity(z[0], mu[0]) + square.astype(jnp.float32) * intensity(
        z[1], mu[1]
    )
    return img[..., None]


def random_centres(key, alpha, side):
    """Circle and square on opposite sides (which is random), inside the frame.

    The square's centre lies in `[half + side, SIZE - side]`, so its left edge is
    at or right of `half + side / 2`; the circle may reach up to half a pixel
    before it. (Kept inside its own half, a circle of alpha = 5 and side 6, radius
    7.6, had an empty range and every draw was clamped to one x-position.)
    """
    radius = float(np.sqrt(alpha / np.pi) * side)
    half = SIZE / 2
    lo_s, hi_s = radius + 0.5, half + side / 2 - radius - 0.5
    if not lo_s < hi_s:
        raise ValueError(
            f"alpha: a circle of radius {radius:.3g} (alpha {alpha}, side {side}) "
            f"leaves no room for a random x-position in a {SIZE}-pixel frame"
        )
    # one key per coordinate: a shared key put each centre on a fixed diagonal
    kx_s, ky_s, kx_c, ky_c, k_swap = jax.random.split(key, 5)
    cx_s = jax.random.uniform(kx_s, (), minval=lo_s, maxval=hi_s)
    cy_s = jax.random.uniform(ky_s, (), minval=radius + 0.5, maxval=SIZE - radius - 0.5)
    cx_c = jax.random.uniform(kx_c, (), minval=half + side, maxval=SIZE - side)
    cy_c = jax.random.uniform(ky_c, (), minval=side, maxval=SIZE - side)
    swap = jax.random.bernoulli(k_swap)
    flip = lambda cx: jnp.where(swap, SIZE - cx, cx)
    return jnp.array([[cy_s, flip(cx_s)], [cy_c, flip(cx_c)]])


def make_images(key, z, mu, alpha, side):
    keys = jax.random.split(key, z.shape[0])
    centres = jax.vmap(lambda k: random_centres(k, alpha, side))(keys)
    return jax.vmap(lambda zi, ci: render(zi, ci, mu, alpha, side))(z, centres)


def grid_images(grid, mu, alpha, side):
    """Probe images: objects at fixed positions (circle left, square right)."""
    r = float(np.sqrt(alpha / np.pi) * side)
    centres = jnp.array([[SIZE / 2, max(r + 0.5, SIZE / 4)], [SIZE / 2, 3 * SIZE / 4]])
    return jax.vmap(lambda zi: render(zi, centres, mu, alpha, side))(grid)


def train_cnn(key, x, y, xv, yv, *, cfg):
    model = SmallCNN(cfg.channels)
    k_init, k_data = jax.random.split(key)
    params = model.init(k_init, x[:1])
    opt = optax.adam(cfg.lr)

    def loss(p, xb, yb):
        return 0.5 * jnp.mean((model.apply(p, xb) - yb) ** 2)

    def step(carry, i):
        p, s = carry
        idx = jax.random.randint(
            jax.random.fold_in(k_data, i), (cfg.batch_size,), 0, x.shape[0]
        )
        g = jax.grad(loss)(p, x[idx], y[idx])
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    (params, _), _ = jax.lax.scan(
        step, (params, opt.init(params)), jnp.arange(cfg.steps)
    )
    acc = jnp.mean(jnp.where(model.apply(params, xv) >= 0, 1.0, -1.0) == yv)
    return params, acc


def run(cfg: Config, key, progress: bool = True) -> Outcome:
    mu = jnp.stack([ntk.latent_means(cfg.rho_s), ntk.latent_means(cfg.rho_c)])
    kz, kv, kimg, ktrain = jax.random.split(key, 4)
    z, y = ntk.sample_latents(kz, cfg.n_train, rho_s=cfg.rho_s, rho_c=cfg.rho_c)
    zv, yv = ntk.sample_latents(kv, cfg.n_val, rho_s=cfg.rho_s, rho_c=cfg.rho_c)
    grid = ntk.probe_grid(cfg.rho_s, cfg.rho_c)
    lda = ntk.lda_decision(ntk.lda_fit(z, y), grid)  # alpha-invariant reference
    model = SmallCNN(cfg.channels)
    bias, accs, footprint = {}, {}, {}
    # one compiled program for every alpha (same shapes) and all seeds (vmap)
    fit = jax.jit(
        jax.vmap(
            functools.partial(train_cnn, cfg=cfg), in_axes=(0, None, None, None, None)
        )
    )
    for alpha in cfg.alphas:
        x = make_images(kimg, z, mu, alpha, cfg.square_side)
        xv = make_images(jax.random.fold_in(kimg, 1), zv, mu, alpha, cfg.square_side)
        xg = grid_images(grid, mu, alpha, cfg.square_side)
        # footprint check on the probe renders: circle pixels / square pixels
        one = render(
            jnp.array([3 * mu[0], 3 * mu[1]]),
            jnp.array([[16.0, 8.0], [16.0, 24.0]]),
            mu,
            alpha,
            cfg.square_side,
        )
        footprint[alpha] = float(jnp.sum(one[:, :16] > 0) / jnp.sum(one[:, 16:] > 0))
        params, acc = fit(jax.random.split(ktrain, cfg.n_seeds), x, y, xv, yv)
        dec = jax.vmap(lambda p, xg=xg: model.apply(p, xg))(params)
        bias[alpha] = np.asarray(
            jax.vmap(lambda d: ntk.shortcut_bias(d, lda, grid))(dec)
        )
        accs[alpha] = float(jnp.mean(acc))
    stats = {a: mean_ci(b) for a, b in bias.items()}
    fp_err = max(abs(footprint[a] / a - 1) for a in cfg.alphas)
    lo, hi = min(cfg.alphas), max(cfg.alphas)
    claims = [
        Claim(
            "NTK-14.footprint",
            "check",
            "rendered circle area / square area equals alpha_s (pixel footprint)",
            fp_err <= 0.2,
            {f"{a:g}": round(v, 3) for a, v in footprint.items()},
            "within 20% (pixelisation)",
        ),
        Claim(
            "NTK-14",
            "finding",
            "the CNN's shortcut bias grows with the shortcut's footprint "
            f"(alpha_s = {hi:g} above alpha_s = {lo:g}, 95% intervals separated)",
            stats[hi][0] - stats[hi][1] > stats[lo][0] + stats[lo][1],
            {
                f"{a:g}": [round(float(m), 3), round(float(c), 3)]
                for a, (m, c) in stats.items()
            },
            "increasing",
        ),
    ]
    fig, axes = new_figure(1, 3, width=3.8)
    for ax, alpha in zip(axes[0][:2], (lo, hi), strict=True):
        imgs = make_images(
            jax.random.fold_in(kimg, 7), z[:4], mu, alpha, cfg.square_side
        )
        ax.imshow(
            np.concatenate([np.asarray(im[..., 0]) for im in imgs], axis=1),
            cmap="gray",
            vmin=0,
            vmax=1,
        )
        ax.set_title(
            f"NTK-14: alpha_s = {alpha:g} (labels {np.asarray(y[:4])})", fontsize=8
        )
        ax.axis("off")
    ax = axes[0][2]
    ax.errorbar(
        cfg.alphas,
        [stats[a][0] for a in cfg.alphas],
        yerr=[stats[a][1] for a in cfg.alphas],
        fmt="o-",
        color="C3",
    )
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("footprint ratio alpha_s (circle area / square area)")
    ax.set_ylabel("shortcut bias")
    ax.set_title(
        f"NTK-14: CNN ({cfg.steps} steps), rho_s={cfg.rho_s:g}, rho_c={cfg.rho_c:g}",
        fontsize=8,
    )
    metrics = {
        "alphas": list(cfg.alphas),
        "bias": {f"{a:g}": v.tolist() for a, v in bias.items()},
        "val_accuracy": {f"{a:g}": v for a, v in accs.items()},
        "footprint_ratio": {f"{a:g}": v for a, v in footprint.items()},
    }
    return Outcome(metrics, claims, fig)


EXPERIMENT = register_module(__name__)
main = EXPERIMENT.main

if __name__ == "__main__":
    raise SystemExit(EXPERIMENT.cli())
