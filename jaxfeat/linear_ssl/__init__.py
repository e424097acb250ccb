r"""Training dynamics of deep linear JEPA (self-distillation) versus MAE.

Deep linear encoders trained with a stop-gradient self-distillation loss (JEPA) learn
features in order of their regression coefficient $\rho$; reconstruction (MAE) learns
them in order of covariance $\lambda$ (Littwin et al. 2024, arXiv:2407.03475).

| name | what it is |
|---|---|
| `ModeSpec`, `mode_spec` | per-mode $(\lambda, \rho, E[y^2])$ with validation |
| `Covariances`, `covariances`, `population_covariances` | two-view second moments |
| `static_two_view`, `dynamic_ar1` | generative models and their $(\lambda, \rho)$ maps |
| `sample_views`, `sample_static_two_view`, `sample_dynamic_ar1` | samplers |
| `empirical_covariances` | sample second moments |
| `generalized_modes`, `diagonalization_defect` | modes of non-diagonal covariances |
| `Params`, `init_aligned`, `init_orthogonal` | deep linear encoder + head, inits |
| `encoder_matrix`, `encode`, `predict`, `imbalance` | model functions |
| `jepa_loss`, `mae_loss` | minibatch objectives |
| `jepa_population_loss`, `mae_population_loss`, `population_loss` | population objectives |
| `population_gradients` | their closed-form (semi-)gradients |
| `GDConfig`, `GDState`, `GDLog`, `init_gd`, `simulate_gd`, `run_gd`, `sweep_gd` | full-matrix gradient descent |
| `mode_rhs`, `end_to_end_rhs`, `time_scale` | per-mode ODE right-hand sides |
| `integrate_rk4`, `integrate_mode`, `first_crossing_time` | fixed-step integration, crossing times |
| `FixedPoint`, `fixed_point` | fixed points $\rho^L$ (JEPA), $\rho^{L/(L+1)}$ (MAE) |
| `critical_time`, `critical_time_laurent` | exact and Laurent-form critical times |
| `learning_curve` | exact per-mode learning curves from the closed form |
"""

from jaxfeat.linear_ssl._critical import FixedPoint as FixedPoint
from jaxfeat.linear_ssl._critical import critical_time as critical_time
from jaxfeat.linear_ssl._critical import critical_time_laurent as critical_time_laurent
from jaxfeat.linear_ssl._critical import fixed_point as fixed_point
from jaxfeat.linear_ssl._critical import learning_curve as learning_curve
from jaxfeat.linear_ssl._data import Covariances as Covariances
from jaxfeat.linear_ssl._data import ModeSpec as ModeSpec
from jaxfeat.linear_ssl._data import covariances as covariances
from jaxfeat.linear_ssl._data import diagonalization_defect as diagonalization_defect
from jaxfeat.linear_ssl._data import dynamic_ar1 as dynamic_ar1
from jaxfeat.linear_ssl._data import generalized_modes as generalized_modes
from jaxfeat.linear_ssl._data import mode_spec as mode_spec
from jaxfeat.linear_ssl._data import population_covariances as population_covariances
from jaxfeat.linear_ssl._data import static_two_view as static_two_view
from jaxfeat.linear_ssl._gd import GDConfig as GDConfig
from jaxfeat.linear_ssl._gd import GDLog as GDLog
from jaxfeat.linear_ssl._gd import GDState as GDState
from jaxfeat.linear_ssl._gd import init_gd as init_gd
from jaxfeat.linear_ssl._gd import run_gd as run_gd
from jaxfeat.linear_ssl._gd import simulate_gd as simulate_gd
from jaxfeat.linear_ssl._gd import sweep_gd as sweep_gd
from jaxfeat.linear_ssl._models import Params as Params
from jaxfeat.linear_ssl._models import encode as encode
from jaxfeat.linear_ssl._models import encoder_matrix as encoder_matrix
from jaxfeat.linear_ssl._models import imbalance as imbalance
from jaxfeat.linear_ssl._models import init_aligned as init_aligned
from jaxfeat.linear_ssl._models import init_orthogonal as init_orthogonal
from jaxfeat.linear_ssl._models import predict as predict
from jaxfeat.linear_ssl._objectives import jepa_loss as jepa_loss
from jaxfeat.linear_ssl._objectives import jepa_population_loss as jepa_population_loss
from jaxfeat.linear_ssl._objectives import mae_loss as mae_loss
from jaxfeat.linear_ssl._objectives import mae_population_loss as mae_population_loss
from jaxfeat.linear_ssl._objectives import (
    population_gradients as population_gradients,
)
from jaxfeat.linear_ssl._objectives import population_loss as population_loss
from jaxfeat.linear_ssl._ode import end_to_end_rhs as end_to_end_rhs
from jaxfeat.linear_ssl._ode import first_crossing_time as first_crossing_time
from jaxfeat.linear_ssl._ode import integrate_mode as integrate_mode
from jaxfeat.linear_ssl._ode import integrate_rk4 as integrate_rk4
from jaxfeat.linear_ssl._ode import mode_rhs as mode_rhs
from jaxfeat.linear_ssl._ode import time_scale as time_scale
from jaxfeat.linear_ssl._sampling import empirical_covariances as empirical_covariances
from jaxfeat.linear_ssl._sampling import sample_dynamic_ar1 as sample_dynamic_ar1
from jaxfeat.linear_ssl._sampling import (
    sample_static_two_view as sample_static_two_view,
)
from jaxfeat.linear_ssl._sampling import sample_views as sample_views

__all__ = [
    "Covariances",
    "FixedPoint",
    "GDConfig",
    "GDLog",
    "GDState",
    "ModeSpec",
    "Params",
    "covariances",
    "critical_time",
    "critical_time_laurent",
    "diagonalization_defect",
    "dynamic_ar1",
    "empirical_covariances",
    "encode",
    "encoder_matrix",
    "end_to_end_rhs",
    "first_crossing_time",
    "fixed_point",
    "generalized_modes",
    "imbalance",
    "init_aligned",
    "init_gd",
    "init_orthogonal",
    "integrate_mode",
    "integrate_rk4",
    "jepa_loss",
    "jepa_population_loss",
    "learning_curve",
    "mae_loss",
    "mae_population_loss",
    "mode_rhs",
    "mode_spec",
    "population_covariances",
    "population_gradients",
    "population_loss",
    "predict",
    "run_gd",
    "sample_dynamic_ar1",
    "sample_static_two_view",
    "sample_views",
    "simulate_gd",
    "static_two_view",
    "sweep_gd",
    "time_scale",
]
