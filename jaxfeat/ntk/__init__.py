r"""Neural tangent kernels: empirical, analytic (infinite width) and kernel dynamics.

| name | what it is |
|---|---|
| `MLPConfig`, `Dense`, `init_mlp`, `mlp_apply`, `mlp_taps` | fully connected networks (NTK or standard parameterisation) with layer taps |
| `empirical_ntk_fn`, `choose_method` | empirical NTK: Jacobian contraction, NTK-vector products, structured (dense layers), auto |
| `from_nnx`, `from_linen` | flax modules as `f(params, x)` (split/merge) |
| `Kernels`, `analytic_kernels` | infinite-width NNGP/NTK: closed forms (ReLU, erf, linear) and quadrature (any nonlinearity) |
| `FlowPrediction`, `gradient_flow_mse` | closed-form MSE gradient flow of a kernel model (train and test outputs at any time) |
| `latent_means`, `Embedding`, `make_embedding`, `embed`, `sample_latents`, `ShortcutData`, `sample_shortcut_data` | the two-feature shortcut framework (predictivity, amplification, nesting) |
| `probe_grid`, `reliance`, `reliance_of_line`, `LDA`, `lda_fit`, `lda_decision`, `shortcut_bias` | probe grid, reliance, optimal (LDA) reference and shortcut bias |
| `kernel_shortcut_bias` | bias(t) of a kernel model along MSE gradient flow |
| `TrainConfig`, `TrainResult`, `train_classifier` | optax training of linear and MLP classifiers, vmappable over seeds |
"""

from jaxfeat.ntk._adapters import from_linen as from_linen
from jaxfeat.ntk._adapters import from_nnx as from_nnx
from jaxfeat.ntk._analytic import Kernels as Kernels
from jaxfeat.ntk._analytic import analytic_kernels as analytic_kernels
from jaxfeat.ntk._dynamics import FlowPrediction as FlowPrediction
from jaxfeat.ntk._dynamics import gradient_flow_mse as gradient_flow_mse
from jaxfeat.ntk._empirical import choose_method as choose_method
from jaxfeat.ntk._empirical import empirical_ntk_fn as empirical_ntk_fn
from jaxfeat.ntk._mlp import Dense as Dense
from jaxfeat.ntk._mlp import MLPConfig as MLPConfig
from jaxfeat.ntk._mlp import init_mlp as init_mlp
from jaxfeat.ntk._mlp import mlp_apply as mlp_apply
from jaxfeat.ntk._mlp import mlp_taps as mlp_taps
from jaxfeat.ntk._reliance import LDA as LDA
from jaxfeat.ntk._reliance import kernel_shortcut_bias as kernel_shortcut_bias
from jaxfeat.ntk._reliance import lda_decision as lda_decision
from jaxfeat.ntk._reliance import lda_fit as lda_fit
from jaxfeat.ntk._reliance import probe_grid as probe_grid
from jaxfeat.ntk._reliance import reliance as reliance
from jaxfeat.ntk._reliance import reliance_of_line as reliance_of_line
from jaxfeat.ntk._reliance import shortcut_bias as shortcut_bias
from jaxfeat.ntk._shortcut import Embedding as Embedding
from jaxfeat.ntk._shortcut import ShortcutData as ShortcutData
from jaxfeat.ntk._shortcut import embed as embed
from jaxfeat.ntk._shortcut import latent_means as latent_means
from jaxfeat.ntk._shortcut import make_embedding as make_embedding
from jaxfeat.ntk._shortcut import sample_latents as sample_latents
from jaxfeat.ntk._shortcut import sample_shortcut_data as sample_shortcut_data
from jaxfeat.ntk._train import TrainConfig as TrainConfig
from jaxfeat.ntk._train import TrainResult as TrainResult
from jaxfeat.ntk._train import train_classifier as train_classifier

__all__ = [
    "Dense",
    "Embedding",
    "FlowPrediction",
    "Kernels",
    "LDA",
    "MLPConfig",
    "ShortcutData",
    "TrainConfig",
    "TrainResult",
    "analytic_kernels",
    "choose_method",
    "embed",
    "empirical_ntk_fn",
    "from_linen",
    "from_nnx",
    "gradient_flow_mse",
    "init_mlp",
    "kernel_shortcut_bias",
    "latent_means",
    "lda_decision",
    "lda_fit",
    "make_embedding",
    "mlp_apply",
    "mlp_taps",
    "probe_grid",
    "reliance",
    "reliance_of_line",
    "sample_latents",
    "sample_shortcut_data",
    "shortcut_bias",
    "train_classifier",
]
