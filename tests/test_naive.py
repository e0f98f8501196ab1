"""The oracle itself: against numerical gradients, the adjoint identity and the tutorial."""

from __future__ import annotations

import numpy as np
import pytest
from oracle_cases import CASES

from convcol.gradcheck import numerical_gradient
from convcol.naive import (
    conv_backward_naive,
    conv_backward_single,
    conv_forward_naive,
    conv_forward_single,
)

# The oracle's gradients are checked numerically on every named case small enough for the
# 2 * size forward calls that takes.
SMALL = [c for c in CASES if np.prod(c.x) <= 300 and 0 not in c.x]


@pytest.mark.parametrize("case", SMALL, ids=[c.name for c in SMALL])
def test_oracle_gradients_match_numerical(case, rng):
    x = rng.standard_normal(case.x)
    w = rng.standard_normal(case.w)
    b = rng.standard_normal(case.w[0])
    cp = case.conv_param
    out, cache = conv_forward_naive(x, w, b, cp)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_backward_naive(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    # The convolution is linear in each argument, so central differences have no truncation
    # error and a large step h only shrinks the rounding error (to ~1e-11 absolute here).
    checks = [
        (dx, lambda v: conv_forward_naive(v, w, b, cp)[0], x),
        (dw, lambda v: conv_forward_naive(x, v, b, cp)[0], w),
        (db, lambda v: conv_forward_naive(x, w, v, cp)[0], b),
    ]
    for analytic, f, at in checks:
        numeric = numerical_gradient(f, at, dout, h=1e-3)
        scale = np.abs(numeric).max()
        np.testing.assert_allclose(analytic, numeric, rtol=1e-8, atol=1e-9 * scale, strict=True)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_oracle_adjoint_identity(case, rng):
    # The convolution is linear in x and in w, so for any g:
    # <conv(x, w), g> == <x, dx(g)> == <w, dw(g)>  (no bias).
    x = rng.standard_normal(case.x)
    w = rng.standard_normal(case.w)
    out, cache = conv_forward_naive(x, w, None, case.conv_param)
    g = rng.standard_normal(out.shape)
    dx, dw, db = conv_backward_naive(g, cache)
    lhs = np.vdot(out, g)
    np.testing.assert_allclose(np.vdot(x, dx), lhs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.vdot(w, dw), lhs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, g.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12, strict=True)


def test_tutorial_worked_example_by_its_equations():
    X = np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
    W = np.array([[1.0, -1], [2, 0.5]])
    (X11, X12, X13), (X21, X22, X23), (X31, X32, X33) = X
    (W11, W12), (W21, W22) = W
    expected = np.array(
        [
            [
                W11 * X11 + W12 * X12 + W21 * X21 + W22 * X22,
                W11 * X12 + W12 * X13 + W21 * X22 + W22 * X23,
            ],
            [
                W11 * X21 + W12 * X22 + W21 * X31 + W22 * X32,
                W11 * X22 + W12 * X23 + W21 * X32 + W22 * X33,
            ],
        ]
    )
    H, cache = conv_forward_single(X, W)
    np.testing.assert_array_equal(H, expected, strict=True)
    # The multi-channel oracle agrees on the same example.
    out, _ = conv_forward_naive(X[None, None], W[None, None], None, {"stride": 1, "pad": 0})
    np.testing.assert_array_equal(out[0, 0], expected, strict=True)

    # Backward by the tutorial's equations: dW_ij = sum_hw dH_hw X_(h+i)(w+j), and each
    # dX pixel collects W * dH over the windows covering it.
    dH = np.array([[1.0, -2], [0.5, 3]])
    (d11, d12), (d21, d22) = dH
    dW_expected = np.array(
        [
            [
                d11 * X11 + d12 * X12 + d21 * X21 + d22 * X22,
                d11 * X12 + d12 * X13 + d21 * X22 + d22 * X23,
            ],
            [
                d11 * X21 + d12 * X22 + d21 * X31 + d22 * X32,
                d11 * X22 + d12 * X23 + d21 * X32 + d22 * X33,
            ],
        ]
    )
    dX_expected = np.array(
        [
            [W11 * d11, W12 * d11 + W11 * d12, W12 * d12],
            [
                W21 * d11 + W11 * d21,
                W22 * d11 + W21 * d12 + W12 * d21 + W11 * d22,
                W22 * d12 + W12 * d22,
            ],
            [W21 * d21, W22 * d21 + W21 * d22, W22 * d22],
        ]
    )
    dX, dW = conv_backward_single(dH, cache)
    np.testing.assert_allclose(dX, dX_expected, rtol=1e-15, strict=True)
    np.testing.assert_allclose(dW, dW_expected, rtol=1e-15, strict=True)


def test_single_channel_backward_indexes_dH_rather_than_calling_it():
    # The tutorial's `dH(h,w)` raises "'numpy.ndarray' object is not callable"; the fixed
    # version must run and agree with the multi-channel oracle on a rectangular case.
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((5, 6)), rng.standard_normal((2, 3))
    H, cache = conv_forward_single(X, W)
    dH = rng.standard_normal(H.shape)
    dX, dW = conv_backward_single(dH, cache)
    _, mcache = conv_forward_naive(X[None, None], W[None, None], None, {})
    mdx, mdw, _ = conv_backward_naive(dH[None, None], mcache)
    np.testing.assert_allclose(dX, mdx[0, 0], rtol=1e-14, strict=True)
    np.testing.assert_allclose(dW, mdw[0, 0], rtol=1e-14, strict=True)


def test_oracle_imports_nothing_from_the_fast_path():
    import ast
    import inspect

    import convcol.naive

    tree = ast.parse(inspect.getsource(convcol.naive))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"__future__", "typing", "validation"}, imported


