"""Input validation that works under `jit`.

Shapes, ranks and Python values are checked at trace time. Values inside arrays
(NaN, sign, positive definiteness) can only be checked when the array is concrete; under
`jit` or `vmap` these checks are skipped, and the public docstrings say so.
"""

import numbers
from collections.abc import Iterable

import jax
import numpy as np


def is_concrete(x) -> bool:
    """True when `x` holds values (not a tracer inside `jit`/`vmap`/`grad`)."""
    leaves = jax.tree_util.tree_leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def host_values(x) -> np.ndarray:
    """A concrete array's values on this host, also for a multi-host global array.

    `np.asarray` of a `jax.Array` spanning devices of other processes (under
    `jax.distributed`) raises; such an array is all-gathered first.
    """
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


_values = host_values


def check_choice(name: str, value, choices: Iterable) -> None:
    """Raises `ValueError` unless `value` is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(
            f"{name}: expected one of {', '.join(repr(c) for c in choices)}; "
            f"got {value!r}"
        )


def check_finite(name: str, x) -> None:
    """Raises `ValueError` if a concrete `x` holds NaN or infinity."""
    if not is_concrete(x):
        return
    v = _values(x)
    if not np.all(np.isfinite(v)):
        bad = "NaN" if np.any(np.isnan(v)) else "infinity"
        raise ValueError(f"{name}: expected finite values; got {bad}")


def check_tree_finite(name: str, tree) -> None:
    """`check_finite` on every leaf of a pytree (concrete leaves only)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        check_finite(name, leaf)


def check_positive(name: str, x, *, strict: bool = True) -> None:
    """Raises `ValueError` if a concrete `x` is not finite and (strictly) positive."""
    check_finite(name, x)
    if not is_concrete(x):
        return
    v = _values(x)
    ok = np.all(v > 0) if strict else np.all(v >= 0)
    if not ok:
        rel = "> 0" if strict else ">= 0"
        raise ValueError(f"{name}: expected values {rel}; got min {v.min()!r}")


def check_in_range(name: str, x, lo: float, hi: float, *, closed=(False, False)):
    """Raises `ValueError` if a concrete `x` falls outside the interval (lo, hi)."""
    check_finite(name, x)
    if not is_concrete(x):
        return
    v = _values(x)
    lo_ok = v >= lo if closed[0] else v > lo
    hi_ok = v <= hi if closed[1] else v < hi
    if not np.all(lo_ok & hi_ok):
        left = "[" if closed[0] else "("
        right = "]" if closed[1] else ")"
        raise ValueError(
            f"{name}: expected values in {left}{lo}, {hi}{right}; "
            f"got range [{v.min()!r}, {v.max()!r}]"
        )


def check_count(name: str, value, minimum: int) -> None:
    """Raises unless `value` is an integer `>= minimum` (Python, NumPy, 0-d array).

    For sizes that fix shapes and loop counts: a float such as `2.0` would fail
    later inside a trace with a message naming no argument, and a bool is a
    mistake; both raise `TypeError` here.
    """
    ok = isinstance(value, numbers.Integral) or (
        is_concrete(value)
        and np.ndim(value) == 0
        and np.issubdtype(np.asarray(value).dtype, np.integer)
    )
    if isinstance(value, bool | np.bool_) or not ok:
        raise TypeError(f"{name}: expected a Python int; got {value!r}")
    check_int_at_least(name, int(value), minimum)


def check_int_at_least(name: str, value, minimum: int) -> None:
    """Raises for a Python or concrete integer below `minimum` (or not integral)."""
    if not is_concrete(value):
        return
    v = np.asarray(value)
    if v.dtype == bool:  # True would pass as 1
        raise TypeError(f"{name}: expected an integer; got {value!r}")
    if not np.issubdtype(v.dtype, np.integer):
        if not np.all(np.equal(np.mod(v, 1), 0)):
            raise TypeError(f"{name}: expected an integer; got {value!r}")
    if np.any(v < minimum):
        raise ValueError(f"{name}: expected an integer >= {minimum}; got {value!r}")


def check_ndim(name: str, x, ndim: int, shape_doc: str) -> None:
    """Raises `ValueError` if `x` does not have `ndim` axes (checked at trace time)."""
    if np.ndim(x) != ndim:
        raise ValueError(f"{name}: expected shape {shape_doc}; got {np.shape(x)}")


def check_broadcast(**arrays) -> tuple[int, ...]:
    """Returns the broadcast shape of the named arrays, or raises naming them all.

    Without it a mismatch surfaces deep in a trace as `Incompatible shapes for
    broadcasting` with no argument names.
    """
    shapes = {name: np.shape(x) for name, x in arrays.items()}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        got = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(
            f"{', '.join(shapes)}: expected shapes that broadcast together; got {got}"
        ) from None


def check_shape(name: str, x, shape: tuple, shape_doc: str) -> None:
    """Raises `ValueError` unless `x.shape` matches `shape` (None = any size)."""
    got = np.shape(x)
    ok = len(got) == len(shape) and all(
        want is None or want == g for want, g in zip(shape, got, strict=True)
    )
    if not ok:
        raise ValueError(f"{name}: expected shape {shape_doc}; got {got}")


def check_psd(name: str, matrix, *, strict: bool = False, rtol: float = 1e-6) -> None:
    """Raises `ValueError` if a concrete symmetric `matrix` is not PSD (or PD).

    The smallest eigenvalue is compared with `-rtol * max|eigenvalue|` (PSD) or must
    exceed `rtol * max|eigenvalue|` (PD), so round-off in a PSD input does not raise.
    """
    if not is_concrete(matrix):
        return
    raw = np.asarray(matrix)
    m = raw.astype(np.float64)
    check_finite(name, m)
    # Asymmetry from round-off of the input's own precision is accepted.
    fdtype = raw.dtype if np.issubdtype(raw.dtype, np.floating) else np.float64
    atol = 100 * np.finfo(fdtype).eps * max(np.abs(m).max(), np.finfo(float).tiny)
    if not np.allclose(m, m.T, rtol=0, atol=atol):
        raise ValueError(f"{name}: expected a symmetric matrix")
    m = 0.5 * (m + m.T)
    eig = np.linalg.eigvalsh(m)
    scale = max(np.abs(eig).max(), np.finfo(float).tiny)
    if strict and eig.min() <= rtol * scale:
        raise ValueError(
            f"{name}: expected a positive definite matrix; "
            f"smallest eigenvalue {eig.min():.3g}"
        )
    if not strict and eig.min() < -rtol * scale:
        raise ValueError(
            f"{name}: expected a positive semi-definite matrix; "
            f"smallest eigenvalue {eig.min():.3g}"
        )
