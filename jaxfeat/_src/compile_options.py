"""Two-tier compilation for programs that run once per analysis (XLA:CPU).

An influence analysis runs a handful of programs once or a few times (fitting the
curvature, preconditioning the queries, scoring a training set that fits in one
chunk). On small problems their compile time dominates: on the influence benchmark
(2-core CPU) compiling took about 0.85 s of a 1.4 s first call, running 0.15 s.

`CostAwareJit` compiles such a program first with `FAST_COMPILE`: LLVM at -O0
(matrix products still call the same library kernels; only the code generated for
elementwise work is unoptimised), XLA:CPU's earlier loop emitters, which generate
code faster than its MLIR fusion emitters, and one LLVM module instead of several
compiled in parallel (with two cores and little code the split costs more than it
saves: 0.43 s instead of 0.50 s for the three programs below, compile and run). On
the benchmark this compiled the EK-FAC fit in 0.09 s instead of 0.75 s, query
preconditioning in 0.09 s instead of 0.39 s and the score program in 0.06 s
instead of 0.21 s, while running them
cost about 2e-11 s per flop more (0.12 s instead of 0.05 s for the 4.3e9-flop
score program). So the first tier is used only when XLA's flop estimate times the
number of calls the caller expects is below `FAST_COMPILE_FLOPS`, and a program
called more often than that (the same analysis repeated, e.g. over checkpoints or
retrained models) is recompiled with `TIER_UP` (LLVM's default optimisation, loop
emitters: for these small programs they run as fast as XLA's fusion emitters and
compile about 1.5x faster) and runs at full speed from then on. The two tiers
agree to floating-point rounding, not bitwise.

XLA's estimate counts a loop body once whatever its trip count, so a program with a
loop (`while`, `fori_loop`, `scan`) is always compiled with the defaults.

Only top-level calls on the CPU backend are tiered; inside a trace (an outer `jit`,
`vmap`, `grad`), on other backends and under `jax.disable_jit`, `jax_debug_nans` or
`jax_debug_infs` the function is a plain `jit`. Programs are cached per JAX
configuration context (x64, default device, ...) like `jit`'s own; the cache lives
as long as the `CostAwareJit` (module level: the process), not cleared by
`jax.clear_caches`. Calls from several threads are safe: each program is compiled
once and tiers up once.
"""

import inspect
import threading

import jax
import jax.extend.core

FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
}
TIER_UP = {"xla_cpu_use_fusion_emitters": False}
# Flops x expected calls below which the first tier pays off: at the ~2e-11 s/flop
# it costs that is 0.1 s, against 0.1-0.6 s of compile time saved per program.
FAST_COMPILE_FLOPS = 5e9


class CostAwareJit:
    """`jax.jit(fn, **jit_kwargs)`, compiled fast first when it does little work.

    Call it like the jitted function, or as `call(n_calls, *args, **kwargs)` when
    the caller will run the same program `n_calls` times (once per chunk): that
    multiplies the work estimate, and the program moves to the optimised tier on
    call `n_calls + 1`. Programs are cached per static arguments and argument
    types, shapes and shardings.
    """

    def __init__(self, fn, *, static_argnames=()):
        if isinstance(static_argnames, str):
            static_argnames = (static_argnames,)
        self._signature = inspect.signature(fn)
        kinds = {p.kind for p in self._signature.parameters.values()}
        if kinds - {
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        }:
            raise TypeError(
                f"fn: CostAwareJit needs named parameters (no *args, **kwargs or "
                f"positional-only ones); got {self._signature}"
            )
        self._static = frozenset(static_argnames)
        self._jit = jax.jit(fn, static_argnames=tuple(static_argnames))
        self._programs = {}
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        return self.call(1, *args, **kwargs)

    def call(self, n_calls: int, *args, **kwargs):
        """Runs the program, expected to be run `n_calls` times in a row."""
        if not _tiered():
            return self._jit(*args, **kwargs)
        named = self._signature.bind(*args, **kwargs).arguments
        dynamic = {k: v for k, v in named.items() if k not in self._static}
        leaves, treedef = jax.tree_util.tree_flatten(dynamic)
        key = (
            _config_context(),
            # by type too: jit keeps 1, 1.0 and True apart as static arguments
            tuple((k, type(v), v) for k, v in named.items() if k in self._static),
            treedef,
            tuple(jax.typeof(leaf) for leaf in leaves),
            tuple(getattr(leaf, "sharding", None) for leaf in leaves),
        )
        with self._lock:  # one compile per program, however many threads call
            program = self._programs.get(key)
            if program is None:
                lowered = self._jit.lower(**named)
                program = self._programs[key] = _Program(lowered, n_calls)
        return program(dynamic)

    def tiers(self) -> list[str]:
        """The tier (`"fast"` or `"optimised"`) of each cached program."""
        return [p.tier for p in self._programs.values()]

    def _cache_size(self) -> int:
        return len(self._programs) + self._jit._cache_size()


class _Program:
    """One lowered program: first-tier compiled while its expected work is small."""

    def __init__(self, lowered, n_calls: int):
        self._lowered = lowered
        fast = (
            _flops(lowered) * n_calls < FAST_COMPILE_FLOPS
            and "stablehlo.while" not in lowered.as_text()
        )
        self._calls_left = n_calls if fast else None
        self.tier = "fast" if fast else "optimised"
        self._compiled = _compile(lowered, FAST_COMPILE) if fast else lowered.compile()
        self._lock = threading.Lock()

    def __call__(self, dynamic):
        if self._calls_left is not None:
            with self._lock:
                if self._calls_left == 0:  # called more often than expected: tier up
                    self._compiled = _compile(self._lowered, TIER_UP)
                    self._calls_left, self._lowered, self.tier = None, None, "optimised"
                elif self._calls_left is not None:  # not tiered up meanwhile
                    self._calls_left -= 1
        return self._compiled(**dynamic)


def _compile(lowered, options: dict):
    """`lowered` compiled with `options` (XLA's defaults if it rejects one)."""
    try:
        return lowered.compile(compiler_options=options)
    except jax.errors.JaxRuntimeError as err:
        if "compile option" not in str(err):
            raise
        return lowered.compile()


def _tiered() -> bool:
    """True for a top-level call on the CPU without debug or disable-jit modes."""
    if type(jax.extend.core.find_top_trace(())) is not _TOP_LEVEL_TRACE:
        return False
    cfg = _CONFIG
    if cfg.jax_disable_jit or cfg.jax_debug_nans or cfg.jax_debug_infs:
        return False
    return jax.default_backend() == "cpu"


def _public_context():
    """The main public configuration values a trace depends on."""
    cfg = _CONFIG
    return (
        cfg.jax_enable_x64,
        cfg.jax_default_device,
        cfg.jax_default_matmul_precision,
        cfg.jax_numpy_rank_promotion,
        cfg.jax_numpy_dtype_promotion,
    )


def _flops(lowered) -> float:
    """XLA's flop estimate of a lowered program (infinite when it gives none)."""
    cost = lowered.cost_analysis() or {}
    return float(cost.get("flops", float("inf")))


# Read only, to follow the caller's modes; this module never changes JAX's config.
_CONFIG = jax.config  # noqa: TID251
# The JAX configuration a trace depends on: what `jit` keys its cache on where this
# JAX exposes it, else the main public values.
try:
    from jax._src.config import trace_context as _config_context
except ImportError:
    _config_context = _public_context
# The kind of trace JAX evaluates in outside every transformation (read at import).
_TOP_LEVEL_TRACE = type(jax.extend.core.find_top_trace(()))
