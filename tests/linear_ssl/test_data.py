"""Mode specs, covariances, generative models and samplers."""

import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest

from jaxfeat import linear_ssl as ls
from jaxfeat._src.testing import assert_close, assert_rel_fro


def test_mode_spec_defaults_and_population_covariances():
    spec = ls.mode_spec(jnp.array([1.0, 1.25]), jnp.array([1.0, 0.5]))
    assert_close(spec.x_var, jnp.array([1.0, 2.5]))
    assert_close(spec.y_var, spec.x_var)  # shared marginals by default
    cov = ls.population_covariances(spec)
    assert_close(cov.xx, jnp.diag(jnp.array([1.0, 2.5])))
    assert_close(cov.yx, jnp.diag(jnp.array([1.0, 1.25])))


@pytest.mark.parametrize(
    ("lam", "rho", "y_var", "match"),
    [
        ([1.0, 0.0], [0.5, 0.5], None, "lam"),
        ([1.0, -1.0], [0.5, 0.5], None, "lam"),
        ([1.0, 1.0], [0.5, 0.0], None, "rho"),
        ([1.0, float("nan")], [0.5, 0.5], None, "lam"),
        ([1.0, 1.0], [0.5, 0.5], [1.0, 0.1], "y_var"),  # y_var < lam*rho: not PSD
        ([1.0, 1.0], [1.5, 0.5], None, "y_var"),  # rho > 1 needs an explicit y_var
        ([1.0, 1.0], [0.5, 0.5, 0.5], None, "rho"),
        ([[1.0]], [0.5], None, "lam"),
    ],
)
def test_mode_spec_bad_input(lam, rho, y_var, match):
    y_var = None if y_var is None else np.array(y_var)
    # Shape errors meet jaxtyping's TypeError first in tests (ValueError otherwise);
    # both name the argument.
    with pytest.raises((ValueError, TypeError), match=match):
        ls.mode_spec(np.array(lam), np.array(rho), y_var)


def test_mode_spec_rho_above_one_with_valid_y_var():
    spec = ls.mode_spec(
        np.array([1.0]), np.array([2.0]), np.array([2.0])
    )  # E[y^2] = 2 >= lam*rho = 2
    assert_close(spec.x_var, jnp.array([0.5]))


def test_covariances_validation():
    eye = jnp.eye(2)
    ls.covariances(eye, 0.5 * eye, eye)
    with pytest.raises(ValueError, match="joint"):
        ls.covariances(eye, 2.0 * eye, eye)  # |corr| = 2: not PSD
    with pytest.raises(ValueError, match="xx"):
        ls.covariances(jnp.array([[1.0, 2.0], [2.0, 1.0]]), 0.1 * eye, eye)
    with pytest.raises((ValueError, TypeError), match="yx"):
        ls.covariances(eye, jnp.eye(3), eye)
    with pytest.raises(ValueError, match="yy"):
        ls.covariances(eye, 0.1 * eye, eye.at[0, 0].set(jnp.nan))


def test_static_and_dynamic_maps():
    spec = ls.static_two_view(jnp.array([1.0, 2.0]), jnp.array([0.1, 6.0]))
    assert_close(spec.lam, jnp.array([1.0, 2.0]))
    assert_close(spec.rho, jnp.array([1 / 1.1, 0.25]))
    dyn = ls.dynamic_ar1(jnp.array([0.9]), jnp.array([2.0]), jnp.array([0.5]))
    assert_close(dyn.lam, jnp.array([1.8]))
    assert_close(dyn.rho, jnp.array([1.8 / 2.5]))
    with pytest.raises(ValueError, match="ar"):
        ls.dynamic_ar1(jnp.array([1.0]), jnp.array([1.0]), jnp.array([0.1]))
    with pytest.raises(ValueError, match="noise_var"):
        ls.static_two_view(jnp.array([1.0]), jnp.array([-0.1]))


def test_samplers_match_population_moments(key):
    # Monte Carlo: relative Frobenius error of sample moments ~ c/sqrt(n); with
    # n = 200k and these condition numbers c < 3, so 3/sqrt(n) ~ 0.007 bounds it.
    n = 200_000
    k1, k2, k3 = jax.random.split(key, 3)
    gamma, noise = jnp.array([1.0, 2.0, 0.5]), jnp.array([0.1, 6.0, 0.5])
    x, y = ls.sample_static_two_view(k1, gamma, noise, n)
    emp = ls.empirical_covariances(x, y)
    pop = ls.population_covariances(ls.static_two_view(gamma, noise))
    for a, b in zip(emp, pop, strict=True):
        assert_rel_fro(a, b, tol=3 / np.sqrt(n))
    ar, s2 = jnp.array([0.95, 0.5]), jnp.array([1.0, 4.0])
    seq = ls.sample_dynamic_ar1(k2, ar, s2, jnp.array([0.2, 0.2]), n + 1)
    emp = ls.empirical_covariances(seq[:-1], seq[1:])
    pop = ls.population_covariances(ls.dynamic_ar1(ar, s2, jnp.array([0.2, 0.2])))
    # AR(1) samples are correlated: effective n shrinks by (1+a)/(1-a) = 39 at a=0.95.
    for a, b in zip(emp, pop, strict=True):
        assert_rel_fro(a, b, tol=3 * np.sqrt(39 / n))
    cov = ls.covariances(
        jnp.array([[2.0, 0.3], [0.3, 1.0]]),
        jnp.array([[1.0, 0.2], [0.1, 0.5]]),
        jnp.array([[1.5, 0.0], [0.0, 1.0]]),
    )
    x, y = ls.sample_views(k3, cov, n)
    emp = ls.empirical_covariances(x, y)
    for a, b in zip(emp, cov, strict=True):
        assert_rel_fro(a, b, tol=3 / np.sqrt(n))


