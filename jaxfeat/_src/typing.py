"""Type aliases shared by the pillars.

Shapes use one vocabulary: `n` examples, `m` a second set of points, `d` input
features, `h` hidden width, `k` outputs or modes, `p` flattened parameters, `t` time
points, `s` seeds.
"""

from typing import TypeAlias

from jaxtyping import Array, ArrayLike, Float, Int, Key

PRNGKey: TypeAlias = Key[Array, ""]
"""A typed PRNG key from `jax.random.key`."""

Scalar: TypeAlias = float | Float[ArrayLike, ""]
"""A real scalar: a Python float or a 0-d array (possibly traced)."""

IntScalar: TypeAlias = int | Int[ArrayLike, ""]
"""An integer scalar: a Python int or a 0-d integer array (possibly traced)."""

Depth: TypeAlias = int | Int[ArrayLike, "..."]
"""A network depth: a Python int or an integer array (broadcasts, may be traced)."""

__all__ = ["Depth", "IntScalar", "PRNGKey", "Scalar"]
