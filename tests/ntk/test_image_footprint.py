"""The image stand-in of experiments/ntk/image_footprint.py: object placement."""

import jax
import numpy as np
import pytest

from experiments.ntk import image_footprint as m


@pytest.mark.parametrize("alpha", [1.0, 3.0, 5.0])
def test_random_centres_vary_and_objects_do_not_overlap(alpha):
    """At alpha = 5 the circle's x-range was empty and every draw was clamped to
    x = 8.07: footprint was confounded with position variability. Each object now
    moves (spread of its x-position over 200 draws > 1 pixel), stays in the frame,
    and the circle stays left of the square's edge (mirrored when swapped)."""
    side = 6
    keys = jax.random.split(jax.random.key(0), 200)
    c = np.asarray(jax.vmap(lambda k: m.random_centres(k, alpha, side))(keys))
    radius = np.sqrt(alpha / np.pi) * side
    circle_x = np.minimum(c[:, 0, 1], m.SIZE - c[:, 0, 1])  # unswapped frame
    square_x = np.maximum(c[:, 1, 1], m.SIZE - c[:, 1, 1])
    assert np.ptp(circle_x) > 1.0 and np.ptp(square_x) > 1.0
    assert np.all(circle_x - radius >= 0)
    assert np.all((c[:, 0, 0] >= radius) & (c[:, 0, 0] <= m.SIZE - radius))
    assert np.all(circle_x + radius < square_x - side / 2)  # no overlap
    # and a rendered image holds both objects with their areas (pixel counts)
    img = np.asarray(m.render(np.zeros(2), c[0], np.ones(2), alpha, side))[..., 0]
    assert abs((img > 0).sum() - (alpha + 1) * side**2) < 0.15 * (alpha + 1) * side**2


def test_random_centres_refuses_a_circle_that_cannot_move():
    with pytest.raises(ValueError, match="^alpha: "):
        m.random_centres(jax.random.key(0), 12.0, 6)
