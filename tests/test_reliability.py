"""Reliability: nothing lost, every layout, edge sizes, non-finite values, threads, metamorphic
relations and fuzzing over valid and invalid arguments. See docs/reliability.md."""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import threading
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import assert_close, assert_peak_within, force_winograd
from hypothesis import event, given
from hypothesis import strategies as st

import convcol
from convcol import ConvError, conv
from convcol.geometry import conv_geometry
from convcol.naive import (
    conv_nd_backward_naive,
    conv_nd_naive,
    conv_transpose_nd_backward_naive,
    conv_transpose_nd_naive,
)


def public_calls(seed: int = 0) -> dict[str, tuple]:
    """One call of every public function: name -> (function, positional args, keywords)."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal
    x1, w1, b = n((2, 3, 9)), n((4, 3, 3)), n(4)
    x2, w2 = n((2, 3, 7, 6)), n((4, 3, 3, 2))
    x3, w3 = n((1, 3, 4, 5, 4)), n((4, 3, 2, 3, 2))
    wt2 = n((3, 2, 3, 3))
    x2l = n((2, 7, 6, 3))
    kw = {"stride": 2, "padding": 1}
    calls = {
        "conv1d": (convcol.conv1d, (x1, w1, b), {**kw, "padding_mode": "reflect"}),
        "conv2d": (convcol.conv2d, (x2, w2, b), kw),
        "conv2d_channels_last": (
            convcol.conv2d,
            (x2l, w2, b),
            {**kw, "data_format": "channels_last"},
        ),
        "conv3d": (convcol.conv3d, (x3, w3, b), {**kw, "padding_mode": "circular"}),
        "conv_transpose2d": (
            convcol.conv_transpose2d,
            (x2, wt2, n(2)),
            {**kw, "output_padding": 1},
        ),
        "conv_transpose1d": (convcol.conv_transpose1d, (x1, n((3, 2, 3)), None), kw),
        "conv_transpose3d": (
            convcol.conv_transpose3d,
            (x3, n((3, 1, 2, 2, 2)), None),
            {"stride": 2},
        ),
        "im2col": (convcol.im2col, (x2, (3, 2)), kw),
    }
    for name in list(calls):
        fn, args, options = calls[name]
        if name == "im2col":
            cols = fn(*args, **options)
            calls["col2im"] = (convcol.col2im, (n(cols.shape), x2.shape, (3, 2)), kw)
            continue
        out = fn(*args, **options)
        backward = getattr(convcol, fn.__name__ + "_backward")
        calls[name + "_backward"] = (backward, (n(out.shape), *args[:2]), options)
    out, _ = convcol.conv_forward(x2, w2, b, {"stride": 2, "pad": 1})
    calls["conv_forward"] = (convcol.conv_forward, (x2, w2, b, {"stride": 2, "pad": 1}), {})
    calls["conv_backward"] = (
        lambda dout, x, w, b_: convcol.conv_backward(
            dout, convcol.conv_forward(x, w, b_, {"stride": 2, "pad": 1})[1]
        ),
        (n(out.shape), x2, w2, b),
        {},
    )
    return calls


CALLS = public_calls()


def _arrays(result) -> list[np.ndarray]:
    if isinstance(result, np.ndarray):
        return [result]
    return [r for r in result if isinstance(r, np.ndarray)]  # drops a ConvCache


@pytest.mark.parametrize("name", list(CALLS))
def test_nothing_lost(name):
    """Inputs bit-identical afterwards; results share no memory; repeats are bit-identical."""
    fn, args, options = CALLS[name]
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    first = _arrays(fn(*args, **options))
    second = _arrays(fn(*args, **options))
    for a, a0 in zip(args, before, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, a0, strict=True)
    for i, r in enumerate(first):
        for a in args:
            if isinstance(a, np.ndarray):
                assert not np.shares_memory(r, a), f"result {i} shares memory with an input"
        for j, other in enumerate(first):
            if i != j:
                assert not np.shares_memory(r, other), f"results {i} and {j} share memory"
    for r1, r2 in zip(first, second, strict=True):
        np.testing.assert_array_equal(r2, r1, strict=True)


def _odd_layouts(a: np.ndarray) -> dict[str, np.ndarray]:
    """The same values as ``a`` in every memory layout the fast path must accept."""
    ro = a.copy()
    ro.flags.writeable = False
    wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)
    wide[..., ::2] = a
    flipped = np.flip(a).copy()
    unaligned = np.zeros(a.nbytes + 1, np.uint8)[1:].view(a.dtype).reshape(a.shape)
    unaligned[...] = a
    stacked = np.broadcast_to(a, (2, *a.shape))[1]  # stride-0 along a dropped axis
    return {
        "fortran": np.asfortranarray(a),
        "non_contiguous": wide[..., ::2],
        "negative_strides": np.flip(flipped),
        "read_only": ro,
        "big_endian": a.astype(a.dtype.newbyteorder(">")),
        "unaligned": unaligned,
        "broadcast_view": stacked,
    }


LAYOUTS = list(_odd_layouts(np.zeros((2, 2))))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(CALLS))
def test_odd_layouts_give_identical_results(name, layout):
    fn, args, options = CALLS[name]
    expected = _arrays(fn(*args, **options))
    odd = [_odd_layouts(a)[layout] if isinstance(a, np.ndarray) else a for a in args]
    got = _arrays(fn(*odd, **options))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e, strict=True)


def test_true_broadcast_dout_from_a_sum():
    # The gradient of out.sum() is np.broadcast_to(1.0, out.shape): every stride is 0.
    x, w = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3))
    dout = np.broadcast_to(np.float64(1.0), (2, 4, 3, 3))
    dx, dw, db = convcol.conv2d_backward(dout, x, w)
    np.testing.assert_array_equal(db, np.full(4, 18.0), strict=True)
    np.testing.assert_array_equal(dw, np.full((4, 3, 3, 3), 18.0), strict=True)
    assert dx[0, 0, 2, 2] == 4 * 9  # the centre pixel is under all 9 windows of 4 filters


EDGE = [
    # (name, function, x shape, w shape, options)
    ("batch_0", "conv2d", (0, 3, 5, 5), (2, 3, 3, 3), {"padding": 1}),
    ("channels_0", "conv2d", (2, 0, 5, 5), (2, 0, 3, 3), {"padding": 1}),
    ("filters_0", "conv2d", (2, 3, 5, 5), (0, 3, 3, 3), {}),
    (
        "batch_0_channels_last",
        "conv2d",
        (0, 5, 5, 16),
        (8, 16, 3, 3),
        {"data_format": "channels_last"},
    ),
    ("batch_0_transposed", "conv_transpose2d", (0, 3, 4, 4), (3, 2, 3, 3), {"stride": 2}),
    ("channels_0_transposed", "conv_transpose1d", (2, 0, 4), (0, 2, 3), {}),
    # A stride far beyond the input: the padded copy must not grow with it (regression:
    # 1.6 GB of phases, refused, for this 3-wide input).
    ("stride_1e8", "conv1d", (1, 2, 3), (1, 2, 2), {"stride": 10**8}),
    # A transposed 1x1 kernel whose output_padding makes its output longer than its input:
    # not a pointwise convolution (regression, found in review).
    (
        "transposed_1x1_output_padding",
        "conv_transpose1d",
        (2, 2, 5),
        (2, 2, 1),
        {"dilation": 2, "groups": 2, "output_padding": 1},
    ),
    # A transposed input of size 0: no outputs underneath (found by the fuzzer).
    (
        "transposed_input_0",
        "conv_transpose2d",
        (0, 0, 0, 1),
        (0, 1, 1, 1),
        {"dilation": 2, "output_padding": 1},
    ),
    # A depthwise convolution with no filters underneath (found by the fuzzer).
    ("depthwise_0_filters", "conv_transpose3d", (1, 0, 1, 1, 1), (0, 1, 1, 1, 1), {"groups": 2}),
    (
        "depthwise_0_filters_strided",
        "conv_transpose3d",
        (1, 0, 1, 1, 1),
        (0, 1, 1, 1, 1),
        {"groups": 2, "stride": (1, 1, 2)},
    ),
    ("batch_0_conv3d", "conv3d", (0, 2, 3, 3, 3), (2, 2, 2, 2, 2), {}),
    ("input_1x1", "conv2d", (2, 3, 1, 1), (4, 3, 1, 1), {}),
    ("input_1_padded", "conv1d", (2, 2, 1), (3, 2, 3), {"padding": 1}),
    ("kernel_equals_padded_input", "conv2d", (2, 2, 3, 4), (3, 2, 5, 6), {"padding": 1}),
    ("huge_stride", "conv2d", (2, 2, 6, 7), (2, 2, 2, 2), {"stride": 1000}),
    ("output_exactly_1", "conv3d", (1, 2, 3, 3, 3), (2, 2, 3, 3, 3), {}),
    ("transposed_input_1", "conv_transpose2d", (1, 2, 1, 1), (2, 3, 2, 2), {"stride": 5}),
    # An input axis of size 0 under a transposed convolution: the kernels divided by it
    # (found in review).
    ("transposed_input_0x0", "conv_transpose2d", (2, 2, 0, 0), (2, 3, 3, 3), {}),
    ("transposed_input_0_rows", "conv_transpose3d", (1, 2, 2, 0, 4), (2, 1, 2, 3, 3), {}),
]


@pytest.mark.parametrize(
    ("name", "function", "x_shape", "w_shape", "options"), EDGE, ids=[e[0] for e in EDGE]
)
def test_edge_sizes(name, function, x_shape, w_shape, options, rng):
    transposed = "transpose" in function
    oracle = conv_transpose_nd_naive if transposed else conv_nd_naive
    oracle_backward = conv_transpose_nd_backward_naive if transposed else conv_nd_backward_naive
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    ref = oracle(x, w, **options)
    out = getattr(convcol, function)(x, w, **options)
    assert_close(out, ref, np.float64, 100)
    dout = rng.standard_normal(out.shape)
    got = getattr(convcol, function + "_backward")(dout, x, w, **options)
    want = oracle_backward(dout, x, w, **options)
    for g, e in zip(got, want, strict=True):
        assert_close(g, e, np.float64, 100)
    # Where a sum has no terms the result is exactly zero (or empty), never garbage.
    if x_shape[0] == 0:
        assert out.size == 0 and not any(np.any(g) for g in got)
    if 0 in (x_shape[1], w_shape[0]):
        assert not np.any(out) and not np.any(got[0]) and not np.any(got[1])


NONFINITE_SPOTS = {"start": 0, "middle": None, "end": -1}


# inf * 0 (a padded zero, or an inf against a zero weight) is NaN and NumPy warns about it,
# in the oracle and the fast path alike.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", list(NONFINITE_SPOTS))
@pytest.mark.parametrize("target", ["x", "w", "dout"])
@pytest.mark.parametrize(
    ("layout", "groups", "stride", "filters"),
    [
        ("channels_first", 1, 1, 10),
        ("channels_last", 1, 1, 10),
        # Depthwise, where the stride-1 forward pass computes garbage columns that must
        # never meet a gradient (regression: 0 * inf in them made NaN in dw and dx).
        ("channels_first", 10, 1, 10),
        ("channels_first", 10, 2, 10),
        # Fewer filters than channels, where the swapped convolution (the forward pass, dx,
        # and dw from dout's columns) would meet the zero padding in other products than
        # the oracle (regression, found in review).
        ("channels_first", 1, 1, 2),
        ("channels_first", 2, 1, 2),
    ],
)
def test_non_finite_values_propagate_like_the_oracle(
    value, where, target, layout, groups, stride, filters, rng
):
    x = rng.standard_normal((2, 10, 6, 5))
    w = rng.standard_normal((filters, 10 // groups, 3, 3))
    options = {"stride": stride, "padding": 1, "groups": groups}
    dout = rng.standard_normal((2, filters, 6 // stride, -(-5 // stride)))
    spot = NONFINITE_SPOTS[where]
    flat = {"x": x, "w": w, "dout": dout}[target].reshape(-1)
    flat[flat.size // 2 if spot is None else spot] = value
    if layout == "channels_last":
        x, dout = (np.ascontiguousarray(np.moveaxis(a, 1, -1)) for a in (x, dout))
        options["data_format"] = "channels_last"
    ref = conv_nd_naive(x, w, **options)
    out = convcol.conv2d(x, w, **options)
    # assert_allclose demands NaN where the oracle has NaN and the same infinities, so a
    # masked or spread non-finite value fails it.
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10, strict=True)
    if target != "dout":
        assert np.isnan(out).any() or np.isinf(out).any()
        assert np.isfinite(out).any(), "a single non-finite input must not poison every output"
    grads = convcol.conv2d_backward(dout, x, w, **options)
    expected = conv_nd_backward_naive(dout, x, w, **options)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-9, strict=True)
    assert any(not np.isfinite(g).all() for g in grads), "the value never reached a gradient"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("target", ["x", "b"])
def test_non_finite_values_meet_the_bias_in_the_gemm_like_the_oracle(
    value, target, rng, workspaces
):
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    {"x": x, "b": b}[target].reshape(-1)[1] = value
    out = convcol.conv2d(x, w, b, padding=1)
    assert [ones for _, ones in workspaces] == [True]  # the GEMM added the bias
    ref = conv_nd_naive(x, w, b, padding=1)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10, strict=True)
    assert not np.isfinite(out).all() and np.isfinite(out).any()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_dout_under_a_window_of_padding_only(value, rng):
    # Output 0's dilated taps (0, 2, 4) all land in the padding, so the oracle's dw has
    # dout[0] * 0 (NaN) while dw from dout's columns (the swapped convolution, which pays
    # here) never reads dout[0]: that route must check dout itself.
    x, w = rng.standard_normal((1, 8, 1)), rng.standard_normal((2, 8, 3))
    options = {"padding": ((1, 4),), "dilation": 2}
    dout = rng.standard_normal((1, 2, 2))
    dout[0, 0, 0] = value
    geo = conv._prepare(1, x, w, None, **options)[-1]
    assert conv._swap_pays(geo)
    got = convcol.conv1d_backward(dout, x, w, **options)
    for g, e in zip(got, conv_nd_backward_naive(dout, x, w, **options), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-9, strict=True)
    assert np.isnan(got[1][0]).all()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_a_swapped_dw_that_overflows_is_left_to_im2col(rng, monkeypatch):
    # Finite x and dout whose products overflow: the swapped route's dw is not finite, so
    # it gives dw back to im2col. (All positive: with both signs the oracle's products
    # overflow one by one to inf - inf = NaN, while a BLAS's fused multiply-adds hold
    # their sums at one infinity; overflow of finite data is outside what the oracle's
    # tolerance promises.)
    x = rng.uniform(1, 2, (1, 8, 5, 5)) * 1e200
    w = rng.uniform(1, 2, (2, 8, 3, 3))
    dout = rng.uniform(1, 2, (1, 2, 5, 5)) * 1e200
    given_back = []
    real = conv._swapped_backward
    monkeypatch.setattr(
        conv,
        "_swapped_backward",
        lambda *a: (lambda r: given_back.append(r[1] is None) or r)(real(*a)),
    )
    got = convcol.conv2d_backward(dout, x, w, padding=1)
    assert given_back == [True]
    for g, e in zip(got, conv_nd_backward_naive(dout, x, w, padding=1), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, strict=True)
    assert np.isinf(got[1]).any()


def _quiet_case(name):
    """(x, w, dout, options) where a route declines or gives back a call after meeting an
    inf, a NaN or an overflow the oracle's own computation meets without a warning."""
    if name == "swapped_dw_inf_in_x":  # swapped dw would multiply it by dout's padding
        x, w, dout = np.ones((1, 4, 5, 5)), np.ones((1, 4, 3, 3)), np.ones((1, 1, 3, 3))
        x[0, 0, 0, 0] = np.inf
        return x, w, dout, {}
    if name == "swapped_dw_inf_and_minus_inf_in_dout":  # apart: no window holds both
        x, w, dout = np.ones((1, 8, 7, 7)), np.ones((2, 8, 3, 3)), np.ones((1, 2, 5, 5))
        dout[0, 0, 0, 0], dout[0, 1, 4, 4] = np.inf, -np.inf
        return x, w, dout, {}
    if name == "swapped_dw_float32_dout_sum_overflows":  # each channel's sum does not
        x = np.full((1, 8, 7, 7), 1e-3, np.float32)
        w = np.full((2, 8, 3, 3), 1e-3, np.float32)
        dout = np.zeros((1, 2, 5, 5), np.float32)
        dout[0, :, 2, :3] = 1e38
        return x, w, dout, {}
    x = np.ones((1, 16, 8, 8))  # winograd_inf_in_x: its tiles mix it with the others
    x[0, 3, 4, 4] = np.inf
    return x, np.ones((16, 16, 3, 3)), np.ones((1, 16, 8, 8)), {"padding": 1}


