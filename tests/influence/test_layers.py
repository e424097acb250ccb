"""Dense layers found in a model's jaxpr: flax modules, sequences, token-wise scores.

All under x64: the oracles are jax.grad, per-position weight copies and dense
float64 GGN blocks, so agreement is to round-off (1e-10 relative).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxfeat import influence, ntk
from jaxfeat.influence import _taps
from tests.influence._common import (
    D,
    H,
    K,
    T,
    seq_apply,
    seq_apply_per_position,
    seq_problem,
)


def _rel(a, b):
    return float(jnp.linalg.norm(jnp.ravel(a - b)) / jnp.linalg.norm(jnp.ravel(b)))


class _NNX(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(D, H, rngs=rngs)
        self.l2 = nnx.Linear(H, K, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.tanh(self.l1(x)))


class _Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(K)(nn.gelu(nn.Dense(H)(x)))


def _flax_models():
    apply_nnx, p_nnx = ntk.from_nnx(_NNX(nnx.Rngs(0)))
    linen = _Linen()
    p_linen = linen.init(jax.random.key(0), jnp.ones((T, D)))
    return [("nnx", apply_nnx, p_nnx), ("linen", linen.apply, p_linen)]


@pytest.mark.parametrize("which", [0, 1], ids=["nnx", "linen"])
def test_factors_of_flax_layers_equal_jax_grad(key, x64, which):
    """sum_t Ds_t abar_t^T of every found layer is the true (W, b) gradient."""
    _, apply_fn, params = _flax_models()[which]
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    x = jax.random.normal(key, (T, D))  # a sequence through per-token layers
    layers = _taps.find_dense_layers(apply_fn, params, x)
    assert len(layers) == 2 and all(t.bias is not None for t in layers)
    assert {t.n_positions for t in layers} == {T}
    ct = jax.random.normal(jax.random.fold_in(key, 1), (T, K))
    _, vjp_fn, acts = _taps.tapped_vjp(apply_fn, layers, params, x)
    grads = jax.grad(lambda p: jnp.sum(apply_fn(p, x).reshape(T, K) * ct))(params)
    g_leaves = jax.tree_util.tree_leaves(grads)
    for tap, act, ds in zip(layers, acts, vjp_fn(ct), strict=True):
        a, d = _taps.layer_factors(tap, act, ds)
        dw = jnp.einsum("to,ti->oi", d, a)
        assert _rel(dw, _taps.leaves_to_matrix(tap, g_leaves)) < 1e-12


def test_leaf_outside_dense_layers_is_named(key):
    params = {"s": jnp.ones(()), "w": jnp.ones((D, K))}
    apply_fn = lambda p, x: p["s"] * (x @ p["w"])
    x = jax.random.normal(key, (4, D))
    y = jnp.zeros((4,), jnp.int32)
    with pytest.raises(ValueError, match=r"\['s'\]"):
        influence.fit_curvature(
            apply_fn, params, x, y, cfg=influence.IHVPConfig(strategy="ekfac")
        )
    state = influence.fit_curvature(  # exact still works, unfactored
        apply_fn, params, x, y, cfg=influence.IHVPConfig(strategy="exact")
    )
    with pytest.raises(ValueError, match="per_token"):
        influence.pairwise_scores(state, params, x, y, x, y, per_token=True)


def test_per_position_offset_is_not_a_bias_when_t_equals_o(key, x64):
    """A (T,) offset added per position (`x @ W + pos[:, None]`) with T == o was
    paired with the layer as its output bias: gradient-dot scores were off by 94
    on a scale of 100. Only a leaf whose axis lands on the output-unit axis is a
    bias; here `pos` is reported as outside every dense layer."""
    t = k = 3
    kw, kp, kx, ky = jax.random.split(key, 4)
    params = {"w": jax.random.normal(kw, (D, k)), "pos": jax.random.normal(kp, (t,))}
    apply_fn = lambda p, x: x @ p["w"] + p["pos"][:, None]
    x = jax.random.normal(kx, (5, t, D))
    y = jax.random.normal(ky, (5, t, k))
    with pytest.raises(ValueError, match=r"\['pos'\]"):
        influence.find_dense_layers(apply_fn, params, x[0])
    # the same model with a real bias (k,) still pairs it
    biased = {"w": params["w"], "b": params["pos"]}
    bias_fn = lambda p, x: x @ p["w"] + p["b"][None, :]
    taps = influence.find_dense_layers(bias_fn, biased, x[0])
    assert [(tap.weight, tap.bias) for tap in taps] == [(1, 0)]
    state = influence.fit_curvature(
        apply_fn,
        params,
        x,
        y,
        cfg=influence.IHVPConfig(strategy="identity", loss="mse"),
    )
    lf = influence.example_loss_fn(apply_fn, "mse")
    flat = lambda g: jnp.concatenate([g["pos"], g["w"].ravel()])
    g = jax.vmap(lambda a, b: flat(jax.grad(lf)(params, a, b)))(x, y)
    got = influence.pairwise_scores(state, params, x[:2], y[:2], x, y)
    np.testing.assert_allclose(got, g[:2] @ g.T, rtol=1e-10)


def test_callable_mlp_ekfac_equals_mlpconfig_ekfac(key, x64):
    """The jaxpr-found layers of a plain MLP give the MLPConfig path's factors."""
    mlp = ntk.MLPConfig(
        in_dim=D, widths=(H,), out_dim=K, activation="tanh", parameterization="standard"
    )
    params = ntk.init_mlp(key, mlp, dtype=jnp.float64)
    params = tuple(ntk.Dense(p.w, p.b + 0.1) for p in params)
    plain = lambda p, x: jnp.tanh(x @ p[0].w + p[0].b) @ p[1].w + p[1].b
    x = jax.random.normal(jax.random.fold_in(key, 1), (9, D))
    y = jax.random.randint(jax.random.fold_in(key, 2), (9,), 0, K)
    cfg = influence.IHVPConfig(strategy="ekfac")
    ref = influence.fit_curvature(mlp, params, x, y, cfg=cfg)
    got = influence.fit_curvature(plain, params, x, y, cfg=cfg)
    assert len(got.layers) == 2
    for fr, fg in zip(ref.factors, got.factors, strict=True):
        assert _rel(fg.lam, fr.lam) < 1e-10
        assert _rel(fg.a, fr.a) < 1e-10 and _rel(fg.s, fr.s) < 1e-10
    s_ref = influence.pairwise_scores(ref, params, x[:3], y[:3], x, y)
    s_got = influence.pairwise_scores(got, params, x[:3], y[:3], x, y)
    assert _rel(s_got, s_ref) < 1e-10


