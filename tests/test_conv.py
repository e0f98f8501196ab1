"""The fast path (convcol.conv) against the oracle (convcol.naive)."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import example, given
from hypothesis import strategies as st
from oracle_cases import CASES

import convcol
from convcol import conv
from convcol.geometry import conv_geometry
from convcol.naive import (
    conv_backward_naive,
    conv_forward_naive,
    conv_nd_backward_naive,
    conv_nd_naive,
)

DTYPES = [np.float64, np.float32]


def check_against_oracle(x, w, b, conv_param, dtype, rng, api="cs231n"):
    """Forward and all three gradients of the fast path agree with the float64 oracle.

    Both see the same values: the inputs are rounded to ``dtype`` first and the oracle gets
    them in float64, so the comparison measures only the fast path's rounding.
    """
    x, w = x.astype(dtype), w.astype(dtype)
    b = None if b is None else b.astype(dtype)
    ref, ref_cache = conv_forward_naive(
        x.astype(np.float64),
        w.astype(np.float64),
        None if b is None else b.astype(np.float64),
        conv_param,
    )
    dout = rng.standard_normal(ref.shape).astype(dtype)
    rdx, rdw, rdb = conv_backward_naive(dout.astype(np.float64), ref_cache)
    if api == "cs231n":
        out, cache = convcol.conv_forward(x, w, b, conv_param)
        dx, dw, db = convcol.conv_backward(dout, cache)
    else:
        kw = {
            "stride": conv_param.get("stride", 1),
            "padding": conv_param.get("pad", 0),
            "dilation": conv_param.get("dilation", 1),
            "groups": conv_param.get("groups", 1),
        }
        out = convcol.conv2d(x, w, b, **kw)
        dx, dw, db = convcol.conv2d_backward(dout, x, w, **kw)
    F, Cg, kh, kw_ = w.shape
    G = conv_param.get("groups", 1)
    positions = x.shape[0] * math.prod(ref.shape[2:])
    # The same sums over absolute values scale the tolerance: a float32 sum that cancels to
    # a small value keeps the rounding error of its terms (a found example: dw 0.00165,
    # 2e-4 off relative to itself, 4e-8 relative to its terms).
    mag, mag_cache = conv_forward_naive(
        *(None if a is None else abs(a.astype(np.float64)) for a in (x, w, b)), conv_param
    )
    mags = (mag, *conv_backward_naive(abs(dout.astype(np.float64)), mag_cache))
    reductions = (Cg * kh * kw_ + 1, F // G * kh * kw_, positions, positions)
    for got, want, red, m in zip(
        (out, dx, dw, db), (ref, rdx, rdw, rdb), reductions, mags, strict=True
    ):
        assert_close(got, want, dtype, red, m)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_named_cases_match_oracle(case, dtype, rng):
    x = rng.standard_normal(case.x)
    w = rng.standard_normal(case.w)
    b = rng.standard_normal(case.w[0]) if case.bias else None
    check_against_oracle(x, w, b, case.conv_param, dtype, rng)


@st.composite
def conv_configs(draw):
    """Any valid 2-D convolution small enough for the oracle."""
    groups = draw(st.integers(1, 3))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    form = draw(st.sampled_from(["int", "per_axis", "pairs", "valid", "same"]))
    if form == "int":
        padding = draw(st.integers(0, 3))
        pads = [(padding, padding)] * 2
    elif form == "per_axis":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        pads = [(p, p) for p in padding]
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
        pads = list(padding)
    else:
        padding = form
        pads = [(0, 0)] * 2
    size = []
    for k, d, (lo, hi) in zip(kernel, dilation, pads, strict=True):
        smallest = 1 if form == "same" else max(1, (k - 1) * d + 1 - lo - hi)
        size.append(smallest + draw(st.integers(0, 6)))
    x_shape = (draw(st.integers(1, 3)), groups * cg, *size)
    w_shape = (groups * fg, cg, *kernel)
    conv_param = {"stride": stride, "pad": padding, "dilation": dilation, "groups": groups}
    return x_shape, w_shape, conv_param, draw(st.booleans())


@given(
    config=conv_configs(),
    dtype=st.sampled_from(DTYPES),
    api=st.sampled_from(["cs231n", "keywords"]),
    seed=st.integers(0, 2**32 - 1),
)
# Regression: a float32 dw that cancels to 0.00165, judged against itself (check_against_oracle).
@example(
    config=(
        (1, 2, 6, 8),
        (1, 2, 3, 3),
        {"stride": (2, 1), "pad": ((0, 1), (0, 1)), "dilation": (2, 1), "groups": 1},
        True,
    ),
    dtype=np.float32,
    api="cs231n",
    seed=1967,
)
def test_random_configs_match_oracle(config, dtype, api, seed):
    x_shape, w_shape, conv_param, bias = config
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(w_shape[0]) if bias else None
    check_against_oracle(
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        b,
        conv_param,
        dtype,
        rng,
        api,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_weight_gradient_in_either_gemm_orientation_matches_oracle(dtype, rng, monkeypatch):
    # Few filters, many taps and enough positions: dw's GEMM runs with the taps on the left
    # and its product transposed (conv._transposed_dw_pays); the named cases are too small.
    taken = []
    pays = conv._transposed_dw_pays
    monkeypatch.setattr(conv, "_transposed_dw_pays", lambda *a: taken.append(pays(*a)) or taken[-1])
    x = rng.standard_normal((3, 3, 20, 20))  # 768 positions, clear of the rule's 512
    w = rng.standard_normal((4, 3, 5, 5))
    check_against_oracle(x, w, rng.standard_normal(4), {"stride": 1, "pad": 0}, dtype, rng)
    assert taken == [True]
    # Grouped: each group's product is transposed into its own block of dw.
    x = rng.standard_normal((3, 4, 20, 20)).astype(dtype)
    w = rng.standard_normal((4, 2, 5, 5)).astype(dtype)
    dout = rng.standard_normal((3, 4, 16, 16)).astype(dtype)
    _, dw, _ = convcol.conv2d_backward(dout, x, w, groups=2)
    assert taken == [True, True]
    want = conv_nd_backward_naive(*(a.astype(np.float64) for a in (dout, x, w)), groups=2)[1]
    mags = conv_nd_backward_naive(*(abs(a.astype(np.float64)) for a in (dout, x, w)), groups=2)
    assert_close(dw, want, dtype, 3 * 16 * 16, mags[1])


def test_chunked_batch_matches_unchunked(rng, workspaces):
    x = rng.standard_normal((7, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    dout = rng.standard_normal((7, 4, 9, 9))
    whole = (convcol.conv2d(x, w, padding=1), *convcol.conv2d_backward(dout, x, w, padding=1))
    # Room for exactly three samples, 20736 bytes each (28 rows of columns and 4 of output,
    # 81 positions), and the one 11 x 11 padded plane (968 bytes) the chunk keeps for all
    # of them: the batch goes through in chunks of 3, 3, 1. (Counting a plane per sample,
    # as the rule once did, left room for two, so one sample a chunk.)
    with convcol.workspace_limit(3 * 20736 + 968):
        chunked = (
            convcol.conv2d(x, w, padding=1),
            *convcol.conv2d_backward(dout, x, w, padding=1),
        )
    for a, c in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(c, a, rtol=1e-13, atol=1e-13, strict=True)
    sizes = [c.n1 - c.n0 for c, _ in workspaces]
    assert sizes[:2] == [7, 7] and sizes[2:] == [3, 3, 1] * 2, sizes  # whole, then chunked


def test_two_samples_do_not_share_a_chunk(rng, workspaces):
    # Room for two samples (20736 bytes each here, and the chunk's one 968-byte padded
    # plane) gives chunks of one: two in one GEMM and a reorder were slower than one at a
    # time (conv._MIN_SAMPLES_SHARING).
    x, w = rng.standard_normal((5, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3))
    with convcol.workspace_limit(2 * 21704 + 1000):
        out = convcol.conv2d(x, w, padding=1)
    assert [c.n1 - c.n0 for c, _ in workspaces] == [1] * 5
    np.testing.assert_allclose(out, conv_nd_naive(x, w, padding=1), rtol=1e-10, atol=1e-10,
                               strict=True)  # fmt: skip
    # A depthwise chunk holds one channel's planes whatever its samples: the whole batch,
    # even where the rule would count room for two (3096 bytes a sample).
    geo = conv_geometry((2, 3, 9, 9), (3, 1, 3, 3), None, 2, padding=1, groups=3)
    with convcol.workspace_limit(2 * 3096):
        assert conv._plan(geo, 8) == [conv._Chunk(0, 2, 0, 9, True)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize(
    "x_shape, limit, kind",
    [
        ((3, 3, 9, 9), None, "the batch"),
        # An output reorder after each GEMM: 3 (float64) or 6 (float32) samples a chunk, at
        # 28 rows of columns and 4 of output, 81 positions each, a sample (and an 11 x 11
        # padded plane).
        ((8, 3, 9, 9), 2**16, "samples"),
        ((2, 3, 30, 30), 2**15, "rows"),
    ],
)
def test_bias_added_by_the_gemm_matches_oracle(x_shape, limit, kind, dtype, rng, workspaces):
    # The forward GEMM adds the bias (a weight column against a row of ones) where the
    # weights are not larger than the output; this checks that route in each kind of chunk.
    x = rng.standard_normal(x_shape)
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    with convcol.workspace_limit(limit) if limit else contextlib.nullcontext():
        check_against_oracle(x, w, b, {"stride": 1, "pad": 1}, dtype, rng, api="conv2d")
    sizes = [c.n1 - c.n0 if c.whole else 0 for c, ones in workspaces if ones]  # 0: rows
    assert {
        "the batch": sizes == [x_shape[0]],
        "samples": len(sizes) > 1 and max(sizes) > 1 and min(sizes) > 0,
        "rows": len(sizes) > 1 and max(sizes) == 0,
    }[kind], workspaces


def test_bias_is_added_after_the_gemm_when_the_weights_outweigh_the_output(rng, workspaces):
    # 2 x 3 x 3 outputs against 8 * 9 taps: a weight copy with the bias would cost more
    # than the pass over the output it saves (vgg_7x7_512: 1.05-1.14x slower). As many
    # filters as channels, so that the forward pass is im2col's, not the swapped one's.
    x, w = rng.standard_normal((2, 8, 3, 3)), rng.standard_normal((8, 8, 3, 3))
    b = rng.standard_normal(8)
    out = convcol.conv2d(x, w, b, padding=1)
    assert workspaces and not any(ones for _, ones in workspaces)
    assert_close(out, conv_nd_naive(x, w, b, padding=1), np.float64, 8 * 9 + 1)


def test_integer_valued_inputs_give_exact_results(rng):
    x = rng.integers(-4, 5, size=(2, 3, 7, 7)).astype(np.float64)
    w = rng.integers(-3, 4, size=(4, 3, 3, 3)).astype(np.float64)
    b = rng.integers(-5, 6, size=4).astype(np.float64)
    cp = {"stride": 2, "pad": 1}
    out, cache = convcol.conv_forward(x, w, b, cp)
    ref, ref_cache = conv_forward_naive(x, w, b, cp)
    dout = rng.integers(-3, 4, size=out.shape).astype(np.float64)
    np.testing.assert_array_equal(out, ref, strict=True)
    for got, want in zip(
        convcol.conv_backward(dout, cache), conv_backward_naive(dout, ref_cache), strict=True
    ):
        np.testing.assert_array_equal(got, want, strict=True)


class TestDtypes:
    def test_float32_stays_float32_everywhere(self, rng):
        x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
        w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
        b = np.zeros(4, np.float32)
        out, cache = convcol.conv_forward(x, w, b, {"stride": 1, "pad": 1})
        grads = convcol.conv_backward(np.ones_like(out), cache)
        assert out.dtype == np.float32
        assert cache.x.dtype == cache.w.dtype == np.float32
        assert [g.dtype for g in grads] == [np.float32] * 3

    @pytest.mark.parametrize(
        ("x_dtype", "w_dtype", "b_dtype", "expected", "expected_grads"),
        [
            (np.float64, np.float64, np.float64, np.float64, np.float64),
            (np.float32, np.float64, np.float32, np.float64, np.float64),
            (np.int64, np.int32, None, np.float64, np.float64),
            # NumPy promotion: f32 + i64 -> f64; the gradients do not involve b.
            (np.float32, np.float32, np.int64, np.float64, np.float32),
            (np.uint8, np.float32, None, np.float32, np.float32),
            (np.float16, np.float16, None, np.float32, np.float32),
        ],
    )
    def test_promotion(self, x_dtype, w_dtype, b_dtype, expected, expected_grads, rng):
        x = (rng.standard_normal((1, 2, 4, 4)) * 3).astype(x_dtype)
        w = (rng.standard_normal((3, 2, 2, 2)) * 3).astype(w_dtype)
        b = None if b_dtype is None else np.arange(3).astype(b_dtype)
        out = convcol.conv2d(x, w, b)
        assert out.dtype == expected
        ref, _ = conv_forward_naive(x, w, b, {})
        assert ref.dtype == expected
        assert_close(out, ref.astype(np.float64), expected, 9)
        dx, dw, db = convcol.conv2d_backward(np.ones(out.shape, np.float32), x, w)
        assert dx.dtype == dw.dtype == db.dtype == expected_grads


def _layouts(a: np.ndarray) -> dict[str, np.ndarray]:
    """The same values as ``a`` in every memory layout the fast path must accept."""
    ro = a.copy()
    ro.flags.writeable = False
    padded = np.zeros((a.shape[0], a.shape[1] + 1, *a.shape[2:]), a.dtype)
    padded[:, 1:] = a
    unaligned_buf = np.zeros(a.nbytes + 1, np.uint8)[1:].view(a.dtype).reshape(a.shape)
    unaligned_buf[...] = a
    return {
        "fortran": np.asfortranarray(a),
        "negative_strides": a[::-1, :, ::-1][::-1, :, ::-1],
        "sliced": padded[:, 1:],
        "read_only": ro,
        "big_endian": a.astype(a.dtype.newbyteorder(">")),
        "unaligned": unaligned_buf,
    }


@pytest.mark.parametrize(
    "layout", ["fortran", "negative_strides", "sliced", "read_only", "big_endian", "unaligned"]
)
def test_every_layout_gives_identical_results(layout, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    dout = rng.standard_normal((2, 4, 4, 4))
    args = {"stride": 2, "padding": 1}
    base = (convcol.conv2d(x, w, b, **args), *convcol.conv2d_backward(dout, x, w, **args))
    xo, wo, bo, do = (_layouts(a)[layout] for a in (x, w, b.reshape(1, 4, 1, 1), dout))
    bo = bo.reshape(4)
    got = (convcol.conv2d(xo, wo, bo, **args), *convcol.conv2d_backward(do, xo, wo, **args))
    for g, e in zip(got, base, strict=True):
        np.testing.assert_array_equal(g, e, strict=True)


def test_broadcast_inputs(rng):
    # A dout from np.broadcast_to, as the gradient of a sum is; stride-0 x and w as well.
    x = np.broadcast_to(rng.standard_normal((1, 2, 5, 5)), (3, 2, 5, 5))
    w = np.broadcast_to(rng.standard_normal((1, 2, 3, 3)), (4, 2, 3, 3))
    dout = np.broadcast_to(np.float64(1.0), (3, 4, 3, 3))
    out = convcol.conv2d(x, w)
    dx, dw, db = convcol.conv2d_backward(dout, x, w)
    ref, cache = conv_forward_naive(np.array(x), np.array(w), None, {})
    rdx, rdw, rdb = conv_backward_naive(np.array(dout), cache)
    assert_close(out, ref, np.float64, 18)
    assert_close(dx, rdx, np.float64, 36)
    assert_close(dw, rdw, np.float64, 27)
    assert_close(db, rdb, np.float64, 27)


def test_inputs_unchanged_and_outputs_not_aliased(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    dout = rng.standard_normal((2, 4, 6, 6))
    before = [a.copy() for a in (x, w, b, dout)]
    out, cache = convcol.conv_forward(x, w, b, {"stride": 1, "pad": 1})
    dx, dw, db = convcol.conv_backward(dout, cache)
    dx2, dw2, db2 = convcol.conv2d_backward(dout, x, w, padding=1)
    for a, a0 in zip((x, w, b, dout), before, strict=True):
        np.testing.assert_array_equal(a, a0, strict=True)
    results = (out, dx, dw, db, dx2, dw2, db2)
    for r in results:
        for a in (x, w, b, dout):
            assert not np.shares_memory(r, a)
    for i, r in enumerate(results):
        for s in results[i + 1 :]:
            assert not np.shares_memory(r, s)


def test_repeated_calls_are_bit_identical(rng):
    x = rng.standard_normal((3, 4, 10, 10))
    w = rng.standard_normal((5, 4, 3, 3))
    dout = rng.standard_normal((3, 5, 5, 5))
    first = (
        convcol.conv2d(x, w, stride=2, padding=1),
        *convcol.conv2d_backward(dout, x, w, stride=2, padding=1),
    )
    for _ in range(3):
        again = (
            convcol.conv2d(x, w, stride=2, padding=1),
            *convcol.conv2d_backward(dout, x, w, stride=2, padding=1),
        )
        for a, f in zip(again, first, strict=True):
            np.testing.assert_array_equal(a, f, strict=True)


class TestIm2col:
    def naive_im2col(self, x, kernel, stride, pad, dilation):
        """im2col by its definition: np.pad, then one strided slice per output position."""
        kh, kw = kernel
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        eh, ew = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
        starts_h = range(0, xp.shape[2] - eh + 1, stride)
        starts_w = range(0, xp.shape[3] - ew + 1, stride)
        columns = [
            xp[n, :, i : i + eh : dilation, j : j + ew : dilation].reshape(-1)
            for n in range(x.shape[0])
            for i in starts_h
            for j in starts_w
        ]
        return np.stack(columns, axis=1)

    @pytest.mark.parametrize(
        ("kernel", "stride", "pad", "dilation"),
        [((3, 3), 1, 1, 1), ((2, 3), 2, 0, 1), ((3, 2), 1, 2, 2), ((1, 1), 3, 0, 1)],
    )
    def test_layout_matches_definition(self, kernel, stride, pad, dilation, rng):
        x = rng.standard_normal((2, 3, 7, 8))
        cols = convcol.im2col(x, kernel, stride=stride, padding=pad, dilation=dilation)
        np.testing.assert_array_equal(
            cols, self.naive_im2col(x, kernel, stride, pad, dilation), strict=True
        )

    def test_gemm_on_columns_is_the_convolution(self, rng):
        x = rng.standard_normal((2, 3, 6, 6))
        w = rng.standard_normal((4, 3, 3, 3))
        cols = convcol.im2col(x, 3, padding=1)
        out = (w.reshape(4, -1) @ cols).reshape(4, 2, 6, 6).transpose(1, 0, 2, 3)
        ref, _ = conv_forward_naive(x, w, None, {"pad": 1})
        assert_close(out, ref, np.float64, 27)

    @pytest.mark.parametrize("padding", [0, 1, "same", ((0, 2), (1, 0))])
    def test_col2im_is_the_adjoint(self, padding, rng):
        # <im2col(x), c> == <x, col2im(c)>: col2im is im2col's transpose, not its inverse.
        x = rng.standard_normal((2, 3, 7, 6))
        cols = convcol.im2col(x, (3, 2), stride=2, padding=padding)
        c = rng.standard_normal(cols.shape)
        back = convcol.col2im(c, x.shape, (3, 2), stride=2, padding=padding)
        assert back.shape == x.shape
        np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-12)

    def test_col2im_is_not_the_inverse(self):
        x = np.ones((1, 1, 3, 3))
        back = convcol.col2im(convcol.im2col(x, 2), x.shape, 2)
        # The centre pixel lies under all four 2x2 windows.
        np.testing.assert_array_equal(back[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]], strict=False)


def test_concurrent_calls_match_serial_calls(rng):
    # The kernels release the GIL and share no state: threads calling at once (different
    # shapes and dtypes) get exactly the serial results.
    from concurrent.futures import ThreadPoolExecutor

    jobs = []
    for i in range(12):
        dtype = (np.float32, np.float64)[i % 2]
        x = rng.standard_normal((2 + i % 3, 3, 12 + i, 10)).astype(dtype)
        w = rng.standard_normal((4, 3, 3, 1 + i % 3)).astype(dtype)
        jobs.append((x, w, {"stride": 1 + i % 2, "padding": i % 3}))

    def run(job):
        x, w, kw = job
        out = convcol.conv2d(x, w, **kw)
        return (out, *convcol.conv2d_backward(np.ones_like(out), x, w, **kw))

    serial = [run(j) for j in jobs]
    with ThreadPoolExecutor(6) as pool:
        concurrent = list(pool.map(run, jobs * 3))
    for i, got in enumerate(concurrent):
        for g, s in zip(got, serial[i % len(jobs)], strict=True):
            np.testing.assert_array_equal(g, s, strict=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.float16])
@pytest.mark.parametrize(
    "shape",
    [(3, 5, 7, 33), (1, 1, 1), (2, 40, 70), (4, 3, 2, 1, 5), (0, 3, 4), (2, 0, 3), (2, 3, 0)],
    ids=str,
)
def test_layout_transposes_are_numpys(shape, dtype, rng):
    # Channels-last data that is computed channels-first goes there and back through
    # kernels.swap_last_axes (tiles of 32, tails included); other dtypes through NumPy.
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    for got, want in [
        (conv._first(a), np.moveaxis(a, -1, 1)),
        (conv._last(a), np.moveaxis(a, 1, -1)),
    ]:
        np.testing.assert_array_equal(got, want, strict=True)
        assert got.flags.c_contiguous and not np.shares_memory(got, a)


def test_layout_transposes_shared_between_threads(rng, monkeypatch):
    # Large enough for two threads (conv._MIN_THREAD_ELEMENTS), with units that split a
    # sample's rows between them.
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    a = rng.standard_normal((1, 2 * conv._MIN_THREAD_ELEMENTS // 40 + 7, 40))
    np.testing.assert_array_equal(conv._first(a), np.moveaxis(a, -1, 1), strict=True)


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize(
    ("c", "f", "options"),
    [
        (3, 4, {"padding": 1}),
        (6, 6, {"padding": 1, "groups": 6}),  # depthwise
        (6, 12, {"stride": 2, "groups": 6}),  # depthwise, two filters per channel
        (4, 6, {"groups": 2, "data_format": "channels_last"}),  # via channels first
        (16, 16, {"padding": 1}),  # Winograd's route
        (5, 3, {}),  # 1x1
    ],
    ids=["plain", "depthwise", "depthwise_x2", "channels_last_narrow", "winograd", "pointwise"],
)
def test_read_only_inputs_on_every_route(c, f, options, rng):
    # Every public function, given read-only arrays, as the unchanged originals give. (A
    # depthwise transposed convolution handed a view of w to a kernel as its unused dw:
    # Numba refused to compile for a read-only array, found by review.)
    k = 1 if (c, f) == (5, 3) else 3
    x = rng.standard_normal((2, c, 8, 8))
    w = rng.standard_normal((f, c // options.get("groups", 1), k, k))
    b = rng.standard_normal(f)
    if options.get("data_format") == "channels_last":
        x = np.moveaxis(x, 1, -1).copy()
    out = convcol.conv2d(x, w, b, **options)
    dout = rng.standard_normal(out.shape)
    # The transposed convolution of the same weights maps dout's shape to (about) x's.
    dy = rng.standard_normal(convcol.conv_transpose2d(dout, w, **options).shape)
    calls = [
        lambda x, w, b, d: convcol.conv2d(x, w, b, **options),
        lambda x, w, b, d: convcol.conv2d_backward(d, x, w, **options),
        lambda x, w, b, d: convcol.conv_transpose2d(d, w, **options),
        lambda x, w, b, d: convcol.conv_transpose2d_backward(dy, d, w, **options),
    ]
    for call in calls:
        want = call(x, w, b, dout)
        got = call(_read_only(x), _read_only(w), _read_only(b), _read_only(dout))
        got, want = (r if isinstance(r, tuple) else (r,) for r in (got, want))
        for g, e in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, e, strict=True)
