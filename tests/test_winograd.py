"""Winograd's F(4x4, 3x3) and F(2x2, 3x3) route (convcol.winograd) against the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_peak_within, force_winograd
from oracle_cases import CASES
from test_conv import check_against_oracle

import convcol
from convcol import winograd
from convcol.bench import SHAPES
from convcol.geometry import conv_geometry
from convcol.naive import (
    conv_nd_backward_naive,
    conv_nd_naive,
    conv_transpose_nd_backward_naive,
    conv_transpose_nd_naive,
)

F64 = np.dtype(np.float64)


def _spy(monkeypatch, m: int) -> list[tuple[str, bool]]:
    """Every 3x3 stride-1 convolution of a dtype that has tiles of ``m`` takes the route,
    however small. Returns the list of its calls, ``(name, gave)``: ``"forward"`` (the
    forward pass or dx) or ``"dw"``, and whether it gave the result (False: it gave the
    call back, an output not finite)."""
    force_winograd(monkeypatch, m)
    calls: list[tuple[str, bool]] = []

    def spy(name, run):
        def call(*args):
            out = run(*args)
            calls.append((name, out is not None))
            return out

        return call

    monkeypatch.setattr(winograd, "forward", spy("forward", winograd.forward))
    monkeypatch.setattr(winograd, "weight_grad", spy("dw", winograd.weight_grad))
    return calls


@pytest.fixture(params=[4, 2], ids=["F4x4", "F2x2"])
def taken(request, monkeypatch):
    """``_spy`` in float64, with each tile size in turn."""
    return _spy(monkeypatch, request.param)


@pytest.fixture
def taken32(monkeypatch):
    """``_spy`` in float32, which has F(2x2, 3x3) alone."""
    return _spy(monkeypatch, 2)


def _eligible(case) -> bool:
    """A 3x3 convolution at stride 1, no dilation, no groups, input at least 3 x 3: the
    route takes it."""
    p = case.conv_param
    return (
        case.w[2:] == (3, 3)
        and np.all(np.ravel(p.get("stride", 1)) == 1)
        and np.all(np.ravel(p.get("dilation", 1)) == 1)
        and p.get("groups", 1) == 1
        and min(case.x[0], case.x[1], case.w[0]) > 0
        and min(case.x[2:]) >= 3
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_named_cases_match_oracle(case, taken, rng):
    _check_named_case(case, taken, np.float64, rng)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_named_cases_match_oracle_in_float32(case, taken32, rng):
    # Within the float32 tolerance of im2col's (scaled to the reduction length).
    _check_named_case(case, taken32, np.float32, rng)


def _check_named_case(case, taken, dtype, rng):
    x = rng.standard_normal(case.x)
    w = rng.standard_normal(case.w)
    b = rng.standard_normal(case.w[0]) if case.bias else None
    check_against_oracle(x, w, b, case.conv_param, dtype, rng)
    # The forward pass and dw, and dx where the swapped convolution exists (no pad beyond
    # 2 and an output at least 3 x 3).
    if _eligible(case):
        assert ("forward", True) in taken and ("dw", True) in taken, taken
        assert all(gave for _, gave in taken), taken
    else:
        assert not taken, taken


@pytest.mark.parametrize(
    ("name", "kind", "x_shape", "w_shape", "options"),
    [
        ("conv2d_same", "conv", (2, 5, 9, 6), (4, 5, 3, 3), {"padding": "same"}),
        ("conv2d_reflect", "conv", (2, 3, 7, 9), (4, 3, 3, 3),
         {"padding": 2, "padding_mode": "reflect"}),
        ("conv2d_pad_beyond_reach", "conv", (1, 3, 5, 5), (2, 3, 3, 3), {"padding": 3}),
        ("transpose2d", "transpose", (2, 4, 6, 7), (4, 3, 3, 3), {"padding": 1}),
        ("transpose2d_no_pad", "transpose", (2, 4, 5, 3), (4, 6, 3, 3), {}),
    ],
)  # fmt: skip
def test_other_calls_match_oracle(name, kind, x_shape, w_shape, options, taken, rng):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1 if kind == "transpose" else 0])
    if kind == "conv":
        fwd, bwd = convcol.conv2d, convcol.conv2d_backward
        ref_fwd, ref_bwd = conv_nd_naive, conv_nd_backward_naive
    else:
        fwd, bwd = convcol.conv_transpose2d, convcol.conv_transpose2d_backward
        ref_fwd, ref_bwd = conv_transpose_nd_naive, conv_transpose_nd_backward_naive
    out = fwd(x, w, b, **options)
    np.testing.assert_allclose(
        out, ref_fwd(x, w, b, **options), rtol=1e-10, atol=1e-10, strict=True
    )
    dout = rng.standard_normal(out.shape)
    for got, ref in zip(bwd(dout, x, w, **options), ref_bwd(dout, x, w, **options), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10, strict=True)
    assert taken and all(gave for _, gave in taken), taken


def _limit(geo_args, samples: int, rows: int, weights: int = 1, dtype=F64) -> int:
    """A workspace limit that holds ``weights`` arrays of transformed weights and ``rows``
    rows of tiles of ``samples`` samples."""
    geo = conv_geometry(*geo_args, None, 2, padding=1)
    t = winograd.plan(geo, dtype).tile
    return dtype.itemsize * (
        weights * t.components * geo.filters * geo.channels
        + sum(winograd._elements(geo, t, samples, rows))
    )


def _tile_rows(geo) -> int:
    return winograd._tiles(geo, winograd.plan(geo, F64).tile.m)[0]


def test_chunks_of_samples_match_oracle(taken, rng):
    x, w = rng.standard_normal((5, 3, 10, 7)), rng.standard_normal((4, 3, 3, 3))
    geo = conv_geometry(x.shape, w.shape, None, 2, padding=1)
    th = _tile_rows(geo)
    assert th == {4: 3, 2: 5}[winograd.plan(geo, F64).tile.m]
    with convcol.workspace_limit(_limit((x.shape, w.shape), 2, th)):
        assert winograd.plan(geo, np.dtype(np.float64)).chunks == [
            (0, 2, 0, th),
            (2, 4, 0, th),
            (4, 5, 0, th),
        ]
        check_against_oracle(x, w, None, {"pad": 1}, np.float64, rng, api="conv2d")
    assert taken == [("forward", True), ("dw", True), ("forward", True)]


@pytest.mark.parametrize("rows", [1, 2, 4])
@pytest.mark.parametrize("weights", [1, 2], ids=["forward", "dw"])
def test_chunks_of_tile_rows_match_oracle(rows, weights, taken, rng):
    # 17 output rows: 5 rows of 4x4 tiles or 9 of 2x2, the last with one output row. As
    # many filters as channels, so that dx (the swapped convolution) has the forward pass's
    # chunks; dw holds two arrays of transformed weights.
    x, w = rng.standard_normal((2, 4, 17, 9)), rng.standard_normal((4, 4, 3, 3))
    geo = conv_geometry(x.shape, w.shape, None, 2, padding=1)
    th = _tile_rows(geo)
    with convcol.workspace_limit(_limit((x.shape, w.shape), 1, rows, weights)):
        chunks = winograd.plan(geo, np.dtype(np.float64), weights).chunks
        starts = range(0, th, rows)
        assert chunks == [(n, n + 1, t, min(t + rows, th)) for n in range(2) for t in starts]
        check_against_oracle(x, w, rng.standard_normal(4), {"pad": 1}, np.float64, rng, "conv2d")
    assert (("forward", "dw")[weights - 1], True) in taken, taken
    assert all(gave for _, gave in taken), taken


def test_dw_of_one_chunk_holds_one_array_of_weights(taken, rng):
    # Its GEMMs write the transformed weights' gradient in place: no second array for a
    # chunk's part, so a limit of one array and the whole batch keeps the call on the route.
    # 64 channels and filters: an array of transformed weights (0.5-1.2 MB) is more than
    # the measurement's slack.
    x, w = rng.standard_normal((2, 64, 5, 6)), rng.standard_normal((64, 64, 3, 3))
    dout = rng.standard_normal((2, 64, 5, 6))
    geo = conv_geometry(x.shape, w.shape, None, 2, padding=1)
    th = _tile_rows(geo)
    limit = _limit((x.shape, w.shape), 2, th)
    with convcol.workspace_limit(limit):
        assert winograd.plan(geo, np.dtype(np.float64), 2).chunks == [(0, 2, 0, th)]
        results = x.nbytes + 2 * w.nbytes + 2 * dout.nbytes
        backward = lambda: convcol.conv2d_backward(dout, x, w, padding=1)  # noqa: E731
        assert_peak_within(backward, limit, results)
        for got, ref in zip(backward(), conv_nd_backward_naive(dout, x, w, padding=1), strict=True):
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10, strict=True)
    with convcol.workspace_limit(limit - 1):  # the limit is tight
        route = winograd.plan(geo, np.dtype(np.float64), 2)
        assert route is None or route.chunks != [(0, 2, 0, th)]
    assert ("dw", True) in taken, taken


def test_a_limit_too_small_for_one_row_of_tiles_takes_im2col(taken, rng):
    x, w = rng.standard_normal((2, 3, 10, 7)), rng.standard_normal((4, 3, 3, 3))
    with convcol.workspace_limit(_limit((x.shape, w.shape), 1, 1) - 1):
        check_against_oracle(x, w, None, {"pad": 1}, np.float64, rng, api="conv2d")
    assert taken == []


def test_a_tile_whose_weights_do_not_fit_gives_way_to_the_next(monkeypatch, rng):
    # Review: a float64 layer whose F(4x4, 3x3) weights were over the limit went to im2col,
    # though F(2x2, 3x3)'s, 16/36 the size, would fit. Here both pay, and each limit holds
    # some number of one algorithm's weight arrays and one row of its tiles.
    f4, f2 = (t.forced() for t in winograd._TILES[F64])
    monkeypatch.setattr(winograd, "_TILES", {F64: (f4, f2)})
    used = []
    for name in ("forward", "weight_grad"):  # each takes the plan last
        run = getattr(winograd, name)
        spy = lambda *a, run=run, name=name: used.append((name, a[-1].tile.m)) or run(*a)  # noqa: E731
        monkeypatch.setattr(winograd, name, spy)
    x, w = rng.standard_normal((2, 8, 9, 10)), rng.standard_normal((8, 8, 3, 3))
    geo = conv_geometry(x.shape, w.shape, None, 2, padding=1)

    def need(t, weights):
        return F64.itemsize * (
            weights * t.components * 8 * 8 + sum(winograd._elements(geo, t, 1, 1))
        )

    assert need(f2, 2) < need(f4, 1)
    # (forward and dx, dw): dw holds two arrays of weights, as the call is several chunks.
    for limit, (m, m_dw) in [
        (need(f4, 2), (4, 4)),
        (need(f4, 1), (4, 2)),
        (need(f2, 2), (2, 2)),
        (need(f2, 1), (2, None)),
        (need(f2, 1) - 1, (None, None)),
    ]:
        used.clear()
        with convcol.workspace_limit(limit):
            routes = winograd.plan(geo, F64), winograd.plan(geo, F64, 2)
            assert tuple(r and r.tile.m for r in routes) == (m, m_dw), limit
            check_against_oracle(x, w, None, {"pad": 1}, np.float64, rng, api="conv2d")
        expected = [("forward", m), ("weight_grad", m_dw), ("forward", m)]
        assert used == [u for u in expected if u[1]], (limit, used)


def test_peak_memory_stays_under_limit(taken, rng):
    # As TestWorkspace in test_reliability.py: beyond the limit, only the arrays returned
    # or kept (output, gradients, converted inputs, the swapped weights).
    # Chunks of 3 samples whose outputs (3 * 32 * 32 * 32 values) are larger than the
    # slack: np.isfinite's boolean array of them once went over (review).
    x, w = rng.standard_normal((8, 32, 32, 32)), rng.standard_normal((32, 32, 3, 3))
    dout = rng.standard_normal((8, 32, 32, 32))
    limit = _limit((x.shape, w.shape), 3, 8)
    with convcol.workspace_limit(limit):
        assert_peak_within(lambda: convcol.conv2d(x, w, padding=1), limit, x.nbytes)
        results = x.nbytes + 2 * w.nbytes + 2 * dout.nbytes
        assert_peak_within(lambda: convcol.conv2d_backward(dout, x, w, padding=1), limit, results)
    assert taken and all(gave for _, gave in taken), taken


def test_swapped_weights_are_freed_before_im2col_takes_dw(taken, rng):
    # A limit that holds one array of transformed weights and one row of tiles: the forward
    # pass and dx take the route, dw (two arrays for several chunks) im2col. The swapped
    # weights, which dx's route reads, once stayed alive through im2col's dw and took the
    # peak over the limit (review).
    x, w = rng.standard_normal((2, 64, 6, 7)), rng.standard_normal((64, 64, 3, 3))
    dout = rng.standard_normal((2, 64, 6, 7))
    geo = conv_geometry(x.shape, w.shape, None, 2, padding=1)
    limit = _limit((x.shape, w.shape), 1, 1) + 5000
    with convcol.workspace_limit(limit):
        assert winograd.plan(geo, F64) and not winograd.plan(geo, F64, 2)
        results = x.nbytes + 2 * w.nbytes + 2 * dout.nbytes
        backward = lambda: convcol.conv2d_backward(dout, x, w, padding=1)  # noqa: E731
        assert_peak_within(backward, limit, results)
    assert ("forward", True) in taken and ("dw", True) not in taken, taken


def test_peak_memory_stays_under_limit_in_float32(taken32, rng):
    f32 = np.dtype(np.float32)
    x = rng.standard_normal((8, 32, 32, 32)).astype(f32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(f32)
    dout = rng.standard_normal((8, 32, 32, 32)).astype(f32)
    limit = _limit((x.shape, w.shape), 3, 16, dtype=f32)
    with convcol.workspace_limit(limit):
        geo = conv_geometry(x.shape, w.shape, None, 2, padding=1)
        assert winograd.plan(geo, f32).chunks == [(0, 3, 0, 16), (3, 6, 0, 16), (6, 8, 0, 16)]
        assert_peak_within(lambda: convcol.conv2d(x, w, padding=1), limit, x.nbytes)
        results = x.nbytes + 2 * w.nbytes + 2 * dout.nbytes
        assert_peak_within(lambda: convcol.conv2d_backward(dout, x, w, padding=1), limit, results)
    assert taken32 and all(gave for _, gave in taken32), taken32


@pytest.mark.parametrize(
    ("dtype", "x_shape", "w_shape", "options"),
    [
        (np.float32, (4, 16, 32, 32), (16, 16, 3, 3), {"padding": 1}),  # 1024 tiles
        (np.float32, (8, 16, 32, 32), (16, 16, 3, 3), {"stride": 2, "padding": 1}),
        (np.float64, (4, 16, 32, 32), (16, 16, 3, 3), {"stride": 2, "padding": 1}),
        (np.float64, (4, 16, 32, 32), (16, 16, 3, 3), {"dilation": 2, "padding": 2}),
        (np.float64, (4, 16, 32, 32), (16, 8, 3, 3), {"groups": 2, "padding": 1}),
        (np.float64, (4, 16, 32, 32), (16, 16, 5, 5), {"padding": 2}),
        (np.float64, (4, 16, 32, 32), (16, 16, 3, 1), {"padding": 1}),
        (np.float64, (4, 32, 32, 16), (16, 16, 3, 3),
         {"padding": 1, "data_format": "channels_last"}),
        # Regressions from review: a stride along an axis with one output (kernel_args()
        # calls it 1), and inputs under 3 wide, where a tap meets only padding.
        (np.float64, (128, 16, 4, 4), (16, 16, 3, 3), {"stride": 2}),
        (np.float64, (128, 16, 32, 2), (16, 16, 3, 3), {"padding": 1}),
        (np.float64, (128, 16, 1, 32), (16, 16, 3, 3), {"padding": 1}),
    ],
)  # fmt: skip
def test_other_convolutions_stay_on_im2col(dtype, x_shape, w_shape, options):
    geo = conv_geometry(x_shape, w_shape, None, 2, **options)
    assert winograd.plan(geo, np.dtype(dtype)) is None


@pytest.mark.parametrize(
    ("x_shape", "spoil", "options"),
    [
        # Input the convolution never reads (row and column 3 at stride 2), 1e20: inside
        # a 6x6 tile it was mixed in and left errors of 3e5 on outputs of about 40.
        ((128, 16, 4, 4), "x[:, :, 3] = x[..., 3] = 1e20", {"stride": 2}),
        # A tap that meets only padding, 1e20: every output came out 0.0.
        ((16, 16, 32, 1), "w[..., 0] = 1e20", {"padding": 1}),
        ((16, 16, 1, 32), "w[:, :, 2] = 1e8", {"padding": 1}),
    ],
)
def test_values_the_oracle_never_multiplies_in_cannot_spoil_the_result(
    x_shape, spoil, options, rng
):
    # Default thresholds: these calls are large enough for the route but must not take it.
    x, w = rng.standard_normal(x_shape), rng.standard_normal((16, 16, 3, 3))
    exec(spoil)
    ref = conv_nd_naive(x, w, **options)
    out = convcol.conv2d(x, w, **options)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max(), strict=True)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        # Measured (winograd.py): the 64-channel 3x3 layers gain with F(4x4, 3x3);
        # vgg_7x7_512 loses with it (32 such tiles) and with F(2x2, 3x3), whose 4 x 4 tiles
        # of 2 compute 64 outputs of a 7 x 7 plane for 49.
        (F64, {"cifar_3x3": 4, "r50_res2a_3x3": 4, "vgg_conv1_2": 4}),
        # float32 has F(2x2, 3x3) alone, from 2048 tiles on.
        (np.dtype(np.float32), {"cifar_3x3": 2, "r50_res2a_3x3": 2, "vgg_conv1_2": 2}),
    ],
    ids=["f64", "f32"],
)
def test_the_route_is_taken_where_it_pays(dtype, expected):
    taken = {
        s.name: route.tile.m
        for s in SHAPES
        for geo in [
            conv_geometry(
                (s.n, s.c, s.h, s.w),
                (s.f, s.c // s.groups, *s.kernel),
                None,
                2,
                **s.options(),
            )
        ]
        for route in [winograd.plan(geo, dtype)]
        if route
    }
    assert taken == expected


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "m"),
    [
        ((8, 64, 16, 16), (64, 64, 3, 3), 4),  # 128 tiles of 4x4 (float32: none below)
        ((7, 64, 16, 16), (64, 64, 3, 3), None),  # 112 of 4x4; 448 of 2x2, too thin
        ((4, 512, 8, 8), (512, 512, 3, 3), 2),  # 64 of 2x2
        ((3, 512, 8, 8), (512, 512, 3, 3), None),  # 48 of 2x2
        ((8, 512, 8, 8), (384, 512, 3, 3), None),  # 128 of 2x2, 384 filters
        # Enough tiles, but on a 7 x 7 plane 2x2 tiles save 1.72x of the multiply-adds, and
        # 4x4 tiles on 5 x 5 1.56x: below the 2x they must save.
        ((16, 512, 7, 7), (512, 512, 3, 3), None),  # 256 of 2x2, 64 of 4x4
        ((64, 16, 5, 5), (16, 16, 3, 3), None),  # 256 of 4x4
        ((1, 512, 14, 14), (512, 512, 3, 3), None),  # 49 of 2x2
        ((2, 512, 14, 14), (512, 512, 3, 3), 2),  # 98 of 2x2, 32 of 4x4
        ((8, 512, 14, 14), (512, 512, 3, 3), 4),  # 128 of 4x4: the first that pays
    ],
)
def test_each_tile_size_from_where_it_pays(x_shape, w_shape, m):
    geo = conv_geometry(x_shape, w_shape, None, 2, padding=1)
    route = winograd.plan(geo, F64)
    assert (route and route.tile.m) == m
    assert winograd.plan(geo, np.dtype(np.float32)) is None


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "m"),
    [
        ((8, 16, 32, 32), (16, 16, 3, 3), 2),  # 2048 tiles of 2x2
        ((7, 16, 32, 32), (16, 16, 3, 3), None),  # 1792
        ((8, 8, 32, 32), (16, 8, 3, 3), None),  # 8 channels
        ((8, 16, 32, 32), (8, 16, 3, 3), None),  # 8 filters
        ((2, 64, 224, 224), (64, 64, 3, 3), 2),  # vgg_conv1_2
    ],
)
def test_float32_takes_f2x2_from_where_it_pays(x_shape, w_shape, m):
    geo = conv_geometry(x_shape, w_shape, None, 2, padding=1)
    route = winograd.plan(geo, np.dtype(np.float32))
    assert (route and route.tile.m) == m


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("target", ["x", "w", "dout"])
@pytest.mark.parametrize("spot", [0, 37, -1])
def test_non_finite_values_propagate_like_the_oracle(value, target, spot, taken, rng):
    _check_non_finite(value, target, spot, taken, np.float64, rng)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("target", ["x", "w", "dout"])
@pytest.mark.parametrize("spot", [0, 37, -1])
def test_non_finite_values_propagate_like_the_oracle_in_float32(value, target, spot, taken32, rng):
    _check_non_finite(value, target, spot, taken32, np.float32, rng)


def _check_non_finite(value, target, spot, taken, dtype, rng):
    # A tile mixes its 36 or 16 inputs, so an inf gives NaN next to it where the oracle has
    # inf or a finite value: the route must give such a call back to im2col.
    x, w = rng.standard_normal((2, 4, 9, 10)), rng.standard_normal((5, 4, 3, 3))
    dout = rng.standard_normal((2, 5, 9, 10))
    x, w, dout = x.astype(dtype), w.astype(dtype), dout.astype(dtype)
    {"x": x, "w": w, "dout": dout}[target].reshape(-1)[spot] = value
    tol = {np.float64: 1e-10, np.float32: 1e-5}[dtype]
    ref = conv_nd_naive(x.astype(np.float64), w.astype(np.float64), padding=1)
    out = convcol.conv2d(x, w, padding=1)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol, strict=False)
    assert out.shape == ref.shape
    refs = conv_nd_backward_naive(
        dout.astype(np.float64), x.astype(np.float64), w.astype(np.float64), padding=1
    )
    for got, e in zip(convcol.conv2d_backward(dout, x, w, padding=1), refs, strict=True):
        assert got.shape == e.shape and got.dtype == dtype
        np.testing.assert_allclose(got, e, rtol=tol, atol=10 * tol)
    # The forward pass gave back its call when x or w was spoiled, dw when x or dout was,
    # and dx when dout was; dx was not tried with a spoiled w.
    expected = {
        "x": [("forward", False), ("dw", False), ("forward", True)],
        "w": [("forward", False), ("dw", True)],
        "dout": [("forward", True), ("dw", False), ("forward", False)],
    }[target]
    assert taken == expected, taken


def test_chunks_hold_twice_the_weights():
    # 256 channels: 18.9 MB of transformed weights, more than the 16 MiB chunk target. In
    # chunks of one row of tiles (4 tiles) the route ran 3-4x slower than im2col; with data
    # of twice the weights' size, the whole batch of 8 samples (3 MB each) is one chunk.
    geo = conv_geometry((8, 256, 14, 14), (256, 256, 3, 3), None, 2, padding=1)
    for n_weights in (1, 2):
        assert winograd.plan(geo, np.dtype(np.float64), n_weights).chunks == [(0, 8, 0, 4)]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_a_dx_given_back_is_not_tried_again(taken, rng):
    # More channels than filters: the swapped convolution pays, and once went through the
    # Winograd route a second time after dx had given its call back (review).
    x, w = rng.standard_normal((2, 32, 8, 8)), rng.standard_normal((4, 32, 3, 3))
    dout = rng.standard_normal((2, 4, 8, 8))
    dout[1, 2, 3, 4] = np.nan
    for got, ref in zip(
        convcol.conv2d_backward(dout, x, w, padding=1),
        conv_nd_backward_naive(dout, x, w, padding=1),
        strict=True,
    ):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10, strict=True)
    assert taken == [("dw", False), ("forward", False)]


def test_the_environment_turns_the_route_off(monkeypatch, rng):
    x, w = rng.standard_normal((8, 16, 16, 16)), rng.standard_normal((16, 16, 3, 3))
    geo = conv_geometry(x.shape, w.shape, None, 2, padding=1)
    assert winograd.plan(geo, np.dtype(np.float64))
    on = convcol.conv2d(x, w, padding=1)
    monkeypatch.setenv("CONVCOL_WINOGRAD", "0")
    assert winograd.plan(geo, np.dtype(np.float64)) is None
    off = convcol.conv2d(x, w, padding=1)
    for value, route in [("off", None), (" No ", None), ("on", True), ("1", True), ("", True)]:
        monkeypatch.setenv("CONVCOL_WINOGRAD", value)
        assert (winograd.plan(geo, np.dtype(np.float64)) is not None) == bool(route), value
    force_winograd(monkeypatch, None)  # im2col, however it is turned off
    np.testing.assert_array_equal(off, convcol.conv2d(x, w, padding=1), strict=True)
    assert not np.array_equal(on, off)  # the two routes round differently


@pytest.mark.parametrize("value", ["2", "disable", "0.0"])
def test_the_environment_switch_refuses_other_values(monkeypatch, rng, value):
    # Read as "on", "disable" would leave the route on behind the user's back.
    monkeypatch.setenv("CONVCOL_WINOGRAD", value)
    x, w = rng.standard_normal((8, 16, 16, 16)), rng.standard_normal((16, 16, 3, 3))
    with pytest.raises(convcol.ConvError, match=f"CONVCOL_WINOGRAD must be 0 or 1.*got {value!r}"):
        convcol.conv2d(x, w, padding=1)
