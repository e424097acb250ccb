"""One test per theory claim of theory/influence.md (float64, tiny sizes).

References are independent of jaxfeat's autodiff plumbing: a NumPy forward pass and
hand-written backward pass of the tiny MLP (itself checked against central finite
differences in `test_inf_5`), dense NumPy Fisher / GGN blocks built from per-label
gradients, dense `np.linalg.solve`, Sherman–Morrison, and Newton re-training of
small convex models, whose finite differences measure the response to up-weighting.

The file is compile-bound: shapes are tiny and fixed, every fitted `CurvatureState`
is built once (`functools.cache`) and shared by the claims that need it, and the
Newton re-training is one jitted, vmapped program per model.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxfeat import influence, ntk
from jaxfeat._src.testing import assert_close, rel_fro

pytestmark = pytest.mark.usefixtures("x64")

# NTK parameterisation with biases: s_w = 1/sqrt(fan_in), s_b = 0.5 must be folded
# into abar for the factored gradients to be the true parameter gradients.
MLP = ntk.MLPConfig(in_dim=3, widths=(4,), out_dim=3, activation="tanh", b_std=0.5)
N = 6  # MLP training examples
LAMBDA = 0.05  # explicit damping where the claim needs one
CE = "cross_entropy"


POOL = 256  # size of the single random draw behind `_normal`


def _normal(seed, *shape):
    # one fixed-shape draw per seed, sliced in NumPy: one random program per module
    pool = np.asarray(jax.random.normal(jax.random.key(seed), (POOL,)))
    return pool[: int(np.prod(shape))].reshape(shape)


def _cfg(**kw):
    return influence.IHVPConfig(**kw)


# ------------------------------------------------------------- the MLP problem


@functools.cache
def _mlp():
    """Parameters (NumPy float64 inside `Dense`), inputs `(N, 3)`, labels `(N,)`."""
    layers = tuple(
        ntk.Dense(_normal(2 * l, i, o), _normal(2 * l + 1, o))
        for l, (i, o) in enumerate(zip(MLP.sizes[:-1], MLP.sizes[1:], strict=True))
    )
    x = _normal(10, N, MLP.in_dim)
    y = np.arange(N) % MLP.out_dim
    return layers, x, y


def _np_forward(layers, xi):
    """NumPy forward pass: per-layer abar = [s_w h; s_b] and the output `(k,)`."""
    h, abars = xi, []
    for l, layer in enumerate(layers):
        sw, sb = 1.0 / np.sqrt(layer.w.shape[0]), MLP.b_std
        abars.append(np.concatenate([sw * h, [sb]]))
        z = sw * h @ layer.w + sb * layer.b
        h = z if l == len(layers) - 1 else np.tanh(z)
    return abars, h


def _np_backward(layers, abars, r):
    """Hand backprop of an output cotangent `r`: per-layer Ds = dL/dz (`(o,)`)."""
    ds = [None] * len(layers)
    ds[-1] = r
    for l in range(len(layers) - 1, 0, -1):
        sw = 1.0 / np.sqrt(layers[l].w.shape[0])
        h = abars[l][:-1] / sw  # tanh(z_{l-1})
        ds[l - 1] = (sw * layers[l].w @ ds[l]) * (1.0 - h**2)
    return ds


def _softmax(f):
    e = np.exp(f - f.max())
    return e / e.sum()


def _np_ce(layers, xi, yi):
    f = _np_forward(layers, xi)[1]
    return np.log(np.sum(np.exp(f - f.max()))) + f.max() - f[yi]


@functools.cache
def _label_mats():
    """Per example n and label c, the (o, i + 1) gradient mats DW_{n,c}; probs p."""
    layers, x, _ = _mlp()
    k = MLP.out_dim
    mats = [
        np.zeros((N, k, o, i + 1))
        for i, o in zip(MLP.sizes[:-1], MLP.sizes[1:], strict=True)
    ]
    probs = np.zeros((N, k))
    for n in range(N):
        abars, f = _np_forward(layers, x[n])
        probs[n] = p = _softmax(f)
        for c in range(k):
            ds = _np_backward(layers, abars, p - np.eye(k)[c])
            for l in range(len(layers)):
                mats[l][n, c] = np.outer(ds[l], abars[l])
    return mats, probs


def _to_pytree_order(mat):
    """(o, i + 1) matrix -> `ravel_pytree` order of `Dense(w (i, o), b (o,))`."""
    return np.concatenate(
        [mat[..., :-1].swapaxes(-1, -2).reshape(*mat.shape[:-2], -1), mat[..., -1]],
        axis=-1,
    )


def _flat_label_grads():
    """`(N, k, P)` per-label gradients in `ravel_pytree` order."""
    mats, p = _label_mats()
    return np.concatenate([_to_pytree_order(m) for m in mats], axis=-1), p


def _fisher_blocks():
    """Exact per-layer Fisher blocks mean_n sum_c p_c vec(DW) vec(DW)^T (row-major)."""
    mats, p = _label_mats()
    out = []
    for m in mats:
        v = m.reshape(N, m.shape[1], -1)
        out.append(np.einsum("nk,nkp,nkq->pq", p, v, v) / N)
    return out


def _as_mats(tree):
    """A `Dense` tuple (optionally batched) as per-layer (..., o, i + 1) matrices."""
    return [
        np.concatenate([np.swapaxes(l.w, -1, -2), np.asarray(l.b)[..., None]], -1)
        for l in tree
    ]


@functools.cache
def _fit(strategy, n=N, **kw):
    layers, x, y = _mlp()
    model = MLP if strategy in ("kfac", "ekfac") else _mlp_apply
    return influence.fit_curvature(
        model, layers, x[:n], y[:n], cfg=_cfg(strategy=strategy, **kw)
    )


def _mlp_apply(params, x):  # the same MLP as a plain f(params, x)
    return ntk.mlp_apply(params, x, MLP)


# ------------------------------------------------- convex models, Newton-solved


D_LR, K_LR, N_LR = 3, 3, 40  # multiclass logistic regression
LAM_LR = 0.1  # its L2 weight (the Hessian of the objective is H + LAM_LR I)


def _lr_apply(params, x):  # one example: x (d,) -> logits (k,)
    return x @ params["w"] + params["b"]


def _lr_unflat(t):
    return {"b": t[:K_LR], "w": t[K_LR:].reshape(D_LR, K_LR)}  # ravel_pytree order


def _lr_losses(t, x, y):
    f = x @ _lr_unflat(t)["w"] + _lr_unflat(t)["b"][None, :]
    return jax.nn.logsumexp(f, axis=1) - jnp.take_along_axis(f, y[:, None], 1)[:, 0]


@jax.jit
def _lr_eval(ts, x, y):
    """Losses `(b, n)` of a batch `(b, P)` of flat parameters."""
    return jax.vmap(_lr_losses, in_axes=(0, None, None))(ts, x, y)


def _lr_grad_hess(t, x, y):
    """Closed forms in `ravel_pytree` order: g_n = [1; x_n] (x) r_n and the mean
    Hessian mean_n [1; x_n][1; x_n]^T (x) (diag p_n - p_n p_n^T)."""
    f = x @ t[K_LR:].reshape(D_LR, K_LR) + t[:K_LR]
    p = np.exp(f - f.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    z = np.concatenate([np.ones((len(x), 1)), x], axis=1)
    g = np.stack(
        [np.kron(zi, pi - np.eye(K_LR)[yi]) for zi, pi, yi in zip(z, p, y, strict=True)]
    )
    h = sum(
        np.kron(np.outer(zi, zi), np.diag(pi) - np.outer(pi, pi))
        for zi, pi in zip(z, p, strict=True)
    ) / len(x)
    return g, h


@jax.jit
def _lr_solve(weights, x, y):
    """argmin_t sum_i w_i L_i(t) + LAM_LR/2 |t|^2 for each row of `weights`."""

    def one(w):
        obj = lambda t: jnp.sum(w * _lr_losses(t, x, y)) + 0.5 * LAM_LR * t @ t

        def newton(_, t):
            return t - jnp.linalg.solve(jax.hessian(obj)(t), jax.grad(obj)(t))

        return lax.fori_loop(0, 30, newton, jnp.zeros(K_LR * (D_LR + 1)))

    return jax.vmap(one)(weights)


@functools.cache
def _lr_problem():
    x = _normal(11, N_LR + 2, D_LR)
    y = np.arange(N_LR + 2) % K_LR
    xt, yt, xq, yq = x[:N_LR], y[:N_LR], x[N_LR:], y[N_LR:]
    base = np.full(N_LR, 1.0 / N_LR)
    t_hat = np.asarray(_lr_solve(base[None], xt, yt))[0]
    state = influence.fit_curvature(
        _lr_apply,
        _lr_unflat(t_hat),
        xt,
        yt,
        cfg=_cfg(strategy="exact", curvature="hessian", damping=LAM_LR),
    )
    scores = np.asarray(
        influence.pairwise_scores(state, _lr_unflat(t_hat), xq, yq, xt, yt)
    )
    return xt, yt, xq, yq, base, t_hat, state, scores


# ---------------------------------------------------------------- the claims


def test_inf_1():
    """Up-weighting z_m by eps moves the query loss by -eps * score (Koh & Liang)."""
    xt, yt, xq, yq, base, t_hat, _, scores = _lr_problem()
    eps = 1e-4
    eye = np.eye(N_LR)
    t_pm = np.asarray(
        _lr_solve(np.concatenate([base + eps * eye, base - eps * eye]), xt, yt)
    )
    lq = np.asarray(_lr_eval(t_pm, xq, yq))  # (2N, q)
    fd = (lq[:N_LR] - lq[N_LR:]).T / (2 * eps)  # (q, N) dL_q / d eps
    # central differences: O(eps^2) truncation (~1e-8 relative here) + Newton at
    # machine precision; 1e-6 of the largest score leaves two orders of headroom.
    np.testing.assert_allclose(fd, -scores, atol=1e-6 * np.abs(scores).max())
    # and the parameter response is -(H + lam I)^{-1} g_m (first column by FD)
    dt = (t_pm[0] - t_pm[N_LR]) / (2 * eps)
    g, h = _lr_grad_hess(t_hat, xt, yt)
    ref = -np.linalg.solve(h + LAM_LR * np.eye(h.shape[0]), g[0])
    np.testing.assert_allclose(dt, ref, atol=1e-6 * np.abs(ref).max())


def test_inf_2():
    """Sign and scale: removing z_m raises the query loss by ~score / N (no 1/N)."""
    xt, yt, xq, yq, base, t_hat, state, scores = _lr_problem()
    w_loo = base * (1.0 - np.eye(N_LR))  # eps = -1/N: drop one term of the mean
    t_loo = np.asarray(_lr_solve(w_loo, xt, yt))
    l0 = np.asarray(
        _lr_eval(np.concatenate([t_hat[None], t_loo]), xq, yq)
    )  # (1 + N, q)
    dl = (l0[1:] - l0[:1]).T  # (q, N)
    pred = scores / N_LR  # positive = helpful: removing it raises the loss
    # removal is a finite step (eps = -1/N = -0.025), so this is first order only:
    # measured Pearson 0.999 / 0.999 and slopes 1.13 / 1.11 for the two queries (the
    # IF under-estimates removals, as Rubinstein & Hopkins note; slope 1.07 at
    # N = 500 in the spec). Had the scores carried a 1/N, the slope would be ~N = 40.
    for q in range(len(yq)):
        assert np.corrcoef(pred[q], dl[q])[0, 1] > 0.99
        slope = pred[q] @ dl[q] / (pred[q] @ pred[q])
        assert 1.0 < slope < 1.25, slope
        big = np.abs(pred[q]) > 0.1 * np.abs(pred[q]).max()
        assert np.all(np.sign(dl[q][big]) == np.sign(pred[q][big]))
    # self-influence g^T (H + lam I)^{-1} g > 0: up-weighting helps the example itself
    self_s = np.asarray(influence.self_scores(state, _lr_unflat(t_hat), xt, yt))
    assert np.all(self_s > 0)


def test_inf_3():
    """Ridge: exact LOO parameter change = influence / (1 - h_ii) (Sherman-Morrison)."""
    n, d, lam = 12, 4, 0.3
    x, w_true = _normal(12, n, d), _normal(13, d)
    y = (x @ w_true + 0.3 * _normal(14, n))[:, None]
    hmat = x.T @ x / n + lam * np.eye(d)  # Hessian of mean(0.5 r^2) + lam/2 |w|^2
    w_hat = np.linalg.solve(hmat, x.T @ y[:, 0] / n)
    apply = lambda w, xi: (xi @ w)[None]
    state = influence.fit_curvature(
        apply,
        w_hat,
        x,
        y,
        cfg=_cfg(strategy="exact", curvature="hessian", loss="mse", damping=lam),
    )
    g = influence.per_example_grads(
        influence.example_loss_fn(apply, "mse"), w_hat, x, y
    )
    infl = np.asarray(influence.ihvp(state, g)) / n  # IF step for eps = -1/N
    lev = np.einsum("nd,de,ne->n", x, np.linalg.inv(hmat), x) / n
    loo = np.stack(
        [  # dense re-solve without example i (the sum keeps its 1/n)
            np.linalg.solve(
                hmat - np.outer(x[i], x[i]) / n, (x.T @ y[:, 0] - x[i] * y[i, 0]) / n
            )
            - w_hat
            for i in range(n)
        ]
    )
    assert np.max(np.abs(loo - infl / (1 - lev)[:, None])) < 1e-12
    assert np.max(np.abs(loo - infl)) > 1e-4  # the plain IF step is not exact


def test_inf_4():
    """GGN = Fisher for softmax-CE (output Hessian diag p - pp^T) and MSE (I)."""
    f = _normal(15, 4)
    p = _softmax(f)
    # central second differences of logsumexp(f) - f_y: O(h^2) ~ 1e-8, rounding
    # ~1e-16 / h^2 = 1e-8 at h = 1e-4; the tolerance 1e-6 covers both.
    h, e = 1e-4, np.eye(4)
    ce = lambda v: np.log(np.sum(np.exp(v))) - v[1]
    hess = np.array(
        [
            [
                (
                    ce(f + h * (e[a] + e[b]))
                    - ce(f + h * (e[a] - e[b]))
                    - ce(f - h * (e[a] - e[b]))
                    + ce(f - h * (e[a] + e[b]))
                )
                / (4 * h * h)
                for b in range(4)
            ]
            for a in range(4)
        ]
    )
    fisher_out = sum(p[c] * np.outer(p - e[c], p - e[c]) for c in range(4))
    np.testing.assert_allclose(hess, np.diag(p) - np.outer(p, p), atol=1e-6)
    np.testing.assert_allclose(fisher_out, np.diag(p) - np.outer(p, p), atol=1e-15)
    # in parameter space: jaxfeat's exact GGN = the true Fisher from label gradients
    g, probs = _flat_label_grads()
    fisher = np.einsum("nk,nkp,nkq->pq", probs, g, g) / N
    st = _fit("exact", damping=LAMBDA)
    q, ev = np.asarray(st.factors.q), np.asarray(st.factors.evals)
    assert_close(q @ np.diag(ev) @ q.T, fisher, kind="factorization")
    # MSE: output Hessian I, GGN = J^T J / N from hand-backpropagated rows of J
    layers, x, _ = _mlp()
    rows = np.zeros((N, MLP.out_dim, fisher.shape[0]))
    for n in range(N):
        abars, _ = _np_forward(layers, x[n])
        for c in range(MLP.out_dim):
            ds = _np_backward(layers, abars, np.eye(MLP.out_dim)[c])
            rows[n, c] = np.concatenate(
                [
                    _to_pytree_order(np.outer(d_, a_))
                    for d_, a_ in zip(ds, abars, strict=True)
                ]
            )
    st = influence.fit_curvature(
        _mlp_apply,
        layers,
        x,
        np.zeros((N, MLP.out_dim)),
        cfg=_cfg(strategy="exact", loss="mse", damping=LAMBDA),
    )
    q, ev = np.asarray(st.factors.q), np.asarray(st.factors.evals)
    ggn = np.einsum("nkp,nkq->pq", rows, rows) / N
    assert_close(q @ np.diag(ev) @ q.T, ggn, kind="factorization")


def test_inf_5():
    """Per-example Dense gradient DW = Ds abar^T, abar = [s_w h; s_b] (bias column)."""
    layers, x, y = _mlp()
    # hand backprop vs central differences of the NumPy loss: O(h^2) ~ 1e-12 plus
    # rounding ~1e-16 / h = 1e-10 at h = 1e-6: tolerance 1e-8.
    h = 1e-6
    for n in range(2):
        abars, f = _np_forward(layers, x[n])
        ds = _np_backward(layers, abars, _softmax(f) - np.eye(MLP.out_dim)[y[n]])
        for l, layer in enumerate(layers):
            fd = np.zeros_like(layer.w)
            for idx in np.ndindex(layer.w.shape):
                dw = np.zeros_like(layer.w)
                dw[idx] = h
                plus = [*layers[:l], ntk.Dense(layer.w + dw, layer.b), *layers[l + 1 :]]
                minus = [
                    *layers[:l],
                    ntk.Dense(layer.w - dw, layer.b),
                    *layers[l + 1 :],
                ]
                fd[idx] = (_np_ce(plus, x[n], y[n]) - _np_ce(minus, x[n], y[n])) / (
                    2 * h
                )
            np.testing.assert_allclose(
                np.outer(ds[l], abars[l])[:, :-1].T, fd, atol=1e-8
            )
    # jaxfeat: vmap(grad) and the factored (abar, Ds) both equal the hand product
    mats, _ = _label_mats()
    want = [m[np.arange(N), y] for m in mats]  # true-label gradients (N, o, i + 1)
    grads = influence.per_example_grads(
        influence.example_loss_fn(MLP, CE), layers, x, y
    )
    factors = influence.dense_grad_factors(layers, x, y, mlp=MLP)
    for got, (abar, ds), ref in zip(_as_mats(grads), factors, want, strict=True):
        assert_close(got, ref, kind="factorization")  # reordered sums, tanh
        assert_close(np.einsum("no,ni->noi", ds, abar), ref, kind="factorization")
        np.testing.assert_allclose(abar[:, -1], MLP.b_std)  # homogeneous coordinate


def test_inf_6():
    """Row-major (o, i + 1) vec <-> kron(S, A); exact for one example (N = 1)."""
    st = _fit("kfac", n=1, damping=LAMBDA, fisher="exact")
    mats, p = _label_mats()
    for f, m in zip(st.factors, mats, strict=True):
        v = m[0].reshape(m.shape[1], -1)
        block = np.einsum("k,kp,kq->pq", p[0], v, v)  # the exact N = 1 Fisher block
        assert rel_fro(np.kron(f.s, f.a), block) < 1e-12
        assert rel_fro(np.kron(f.a, f.s), block) > 1e-2  # column-major order: wrong


def test_inf_7():
    """K-FAC: A = E[abar abar^T], S = E[sum_c p_c Ds_c Ds_c^T], Lam = l_S l_A^T."""
    st = _fit("kfac", damping=LAMBDA)
    layers, x, _ = _mlp()
    mats, p = _label_mats()
    for l, f in enumerate(st.factors):
        abar = np.stack([_np_forward(layers, xi)[0][l] for xi in x])
        ds = mats[l][..., -1] / MLP.b_std  # the bias column is s_b Ds
        assert_close(f.a, abar.T @ abar / N, kind="factorization")
        assert_close(
            f.s, np.einsum("nk,nko,nkq->oq", p, ds, ds) / N, kind="factorization"
        )
        np.testing.assert_allclose(f.lam, np.outer(f.eig_s, f.eig_a), rtol=1e-14)
        q = np.kron(f.q_s, f.q_a)  # K-FAC in its eigenbasis is S (x) A itself
        assert_close(
            q @ np.diag(np.ravel(f.lam)) @ q.T, np.kron(f.s, f.a), kind="factorization"
        )


def test_inf_8():
    """EK-FAC Lam = diag(Q^T G Q): Frobenius-optimal, trace kept, beats K-FAC."""
    ek, kf = _fit("ekfac"), _fit("kfac", damping=LAMBDA)
    for f, fk, g in zip(ek.factors, kf.factors, _fisher_blocks(), strict=True):
        q = np.kron(f.q_s, f.q_a)
        rot = q.T @ g @ q
        # Lam is exactly the diagonal of G in the K-FAC eigenbasis, which minimises
        # |G - Q diag(d) Q^T|_F over d (off-diagonal entries are untouched by d)
        assert_close(np.ravel(f.lam), np.diag(rot), kind="factorization")
        assert np.all(np.asarray(f.lam) >= 0)
        g_ek = q @ np.diag(np.ravel(f.lam)) @ q.T
        g_k = np.kron(fk.s, fk.a)
        np.testing.assert_allclose(np.trace(g_ek), np.trace(g), rtol=1e-10)
        assert np.linalg.norm(g - g_ek) <= np.linalg.norm(g - g_k)
        # any other diagonal in that basis (here K-FAC's) is no better
        off = np.linalg.norm(rot - np.diag(np.diag(rot)))
        np.testing.assert_allclose(np.linalg.norm(g - g_ek), off, rtol=1e-10)


def test_inf_9():
    """Matrix-form iHVP Q_S[(Q_S^T V Q_A) / (Lam + lam)]Q_A^T = dense solve."""
    st = _fit("ekfac")
    v = tuple(
        ntk.Dense(_normal(16 + i, *l.w.shape), _normal(18 + i, *l.b.shape))
        for i, l in enumerate(_mlp()[0])
    )
    out = _as_mats(influence.ihvp(st, v))
    for f, lam, vm, got in zip(st.factors, st.damping, _as_mats(v), out, strict=True):
        q = np.kron(f.q_s, f.q_a)
        dense = q @ np.diag(np.ravel(f.lam) + float(lam)) @ q.T
        ref = np.linalg.solve(dense, vm.ravel()).reshape(vm.shape)
        assert_close(got, ref, kind="factorization")


def test_inf_10():
    """damping=None: 0.1 mean(Lam_l) per layer (EK-FAC), 0.1 mean eig(G) (exact, CG)."""
    st = _fit("ekfac")
    for f, lam in zip(st.factors, st.damping, strict=True):
        np.testing.assert_allclose(lam, 0.1 * np.mean(f.lam), rtol=1e-14)
    assert st.damping[0] != st.damping[1]  # per layer, not global
    g, probs = _flat_label_grads()
    fisher = np.einsum("nk,nkp,nkq->pq", probs, g, g) / N
    want = 0.1 * np.trace(fisher) / fisher.shape[0]
    np.testing.assert_allclose(_fit("exact").damping, want, rtol=1e-10)
    np.testing.assert_allclose(_fit("cg").damping, want, rtol=1e-10)
    assert _fit("ekfac", damping=LAMBDA).damping == (LAMBDA, LAMBDA)  # as given


def test_inf_11():
    """Layer-wise scores sum to the total; each is <P_l(g_q), g_m,l>."""
    st = _fit("ekfac")
    layers, x, y = _mlp()
    per = np.asarray(
        influence.pairwise_scores(st, layers, x[:2], y[:2], x, y, per_layer=True)
    )
    total = np.asarray(influence.pairwise_scores(st, layers, x[:2], y[:2], x, y))
    assert_close(per.sum(0), total)
    mats, _ = _label_mats()
    for l, f in enumerate(st.factors):
        g = mats[l][np.arange(N), y]  # (N, o, i + 1)
        q = np.kron(f.q_s, f.q_a)
        pre = np.linalg.solve(
            q @ np.diag(np.ravel(f.lam) + float(st.damping[l])) @ q.T,
            g[:2].reshape(2, -1).T,
        ).T
        assert_close(per[l], pre @ g.reshape(N, -1).T, kind="factorization")


def test_inf_12():
    """Query batching: rank-r SVD of P(g_q) is exact at r = min(o, i + 1)."""
    st = _fit("ekfac")
    layers, x, y = _mlp()
    full = np.asarray(influence.pairwise_scores(st, layers, x[:2], y[:2], x, y))
    r_full = max(
        min(o, i + 1) for i, o in zip(MLP.sizes[:-1], MLP.sizes[1:], strict=True)
    )
    exact = influence.pairwise_scores(st, layers, x[:2], y[:2], x, y, query_rank=r_full)
    assert_close(exact, full, kind="factorization")
    # rank 1: the Eckart-Young truncation of each P_l(g_q), by NumPy SVD
    low = np.asarray(
        influence.pairwise_scores(st, layers, x[:2], y[:2], x, y, query_rank=1)
    )
    mats, _ = _label_mats()
    pq = _as_mats(
        influence.ihvp(
            st,
            influence.per_example_grads(
                influence.example_loss_fn(MLP, CE), layers, x[:2], y[:2]
            ),
        )
    )
    ref = np.zeros_like(low)
    for l in range(len(layers)):
        u, s, vt = np.linalg.svd(pq[l])
        trunc = s[:, :1, None] * u[:, :, :1] @ vt[:, :1, :]
        ref += np.einsum("qoi,noi->qn", trunc, mats[l][np.arange(N), y])
    assert_close(low, ref, kind="factorization")


def test_inf_13():
    """PBRF: d f_q(theta^s(eps)) / d eps at 0 = -score with the damped GGN."""
    layers, x, y = _mlp()
    st = _fit("exact", damping=LAMBDA)
    scores = np.asarray(influence.pairwise_scores(st, layers, x[:1], y[:1], x, y))
    kw = dict(model=_mlp_apply, loss=CE, damping=LAMBDA)
    # theta^s is the PBRF minimiser at eps = 0 although it is not a training optimum
    grad0 = jax.grad(influence.pbrf_objective)(
        layers, layers, x, y, x[0], y[0], 0.0, **kw
    )
    assert (
        max(float(jnp.max(jnp.abs(l))) for l in jax.tree_util.tree_leaves(grad0))
        < 1e-14
    )
    loss = jax.jit(influence.example_loss_fn(_mlp_apply, CE))
    eps = 1e-4
    for m in (1, 4):
        lq = [
            float(
                loss(
                    influence.pbrf_response(layers, x, y, x[m], y[m], s * eps, **kw),
                    jnp.asarray(x[0]),
                    jnp.asarray(y[0]),
                )
            )
            for s in (1.0, -1.0)
        ]
        fd = (lq[0] - lq[1]) / (2 * eps)
        # O(eps^2) central-difference error; Newton converged to round-off
        np.testing.assert_allclose(fd, -scores[0, m], rtol=1e-6)


def test_inf_14():
    """LiSSA gives A^{-1}(I - (I - A/c)^{T+1}) v: converges iff c > lambda_max(A)/2."""
    layers, _, _ = _mlp()
    g, probs = _flat_label_grads()
    a = np.einsum("nk,nkp,nkq->pq", probs, g, g) / N + LAMBDA * np.eye(g.shape[-1])
    top = np.linalg.eigvalsh(a)[-1]
    iters, c = 7, 0.8 * top  # above lambda_max / 2: contraction, not yet converged
    st = _fit("lissa", damping=LAMBDA, lissa_iters=iters, lissa_scale=float(c))
    v = g[0, 0]
    out = influence.ihvp(st, _unflat_like(layers, v))
    b = np.eye(len(v)) - a / c
    ref = np.linalg.solve(
        a, (np.eye(len(v)) - np.linalg.matrix_power(b, iters + 1)) @ v
    )
    assert_close(_flat(out), ref, kind="factorization")
    # the error factor (I - A/c)^{T+1} has spectral radius max |1 - eig/c| < 1 here;
    # at c < lambda_max / 2 it exceeds 1 and the recursion diverges
    assert np.max(np.abs(1 - np.linalg.eigvalsh(a) / c)) < 1
    assert np.max(np.abs(1 - np.linalg.eigvalsh(a) / (0.45 * top))) > 1
    # the default scale, 1.5 x a power-iteration estimate, is above lambda_max / 2
    scale = float(_fit("lissa", damping=LAMBDA, lissa_iters=iters).factors.scale)
    assert top / 2 < scale <= 1.5 * top * (1 + 1e-12)


def test_inf_15():
    """Token-wise scores: per-position weight-copy gradients; expand EK-FAC trace."""
    from tests.influence._common import (
        T,
        seq_apply,
        seq_apply_per_position,
        seq_problem,
    )

    params, x, y = seq_problem(jax.random.key(15), n=5)
    st = influence.fit_curvature(
        seq_apply, params, x, y, cfg=influence.IHVPConfig(strategy="ekfac")
    )
    tok = influence.pairwise_scores(st, params, x[:2], y[:2], x, y, per_token=True)
    lf = influence.example_loss_fn(seq_apply, "cross_entropy")
    pq = influence.ihvp(st, influence.per_example_grads(lf, params, x[:2], y[:2]))
    rep = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (T, *a.shape)), params)
    lf_pos = influence.example_loss_fn(seq_apply_per_position, "cross_entropy")
    g_pos = influence.per_example_grads(lf_pos, rep, x, y)
    ref = sum(
        np.einsum(
            "qp,ntp->qnt",
            np.reshape(pq[k], (2, -1)),
            np.reshape(g_pos[k], (x.shape[0], T, -1)),
        )
        for k in params
    )
    assert_close(tok, ref, kind="factorization")
    g = influence.per_example_grads(lf, params, x, y)
    full = sum(
        np.reshape(pq[k], (2, -1)) @ np.reshape(g[k], (x.shape[0], -1)).T
        for k in params
    )
    assert_close(np.sum(tok, -1), full, kind="factorization")
    # expand EK-FAC keeps the trace of the true per-layer GGN: sum Lambda = E||DW||^2
    # under the exact output Hessian (block diagonal over positions)
    flat_out = lambda p, xi: seq_apply(p, xi).reshape(-1)
    tr = 0.0
    for xi, yi in zip(x, y, strict=True):
        jac = jax.jacobian(flat_out)(params, xi)
        f = seq_apply(params, xi)
        h = jax.hessian(
            lambda o, lab=yi: influence._grads.output_loss(o, lab, "cross_entropy")
        )(f).reshape(f.size, f.size)
        tr += sum(
            np.trace(
                np.reshape(jac[k], (f.size, -1)).T
                @ h
                @ np.reshape(jac[k], (f.size, -1))
            )
            for k in params
        )
    lam_sum = sum(float(jnp.sum(f.lam)) for f in st.factors)
    assert_close(lam_sum, tr / x.shape[0], kind="factorization")


def test_inf_16():
    """Whitening, the unit-row OT cost, LESS Adam features, BIDS z-scores."""
    import optax

    rng = jax.random.split(jax.random.key(16), 4)
    c = jax.random.normal(rng[0], (25, 4)) * jnp.array([[3.0, 1.0, 0.1, 1.0]])
    t = jax.random.normal(rng[1], (15, 4))
    cw, tw = influence.whitened_features(c, t, ridge=0.5, normalize=False)
    f = np.concatenate([c, t]) - np.concatenate([c, t]).mean(0)
    sigma = f.T @ f / f.shape[0] + 0.5 * np.eye(4)
    w = np.linalg.solve(np.linalg.cholesky(sigma), np.eye(4)).T  # L^{-T}
    assert_close(w.T @ sigma @ w, np.eye(4), kind="factorization")
    assert_close(np.concatenate([cw, tw]), f @ w, kind="factorization")
    ch, th = influence.whitened_features(c, t)
    direct = np.linalg.norm(np.asarray(ch)[:, None] - np.asarray(th)[None], axis=-1)
    assert_close(influence.ot_cost(ch, th), direct, kind="factorization")
    # LESS: the moments after one Adam update
    mu, nu = jax.random.normal(rng[2], (6,)), jax.random.uniform(rng[3], (6,))
    g = jax.random.normal(rng[0], (3, 6))
    feats = influence.adam_features(g, mu, nu, b1=0.9, b2=0.999, eps=1e-8)
    state = optax.ScaleByAdamState(count=jnp.asarray(3), mu=mu, nu=nu)
    for i in range(3):
        _, new = optax.scale_by_adam().update(g[i], state)
        assert_close(feats[i], new.mu / jnp.sqrt(new.nu + 1e-8), kind="factorization")
    z = influence.column_zscore(jnp.concatenate([10 * c, c], axis=1))
    assert_close(z.mean(0), np.zeros(8), kind="factorization")
    assert_close(z.std(0), np.ones(8), kind="factorization")


def _flat(tree):
    return np.concatenate([np.ravel(l) for l in jax.tree_util.tree_leaves(tree)])


def _unflat_like(like, flat):
    leaves, treedef = jax.tree_util.tree_flatten(like)
    out, start = [], 0
    for leaf in leaves:
        out.append(flat[start : start + leaf.size].reshape(leaf.shape))
        start += leaf.size
    return jax.tree_util.tree_unflatten(treedef, out)
