r"""Influence functions: per-example gradients, curvature, iHVPs and influence scores.

| name | what it is |
|---|---|
| `example_loss_fn`, `per_example_losses`, `per_example_grads` | per-example losses and gradients of `f(params, x)` models (`vmap(grad)`) |
| `random_projection` | Rademacher / Gaussian JL projection of per-example gradients |
| `dense_grad_factors`, `dense_matrix`, `dense_from_matrix` | `jaxfeat.ntk` MLP layer gradients kept factored as `Ds ⊗ ā`; `(o, i + 1)` matrix form |
| `PAD_LABEL` | the cross-entropy label (-1) of a padded sequence position: left out of the loss, the Kronecker factors ($A$, $S$, $\Lambda$) and their token count; scores use the true gradient, so a padded position's token-wise score is 0 unless the model lets padded inputs feed real outputs (no attention mask) |
| `find_dense_layers`, `DenseTap` | the dense layers (`x @ W + b`) of any `f(params, x)`, found in its jaxpr: K-FAC/EK-FAC and token-wise scores for flax modules and sequence models |
| `IHVPConfig`, `CurvatureState`, `fit_curvature`, `ihvp` | fit-once curvature (exact, CG, LiSSA, Arnoldi, K-FAC, EK-FAC, identity) and damped inverse-curvature-vector products |
| `DenseFactors`, `OperatorFactors`, `KroneckerFactors` | the factor containers inside a `CurvatureState` |
| `pairwise_scores`, `self_scores`, `low_rank_query` | query × train and self-influence (positive = helpful), layer-wise and token-wise terms, query batching, chunked and sharded |
| `adam_features`, `less_scores`, `whitened_features`, `ot_cost`, `sinkhorn`, `tarot_select`, `column_zscore`, `bids_select`, `l2_normalize` | data selection: LESS (Adam features, mean-then-max cosine), TAROT (whitened features, Sinkhorn OT selection), BIDS (z-scored, task-balanced iterative selection) |
| `pbrf_objective`, `pbrf_response` | the proximal Bregman response function and its Newton minimiser |

Sign convention: `score[q, m] = g_qᵀ (G + λI)⁻¹ g_m`, positive when up-weighting
training example `m` lowers the query loss; no `1/N`.

Compilation (CPU): `fit_curvature`, `pairwise_scores` and `self_scores` compile
their programs for compile speed (LLVM -O0) the first time when XLA estimates little
work, and recompile them optimised when the same shapes come again
(`jaxfeat/_src/compile_options.py`). On the influence benchmark the first call takes
0.8 s instead of 1.6 s and the second 1.0 s (recompiling) instead of 0.16 s: a
one-off analysis starts about 1.8x sooner, a repeated one costs ~0.15 s more in
all. The first call's results agree with later ones to float rounding, not bitwise.

References: Koh & Liang 2017, arXiv:1703.04730; Grosse et al. 2023,
arXiv:2308.03296; George et al. 2018, arXiv:1806.03884; Bae et al. 2022,
arXiv:2209.05364; Xia et al. 2024, arXiv:2402.04333 (LESS); Feng et al. 2025,
arXiv:2412.00420 (TAROT); Dai et al. 2025, arXiv:2501.12147 (BIDS).
"""

from jaxfeat.influence._config import IHVPConfig as IHVPConfig
from jaxfeat.influence._curvature import CurvatureState as CurvatureState
from jaxfeat.influence._curvature import DenseFactors as DenseFactors
from jaxfeat.influence._curvature import OperatorFactors as OperatorFactors
from jaxfeat.influence._curvature import fit_curvature as fit_curvature
from jaxfeat.influence._curvature import ihvp as ihvp
from jaxfeat.influence._grads import PAD_LABEL as PAD_LABEL
from jaxfeat.influence._grads import dense_from_matrix as dense_from_matrix
from jaxfeat.influence._grads import dense_grad_factors as dense_grad_factors
from jaxfeat.influence._grads import dense_matrix as dense_matrix
from jaxfeat.influence._grads import example_loss_fn as example_loss_fn
from jaxfeat.influence._grads import per_example_grads as per_example_grads
from jaxfeat.influence._grads import per_example_losses as per_example_losses
from jaxfeat.influence._grads import random_projection as random_projection
from jaxfeat.influence._kfac import KroneckerFactors as KroneckerFactors
from jaxfeat.influence._pbrf import pbrf_objective as pbrf_objective
from jaxfeat.influence._pbrf import pbrf_response as pbrf_response
from jaxfeat.influence._scores import low_rank_query as low_rank_query
from jaxfeat.influence._scores import pairwise_scores as pairwise_scores
from jaxfeat.influence._scores import self_scores as self_scores
from jaxfeat.influence._selection import adam_features as adam_features
from jaxfeat.influence._selection import bids_select as bids_select
from jaxfeat.influence._selection import column_zscore as column_zscore
from jaxfeat.influence._selection import l2_normalize as l2_normalize
from jaxfeat.influence._selection import less_scores as less_scores
from jaxfeat.influence._selection import ot_cost as ot_cost
from jaxfeat.influence._selection import sinkhorn as sinkhorn
from jaxfeat.influence._selection import tarot_select as tarot_select
from jaxfeat.influence._selection import whitened_features as whitened_features
from jaxfeat.influence._taps import DenseTap as DenseTap
from jaxfeat.influence._taps import find_dense_layers as find_dense_layers

__all__ = [
    "CurvatureState",
    "DenseFactors",
    "DenseTap",
    "IHVPConfig",
    "KroneckerFactors",
    "OperatorFactors",
    "PAD_LABEL",
    "adam_features",
    "bids_select",
    "column_zscore",
    "dense_from_matrix",
    "dense_grad_factors",
    "dense_matrix",
    "example_loss_fn",
    "find_dense_layers",
    "fit_curvature",
    "ihvp",
    "l2_normalize",
    "less_scores",
    "low_rank_query",
    "ot_cost",
    "pairwise_scores",
    "pbrf_objective",
    "pbrf_response",
    "per_example_grads",
    "per_example_losses",
    "random_projection",
    "self_scores",
    "sinkhorn",
    "tarot_select",
    "whitened_features",
]
