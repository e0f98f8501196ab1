"""The Conv2d layer."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

import convcol
from convcol.gradcheck import numerical_gradient
from convcol.naive import conv_backward_naive, conv_forward_naive


def test_layer_matches_oracle(rng):
    layer = convcol.Conv2d(4, 6, (3, 2), stride=2, padding=1, dilation=(1, 2), groups=2, rng=0)
    x = rng.standard_normal((3, 4, 9, 8))
    layer.bias[:] = rng.standard_normal(6)
    cp = {"stride": 2, "pad": 1, "dilation": (1, 2), "groups": 2}
    ref, cache = conv_forward_naive(x, layer.weight, layer.bias, cp)
    out = layer(x)
    assert_close(out, ref, np.float64, 13)
    dout = rng.standard_normal(out.shape)
    rdx, rdw, rdb = conv_backward_naive(dout, cache)
    dx = layer.backward(dout)
    assert_close(dx, rdx, np.float64, 9)
    assert_close(layer.grad_weight, rdw, np.float64, out.size)
    assert_close(layer.grad_bias, rdb, np.float64, out.size)


def test_layer_gradient_is_numerically_right(rng):
    layer = convcol.Conv2d(2, 3, 3, padding="same", rng=1)
    x = rng.standard_normal((2, 2, 5, 5))
    dout = rng.standard_normal((2, 3, 5, 5))
    layer(x)
    dx = layer.backward(dout)
    num = numerical_gradient(layer.forward, x, dout, h=1e-3)
    np.testing.assert_allclose(dx, num, rtol=1e-8, atol=1e-9 * np.abs(num).max(), strict=True)


def test_he_initialisation_is_seeded_and_scaled():
    a = convcol.Conv2d(16, 64, 3, rng=7)
    b = convcol.Conv2d(16, 64, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight, b.weight, strict=True)
    assert a.weight.shape == (64, 16, 3, 3)
    # std sqrt(2 / fan_in), fan_in = 16 * 3 * 3; 9216 samples put the estimate within ~2%.
    assert a.weight.std() == pytest.approx(np.sqrt(2 / 144), rel=0.05)
    np.testing.assert_array_equal(a.bias, np.zeros(64), strict=True)
    assert not np.array_equal(a.weight, convcol.Conv2d(16, 64, 3, rng=8).weight)


def test_grouped_fan_in_and_no_bias():
    layer = convcol.Conv2d(8, 8, 3, groups=8, bias=False, rng=0)
    assert layer.weight.shape == (8, 1, 3, 3)
    assert layer.bias is None
    out = layer(np.ones((1, 8, 4, 4)))
    layer.backward(np.ones_like(out))
    assert layer.grad_bias is None
    assert layer.grad_weight.shape == (8, 1, 3, 3)


def test_float32_layer(rng):
    layer = convcol.Conv2d(3, 4, 3, padding=1, dtype=np.float32, rng=0)
    out = layer(rng.standard_normal((2, 3, 6, 6)))  # float64 input is converted
    assert out.dtype == layer.weight.dtype == np.float32
    dx = layer.backward(np.ones(out.shape))
    assert dx.dtype == layer.grad_weight.dtype == layer.grad_bias.dtype == np.float32


def test_training_step_reduces_loss(rng):
    # One SGD step on a least-squares fit: the loss must go down.
    layer = convcol.Conv2d(2, 2, 3, padding=1, rng=0)
    x = rng.standard_normal((4, 2, 6, 6))
    target = rng.standard_normal((4, 2, 6, 6))

    def loss():
        return 0.5 * np.sum((layer(x) - target) ** 2)

    before = loss()
    layer.backward(layer(x) - target)
    layer.weight -= 1e-3 * layer.grad_weight
    layer.bias -= 1e-3 * layer.grad_bias
    assert loss() < before


def test_repr():
    assert repr(convcol.Conv2d(3, 8, 3, padding=1)) == (
        "Conv2d(3, 8, kernel_size=(3, 3), stride=1, padding=1, dilation=1, groups=1, "
        "padding_mode='zeros', data_format='channels_first', bias=True, dtype=float64)"
    )
