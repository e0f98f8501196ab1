"""1-D, 3-D and transposed convolution, padding modes and channels-last, against the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given
from hypothesis import strategies as st

import convcol
from convcol import conv
from convcol.naive import (
    conv_nd_backward_naive,
    conv_nd_naive,
    conv_transpose_nd_backward_naive,
    conv_transpose_nd_naive,
)

DTYPES = [np.float64, np.float32]


def fast_functions(kind: str, nd: int):
    name = f"conv{nd}d" if kind == "conv" else f"conv_transpose{nd}d"
    return getattr(convcol, name), getattr(convcol, name + "_backward")


def oracle_functions(kind: str):
    if kind == "conv":
        return conv_nd_naive, conv_nd_backward_naive
    return conv_transpose_nd_naive, conv_transpose_nd_backward_naive


def check(kind, x, w, b, options, dtype, rng):
    """Forward and all gradients of the fast path agree with the float64 oracle."""
    nd = x.ndim - 2
    x, w = x.astype(dtype), w.astype(dtype)
    b = None if b is None else b.astype(dtype)
    f64 = [None if a is None else a.astype(np.float64) for a in (x, w, b)]
    ref_fwd, ref_bwd = oracle_functions(kind)
    fwd, bwd = fast_functions(kind, nd)
    ref = ref_fwd(*f64, **options)
    dout = rng.standard_normal(ref.shape).astype(dtype)
    rdx, rdw, rdb = ref_bwd(dout.astype(np.float64), f64[0], f64[1], **options)
    out = fwd(x, w, b, **options)
    dx, dw, db = bwd(dout, x, w, **options)
    k = math.prod(w.shape[2:])
    groups = options.get("groups", 1)
    channels_last = options.get("data_format") == "channels_last"
    spatial = (lambda a: a.shape[1:-1]) if channels_last else (lambda a: a.shape[2:])
    n_out = x.shape[0] * math.prod(spatial(ref))
    n_in = x.shape[0] * math.prod(spatial(x))
    if kind == "conv":
        reductions = (w.shape[1] * k + 1, w.shape[0] // groups * k, n_out, n_out)
    else:
        reductions = (w.shape[0] // groups * k + 1, w.shape[1] * k, n_in, n_out)
    # The same sums over absolute values: the scale of the rounding error where terms cancel.
    mags = (ref_fwd(*[None if a is None else abs(a) for a in f64], **options),)
    mags += ref_bwd(abs(dout.astype(np.float64)), abs(f64[0]), abs(f64[1]), **options)
    for got, want, red, mag in zip(
        (out, dx, dw, db), (ref, rdx, rdw, rdb), reductions, mags, strict=True
    ):
        assert_close(got, want, dtype, red, mag)


# (name, kind, x shape, w shape, options) -- channels-first shapes; the channels_last
# parametrization moves the channel axis of x.
CASES = [
    ("conv1d_basic", "conv", (2, 3, 9), (4, 3, 3), {"padding": 1}),
    ("conv1d_strided_dilated", "conv", (2, 2, 13), (3, 2, 4), {"stride": 3, "dilation": 2}),
    ("conv1d_same_even", "conv", (1, 2, 8), (2, 2, 4), {"padding": "same"}),
    ("conv1d_groups", "conv", (2, 4, 7), (6, 2, 3), {"groups": 2, "padding": (1,)}),
    ("conv1d_asym_pad", "conv", (2, 2, 6), (2, 2, 3), {"padding": ((2, 0),), "stride": 2}),
    ("conv1d_reflect", "conv", (2, 2, 6), (3, 2, 3), {"padding": 2, "padding_mode": "reflect"}),
    (
        "conv1d_replicate",
        "conv",
        (1, 2, 4),
        (2, 2, 3),
        {"padding": ((3, 1),), "padding_mode": "replicate"},
    ),
    (
        "conv1d_circular",
        "conv",
        (2, 1, 5),
        (2, 1, 4),
        {"padding": ((5, 2),), "padding_mode": "circular"},
    ),
    (
        "conv2d_reflect_same",
        "conv",
        (2, 2, 5, 6),
        (3, 2, 3, 2),
        {"padding": "same", "padding_mode": "reflect"},
    ),
    (
        "conv2d_circular_strided",
        "conv",
        (2, 2, 6, 5),
        (2, 2, 3, 3),
        {"padding": (2, 1), "stride": 2, "padding_mode": "circular"},
    ),
    (
        "conv2d_replicate_groups",
        "conv",
        (1, 4, 5, 5),
        (4, 2, 3, 3),
        {"padding": ((1, 2), (0, 3)), "groups": 2, "padding_mode": "replicate"},
    ),
    ("conv2d_plain", "conv", (2, 3, 6, 7), (4, 3, 3, 2), {"stride": (1, 2), "padding": 1}),
    ("conv2d_depthwise", "conv", (2, 4, 6, 6), (8, 1, 3, 3), {"groups": 4, "padding": 1}),
    ("conv3d_basic", "conv", (2, 2, 4, 5, 4), (3, 2, 3, 3, 2), {"padding": 1}),
    (
        "conv3d_strided_dilated_groups",
        "conv",
        (1, 4, 6, 5, 7),
        (2, 2, 2, 2, 3),
        {"stride": (2, 1, 2), "dilation": (2, 1, 1), "groups": 2, "padding": (1, 0, 1)},
    ),
    ("conv3d_same", "conv", (1, 2, 4, 3, 5), (2, 2, 2, 3, 2), {"padding": "same", "stride": 2}),
    (
        "conv3d_reflect",
        "conv",
        (1, 2, 3, 4, 4),
        (2, 2, 3, 3, 3),
        {"padding": 1, "padding_mode": "reflect"},
    ),
    (
        "conv3d_circular",
        "conv",
        (1, 1, 3, 3, 3),
        (1, 1, 2, 2, 2),
        {"padding": ((3, 0), (1, 1), (0, 2)), "padding_mode": "circular"},
    ),
    ("transpose1d_basic", "transpose", (2, 3, 5), (3, 2, 3), {"stride": 2}),
    (
        "transpose1d_pad_outpad",
        "transpose",
        (2, 2, 4),
        (2, 3, 4),
        {"stride": 3, "padding": 1, "output_padding": 2},
    ),
    (
        "transpose1d_dilated_outpad",
        "transpose",
        (1, 2, 4),
        (2, 2, 3),
        {"stride": 1, "dilation": 3, "output_padding": 2},
    ),
    (
        "transpose1d_asym_pad",
        "transpose",
        (1, 2, 5),
        (2, 2, 3),
        {"stride": 2, "padding": ((2, 0),)},
    ),
    ("transpose2d_basic", "transpose", (2, 3, 4, 3), (3, 2, 3, 3), {"stride": 2, "padding": 1}),
    (
        "transpose2d_groups_outpad",
        "transpose",
        (1, 4, 3, 4),
        (4, 3, 2, 3),
        {"stride": (2, 3), "padding": (0, 1), "output_padding": (1, 2), "groups": 2},
    ),
    (
        "transpose2d_depthwise_dilated",
        "transpose",
        (2, 3, 4, 4),
        (3, 1, 3, 3),
        {"dilation": 2, "groups": 3, "padding": 2},
    ),
    ("transpose2d_stride1", "transpose", (2, 2, 5, 5), (2, 4, 1, 1), {}),
    ("transpose3d_basic", "transpose", (1, 2, 3, 2, 3), (2, 3, 2, 2, 2), {"stride": 2}),
    (
        "transpose3d_all",
        "transpose",
        (2, 4, 2, 3, 2),
        (4, 1, 3, 2, 2),
        {
            "stride": (1, 2, 2),
            "padding": (1, 0, 1),
            "output_padding": (0, 1, 1),
            "dilation": (1, 1, 2),
            "groups": 2,
        },
    ),
    # Fewer filters than channels at stride 1: the forward pass (or, transposed, the
    # backward one) goes through the swapped convolution (conv._swapped).
    (
        "conv2d_fewer_filters_swapped",
        "conv",
        (2, 12, 6, 7),
        (3, 12, 3, 2),
        {"padding": ((1, 0), (1, 2)), "dilation": (1, 2)},
    ),
    (
        "conv2d_fewer_filters_groups_same_swapped",
        "conv",
        (1, 8, 5, 6),
        (2, 4, 4, 3),
        {"groups": 2, "padding": "same"},
    ),
    ("conv1d_fewer_filters_swapped", "conv", (2, 9, 11), (2, 9, 5), {"padding": 2}),
    ("conv3d_fewer_filters_swapped", "conv", (1, 6, 4, 5, 4), (2, 6, 3, 3, 3), {"padding": 1}),
    (
        "conv2d_fewer_filters_reflect_swapped",
        "conv",
        (1, 8, 6, 5),
        (2, 8, 3, 3),
        {"padding": 1, "padding_mode": "reflect"},
    ),
    # A padding wider than the dilated kernel: the swapped padding would be negative.
    ("conv2d_fewer_filters_wide_pad", "conv", (1, 8, 4, 4), (2, 8, 2, 2), {"padding": 2}),
    # A 1x1 convolution's dw adds one GEMM per sample (three) and group (two).
    ("conv2d_pointwise_groups", "conv", (3, 4, 5, 6), (6, 2, 1, 1), {"groups": 2}),
    ("transpose2d_more_outputs_swapped", "transpose", (2, 2, 5, 4), (2, 12, 3, 3), {"padding": 1}),
]


# Channels-last data is convolved natively or by way of channels-first depending on the
# channels per group; the threshold is forced both ways so each path meets every case.
LAYOUTS = {
    "channels_first": ("channels_first", None),
    "channels_last_native": ("channels_last", 1),
    "channels_last_via_first": ("channels_last", 10**9),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize(
    ("name", "kind", "x_shape", "w_shape", "options"), CASES, ids=[c[0] for c in CASES]
)
def test_named_cases_match_oracle(
    name, kind, x_shape, w_shape, options, dtype, layout, rng, monkeypatch
):
    data_format, threshold = LAYOUTS[layout]
    if threshold is not None:
        monkeypatch.setattr(conv, "_MIN_GROUP_CHANNELS_LAST", threshold)
    x = rng.standard_normal(x_shape)
    if data_format == "channels_last":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    w = rng.standard_normal(w_shape)
    out_channels = w_shape[0] if kind == "conv" else w_shape[1] * options.get("groups", 1)
    b = rng.standard_normal(out_channels)
    check(kind, x, w, b, {**options, "data_format": data_format}, dtype, rng)


@st.composite
def nd_configs(draw):
    """Any valid convolution or transposed convolution small enough for the oracle."""
    nd = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["conv", "transpose"]))
    groups = draw(st.integers(1, 2))
    cg, fg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    options = {
        "stride": stride,
        "dilation": dilation,
        "groups": groups,
        "data_format": draw(st.sampled_from(["channels_first", "channels_last"])),
    }
    size_cap = {1: 8, 2: 6, 3: 4}[nd]
    if kind == "conv":
        mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        same = draw(st.booleans())
        options["padding_mode"] = mode
        options["padding"] = "same" if same else pads
        sizes = []
        for k, d, (lo, hi) in zip(kernel, dilation, pads, strict=True):
            smallest = (k - 1) * d + 1 if same else max(1, (k - 1) * d + 1 - lo - hi)
            if mode == "reflect":
                smallest = max(smallest, (k - 1) * d + 1 if same else max(lo, hi) + 1)
            if mode == "circular" and not same:
                smallest = max(smallest, lo, hi)
            sizes.append(smallest + draw(st.integers(0, size_cap - 1)))
        x_shape = (draw(st.integers(1, 2)), groups * cg, *sizes)
        w_shape = (groups * fg, cg, *kernel)
    else:
        options["padding"] = pads
        options["output_padding"] = tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)
        )
        sizes = []
        for k, s, d, (lo, hi) in zip(kernel, stride, dilation, pads, strict=True):
            # Large enough that the output, (n-1)s + (k-1)d + 1 - lo - hi, is at least 1.
            smallest = max(1, -(-(lo + hi - (k - 1) * d) // s) + 1)
            sizes.append(smallest + draw(st.integers(0, size_cap - 1)))
        x_shape = (draw(st.integers(1, 2)), groups * cg, *sizes)
        w_shape = (groups * cg, fg, *kernel)
    if options["data_format"] == "channels_last":
        x_shape = (x_shape[0], *x_shape[2:], x_shape[1])
    return kind, x_shape, w_shape, options, draw(st.booleans())


@given(
    config=nd_configs(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
    native_channels_last=st.booleans(),
)
def test_random_configs_match_oracle(config, dtype, seed, native_channels_last):
    saved = conv._MIN_GROUP_CHANNELS_LAST
    conv._MIN_GROUP_CHANNELS_LAST = 1 if native_channels_last else 10**9
    try:
        _check_random(*config, dtype, seed)
    finally:
        conv._MIN_GROUP_CHANNELS_LAST = saved


def _check_random(kind, x_shape, w_shape, options, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    out_channels = w_shape[0] if kind == "conv" else w_shape[1] * options["groups"]
    b = rng.standard_normal(out_channels) if bias else None
    check(kind, rng.standard_normal(x_shape), rng.standard_normal(w_shape), b, options, dtype, rng)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_transpose_is_the_adjoint_of_conv(nd, data_format, rng):
    # <conv(x, w), g> == <x, conv_transpose(g, w)>: the transposed convolution is the
    # convolution's dx, computed by the other function.
    opts = {"stride": 2, "padding": 1, "dilation": 1, "groups": 1, "data_format": data_format}
    x_shape = (2, 3, *(7, 6, 5)[:nd])
    if data_format == "channels_last":
        x_shape = (x_shape[0], *x_shape[2:], x_shape[1])
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((4, 3, *(3,) * nd))
    conv, conv_backward = fast_functions("conv", nd)
    transpose, _ = fast_functions("transpose", nd)
    y = conv(x, w, **opts)
    g = rng.standard_normal(y.shape)
    spatial = x.shape[1:-1] if data_format == "channels_last" else x.shape[2:]
    y_spatial = y.shape[1:-1] if data_format == "channels_last" else y.shape[2:]
    # The output_padding that makes the transposed convolution give back x's size.
    out_pad = tuple(n - ((m - 1) * 2 - 2 + 3) for n, m in zip(spatial, y_spatial, strict=True))
    xt = transpose(g, w, output_padding=out_pad, **opts)
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, xt), rtol=1e-12)
    dx, _, _ = conv_backward(g, x, w, **opts)
    np.testing.assert_allclose(xt, dx, rtol=1e-12, atol=1e-12, strict=True)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode_equals_np_pad_then_valid_conv(mode, rng):
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    padded = np.pad(x, ((0, 0), (0, 0), (2, 1), (1, 3)), mode=np_mode)
    out = convcol.conv2d(x, w, padding=((2, 1), (1, 3)), padding_mode=mode)
    np.testing.assert_allclose(out, convcol.conv2d(padded, w), rtol=1e-13, atol=1e-13, strict=True)


@pytest.mark.parametrize("kind", ["conv", "transpose"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_channels_last_equals_channels_first(kind, nd, rng):
    x = rng.standard_normal((2, 4, *(5, 4, 3)[:nd]))
    w = rng.standard_normal((4, 2, *(2,) * nd))
    opts = {"stride": 2, "padding": 1, "groups": 2}
    fwd, bwd = fast_functions(kind, nd)
    first = fwd(x, w, **opts)
    last = fwd(np.moveaxis(x, 1, -1), w, data_format="channels_last", **opts)
    np.testing.assert_allclose(last, np.moveaxis(first, 1, -1), rtol=1e-12, atol=1e-12, strict=True)
    g = rng.standard_normal(first.shape)
    dx1, dw1, db1 = bwd(g, x, w, **opts)
    dx2, dw2, db2 = bwd(
        np.moveaxis(g, 1, -1), np.moveaxis(x, 1, -1), w, data_format="channels_last", **opts
    )
    np.testing.assert_allclose(dx2, np.moveaxis(dx1, 1, -1), rtol=1e-12, atol=1e-12, strict=True)
    np.testing.assert_allclose(dw2, dw1, rtol=1e-12, atol=1e-12, strict=True)
    np.testing.assert_allclose(db2, db1, rtol=1e-12, atol=1e-12, strict=True)


@pytest.mark.parametrize(
    ("layer", "fwd", "bwd", "x_shape", "options"),
    [
        (
            lambda: convcol.Conv1d(2, 4, 3, padding=1, padding_mode="reflect", rng=0),
            conv_nd_naive,
            conv_nd_backward_naive,
            (2, 2, 7),
            {"padding": 1, "padding_mode": "reflect"},
        ),
        (
            lambda: convcol.Conv3d(2, 2, (2, 3, 2), stride=2, rng=0),
            conv_nd_naive,
            conv_nd_backward_naive,
            (1, 2, 4, 5, 4),
            {"stride": 2},
        ),
        (
            lambda: convcol.ConvTranspose1d(2, 3, 4, stride=2, padding=1, rng=0),
            conv_transpose_nd_naive,
            conv_transpose_nd_backward_naive,
            (2, 2, 5),
            {"stride": 2, "padding": 1},
        ),
        (
            lambda: convcol.ConvTranspose2d(
                4, 2, 3, stride=2, output_padding=1, groups=2, data_format="channels_last", rng=0
            ),
            conv_transpose_nd_naive,
            conv_transpose_nd_backward_naive,
            (2, 3, 3, 4),
            {"stride": 2, "output_padding": 1, "groups": 2, "data_format": "channels_last"},
        ),
        (
            lambda: convcol.ConvTranspose3d(2, 2, 2, stride=2, rng=0),
            conv_transpose_nd_naive,
            conv_transpose_nd_backward_naive,
            (1, 2, 2, 3, 2),
            {"stride": 2},
        ),
    ],
    ids=["Conv1d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"],
)
def test_layers_match_oracle(layer, fwd, bwd, x_shape, options, rng):
    lay = layer()
    lay.bias[:] = rng.standard_normal(lay.bias.shape)
    x = rng.standard_normal(x_shape)
    ref = fwd(x, lay.weight, lay.bias, **options)
    out = lay(x)
    assert_close(out, ref, np.float64, 50)
    g = rng.standard_normal(out.shape)
    rdx, rdw, rdb = bwd(g, x, lay.weight, **options)
    assert_close(lay.backward(g), rdx, np.float64, 50)
    assert_close(lay.grad_weight, rdw, np.float64, g.size)
    assert_close(lay.grad_bias, rdb, np.float64, g.size)


def test_he_init_of_transposed_layer_uses_its_weight_layout():
    layer = convcol.ConvTranspose2d(16, 32, 3, rng=0)
    assert layer.weight.shape == (16, 32, 3, 3)
    # fan_in = weight.shape[1] * 3 * 3 = 288, as PyTorch computes it for this layout.
    assert layer.weight.std() == pytest.approx(np.sqrt(2 / 288), rel=0.05)
    assert layer.bias.shape == (32,)


def test_1d_padding_pair_is_before_and_after(rng):
    x, w = rng.standard_normal((2, 3, 6)), rng.standard_normal((4, 3, 3))
    np.testing.assert_array_equal(
        convcol.conv1d(x, w, padding=(1, 2)),
        convcol.conv1d(x, w, padding=((1, 2),)),
        strict=True,
    )
    assert convcol.conv1d(x, w, padding=(1, 2)).shape == (2, 4, 7)


@pytest.mark.parametrize(
    ("as_list", "as_array"),
    [
        ([1, 2], np.array([1, 2])),
        ([[0, 1], [2, 0]], np.array([[0, 1], [2, 0]])),
        ([1, 2], np.array([1, 2], np.int32)),
    ],
    ids=["per_axis", "pairs", "int32"],
)
def test_padding_as_an_array_is_padding_as_a_list(as_list, as_array, rng):
    # As stride, dilation and the layers' sizes take arrays (review found padding alone
    # refused one).
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((4, 3, 3, 2))
    np.testing.assert_array_equal(
        convcol.conv2d(x, w, padding=as_array),
        convcol.conv2d(x, w, padding=as_list),
        strict=True,
    )
    with pytest.raises(convcol.ConvError, match=r"padding\[0\] must be an integer"):
        convcol.conv2d(x, w, padding=np.array([1.5, 1.0]))


@pytest.mark.parametrize("name", [c[0] for c in CASES if "filters" in c[0] or "swapped" in c[0]])
def test_the_swapped_convolution_is_taken_when_it_pays(name, rng, monkeypatch):
    # The named cases above check the numbers; this checks they test the path they name.
    _, kind, x_shape, w_shape, options = next(c for c in CASES if c[0] == name)
    calls = []  # the geometries whose swapped convolution ran (it needs swapped weights)
    weights = conv._swapped_weights
    monkeypatch.setattr(
        conv, "_swapped_weights", lambda w, geo: calls.append(geo) or weights(w, geo)
    )
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    fwd, bwd = fast_functions(kind, len(x_shape) - 2)
    out = fwd(x, w, **options)
    bwd(np.ones_like(out), x, w, **options)
    assert bool(calls) == name.endswith("swapped"), calls
    # Weights are swapped for a geometry that pays (the forward pass or dx, dw's columns),
    # or back from its swapped one (dw): never both ways, which would swap back for ever.
    assert all(conv._swap_pays(g) != conv._swap_pays(conv._swapped(g)) for g in calls)


@pytest.mark.parametrize("name", [c[0] for c in CASES if c[0].endswith("swapped")])
def test_dw_comes_from_the_columns_of_dout_when_the_swap_pays(name, rng, monkeypatch):
    # conv._swapped_backward: dw from the swapped convolution's columns, those of dout,
    # except where that convolution is depthwise (it has none). The named cases check the
    # numbers against the oracle; this checks that they test this route.
    _, kind, x_shape, w_shape, options = next(c for c in CASES if c[0] == name)
    passes = []  # (geometry, whether a weight gradient came from its columns)
    real = conv._im2col_pass
    monkeypatch.setattr(
        conv,
        "_im2col_pass",
        lambda x, wg, geo, **kw: (
            passes.append((geo, kw.get("grad") is not None)) or real(x, wg, geo, **kw)
        ),
    )
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    fwd, bwd = fast_functions(kind, len(x_shape) - 2)
    out = fwd(x, w, **options)
    bwd(rng.standard_normal(out.shape), x, w, **options)
    dws = [geo for geo, with_grad in passes if with_grad]
    assert len(dws) == (0 if "groups_same" in name else 1), passes
    assert all(conv._swap_pays(conv._swapped(geo)) for geo in dws)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize(
    ("nd", "kernel", "stride", "dilation", "dtype"),
    [
        (2, 3, 2, 1, np.float64),  # 4 phases: 4, 2, 2 and 1 taps
        (2, 3, 2, 1, np.float32),
        (2, 5, 2, 1, np.float64),  # 9, 6, 6 and 4: several passes of up to 4 taps
        (2, 3, 3, 1, np.float64),  # 9 phases of 1 tap
        (2, 1, 2, 1, np.float64),  # 3 phases no tap reads: the stride beyond the kernel
        (2, 3, 2, 2, np.float64),  # the same: taps 2 apart, all in one phase (review)
        (3, 3, 2, 1, np.float64),  # 8 phases
    ],
)
def test_depthwise_strides_match_oracle(nd, kernel, stride, dilation, dtype, multiplier, rng):
    # A strided depthwise dx gathers each phase of the padded plane from the taps that read
    # it (kernels._gather_phases), with several filters per channel adding into one plane.
    # (Each case compiles its kernels anew: a few, chosen for what they cover.)
    x = rng.standard_normal((2, 3, *(7, 6, 5)[:nd]))
    w = rng.standard_normal((3 * multiplier, 1, *[kernel] * nd))
    options = {"stride": stride, "padding": dilation * (kernel // 2), "dilation": dilation}
    options["groups"] = 3
    check("conv", x, w, rng.standard_normal(3 * multiplier), options, dtype, rng)


@pytest.mark.parametrize("groups", [1, 3], ids=["dense", "depthwise"])
@pytest.mark.parametrize("width", range(1, 10))
@pytest.mark.parametrize("pad", range(4))
def test_stride_two_along_rows_matches_oracle(width, pad, groups, rng):
    # Stride 2 along W: the padded copy splits each row into its two phases in one pass
    # where both take an element (kernels._joint), one phase alone at either end. Every
    # width and pad up to the kernel's, with and without a dilation, meets the oracle.
    x = rng.standard_normal((2, 3, 5, width))
    w = rng.standard_normal((3, 3 // groups, 3, 3))
    for dilation in (1, 2):
        if width + 2 * pad < dilation * 2 + 1:
            continue  # no output
        options = {"stride": (2, 2), "padding": pad, "dilation": dilation, "groups": groups}
        check("conv", x, w, rng.standard_normal(3), options, np.float64, rng)


class _PoisonedNumpy:
    """numpy, as convcol.conv sees it, but with every float array from ``empty`` NaN-filled."""

    def __getattr__(self, name):
        return getattr(np, name)

    def empty(self, *args, **kwargs):
        out = np.empty(*args, **kwargs)
        if out.dtype.kind == "f":
            out.fill(np.nan)
        return out


@pytest.fixture
def poisoned_empty(monkeypatch):
    monkeypatch.setattr(conv, "np", _PoisonedNumpy())


# (kind, x shape, w shape, options, workspace limit) for the test below; channels-first
# shapes, moved to channels-last where the options say so.
UNINITIALISED_CASES = {
    "dense": ("conv", (2, 3, 11, 12), (3, 3, 2, 2), {"stride": 3}, None),
    # A few rows to a chunk, several chunks per sample.
    "dense_rows": ("conv", (2, 3, 11, 12), (3, 3, 2, 2), {"stride": 3}, 2**12),
    # Windows overlapping across the chunks' boundaries: a later chunk adds to rows an
    # earlier one wrote, which a zeroing of each chunk's own band would erase.
    "dense_rows_overlapping": ("conv", (2, 3, 11, 12), (3, 3, 3, 3), {}, 2**12),
    # 3-D by rows: chunks of later depth planes start at rows other than 0, and must not
    # zero what the earlier planes' chunks wrote.
    "dense_3d_rows": ("conv", (2, 2, 5, 13, 7), (3, 2, 2, 2, 2), {"stride": (3, 1, 3)}, 2560),
    # Channels-last columns (col2im_cl: 8 channels to a group or more), whole and by rows.
    "dense_channels_last": (
        "conv",
        (2, 8, 11, 12),
        (3, 8, 2, 2),
        {"stride": 3, "data_format": "channels_last"},
        None,
    ),
    "dense_channels_last_rows": (
        "conv",
        (2, 8, 11, 12),
        (3, 8, 2, 2),
        {"stride": 3, "data_format": "channels_last"},
        2**12,
    ),
    "depthwise": ("conv", (2, 3, 11, 12), (3, 1, 2, 2), {"stride": 3, "groups": 3}, None),
    "depthwise_rows": ("conv", (2, 3, 11, 12), (3, 1, 2, 2), {"stride": 3, "groups": 3}, 2**11),
    # An empty input: the transposed convolution's output is the padding alone, all zero.
    "transposed_empty": (
        "transpose",
        (2, 3, 0, 4),
        (3, 2, 2, 2),
        {"stride": 2, "output_padding": 1},
        None,
    ),
    "transposed_empty_depthwise": (
        "transpose",
        (2, 3, 0, 4),
        (3, 1, 2, 2),
        {"stride": 2, "output_padding": 1, "groups": 3},
        None,
    ),
}


@pytest.mark.parametrize("case", UNINITIALISED_CASES)
def test_dx_does_not_depend_on_uninitialised_memory(case, rng, poisoned_empty):
    # dx (and a transposed convolution's output, the same col2im) is allocated empty and
    # zeroed sample by sample by its first chunk (conv._col2im_into,
    # kernels.depthwise_backward). With every empty array full of NaN, the results still
    # meet the oracle, inputs no window reads (a stride beyond the kernel, the last rows)
    # included.
    kind, x_shape, w_shape, options, limit = UNINITIALISED_CASES[case]
    x = rng.standard_normal(x_shape)
    if options.get("data_format") == "channels_last":
        x = np.moveaxis(x, 1, -1)
    with convcol.workspace_limit(limit or convcol.get_workspace_limit()):
        check(kind, x, rng.standard_normal(w_shape), None, options, np.float64, rng)


def test_public_col2im_does_not_depend_on_uninitialised_memory(poisoned_empty):
    # Each input counts the 2 x 2 windows, 3 apart, that cover it; the inputs no window
    # reads (the last row and column) stay 0 though col2im's output starts empty.
    covered = np.zeros((11, 12))
    for i in range(4):
        for j in range(4):
            covered[3 * i : 3 * i + 2, 3 * j : 3 * j + 2] += 1
    dx = convcol.col2im(np.ones((12, 2 * 16)), (2, 3, 11, 12), 2, stride=3)
    np.testing.assert_array_equal(dx, np.broadcast_to(covered, (2, 3, 11, 12)), strict=False)
