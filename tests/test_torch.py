"""Cross-checks against PyTorch (forward with F.conv2d, gradients with autograd).

Skipped when torch is not installed, except when CONVCOL_REQUIRE_TORCH=1 (CI sets it), where
a missing torch is a failure: a skipped cross-check must not pass for a run one.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import assert_close

import convcol

if os.environ.get("CONVCOL_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")
F = torch.nn.functional

CONFIGS = [
    # (x shape, w shape, stride, padding, dilation, groups)
    ((2, 3, 9, 9), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 3, 10, 7), (5, 3, 3, 2), (2, 1), (1, 0), 1, 1),
    ((3, 4, 11, 11), (6, 2, 3, 3), 2, 2, (2, 1), 2),
    ((2, 6, 8, 8), (6, 1, 3, 3), 1, 1, 1, 6),
    ((2, 3, 8, 9), (4, 3, 4, 2), 1, "same", 1, 1),
    ((2, 3, 8, 9), (4, 3, 3, 3), 1, "same", 2, 1),
    ((2, 3, 8, 9), (4, 3, 3, 3), 1, "valid", 1, 1),
    ((4, 5, 7, 7), (3, 5, 1, 1), 1, 0, 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("config", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_forward_and_gradients_match_pytorch(config, dtype, rng):
    x_shape, w_shape, stride, padding, dilation, groups = config
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tout = F.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dout = rng.standard_normal(tuple(tout.shape)).astype(dtype)
    tout.backward(torch.tensor(dout))

    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    out = convcol.conv2d(x, w, b, **kw)
    dx, dw, db = convcol.conv2d_backward(dout, x, w, **kw)
    k = w_shape[1] * w_shape[2] * w_shape[3]
    positions = dout.shape[0] * dout.shape[2] * dout.shape[3]
    # Both sides round, so the float32 budget is doubled.
    assert_close(out, tout.detach().numpy(), dtype, 2 * (k + 1))
    assert_close(dx, tx.grad.numpy(), dtype, 2 * w_shape[0] // groups * w_shape[2] * w_shape[3])
    assert_close(dw, tw.grad.numpy(), dtype, 2 * positions)
    assert_close(db, tb.grad.numpy(), dtype, 2 * positions)


def test_asymmetric_padding_matches_pytorch_pad_then_conv(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    tx = torch.tensor(x, requires_grad=True)
    # F.pad takes (left, right, top, bottom).
    tout = F.conv2d(F.pad(tx, (2, 0, 1, 3)), torch.tensor(w), stride=2)
    dout = rng.standard_normal(tuple(tout.shape))
    tout.backward(torch.tensor(dout))
    out = convcol.conv2d(x, w, stride=2, padding=((1, 3), (2, 0)))
    dx, _, _ = convcol.conv2d_backward(dout, x, w, stride=2, padding=((1, 3), (2, 0)))
    assert_close(out, tout.detach().numpy(), np.float64, 27)
    assert_close(dx, tx.grad.numpy(), np.float64, 36)


def test_layer_matches_torch_module(rng):
    tconv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=torch.float64)
    layer = convcol.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    layer.weight[...] = tconv.weight.detach().numpy()
    layer.bias[...] = tconv.bias.detach().numpy()
    x = rng.standard_normal((2, 4, 9, 9))
    tx = torch.tensor(x, requires_grad=True)
    tout = tconv(tx)
    dout = rng.standard_normal(tuple(tout.shape))
    tout.backward(torch.tensor(dout))
    assert_close(layer(x), tout.detach().numpy(), np.float64, 19)
    assert_close(layer.backward(dout), tx.grad.numpy(), np.float64, 27)
    assert_close(layer.grad_weight, tconv.weight.grad.numpy(), np.float64, 50)
    assert_close(layer.grad_bias, tconv.bias.grad.numpy(), np.float64, 50)