def test_transposed_weights_give_the_same_factors_and_scores(key, x64):
    """`x @ W.T` with `W` stored `(o, i)` (PyTorch layout) is the same layer as
    `x @ W` with the transpose stored: equal Kronecker factors and scores."""
    p, xs, ys = seq_problem(key, n=9)
    p_t = dict(p, w1=p["w1"].T, w2=p["w2"].T)
    plain = lambda q, x: jnp.tanh(x @ q["w1"] + q["b1"]) @ q["w2"] + q["b2"]
    torch = lambda q, x: jnp.tanh(x @ q["w1"].T + q["b1"]) @ q["w2"].T + q["b2"]
    x, y = xs[:, 0], ys[:, 0]  # one position per example: vector inputs
    cfg = influence.IHVPConfig(strategy="ekfac")
    ref = influence.fit_curvature(plain, p, x, y, cfg=cfg)
    got = influence.fit_curvature(torch, p_t, x, y, cfg=cfg)
    assert [t.w_in_axis for t in got.layers] == [1, 1]
    for fr, fg in zip(ref.factors, got.factors, strict=True):
        assert _rel(fg.a, fr.a) < 1e-10 and _rel(fg.s, fr.s) < 1e-10
        assert _rel(fg.lam, fr.lam) < 1e-10
    s_ref = influence.pairwise_scores(ref, p, x[:3], y[:3], x, y)
    s_got = influence.pairwise_scores(got, p_t, x[:3], y[:3], x, y)
    assert _rel(s_got, s_ref) < 1e-10
    # the preconditioned gradient comes back in the transposed layout
    lf = influence.example_loss_fn(torch, "cross_entropy")
    g_t = jax.grad(lf)(p_t, x[0], y[0])
    ih_t = influence.ihvp(got, g_t)
    ih = influence.ihvp(
        ref, jax.grad(influence.example_loss_fn(plain, "cross_entropy"))(p, x[0], y[0])
    )
    assert _rel(ih_t["w1"], ih["w1"].T) < 1e-10 and _rel(ih_t["b2"], ih["b2"]) < 1e-10


