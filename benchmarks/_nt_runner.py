"""Runs neural-tangents' empirical NTK in a separate (legacy) interpreter.

Invoked by `benchmarks/ntk.py` as `<python> _nt_runner.py in.npz out.npz`, where that
interpreter has jax<=0.4.30 and neural-tangents 0.6.5 (which does not import with
current JAX). The input file holds the MLP weights (NTK parameterisation), inputs and
settings; the output holds the kernels and times of every working implementation.
This file imports neither jaxfeat nor anything newer than that environment has.
It is not a benchmark itself: `benchmarks/ntk.py` writes the JSON results
(`benchmarks/results/ntk.json`).
"""

import sys
import time

import numpy as np


def main(src, dst):
    import jax
    import jax.numpy as jnp
    import neural_tangents as nt

    data = dict(np.load(src))
    n_layers = int(data["n_layers"])
    w_std, b_std = float(data["W_std"]), float(data["b_std"])
    params = [
        (jnp.asarray(data[f"w{i}"]), jnp.asarray(data[f"b{i}"]))
        for i in range(n_layers)
    ]
    x = jnp.asarray(data["x"])
    repeats = int(data["repeats"])
    traced = bool(data["traced"])

    def f(p, xb):  # batched MLP, NTK parameterisation, ReLU
        h = xb
        for i, (w, b) in enumerate(p):
            z = w_std / np.sqrt(w.shape[0]) * h @ w + b_std * b
            h = z if i == len(p) - 1 else jax.nn.relu(z)
        return h

    impls = {
        "nt_jacobian_contraction": nt.NtkImplementation.JACOBIAN_CONTRACTION,
        "nt_ntk_vector_products": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
        "nt_structured_derivatives": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
    }
    out = {}
    for name, impl in impls.items():
        try:
            fn = jax.jit(
                nt.empirical_ntk_fn(
                    f,
                    trace_axes=(-1,) if traced else (),
                    vmap_axes=0,
                    implementation=impl,
                )
            )
            start = time.perf_counter()
            k = np.asarray(jax.block_until_ready(fn(x, None, params)))
            compile_s = time.perf_counter() - start
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                jax.block_until_ready(fn(x, None, params))
                times.append(time.perf_counter() - start)
            out[name] = k
            out[name + "_times"] = np.asarray(times)
            out[name + "_compile"] = np.asarray(compile_s)
        except Exception as e:  # an implementation that fails is reported, not fatal
            out[name + "_error"] = np.asarray(repr(e)[:300])
    out["versions"] = np.asarray(
        f"jax {jax.__version__}, neural-tangents {getattr(nt, '__version__', '0.6.5')}"
    )
    np.savez(dst, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
