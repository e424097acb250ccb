"""jaxfeat: JAX tools for the theory of feature learning and feature influence.

Pillars: `jaxfeat.linear_ssl` (deep linear JEPA vs MAE dynamics), `jaxfeat.ntk`,
`jaxfeat.kan`, `jaxfeat.influence`. `sharded_vmap` runs a batch of configurations
sharded over every visible device.
"""

from jaxfeat import influence as influence
from jaxfeat import kan as kan
from jaxfeat import linear_ssl as linear_ssl
from jaxfeat import ntk as ntk
from jaxfeat._src.sharding import sharded_vmap as sharded_vmap

__version__ = "0.1.0"

__all__ = ["influence", "kan", "linear_ssl", "ntk", "sharded_vmap", "__version__"]