def test_sequence_exact_pseudo_grads_are_the_output_hessian(key, x64):
    f = jax.random.normal(key, (T, K))
    y = jax.random.randint(key, (T,), 0, K)
    r, w = influence._grads.output_pseudo_grads(
        f, y, None, loss="cross_entropy", fisher="exact", n_samples=1
    )
    m = jnp.einsum("c...,c,cj->...j", r.reshape(len(w), -1), w, r.reshape(len(w), -1))
    hess = jax.hessian(lambda g: influence._grads.output_loss(g, y, "cross_entropy"))(f)
    assert _rel(m, hess.reshape(T * K, T * K)) < 1e-12


def _layer_ggn_block(params, x, y, leaf_names):
    """Dense float64 GGN block of one layer: mean_n J^T H_f J over (W, b)."""

    def flat_out(sub, xi):
        p = dict(params, **dict(zip(leaf_names, sub, strict=True)))
        return seq_apply(p, xi).reshape(-1)

    sub = [params[k] for k in leaf_names]
    blocks = []
    for xi, yi in zip(x, y, strict=True):
        jac = jax.jacobian(flat_out)(sub, xi)
        mats = [j.reshape(T * K, -1) for j in jac]
        # (o, i+1) row-major layout of [W^T | b]
        w_j = mats[0].reshape(T * K, *params[leaf_names[0]].shape)
        w_j = jnp.swapaxes(w_j, 1, 2)
        jm = jnp.concatenate([w_j, mats[1][:, :, None]], axis=2).reshape(T * K, -1)
        f = seq_apply(params, xi)
        hess = jax.hessian(
            lambda g, lab=yi: influence._grads.output_loss(g, lab, "cross_entropy")
        )(f).reshape(T * K, T * K)
        blocks.append(jm.T @ hess @ jm)
    return sum(blocks) / len(blocks)


def test_sequence_ekfac_keeps_the_layer_ggn_trace(key, x64):
    params, x, y = seq_problem(key)
    fit = lambda s: influence.fit_curvature(
        seq_apply, params, x, y, cfg=influence.IHVPConfig(strategy=s)
    )
    ek, kf = fit("ekfac"), fit("kfac")
    streamed = influence.fit_curvature(  # chunks of 3 (padded): the same sums
        seq_apply,
        params,
        x,
        y,
        cfg=influence.IHVPConfig(strategy="ekfac"),
        chunk_size=3,
    )
    for a, b in zip(ek.factors, streamed.factors, strict=True):
        assert _rel(b.lam, a.lam) < 1e-12 and _rel(b.a, a.a) < 1e-12
    assert [t.n_positions for t in ek.layers] == [T, T]
    for layer, names in zip(range(2), (("w1", "b1"), ("w2", "b2")), strict=True):
        g = _layer_ggn_block(params, x, y, names)
        f_ek, f_kf = ek.factors[layer], kf.factors[layer]
        assert abs(float(jnp.sum(f_ek.lam) - jnp.trace(g))) < 1e-10 * float(
            jnp.trace(g)
        )
        dense = lambda f: (
            jnp.kron(f.q_s, f.q_a)
            @ jnp.diag(f.lam.ravel())
            @ (jnp.kron(f.q_s, f.q_a).T)
        )
        assert jnp.linalg.norm(g - dense(f_ek)) <= jnp.linalg.norm(g - dense(f_kf))


