"""XLA compiler options for programs that run once per analysis.

A program that runs once (fitting curvature factors, preconditioning a batch of
query gradients) costs its compile time plus one execution, and on small problems the
compile dominates. XLA:CPU's newer MLIR fusion emitters generate code more slowly than
its earlier loop emitters; for such programs the earlier emitters compile about 1.6x
faster (influence benchmark, 2-core CPU: compiling the EK-FAC fit 0.65 s -> 0.40 s,
the whole first call about 2.1 s -> 1.6 s) and run as fast (the EK-FAC fit of a
64-512-512-10 MLP on 6000 examples: 0.55-0.60 s either way).
Programs called many times (per-chunk scores, training steps) keep XLA's defaults:
there the newer emitters' code ran up to 30% faster.

The option is used only when the default backend is the CPU.
"""

import jax
import jax.extend.core

RUN_ONCE = {"xla_cpu_use_fusion_emitters": False}


class RunOnceJit:
    """`jax.jit(fn, **jit_kwargs)` compiled with `RUN_ONCE` when called at top level.

    XLA accepts compile options only for top-level programs, so inside a trace (an
    outer `jit`, `vmap`, `grad`) the same function is used as a plain nested `jit`;
    so it is on backends other than the CPU.
    """

    def __init__(self, fn, **jit_kwargs):
        self._top = jax.jit(fn, compiler_options=RUN_ONCE, **jit_kwargs)
        self._nested = jax.jit(fn, **jit_kwargs)

    def __call__(self, *args, **kwargs):
        top = type(jax.extend.core.find_top_trace(())) is _TOP_LEVEL_TRACE
        top = top and jax.default_backend() == "cpu"
        return (self._top if top else self._nested)(*args, **kwargs)

    def _cache_size(self) -> int:
        return self._top._cache_size() + self._nested._cache_size()


# The kind of trace JAX evaluates in outside every transformation (read at import).
_TOP_LEVEL_TRACE = type(jax.extend.core.find_top_trace(()))
