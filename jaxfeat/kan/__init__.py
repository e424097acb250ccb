r"""B-spline Kolmogorov–Arnold networks and spline-based feature selectors.

| name | what it is |
|---|---|
| `uniform_grid`, `bspline_basis`, `spline_values`, `fit_coefficients`, `grid_from_samples` | B-spline bases on any knot vector (Cox–de Boor, gradient-safe; `method="uniform"`: closed form on uniform grids), least-squares fits, data-adapted grids |
| `KANConfig`, `KANLayer`, `init_kan`, `kan_grids`, `kan_apply`, `layer_edges`, `kan_layer_inputs`, `update_kan_grids` | the network: pure init/apply, per-edge outputs, grid update and extension |
| `kan_module`, `to_pure` | flax NNX wrapper (grids kept out of `nnx.Param`; flax imported on use) |
| `KANTrainConfig`, `kan_loss`, `kan_regularization`, `train_kan` | optax training (minibatch Adam, sample-based L1 + entropy), vmappable over folds and seeds |
| `first_layer_edges`, `kan_l1`, `kan_l2`, `kan_si`, `kan_ko`, `kan_ko_losses`, `kan_attr` | the spline-based selectors (authors' code by default; coefficient-norm and centred variants; pykan attribution) |
| `permutation_importance`, `gradient_saliency` | model-agnostic baselines in JAX |
| `SKLEARN_METHODS`, `sklearn_scores` | LASSO, RF permutation, mutual information, SVM-RFE through scikit-learn (optional) |
| `top_k`, `kfold_indices`, `CVScores`, `crossval_feature_scores`, `jaccard_stability`, `redundancy` | selection, fold aggregation (sharded over devices), stability and redundancy |

References: Liu et al., "KAN: Kolmogorov–Arnold Networks", arXiv:2404.19756;
Akazan & Mbingui, "Splines-Based Feature Importance in Kolmogorov–Arnold Networks",
arXiv:2509.23366.
"""

from jaxfeat.kan._baselines import gradient_saliency as gradient_saliency
from jaxfeat.kan._baselines import permutation_importance as permutation_importance
from jaxfeat.kan._bspline import bspline_basis as bspline_basis
from jaxfeat.kan._bspline import fit_coefficients as fit_coefficients
from jaxfeat.kan._bspline import grid_from_samples as grid_from_samples
from jaxfeat.kan._bspline import spline_values as spline_values
from jaxfeat.kan._bspline import uniform_grid as uniform_grid
from jaxfeat.kan._model import KANConfig as KANConfig
from jaxfeat.kan._model import KANLayer as KANLayer
from jaxfeat.kan._model import init_kan as init_kan
from jaxfeat.kan._model import kan_apply as kan_apply
from jaxfeat.kan._model import kan_grids as kan_grids
from jaxfeat.kan._model import kan_layer_inputs as kan_layer_inputs
from jaxfeat.kan._model import layer_edges as layer_edges
from jaxfeat.kan._model import update_kan_grids as update_kan_grids
from jaxfeat.kan._nnx import kan_module as kan_module
from jaxfeat.kan._nnx import to_pure as to_pure
from jaxfeat.kan._selection import CVScores as CVScores
from jaxfeat.kan._selection import crossval_feature_scores as crossval_feature_scores
from jaxfeat.kan._selection import jaccard_stability as jaccard_stability
from jaxfeat.kan._selection import kfold_indices as kfold_indices
from jaxfeat.kan._selection import redundancy as redundancy
from jaxfeat.kan._selection import top_k as top_k
from jaxfeat.kan._selectors import first_layer_edges as first_layer_edges
from jaxfeat.kan._selectors import kan_attr as kan_attr
from jaxfeat.kan._selectors import kan_ko as kan_ko
from jaxfeat.kan._selectors import kan_ko_losses as kan_ko_losses
from jaxfeat.kan._selectors import kan_l1 as kan_l1
from jaxfeat.kan._selectors import kan_l2 as kan_l2
from jaxfeat.kan._selectors import kan_si as kan_si
from jaxfeat.kan._sklearn import SKLEARN_METHODS as SKLEARN_METHODS
from jaxfeat.kan._sklearn import sklearn_scores as sklearn_scores
from jaxfeat.kan._train import KANTrainConfig as KANTrainConfig
from jaxfeat.kan._train import kan_loss as kan_loss
from jaxfeat.kan._train import kan_regularization as kan_regularization
from jaxfeat.kan._train import train_kan as train_kan

__all__ = [
    "SKLEARN_METHODS",
    "CVScores",
    "KANConfig",
    "KANLayer",
    "KANTrainConfig",
    "bspline_basis",
    "crossval_feature_scores",
    "first_layer_edges",
    "fit_coefficients",
    "gradient_saliency",
    "grid_from_samples",
    "init_kan",
    "jaccard_stability",
    "kan_apply",
    "kan_attr",
    "kan_grids",
    "kan_ko",
    "kan_ko_losses",
    "kan_l1",
    "kan_l2",
    "kan_layer_inputs",
    "kan_loss",
    "kan_module",
    "kan_regularization",
    "kan_si",
    "kfold_indices",
    "layer_edges",
    "permutation_importance",
    "redundancy",
    "sklearn_scores",
    "spline_values",
    "to_pure",
    "top_k",
    "train_kan",
    "uniform_grid",
    "update_kan_grids",
]
