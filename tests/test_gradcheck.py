"""Numerical gradients and the relative error."""

from __future__ import annotations

import numpy as np
import pytest

from convcol import ConvError
from convcol.gradcheck import numerical_gradient, rel_error


def test_numerical_gradient_of_a_known_function(rng):
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    # d/dx sum(sin(x) * dout) = cos(x) * dout
    grad = numerical_gradient(np.sin, x, dout)
    np.testing.assert_allclose(grad, np.cos(x) * dout, rtol=1e-8, atol=1e-10, strict=True)


def test_numerical_gradient_leaves_x_alone(rng):
    x = rng.standard_normal(5)
    x0 = x.copy()
    seen = []
    numerical_gradient(lambda v: seen.append(v is x) or v * 2, x, np.ones(5))
    np.testing.assert_array_equal(x, x0, strict=True)
    assert not any(seen)


def test_numerical_gradient_shape_mismatch():
    with pytest.raises(ConvError, match=r"f\(x\) has shape \(2,\) but dout has shape \(3,\)"):
        numerical_gradient(lambda v: v, np.zeros(2), np.zeros(3))


def test_rel_error():
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rel_error([1.0], [3.0]) == pytest.approx(0.5)
    assert rel_error(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    with pytest.raises(ConvError, match=r"equal shapes, got \(2,\) and \(1, 2\)"):
        rel_error(np.zeros(2), np.zeros((1, 2)))
