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


def _torch_grads(fn, dtype, rng, *arrays):
    """Run ``fn`` on tensors made from ``arrays`` and backpropagate a random ``dout``."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    dout = rng.standard_normal(tuple(out.shape)).astype(dtype)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), dout, [t.grad.numpy() for t in tensors]


ND_CONFIGS = [
    # (function name, x shape, w shape, keyword arguments)
    ("conv1d", (2, 3, 11), (4, 3, 3), {"stride": 2, "padding": 1, "dilation": 2}),
    ("conv1d", (2, 4, 9), (6, 2, 4), {"groups": 2, "padding": "same"}),
    ("conv3d", (2, 2, 5, 6, 4), (3, 2, 3, 2, 3), {"stride": (1, 2, 1), "padding": 1}),
    (
        "conv3d",
        (1, 4, 4, 5, 5),
        (4, 1, 3, 3, 3),
        {"groups": 4, "dilation": (1, 2, 1), "padding": 2},
    ),
    ("conv_transpose1d", (2, 3, 6), (3, 2, 4), {"stride": 3, "padding": 1, "output_padding": 2}),
    (
        "conv_transpose2d",
        (2, 4, 4, 5),
        (4, 3, 3, 3),
        {"stride": (2, 3), "padding": (1, 0), "output_padding": (1, 2), "groups": 2},
    ),
    ("conv_transpose2d", (1, 2, 5, 5), (2, 2, 3, 2), {"dilation": 2, "output_padding": 1}),
    ("conv_transpose3d", (1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"stride": 2, "padding": (0, 1, 0)}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(
    ("name", "x_shape", "w_shape", "kw"),
    ND_CONFIGS,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(ND_CONFIGS)],
)
def test_nd_and_transposed_match_pytorch(name, x_shape, w_shape, kw, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    out_channels = w_shape[1] * kw.get("groups", 1) if "transpose" in name else w_shape[0]
    b = rng.standard_normal(out_channels).astype(dtype)
    tout, dout, (tdx, tdw, tdb) = _torch_grads(
        lambda tx, tw, tb: getattr(F, name)(tx, tw, tb, **kw), dtype, rng, x, w, b
    )
    out = getattr(convcol, name)(x, w, b, **kw)
    dx, dw, db = getattr(convcol, name + "_backward")(dout, x, w, **kw)
    red = 2 * int(np.prod(w_shape[1:])) * 4  # generous: both sides round
    assert_close(out, tout, dtype, red)
    assert_close(dx, tdx, dtype, red)
    assert_close(dw, tdw, dtype, 2 * dout.size)
    assert_close(db, tdb, dtype, 2 * dout.size)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_padding_modes_match_pytorch(mode, nd, rng):
    x = rng.standard_normal((2, 2, *(6, 5, 4)[:nd]))
    w = rng.standard_normal((3, 2, *(3,) * nd))
    pads = ((2, 1), (1, 2), (1, 1))[:nd]
    torch_pad = tuple(p for pair in reversed(pads) for p in pair)  # last axis first
    conv = getattr(F, f"conv{nd}d")
    tout, dout, (tdx, tdw) = _torch_grads(
        lambda tx, tw: conv(F.pad(tx, torch_pad, mode=mode), tw), np.float64, rng, x, w
    )
    kw = {"padding": pads, "padding_mode": mode}
    out = getattr(convcol, f"conv{nd}d")(x, w, **kw)
    dx, dw, _ = getattr(convcol, f"conv{nd}d_backward")(dout, x, w, **kw)
    assert_close(out, tout, np.float64, 60)
    assert_close(dx, tdx, np.float64, 60)
    assert_close(dw, tdw, np.float64, dout.size)


def test_torch_module_padding_mode_matches_layer(rng):
    tconv = torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", dtype=torch.float64)
    layer = convcol.Conv2d(2, 3, 3, padding=1, padding_mode="circular")
    layer.weight[...] = tconv.weight.detach().numpy()
    layer.bias[...] = tconv.bias.detach().numpy()
    x = rng.standard_normal((2, 2, 5, 6))
    assert_close(layer(x), tconv(torch.tensor(x)).detach().numpy(), np.float64, 19)


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d"])
def test_channels_last_matches_pytorch_channels_last(name, rng):
    x = rng.standard_normal((2, 4, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    tx = torch.tensor(x).to(memory_format=torch.channels_last).requires_grad_(True)
    tout = getattr(F, name)(tx, torch.tensor(w), stride=2, padding=1)
    dout = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
    tout.backward(torch.tensor(dout))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out = getattr(convcol, name)(nhwc, w, stride=2, padding=1, data_format="channels_last")
    dx, _, _ = getattr(convcol, name + "_backward")(
        np.ascontiguousarray(dout.transpose(0, 2, 3, 1)),
        nhwc,
        w,
        stride=2,
        padding=1,
        data_format="channels_last",
    )
    assert_close(out, tout.detach().numpy().transpose(0, 2, 3, 1), np.float32, 80)
    assert_close(dx, tx.grad.numpy().transpose(0, 2, 3, 1), np.float32, 80)