def test_token_scores_equal_per_position_weight_gradients(key, x64):
    """score_t = <P(g_q), d L / d W_t> with a weight copy per position (oracle)."""
    params, x, y = seq_problem(key)
    state = influence.fit_curvature(
        seq_apply, params, x, y, cfg=influence.IHVPConfig(strategy="ekfac")
    )
    xq, yq = x[:2], y[:2]
    tok = influence.pairwise_scores(state, params, xq, yq, x, y, per_token=True)
    full = influence.pairwise_scores(state, params, xq, yq, x, y)
    assert tok.shape == (2, x.shape[0], T)
    assert _rel(tok.sum(-1), full) < 1e-10
    # oracle: preconditioned query gradients dotted with per-position gradients
    lf = influence.example_loss_fn(seq_apply, "cross_entropy")
    pq = influence.ihvp(state, influence.per_example_grads(lf, params, xq, yq))
    rep = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (T, *a.shape)), params)
    lf_pos = influence.example_loss_fn(seq_apply_per_position, "cross_entropy")
    g_pos = influence.per_example_grads(lf_pos, rep, x, y)  # leaves (n, T, ...)
    n, q = x.shape[0], xq.shape[0]
    oracle = sum(
        jnp.einsum("qp,ntp->qnt", pq[k].reshape(q, -1), g_pos[k].reshape(n, T, -1))
        for k in params
    )
    assert _rel(tok, oracle) < 1e-10
    # the factored path equals plain per-example gradient dot products
    g = influence.per_example_grads(lf, params, x, y)
    plain = sum(jnp.einsum("q...,n...->qn", pq[k], g[k]) for k in params)
    assert _rel(full, plain) < 1e-10
    # query batching at full rank is exact for sequences too
    low = influence.pairwise_scores(
        state, params, xq, yq, x, y, per_token=True, query_rank=H + 1
    )
    assert _rel(low, tok) < 1e-10


def test_token_scores_need_one_sequence_length(key):
    params, x, y = seq_problem(key)
    pooled = lambda p, xi: (
        jnp.mean(jnp.tanh(xi @ p["w1"] + p["b1"][None]), 0) @ p["w2"] + p["b2"]
    )
    state = influence.fit_curvature(
        pooled, params, x, y[:, 0], cfg=influence.IHVPConfig(strategy="kfac")
    )
    assert [t.n_positions for t in state.layers] == [T, 1]
    with pytest.raises(ValueError, match="per_token"):
        influence.pairwise_scores(state, params, x, y[:, 0], x, y[:, 0], per_token=True)


@pytest.mark.parametrize("wrap", [jax.jit, jax.checkpoint], ids=["jit", "remat"])
def test_layers_inside_jit_and_remat_are_found(key, x64, wrap):
    """Nested jit/remat bodies are inlined: same layers, exact gradient factors;
    a weight used only inside `lax.scan` is named as not covered."""
    params, x, _ = seq_problem(key, n=1)
    wrapped = lambda p, xi: wrap(seq_apply)(p, xi)
    layers = _taps.find_dense_layers(wrapped, params, x[0])
    assert layers == _taps.find_dense_layers(seq_apply, params, x[0])
    ct = jax.random.normal(key, (T, K))
    _, vjp_fn, acts = _taps.tapped_vjp(wrapped, layers, params, x[0])
    g = jax.tree_util.tree_leaves(
        jax.grad(lambda p: jnp.sum(seq_apply(p, x[0]) * ct))(params)
    )
    for tap, act, ds in zip(layers, acts, vjp_fn(ct), strict=True):
        a, d = _taps.layer_factors(tap, act, ds)
        assert (
            _rel(jnp.einsum("to,ti->oi", d, a), _taps.leaves_to_matrix(tap, g)) < 1e-12
        )

    def scanned(p, xi):
        h, _ = jax.lax.scan(lambda c, _: (jnp.tanh(c @ p["u"]), None), xi, None, 2)
        return h @ p["v"]

    with pytest.raises(ValueError, match=r"\['u'\]"):
        _taps.find_dense_layers(scanned, {"u": jnp.eye(D), "v": jnp.ones((D, K))}, x[0])