@pytest.mark.parametrize(
    "name",
    [
        "swapped_dw_inf_in_x",
        "swapped_dw_inf_and_minus_inf_in_dout",
        "swapped_dw_float32_dout_sum_overflows",
        "winograd_inf_in_x",
    ],
)
def test_routes_that_give_way_do_not_warn(name, monkeypatch):
    # No warning, nor FloatingPointError under np.errstate, from a route's attempt that the
    # oracle's sums do not give (review: the swapped dw's inf * 0, and the finiteness
    # checks' inf + -inf and overflow).
    force_winograd(monkeypatch)
    x, w, dout, options = _quiet_case(name)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        ref = conv_nd_naive(x, w, **options), *conv_nd_backward_naive(dout, x, w, **options)
        got = convcol.conv2d(x, w, **options), *convcol.conv2d_backward(dout, x, w, **options)
    for g, e in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, strict=True)
    assert any(not np.isfinite(g).all() for g in got) or name.endswith("overflows")


def test_threads_with_mixed_kinds_and_dtypes_match_serial():
    names = [n for n in CALLS if n not in ("conv_backward",)]
    jobs = []
    for i, name in enumerate(names * 2):
        fn, args, options = CALLS[name]
        dtype = (np.float64, np.float32)[i % 2]
        cast = tuple(a.astype(dtype) if isinstance(a, np.ndarray) else a for a in args)
        jobs.append((fn, cast, options))
    serial = [_arrays(fn(*args, **options)) for fn, args, options in jobs]
    barrier = threading.Barrier(4)

    def run(i):
        if i < 4:
            barrier.wait()  # start the first four together
        fn, args, options = jobs[i % len(jobs)]
        return _arrays(fn(*args, **options))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(3 * len(jobs))))
    for i, got in enumerate(results):
        for g, s in zip(got, serial[i % len(jobs)], strict=True):
            np.testing.assert_array_equal(g, s, strict=True)


