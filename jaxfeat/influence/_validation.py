"""Input and result checks of the curvature and score entry points.

Value checks run only on concrete arrays (not under `jit`/`vmap`); each error names
the argument to change.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxfeat._src.checks import check_tree_finite as check_tree_finite
from jaxfeat._src.checks import host_values, is_concrete
from jaxfeat.influence._config import KRONECKER, IHVPConfig


def check_params(name: str, params, treedef, shapes) -> None:
    """Raises `ValueError` unless `params` has the fitted structure and shapes."""
    leaves, td = jax.tree_util.tree_flatten(params)
    got = tuple(jnp.shape(leaf) for leaf in leaves)
    if td != treedef or got != shapes:
        raise ValueError(
            f"{name}: expected parameters with structure {treedef} and leaf shapes "
            f"{shapes}; got {td} with {got}"
        )


def check_invertible(cfg: IHVPConfig, factors, damping) -> None:
    r"""Raises `ValueError` if a concrete fitted $G + \lambda I$ is (near) singular.

    `exact`/`arnoldi` compare the smallest kept eigenvalue plus $\lambda$, and
    `kfac`/`ekfac` each layer's smallest $\Lambda$ entry plus $\lambda_\ell$, with
    `10 eps` times the largest magnitude (eigenvalues, damping): below it the
    solve returns NaN or round-off-dominated values. With `curvature="hessian"` an
    indefinite damped Hessian is accepted; only $\min_i |e_i + \lambda|$ is
    checked. Matrix-free strategies have no spectrum to check (LiSSA's divergence
    is caught on its result, `check_solve`).
    """
    if cfg.strategy in ("exact", "arnoldi"):
        blocks = [("", factors.evals, damping)]
    elif cfg.strategy in KRONECKER:
        blocks = [
            (f" in dense layer {i}", f.lam, d)
            for i, (f, d) in enumerate(zip(factors, damping, strict=True))
        ]
    else:
        return
    if not is_concrete([(ev, d) for _, ev, d in blocks]):
        return
    for where, ev, d in blocks:
        ev_np, lam = np.asarray(ev), float(d)
        eps = np.finfo(ev_np.dtype).eps
        if cfg.curvature == "hessian":  # indefinite is fine; singular is not
            low = float(np.abs(ev_np + lam).min())
        else:
            low = float(ev_np.min()) + lam
        scale = max(float(np.abs(ev_np).max()), abs(lam))
        if not low > max(10 * eps * scale, np.finfo(ev_np.dtype).tiny):
            given = "None (0.1 x mean eigenvalue)" if cfg.damping is None else lam
            hint = (
                ", or fit in float64 (jax_enable_x64: the margin needed is 10 eps of "
                "the dtype times the largest)"
                if ev_np.dtype.itemsize < 8
                else ""
            )
            raise ValueError(
                f"damping: the damped curvature{where} is singular or not positive "
                f"definite to {ev_np.dtype} precision (smallest eigenvalue "
                f"{ev_np.min():.3g}, damping {lam:.3g}: margin {low:.3g} against "
                f"largest {scale:.3g}) with damping={given}; increase damping{hint}"
            )


def check_lissa_scale(cfg: IHVPConfig, factors) -> None:
    r"""Raises `ValueError` if a concrete LiSSA fit diverges for certain.

    With `curvature="hessian"`, a Rayleigh quotient of $H + \lambda I$ at or below 0
    (`factors.floor`, from shifted power steps) proves it indefinite: the error
    names `damping`.

    The recursion $h \leftarrow v + (I - (G+\lambda I)/c)\,h$ contracts only if
    $c > \rho(G + \lambda I)/2$. `factors.radius` is the Rayleigh quotient of 30
    power steps, a lower bound on $\rho$: a scale at or below half of it
    diverges for certain (geometrically, yet possibly without overflowing, so
    `check_solve` would not see it). A scale between that bound and $\rho/2$ is
    missed here; `ihvp` then returns NaN (its residual outgrew `v`), named by
    `check_solve`.
    """
    if cfg.strategy != "lissa":
        return
    if factors.floor is not None and is_concrete(factors.floor):
        if not float(factors.floor) > 0:
            raise ValueError(
                "damping: the damped Hessian H + damping I is indefinite (a Rayleigh "
                f"quotient of it is {float(factors.floor):.3g} <= 0), where the LiSSA "
                "recursion diverges for every scale; increase damping, or use "
                "curvature='ggn' or strategy 'exact'/'arnoldi'"
            )
    if cfg.lissa_scale is None or not is_concrete(factors.radius):
        return
    radius = float(factors.radius)
    if not cfg.lissa_scale > radius / 2:
        raise ValueError(
            "lissa_scale: the LiSSA recursion diverges for a scale at or below half "
            "the spectral radius of G + damping I (at least "
            f"{radius:.3g}); got {cfg.lissa_scale:.3g} (use None to estimate it)"
        )


def check_solve(state, out, name: str) -> None:
    r"""Raises `ValueError` if a concrete inverse-curvature product is not finite.

    A LiSSA recursion whose scale is below $\lambda_{\max}(G + \lambda I)/2$, or on
    an indefinite damped Hessian, diverges: `ihvp` turns a residual longer than
    `v` into NaN, and the error names `lissa_scale` and `damping`; otherwise
    `name`'s values are blamed.
    """
    if not is_concrete(out):
        return
    leaves = jax.tree_util.tree_leaves(out)
    if all(bool(np.all(np.isfinite(host_values(leaf)))) for leaf in leaves):
        return
    if state.cfg.strategy == "lissa":
        raise ValueError(
            "lissa_scale: the LiSSA recursion diverged (its residual outgrew v, or "
            "NaN/inf); expected a scale above half the largest eigenvalue of "
            f"G + damping I (got {float(state.factors.scale):.3g}; None estimates "
            "it) and a positive definite G + damping I (damping: increase it for "
            "an indefinite curvature='hessian')"
        )
    raise ValueError(
        f"{name}: expected finite values; got NaN or infinity in its gradients "
        "or their inverse-curvature products"
    )