def _causal_apply(params, x):
    """`(T, D) -> (T, K)` for any T: position t sees the mean of hidden states <= t,
    so padding appended at the end leaves the real positions' outputs unchanged."""
    h = jnp.tanh(x @ params["w1"] + params["b1"][None])
    m = jnp.cumsum(h, axis=0) / jnp.arange(1, h.shape[0] + 1, dtype=h.dtype)[:, None]
    return m @ params["w2"] + params["b2"][None]


@pytest.mark.parametrize("fisher", ["exact", "empirical"])
def test_padded_tokens_are_masked_out_of_factors_and_scores(key, x64, fisher):
    # Spec section 5, check 9: padded positions (label PAD_LABEL) leave A, S, Lambda,
    # the token count and every score exactly as if the sequences were shorter.
    params, x, y = seq_problem(key, n=6)
    real = 3
    x_pad = x.at[:, real:].set(100.0 * x[:, real:])  # garbage inputs at the padding
    y_pad = y.at[:, real:].set(influence.PAD_LABEL)
    x_cut, y_cut = x[:, :real], y[:, :real]
    cfg = influence.IHVPConfig(strategy="ekfac", fisher=fisher)
    cut = influence.fit_curvature(_causal_apply, params, x_cut, y_cut, cfg=cfg)
    for chunk in (None, 4):
        pad = influence.fit_curvature(
            _causal_apply, params, x_pad, y_pad, cfg=cfg, chunk_size=chunk
        )
        for fp, fc in zip(pad.factors, cut.factors, strict=True):
            for name in ("a", "s", "lam"):
                assert _rel(getattr(fp, name), getattr(fc, name)) < 1e-10, name
        for dp, dc in zip(pad.damping, cut.damping, strict=True):
            assert abs(float(dp) - float(dc)) < 1e-10 * float(dc)
    scores = lambda st, xs, ys, **kw: influence.pairwise_scores(
        st, params, xs[:2], ys[:2], xs, ys, **kw
    )
    assert _rel(scores(pad, x_pad, y_pad), scores(cut, x_cut, y_cut)) < 1e-10
    tok_pad = scores(pad, x_pad, y_pad, per_token=True)
    tok_cut = scores(cut, x_cut, y_cut, per_token=True)
    assert float(jnp.max(jnp.abs(tok_pad[..., real:]))) == 0.0
    assert _rel(tok_pad[..., :real], tok_cut) < 1e-10
    self_pad = influence.self_scores(pad, params, x_pad, y_pad)
    assert _rel(self_pad, influence.self_scores(cut, params, x_cut, y_cut)) < 1e-10
    # without the padding label the garbage positions would count
    unmasked = influence.fit_curvature(_causal_apply, params, x_pad, y, cfg=cfg)
    assert _rel(unmasked.factors[0].a, cut.factors[0].a) > 0.1


def test_padding_label_only_for_sequences(key):
    params, x, y = seq_problem(key)
    with pytest.raises(ValueError, match=r"^y: expected class labels in \[0, 3\)"):
        influence.fit_curvature(
            lambda p, xi: seq_apply(p, xi)[0],  # one output row: no padding
            params,
            x,
            y[:, 0].at[0].set(influence.PAD_LABEL),
            cfg=influence.IHVPConfig(strategy="ekfac"),
        )


