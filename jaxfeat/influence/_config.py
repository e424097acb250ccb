r"""Configuration of curvature fitting and inverse-Hessian-vector products.

One frozen, hashable config selects the curvature strategy, the curvature matrix
(GGN / Fisher or Hessian), the Fisher mode and the damping, so it can pass through
`jax.jit(..., static_argnames="cfg")`.
"""

import dataclasses
import math
import numbers

import numpy as np

from jaxfeat._src.checks import check_choice, check_count

STRATEGIES = ("exact", "cg", "lissa", "arnoldi", "kfac", "ekfac", "identity")
FISHER_MODES = ("exact", "sampled", "empirical")
LOSSES = ("cross_entropy", "mse")
CURVATURES = ("ggn", "hessian")
KRONECKER = ("kfac", "ekfac")
MATRIX_FREE = ("cg", "lissa", "arnoldi")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IHVPConfig:
    r"""How to fit the curvature $G$ and apply $(G + \lambda I)^{-1}$.

    $G$ is the curvature of the *mean* per-example training loss (no $1/N$ is put
    back into the scores).

    Attributes:
      strategy: `"exact"` (dense eigendecomposition of $G$, small models),
        `"cg"` (conjugate gradient on $G$-vector products), `"lissa"` (Neumann /
        LiSSA recursion), `"arnoldi"` (the `arnoldi_rank` eigenpairs of largest
        magnitude from an Arnoldi iteration, restarted if the Krylov space closes
        early; the solve is restricted to their span), `"kfac"` and `"ekfac"`
        (Kronecker-factored per dense layer: `jaxfeat.ntk` MLPs, or any model
        whose parameters all belong to `x @ W (+ b)` layers, see
        `find_dense_layers`) or `"identity"` ($G^{-1}$
        replaced by $I$: gradient dot products).
      loss: per-example loss on the model output: `"cross_entropy"` (softmax
        cross-entropy, integer labels) or `"mse"` ($\tfrac12\|f - y\|^2$).
      curvature: `"ggn"` (Gauss-Newton / Fisher, shaped by `fisher`) or `"hessian"`
        (exact Hessian of the mean loss; not with `kfac`/`ekfac`).
      fisher: pseudo-gradients of the GGN: `"exact"` (expectation over the model's
        predictive distribution: the true GGN), `"sampled"` (`n_samples` labels per
        example drawn with an explicit key) or `"empirical"` (the true labels).
        For a sequence output `(T, k)`, `"exact"` takes `T k` backward passes per
        example (one per position and class); prefer `"sampled"` for long
        sequences or large vocabularies (one label per position per draw).
      damping: finite $\lambda \ge 0$, or `None` for $0.1\times$ the mean
        eigenvalue of $G$ (per layer, $0.1\times\mathrm{mean}(\Lambda_\ell)$, for
        `kfac`/`ekfac`; the mean absolute eigenvalue for an exact Hessian, which
        may be indefinite). `fit_curvature` refuses a damped curvature that is
        singular (e.g. `0` with a rank-deficient $G$); `cg` and `lissa` have no
        spectrum to check and refuse `0` outright.
      n_samples: sampled labels per example (`fisher="sampled"`). This and the
        other counts must be Python (or NumPy) ints.
      cg_tol: CG stops when $\|r\| \le$ `cg_tol` $\cdot \|v\|$.
      cg_maxiter: CG iteration cap.
      lissa_iters: LiSSA recursion depth.
      lissa_scale: LiSSA scale, above $\lambda_{\max}(G + \lambda I)$; `None`:
        1.5 x a 30-step power-iteration estimate at fit time. A scale at or
        below half that estimate diverges and is refused by `fit_curvature`;
        a solve whose residual outgrows $v$ (diverged) returns NaN.
      arnoldi_iters: Arnoldi (Krylov) iterations, at least `arnoldi_rank`; at
        most the parameter count $p$ of them run (the Krylov space is then all
        of $\mathbb{R}^p$).
      arnoldi_rank: number of eigenpairs kept (largest |eigenvalue| first, which
        matters for an indefinite `"hessian"`), at most $p$ (checked by
        `fit_curvature`).

    References:
      Grosse et al. 2023, arXiv:2308.03296 (EK-FAC influence, §2);
      George et al. 2018, arXiv:1806.03884 (EK-FAC);
      Agarwal, Bullins & Hazan 2017, arXiv:1602.03943 (LiSSA);
      Schioppa et al. 2022, arXiv:2112.03052 (Arnoldi influence).
    """

    strategy: str = "ekfac"
    loss: str = "cross_entropy"
    curvature: str = "ggn"
    fisher: str = "exact"
    damping: float | None = None
    n_samples: int = 1
    cg_tol: float = 1e-6
    cg_maxiter: int = 200
    lissa_iters: int = 500
    lissa_scale: float | None = None
    arnoldi_iters: int = 20
    arnoldi_rank: int = 10

    def __post_init__(self):
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("loss", self.loss, LOSSES)
        check_choice("curvature", self.curvature, CURVATURES)
        check_choice("fisher", self.fisher, FISHER_MODES)
        if self.damping is not None and not (
            isinstance(self.damping, numbers.Real)
            and not isinstance(self.damping, bool | np.bool_)
            and math.isfinite(self.damping)
            and self.damping >= 0
        ):
            raise ValueError(
                f"damping: expected a finite float >= 0 or None; got {self.damping!r}"
            )
        if self.damping == 0 and self.strategy in ("cg", "lissa"):
            raise ValueError(
                f"damping: strategy={self.strategy!r} cannot check that G is "
                "non-singular (a GGN with more parameters than examples x outputs "
                "is singular: the undamped solve is then ill-defined and returns "
                "no error); pass damping > 0, None, or use strategy='exact'"
            )
        if self.curvature == "hessian" and self.strategy in KRONECKER:
            raise ValueError(
                f"curvature: 'hessian' is not Kronecker-factored; use 'ggn' with "
                f"strategy={self.strategy!r}"
            )
        for name in ("n_samples", "cg_maxiter", "lissa_iters", "arnoldi_rank"):
            check_count(name, getattr(self, name), 1)
        check_count("arnoldi_iters", self.arnoldi_iters, self.arnoldi_rank)
        if not (isinstance(self.cg_tol, numbers.Real) and 0 < self.cg_tol < 1):
            # tol >= 1 (or inf) stops CG before its first step: all scores 0
            raise ValueError(f"cg_tol: expected a float in (0, 1); got {self.cg_tol!r}")
        if self.lissa_scale is not None and not (
            isinstance(self.lissa_scale, numbers.Real)
            and math.isfinite(self.lissa_scale)
            and self.lissa_scale > 0
        ):
            raise ValueError(
                "lissa_scale: expected a finite float > 0 or None; got "
                f"{self.lissa_scale!r}"
            )

    @property
    def needs_key(self) -> bool:
        """Whether fitting draws random labels (`fisher="sampled"`)."""
        return self.fisher == "sampled" and self.curvature == "ggn"