ND_ORACLE_CASES = [
    ("conv1d_reflect", "conv", (2, 2, 6), (2, 2, 3), {"padding": 2, "padding_mode": "reflect"}),
    (
        "conv2d_circular_cl",
        "conv",
        (1, 4, 5, 2),
        (2, 2, 2, 3),
        {"padding": ((2, 1), (0, 3)), "padding_mode": "circular", "data_format": "channels_last"},
    ),
    (
        "conv2d_replicate_same",
        "conv",
        (1, 2, 4, 5),
        (2, 2, 3, 2),
        {"padding": "same", "stride": 2, "padding_mode": "replicate"},
    ),
    ("conv3d", "conv", (1, 2, 3, 4, 3), (2, 1, 2, 2, 2), {"padding": 1, "groups": 2}),
    (
        "transpose1d",
        "transpose",
        (2, 2, 4),
        (2, 3, 3),
        {"stride": 2, "padding": 1, "output_padding": 1},
    ),
    (
        "transpose2d_groups_cl",
        "transpose",
        (1, 3, 3, 4),
        (4, 1, 2, 3),
        {"stride": (2, 1), "dilation": (1, 2), "groups": 2, "data_format": "channels_last"},
    ),
    (
        "transpose3d",
        "transpose",
        (1, 2, 2, 2, 3),
        (2, 2, 2, 2, 2),
        {"stride": 2, "padding": (1, 0, 0)},
    ),
]


@pytest.mark.parametrize(
    ("name", "kind", "x_shape", "w_shape", "options"),
    ND_ORACLE_CASES,
    ids=[c[0] for c in ND_ORACLE_CASES],
)
def test_nd_oracle_gradients_match_numerical(name, kind, x_shape, w_shape, options, rng):
    from convcol.naive import (
        conv_nd_backward_naive,
        conv_nd_naive,
        conv_transpose_nd_backward_naive,
        conv_transpose_nd_naive,
    )

    fwd, bwd = (
        (conv_nd_naive, conv_nd_backward_naive)
        if kind == "conv"
        else (conv_transpose_nd_naive, conv_transpose_nd_backward_naive)
    )
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out_channels = w_shape[0] if kind == "conv" else w_shape[1] * options.get("groups", 1)
    b = rng.standard_normal(out_channels)
    out = fwd(x, w, b, **options)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = bwd(dout, x, w, **options)
    for analytic, f, at in [
        (dx, lambda v: fwd(v, w, b, **options), x),
        (dw, lambda v: fwd(x, v, b, **options), w),
        (db, lambda v: fwd(x, w, v, **options), b),
    ]:
        numeric = numerical_gradient(f, at, dout, h=1e-3)
        scale = np.abs(numeric).max()
        np.testing.assert_allclose(analytic, numeric, rtol=1e-8, atol=1e-9 * scale, strict=True)