def test_padding_that_feeds_real_outputs_leaves_a_s_and_lambda(key, x64):
    """Left padding into a cumulative sum: real positions see the padded ones, so
    their output gradients ds are not 0 there. Padding must still leave A, S and
    Lambda (spec section 5, check 9; S kept them before). Reference: the
    empirical Fisher from dL/d(pre-activation) by `jax.vjp`, summed in NumPy over
    real positions only."""
    params, x, y = seq_problem(key, n=5)
    y = y.at[::2, :2].set(influence.PAD_LABEL)  # left padding on examples 0, 2, 4
    real = np.asarray(y) != influence.PAD_LABEL

    def rest(z):  # pre-activations (T, H) -> outputs (T, K), mixing positions
        return jnp.cumsum(jnp.tanh(z), axis=0) @ params["w2"] + params["b2"][None]

    model = lambda p, xi: (
        jnp.cumsum(jnp.tanh(xi @ p["w1"] + p["b1"][None]), axis=0) @ p["w2"]
        + p["b2"][None]
    )
    cfg = influence.IHVPConfig(strategy="ekfac", fisher="empirical", damping=0.1)
    st = influence.fit_curvature(model, params, x, y, cfg=cfg)

    def ce(o, lab):  # summed over real positions
        pick = jnp.take_along_axis(o, jnp.maximum(lab, 0)[:, None], axis=1)[:, 0]
        return jnp.sum(jnp.where(lab >= 0, jax.nn.logsumexp(o, axis=1) - pick, 0.0))

    s_ref, dws, abars = 0.0, [], []
    for n in range(x.shape[0]):
        z = x[n] @ params["w1"] + params["b1"][None]
        out, vjp = jax.vjp(rest, z)
        r = jax.grad(ce)(out, y[n])
        (ds,) = vjp(r)  # (T, H), nonzero at padded positions
        ds, abar = np.asarray(ds)[real[n]], np.c_[np.asarray(x[n]), np.ones(T)]
        abar = abar[real[n]]
        s_ref = s_ref + ds.T @ ds
        dws.append(ds.T @ abar)
        abars.append(abar)
    n_ex = x.shape[0]
    abar_all = np.concatenate(abars)
    f0 = st.factors[0]
    assert _rel(f0.a, abar_all.T @ abar_all / len(abar_all)) < 1e-12
    assert _rel(f0.s, s_ref / n_ex) < 1e-12
    qs, qa = np.asarray(f0.q_s), np.asarray(f0.q_a)
    lam_ref = sum((qs.T @ dw @ qa) ** 2 for dw in dws) / n_ex
    assert _rel(f0.lam, lam_ref) < 1e-10


def test_fit_on_all_padded_labels_names_y():
    """Every label PAD_LABEL: the factors were 0/0 = NaN and the error blamed
    damping ("singular or not positive definite"); y is the cause."""
    seq = lambda p, xi: jnp.tanh(xi @ p["w"]) @ p["v"]
    ps = {
        "w": jnp.ones((3, 4)) * 0.3,
        "v": jax.random.normal(jax.random.key(1), (4, 2)),
    }
    xs = jax.random.normal(jax.random.key(0), (4, 5, 3))
    pad = jnp.full((4, 5), influence.PAD_LABEL)
    for strategy in ("ekfac", "exact"):
        with pytest.raises(ValueError, match="^y: every position is padding"):
            influence.fit_curvature(
                seq, ps, xs, pad, cfg=influence.IHVPConfig(strategy=strategy)
            )
    # one real label is enough
    st = influence.fit_curvature(
        seq, ps, xs, pad.at[0, 0].set(1), cfg=influence.IHVPConfig(strategy="ekfac")
    )
    assert all(bool(jnp.all(jnp.isfinite(f.lam))) for f in st.factors)