def test_generalized_modes(x64):
    spec = ls.mode_spec(jnp.array([1.0, 1.25, 0.3]), jnp.array([1.0, 0.5, 0.9]))
    cov = ls.population_covariances(spec)
    lam, rho, vecs = ls.generalized_modes(cov)
    order = jnp.argsort(-spec.rho)
    assert_close(rho, spec.rho[order])
    assert_close(lam, spec.lam[order])
    assert_close(jnp.abs(vecs), jnp.eye(3)[:, order])
    assert float(ls.diagonalization_defect(cov)) == 0.0
    # Rotating yx's eigenbasis breaks simultaneous diagonalisability.
    c, s = np.cos(0.3), np.sin(0.3)
    R = jnp.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    rot = ls.Covariances(cov.xx, R @ cov.yx @ R.T, cov.yy)
    assert float(ls.diagonalization_defect(rot)) > 0.01
    lam, rho, vecs = ls.generalized_modes(rot)
    # Each generalised mode solves yx v = rho xx v.
    assert_close(rot.yx @ vecs, rot.xx @ vecs * rho[None], kind="factorization")


@pytest.fixture
def no_runtime_types():
    """jaxtyping's hook (tests only) would reject the shapes first; users get
    jaxfeat's own error, which is what is tested."""
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


def test_per_mode_arrays_must_share_a_shape(key, no_runtime_types):
    """(2,) with (1,) broadcast silently; (2,) with (3,) failed naming nothing."""
    g, two, one, three = jnp.ones(2), 0.5 * jnp.ones(2), jnp.ones(1), jnp.ones(3)
    for bad in (one, three):
        with pytest.raises(ValueError, match="^noise_var: expected shape"):
            ls.static_two_view(g, bad)
        with pytest.raises(ValueError, match="^noise_var: expected shape"):
            ls.sample_static_two_view(key, g, bad, 8)
        with pytest.raises(ValueError, match="^state_var: expected shape"):
            ls.dynamic_ar1(two, bad, two)
        with pytest.raises(ValueError, match="^noise_var: expected shape"):
            ls.sample_dynamic_ar1(key, two, two, bad, 8)
    with pytest.raises(ValueError, match="^gamma: expected shape"):
        ls.static_two_view(jnp.ones((2, 2)), jnp.ones((2, 2)))


def test_diagonalization_defect_value_and_bad_input(x64):
    """The closed form on a 2x2 pair, 0 (not 0/0 = NaN) for uncorrelated views,
    and NaN or mismatched shapes named."""
    xx = jnp.diag(jnp.array([1.0, 2.0]))
    yx = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    # [xx, yx] = [[0, -1], [1, 0]]: norm sqrt(2); |xx| = sqrt(5), |yx| = sqrt(2)
    got = ls.diagonalization_defect(ls.Covariances(xx, yx, xx))
    np.testing.assert_allclose(got, 1 / np.sqrt(5), rtol=1e-14)
    zero = ls.Covariances(xx, jnp.zeros((2, 2)), xx)
    assert float(ls.diagonalization_defect(zero)) == 0.0
    with pytest.raises(ValueError, match="^cov.yx: expected finite"):
        ls.diagonalization_defect(ls.Covariances(xx, yx.at[0, 0].set(jnp.nan), xx))
    with pytest.raises(ValueError, match="^cov.yx: expected shape"):
        ls.diagonalization_defect(ls.Covariances(xx, jnp.eye(3), xx))


def test_sampler_rejects_non_psd_and_nan_covariances(key):
    eye = jnp.eye(2)
    with pytest.raises(ValueError, match="joint"):  # corr(x, y) = 2
        ls.sample_views(key, ls.Covariances(eye, 2 * eye, eye), 10)
    with pytest.raises(ValueError, match="cov.xx"):
        ls.sample_views(key, ls.Covariances(eye.at[0, 1].set(jnp.nan), eye, eye), 10)
    with pytest.raises(ValueError, match="cov.xx"):  # generalized modes need xx PD
        ls.generalized_modes(ls.Covariances(jnp.zeros((2, 2)), eye, eye))