@pytest.fixture
def threaded(monkeypatch):
    """Depthwise calls split over 3 threads however small (the kernels' real case on big
    inputs; tests' inputs are below the size that starts threads)."""
    engine = sys.modules["convcol.conv"]
    monkeypatch.setattr(engine, "_threads", lambda: 3)
    monkeypatch.setattr(engine, "_MIN_THREAD_WORK", 1)


# name: x shape, w shape, options, a workspace limit that makes runs of rows (a third of it,
# each thread's share, holds one row's workspace but not a whole sample's)
DEPTHWISE_THREADED = {
    "stride_1": ((3, 5, 9, 8), (5, 1, 3, 3), {"padding": 1, "groups": 5}, 3000),
    "stride_2_multiplier": (
        (2, 4, 9, 8),
        (8, 1, 3, 3),
        {"padding": 1, "stride": 2, "groups": 4},
        3700,
    ),
    "7x7_dilated": (
        (2, 3, 12, 11),
        (3, 1, 7, 7),
        {"padding": 4, "dilation": (1, 2), "groups": 3},
        12800,
    ),
    "1d_31_taps": ((2, 4, 40), (4, 1, 31), {"padding": 15, "groups": 4}, None),
    "3d": (
        (2, 3, 5, 6, 5),
        (6, 1, 3, 3, 3),
        {"padding": 1, "stride": (1, 2, 1), "groups": 3},
        8000,
    ),
}


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("spoil", [None, "x", "w"])
@pytest.mark.parametrize(
    ("name", "rows"),
    [
        (name, rows)
        for name, case in DEPTHWISE_THREADED.items()
        for rows in ((False, True) if case[3] else (False,))
    ],
)
def test_depthwise_threads_give_the_serial_results(name, rows, spoil, rng, monkeypatch):
    # Each thread takes its own channels, so the results must be identical to one
    # thread's, bit for bit, in whole samples or runs of rows (limit), and with an inf
    # that sends a gradient from the wide form back to rows (spoil).
    x_shape, w_shape, options, limit = DEPTHWISE_THREADED[name]
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    if spoil:
        (x if spoil == "x" else w).reshape(-1)[7] = np.inf
    nd = len(x_shape) - 2
    conv, backward = getattr(convcol, f"conv{nd}d"), getattr(convcol, f"conv{nd}d_backward")
    dout = rng.standard_normal(conv(x, w, **options).shape)

    def run():
        with convcol.workspace_limit(limit if rows else convcol.get_workspace_limit()):
            return [conv(x, w, **options), *backward(dout, x, w, **options)[:2]]

    engine = sys.modules["convcol.conv"]
    if rows:  # chunks of a third of the limit, so that three threads' workspaces fit
        monkeypatch.setattr(engine, "_CHUNK_BYTES", limit // 3)
    monkeypatch.setattr(engine, "_threads", lambda: 1)
    serial = run()
    monkeypatch.setattr(engine, "_threads", lambda: 3)
    monkeypatch.setattr(engine, "_MIN_THREAD_WORK", 1)
    for got, want in zip(run(), serial, strict=True):
        np.testing.assert_array_equal(got, want, strict=True)
    oracle = [conv_nd_naive(x, w, **options), *conv_nd_backward_naive(dout, x, w, **options)[:2]]
    for got, want in zip(serial, oracle, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9, strict=True)


def test_depthwise_thread_count_follows_the_environment(monkeypatch):
    engine = sys.modules["convcol.conv"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for numba_threads, omp_threads, expected in [
        ("3", "2", 3),
        (None, "2", 2),
        ("0", "5", 5),  # not a thread count: the next setting decides
        ("many", None, cpus),
        (None, None, cpus),
    ]:
        for name, value in [("NUMBA_NUM_THREADS", numba_threads), ("OMP_NUM_THREADS", omp_threads)]:
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        assert engine._threads() == expected, (numba_threads, omp_threads)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_depthwise_threads(threaded, rng):
    # The child has none of the parent's pool threads: work handed to an inherited pool
    # would never run (regression guard: the pool is dropped after a fork).
    x, w = rng.standard_normal((2, 4, 16, 16)), rng.standard_normal((4, 1, 3, 3))
    want = convcol.conv2d(x, w, padding=1, groups=4)  # starts the parent's pool
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(convcol.conv2d, (x, w), {"padding": 1, "groups": 4}).get(60)
    np.testing.assert_array_equal(got, want, strict=True)


def test_workspace_limit_is_per_thread():
    seen = {}

    def other():
        seen["other"] = convcol.get_workspace_limit()

    with convcol.workspace_limit(12345):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        seen["here"] = convcol.get_workspace_limit()
    assert seen["here"] == 12345
    assert seen["other"] == convcol.get_workspace_limit() != 12345


class TestMetamorphic:
    def test_grouped_equals_per_group_concatenated(self, rng):
        x = rng.standard_normal((2, 6, 7, 7))
        w = rng.standard_normal((9, 2, 3, 3))
        whole = convcol.conv2d(x, w, padding=1, groups=3)
        parts = [
            convcol.conv2d(x[:, 2 * g : 2 * g + 2], w[3 * g : 3 * g + 3], padding=1)
            for g in range(3)
        ]
        np.testing.assert_allclose(
            whole, np.concatenate(parts, axis=1), rtol=1e-13, atol=1e-13, strict=True
        )

    def test_padding_equals_np_pad_then_no_padding(self, rng):
        x = rng.standard_normal((2, 3, 6, 5))
        w = rng.standard_normal((4, 3, 3, 3))
        pads = ((2, 1), (0, 3))
        np.testing.assert_allclose(
            convcol.conv2d(x, w, padding=pads, stride=2),
            convcol.conv2d(np.pad(x, ((0, 0), (0, 0), *pads)), w, stride=2),
            rtol=1e-13,
            atol=1e-13,
            strict=True,
        )

    def test_batch_slicing_commutes(self, rng):
        x = rng.standard_normal((6, 3, 8, 8))
        w = rng.standard_normal((4, 3, 3, 3))
        whole = convcol.conv2d(x, w, padding=1)
        dout = rng.standard_normal(whole.shape)
        dx, _, _ = convcol.conv2d_backward(dout, x, w, padding=1)
        for lo, hi in [(0, 1), (2, 5), (5, 6)]:
            np.testing.assert_allclose(
                convcol.conv2d(x[lo:hi], w, padding=1),
                whole[lo:hi],
                rtol=1e-13,
                atol=1e-13,
                strict=True,
            )
            part, _, _ = convcol.conv2d_backward(dout[lo:hi], x[lo:hi], w, padding=1)
            np.testing.assert_allclose(part, dx[lo:hi], rtol=1e-13, atol=1e-13, strict=True)

    @pytest.mark.parametrize(
        ("size", "k", "stride", "dilation", "pads"),
        [
            (7, 3, 1, 1, (1, 1)),
            (8, 4, 1, 1, (1, 2)),
            (7, 3, 2, 1, (1, 1)),
            (8, 3, 2, 1, (0, 1)),
            (9, 3, 3, 2, (1, 1)),
            (5, 1, 2, 1, (0, 0)),
        ],
    )
    def test_same_equals_its_explicit_pads(self, size, k, stride, dilation, pads, rng):
        # Pads worked out by hand from TensorFlow's rule: out = ceil(n / s),
        # total = (out - 1) * s + (k - 1) * d + 1 - n, before = total // 2.
        x = rng.standard_normal((1, 2, size))
        w = rng.standard_normal((3, 2, k))
        same = convcol.conv1d(x, w, padding="same", stride=stride, dilation=dilation)
        explicit = convcol.conv1d(x, w, padding=(pads,), stride=stride, dilation=dilation)
        assert same.shape[-1] == math.ceil(size / stride)
        np.testing.assert_array_equal(same, explicit, strict=True)


class TestWorkspace:
    def test_peak_memory_stays_under_limit(self, rng):
        # tracemalloc sees NumPy's allocations. The peak may exceed the limit by the arrays
        # the call returns or keeps (output, gradients, the converted inputs) and not more.
        x = rng.standard_normal((32, 8, 24, 24))
        w = rng.standard_normal((8, 8, 3, 3))
        dout = rng.standard_normal((32, 8, 24, 24))
        limit = 512 * 2**10  # a sample's columns are 8 * 9 * 576 * 8 = 331776 bytes
        with convcol.workspace_limit(limit):
            assert_peak_within(lambda: convcol.conv2d(x, w, padding=1), limit, x.nbytes)
            results = x.nbytes + w.nbytes + 2 * dout.nbytes
            backward = lambda: convcol.conv2d_backward(dout, x, w, padding=1)  # noqa: E731
            assert_peak_within(backward, limit, results)

    def test_a_bias_the_gemm_adds_costs_one_copy_of_the_weights(self, rng, workspaces):
        # The weights with the bias as a last column (conv._bias_folds), beside the output.
        x, w, b = (
            rng.standard_normal((8, 64, 12, 12)),
            rng.standard_normal((64, 64, 3, 3)),
            rng.standard_normal(64),
        )
        limit = 2**20  # a sample's columns and their row of ones: 577 * 144 * 8 bytes
        out_bytes = x.shape[0] * w.shape[0] * 144 * 8
        with convcol.workspace_limit(limit):
            call = lambda: convcol.conv2d(x, w, b, padding=1)  # noqa: E731
            assert_peak_within(call, limit, out_bytes + w.nbytes + b.nbytes)
        assert workspaces and all(ones for _, ones in workspaces)

    @pytest.mark.parametrize("route", ["im2col", "winograd"])
    @pytest.mark.parametrize("channels", [(16, 128), (128, 16)])
    def test_chunks_of_several_samples_stay_under_limit(self, route, channels, rng, monkeypatch):
        # Many more filters than channels: a chunk of several samples reorders its output
        # block (forward) or dout block (backward) through a temporary that once went
        # uncounted, 5-11 MB over a 4-9 MiB limit (review). Many fewer: the swapped
        # convolution, whose columns give dx and dw in one pass.
        if route == "im2col":
            force_winograd(monkeypatch, None)
        C, F = channels
        x, w = rng.standard_normal((8, C, 32, 32)), rng.standard_normal((F, C, 3, 3))
        dout = rng.standard_normal((8, F, 32, 32))
        for limit in (4 * 2**20, 9 * 2**20):
            with convcol.workspace_limit(limit):
                assert_peak_within(lambda: convcol.conv2d(x, w, padding=1), limit, dout.nbytes)
                # dx, dw, db, and the swapped weights and their gradient
                results = x.nbytes + 3 * w.nbytes + F * 8
                backward = lambda: convcol.conv2d_backward(dout, x, w, padding=1)  # noqa: E731
                assert_peak_within(backward, limit, results)

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_large_planes_stay_under_limit(self, dtype, rng):
        # db's products with a vector of ones (conv._bias_grad) once allocated a plane-long
        # vector outside the workspace: 446 KB past this bound (review).
        x = rng.standard_normal((1, 4, 256, 256)).astype(dtype)
        w = rng.standard_normal((1, 4, 3, 3)).astype(dtype)
        dout = rng.standard_normal((1, 1, 256, 256)).astype(dtype)
        limit = 2**20
        results = x.nbytes + 3 * w.nbytes + 8  # dx, dw and db, the swapped weights
        with convcol.workspace_limit(limit):
            backward = lambda: convcol.conv2d_backward(dout, x, w, padding=1)  # noqa: E731
            assert_peak_within(backward, limit, results)

    def test_chunks_hold_twice_the_weights_within_the_limit(self, rng, monkeypatch):
        # Each chunk reads every weight and adds a weight-sized part to dw, so chunks smaller
        # than twice the weights' bytes grow to that (conv._budget), yet never past the limit.
        force_winograd(monkeypatch, None)
        monkeypatch.setattr(conv, "_CHUNK_BYTES", 2**14)
        x, w = rng.standard_normal((6, 32, 4, 4)), rng.standard_normal((32, 32, 3, 3))
        dout = rng.standard_normal((6, 32, 4, 4))
        geo = conv_geometry(x.shape, w.shape, None, 2, padding=1)

        def largest() -> int:
            return max(conv._chunk_bytes(geo, c, 8) for c in conv._plan(geo, 8))

        assert 2**14 < largest() <= 2 * w.nbytes  # a sample is 37 KB, the weights 74 KB
        limit = 2**16
        with convcol.workspace_limit(limit):
            assert largest() <= limit
            backward = lambda: convcol.conv2d_backward(dout, x, w, padding=1)  # noqa: E731
            assert_peak_within(backward, limit, x.nbytes + 2 * w.nbytes + 32 * 8)
            got = convcol.conv2d_backward(dout, x, w, padding=1)
        want = conv_nd_backward_naive(dout, x, w, padding=1)
        for g, e, reduction in zip(got, want, (32 * 9, 6 * 16, 6 * 16), strict=True):
            assert_close(g, e, np.float64, reduction)

    def test_pointwise_backward_memory_does_not_grow_with_the_batch(self, rng):
        # A 1x1 convolution needs no workspace; its dw once stacked one F x C partial sum per
        # sample before adding them up: 512 KiB here, 16 MiB for r50_1x1_256_1024 float64.
        x, w = rng.standard_normal((64, 32, 2, 2)), rng.standard_normal((32, 32, 1, 1))
        dout = rng.standard_normal((64, 32, 2, 2))
        results = x.nbytes + 2 * w.nbytes + 32 * 8  # dx; dw and one sample's part; db
        assert_peak_within(lambda: convcol.conv2d_backward(dout, x, w), 0, results)

    def test_a_limit_below_one_sample_splits_samples_by_output_rows(self, rng):
        x = rng.standard_normal((2, 4, 9, 10))
        w = rng.standard_normal((3, 4, 3, 3))
        dout = rng.standard_normal((2, 3, 9, 10))
        whole = (convcol.conv2d(x, w, padding=1), *convcol.conv2d_backward(dout, x, w, padding=1))
        # One output row's workspace: its columns and a row of ones for a bias ((C * K + 1)
        # * Wo) and the 3 padded input rows, 12 wide, they read, one channel's at a time
        # (3 * 12), 8 bytes each.
        row = ((4 * 9 + 1) * 10 + 3 * 12) * 8
        for limit in (row, 2 * row, 5 * row):
            with convcol.workspace_limit(limit):
                parts = (
                    convcol.conv2d(x, w, padding=1),
                    *convcol.conv2d_backward(dout, x, w, padding=1),
                )
            for p, e in zip(parts, whole, strict=True):
                np.testing.assert_allclose(p, e, rtol=1e-13, atol=1e-13, strict=True)

    @pytest.mark.parametrize("stride", [1, 2])
    def test_depthwise_chunks_of_rows_equal_whole_samples(self, stride, rng, monkeypatch):
        # Depthwise convolutions chunk the same way, one channel's plane at a time; stride 1
        # computes along flattened planes and rows otherwise.
        monkeypatch.setattr(sys.modules["convcol.conv"], "_threads", lambda: 1)
        x = rng.standard_normal((3, 4, 11, 9))
        w = rng.standard_normal((8, 1, 3, 3))
        opts = {"padding": 1, "stride": stride, "groups": 4, "dilation": (2, 1)}
        dout = rng.standard_normal(convcol.conv2d(x, w, **opts).shape)
        whole = (convcol.conv2d(x, w, **opts), *convcol.conv2d_backward(dout, x, w, **opts))
        # The workspace is two padded planes (input and gradient) and a wide scratch of a
        # plane and the taps' reach (46 elements at stride 1, 30 at stride 2). One output
        # row reads a band of 5 rows: 5 * 11 elements at stride 1 (1688 bytes in all),
        # 2 * 2 phases of 3 * 6 at stride 2 (1968). A whole sample reads 13 rows: 3800 and
        # 4464 bytes. So runs of 1 row, of several, and whole samples.
        limits = {1: (1700, 2500, 3900, 2**14), 2: (2000, 3000, 4500, 2**14)}[stride]
        for limit in limits:
            with convcol.workspace_limit(limit):
                parts = (convcol.conv2d(x, w, **opts), *convcol.conv2d_backward(dout, x, w, **opts))
            for p, e in zip(parts, whole, strict=True):
                np.testing.assert_allclose(p, e, rtol=1e-13, atol=1e-13, strict=True)
        too_small = convcol.workspace_limit(limits[0] - 200)
        with too_small, pytest.raises(ConvError, match="one output row"):
            convcol.conv2d(x, w, **opts)
        ref = conv_nd_naive(x, w, **opts)
        assert_close(whole[0], ref, np.float64, 10)

    def test_the_check_before_allocating_sees_the_computed_geometry(self, rng):
        # Narrow channels-last groups are computed channels-first, and a 1x1 convolution
        # needs no workspace: the up-front check must judge what will be computed
        # (regression: it judged the call as given, refusing or passing the wrong calls).
        x = rng.standard_normal((1, 32, 32, 4))
        w = rng.standard_normal((4, 4, 3, 3))
        tracemalloc.start()
        with (
            convcol.workspace_limit(10_000),
            # ((C * K + 1) * Wo columns, a row of ones for a bias among them, and 3 padded
            # rows of 34, one channel's) * 8 bytes: channels first, as computed (channels
            # last: 9216)
            pytest.raises(ConvError, match=r"needs 10288 bytes .*x.shape=\(1, 32, 32, 4\)"),
        ):
            convcol.conv2d(x, w, padding=1, data_format="channels_last")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 10_000
        wd = rng.standard_normal((4, 1, 3, 3))
        opts = {"stride": 2, "groups": 4, "padding": 1, "data_format": "channels_last"}
        with convcol.workspace_limit(4200):  # the channels-first depthwise path needs 4080
            out = convcol.conv2d(x, wd, **opts)
        assert_close(out, conv_nd_naive(x, wd, **opts), np.float64, 10)
        xp, wp = rng.standard_normal((1, 4, 1, 100)), rng.standard_normal((2, 4, 1, 1))
        with convcol.workspace_limit(64):
            out = convcol.conv2d(xp, wp)
        assert_close(out, conv_nd_naive(xp, wp), np.float64, 5)

    def test_the_swapped_route_is_not_taken_beyond_the_limit(self, rng):
        # Its rows may need more workspace than the call's own, which the up-front check
        # judged: it must fall back, not refuse (regression, found in review).
        x, w = rng.standard_normal((1, 1, 1, 100)), rng.standard_normal((3, 1, 5, 5))
        opts = {"padding": ((4, 4), (0, 0))}
        with convcol.workspace_limit(30_000):  # a row needs 23968 bytes, a swapped one 64960
            out = convcol.conv2d(x, w, **opts)
        assert_close(out, conv_nd_naive(x, w, **opts), np.float64, 25)

    def test_refused_before_allocating_with_the_size_needed(self, rng):
        x = np.zeros((4, 64, 100, 100))
        w = np.zeros((8, 64, 5, 5))
        tracemalloc.start()
        with (
            convcol.workspace_limit(2**20),
            pytest.raises(
                ConvError,
                # ((C * K + 1) * Wo + 5 * 104) * 8: the row's columns and a row of ones for a
                # bias, and the 5 padded input rows of one channel it reads at a time
                match=r"one output row needs 1284960 bytes \(1.2 MiB\) of workspace \(the "
                r"im2col columns or depthwise scratch it is computed in, and the padded input "
                r"rows it reads\) but the workspace limit is 1048576 bytes",
            ),
        ):
            convcol.conv2d(x, w, padding=2)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 2**20

    def test_environment_variable(self, monkeypatch):
        monkeypatch.setenv("CONVCOL_WORKSPACE_LIMIT", "3M")
        assert convcol.get_workspace_limit() == 3 * 2**20
        monkeypatch.setenv("CONVCOL_WORKSPACE_LIMIT", "lots")
        with pytest.raises(ConvError, match=r"CONVCOL_WORKSPACE_LIMIT must be a number of bytes"):
            convcol.get_workspace_limit()

    def test_bad_limit(self):
        with pytest.raises(ConvError, match=r"nbytes must be >= 1, got 0"):
            with convcol.workspace_limit(0):
                pass


# Fuzzing: any arguments, valid or not. The fast path must give the oracle's answer or raise
# ConvError exactly when the oracle does; any other exception is a failure. Each example is a
# coherent convolution with, half the time, one argument spoiled.
BAD_VALUES = [0, -1, 1.5, "2", None, True, (1, 2, 3, 4), [1], 2.0, 2**70]
SPOILERS = [
    "x_rank",
    "w_rank",
    "channels",
    "dtype",
    "stride",
    "dilation",
    "groups",
    "padding",
    "padding_mode",
    "data_format",
    "output_padding",
    "bias",
]


@st.composite
def anything(draw):
    nd = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = draw(st.integers(1, 2))
    cg, fg = draw(st.integers(0, 2)), draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(nd)]
    dilation = draw(st.integers(1, 2))
    # Mostly at least the kernel's extent, sometimes a little less (then padding must help).
    sizes = [(k - 1) * dilation + 1 + draw(st.integers(-1, 3)) for k in kernel]
    channels_last = draw(st.booleans())
    options = {
        "stride": tuple(draw(st.integers(1, 3)) for _ in range(nd)),
        "dilation": dilation,
        "groups": groups,
        "padding": draw(
            st.one_of(
                st.integers(0, 2),
                st.sampled_from(["valid", "same"]),
                st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2))] * nd),
            )
        ),
        "padding_mode": draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])),
        "data_format": "channels_last" if channels_last else "channels_first",
    }
    if transposed:
        options["padding_mode"] = "zeros"
        if options["padding"] == "same":
            options["padding"] = 0
        options["output_padding"] = draw(st.integers(0, 1))
        w_shape = [groups * cg, fg, *kernel]
        out_channels = groups * fg
    else:
        w_shape = [groups * fg, cg, *kernel]
        out_channels = groups * fg
    x_shape = [draw(st.integers(0, 2)), groups * cg, *sizes]
    if channels_last:
        x_shape = [x_shape[0], *sizes, groups * cg]
    dtype, bias = np.float64, draw(st.booleans())
    spoil = draw(st.sampled_from([None] * len(SPOILERS) + SPOILERS))
    if spoil == "output_padding" and not transposed:
        spoil = None  # not an argument of a convolution at all (a TypeError, as it should be)
    if spoil == "x_rank":
        x_shape = x_shape[:-1] if draw(st.booleans()) else [*x_shape, 2]
    elif spoil == "w_rank":
        w_shape = w_shape[:-1]
    elif spoil == "channels":
        w_shape[0 if transposed else 1] += 1
    elif spoil == "dtype":
        dtype = draw(st.sampled_from([np.int64, np.float32, np.bool_, np.complex128]))
    elif spoil in ("stride", "dilation", "groups", "padding", "output_padding"):
        options[spoil] = draw(st.sampled_from(BAD_VALUES))
    elif spoil in ("padding_mode", "data_format"):
        options[spoil] = draw(st.sampled_from(["mirror", "NCHW", 0, None]))
    elif spoil == "bias":
        out_channels += 1
    event(f"spoiled {spoil}")
    return nd, transposed, tuple(x_shape), tuple(w_shape), dtype, options, bias, out_channels


def _outcome(fn):
    try:
        return fn(), None
    except ConvError as e:
        return None, e


@given(case=anything(), seed=st.integers(0, 2**16))
def test_fuzz_any_arguments(case, seed):
    nd, transposed, x_shape, w_shape, dtype, options, bias, out_channels = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(out_channels) if bias else None
    name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    fast, oracle = (
        getattr(convcol, name),
        (conv_transpose_nd_naive if transposed else conv_nd_naive),
    )
    got, fast_error = _outcome(lambda: fast(x, w, b, **options))
    want, oracle_error = _outcome(lambda: oracle(x, w, b, **options))
    event("refused" if fast_error is not None else "computed")
    if oracle_error is not None or fast_error is not None:
        # A wrong-rank x is the one thing the oracle (which takes any rank) reads differently.
        assert (fast_error is None) == (oracle_error is None) or x.ndim != nd + 2, (
            fast_error,
            oracle_error,
        )
        return
    assert_close(got, want, np.result_type(got.dtype), 4 * max(1, math.prod(w_shape[1:])))
    dout = rng.standard_normal(got.shape)
    backward = getattr(convcol, name + "_backward")
    oracle_backward = conv_transpose_nd_backward_naive if transposed else conv_nd_backward_naive
    for g, e in zip(
        backward(dout, x, w, **options), oracle_backward(dout, x, w, **options), strict=True
    ):
        assert_close(g, e, g.dtype, 4 * max(1, dout.size, math.prod(w_shape)))
