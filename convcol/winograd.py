"""Winograd's minimal filtering F(4x4, 3x3) and F(2x2, 3x3): 3x3 convolutions at stride 1,
in float64 (both) and float32 (F(2x2, 3x3) alone).

A 3x3 window slides over each 6x6 tile of the input to give a 4x4 block of outputs: 144
multiplications per channel and filter as a GEMM over im2col columns. Winograd's algorithm
(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015) needs 36:

    Y = A^T [(G g G^T) * (B^T d B)] A      (* elementwise, summed over channels)

so the convolution becomes 36 GEMMs ``U[k] @ V[k]``, each (F x C) @ (C x tiles), with a
quarter of im2col's flops: ``U = G g G^T`` the transformed weights (36, F, C), ``V`` the
transformed input tiles (36, C, tiles) and ``A^T M A`` each tile's outputs
(``kernels.winograd_input``, ``kernels.winograd_output``). ``weight_grad`` is its adjoint
for ``dw``; ``dx`` is the forward pass of the swapped convolution
(``conv._winograd_dx_plan``).

F(2x2, 3x3) is the same with 4x4 tiles 2 apart: 16 GEMMs, 1/2.25 of im2col's flops, and
transformed weights of 16 rather than 36 times the filters and channels. In float64 it
serves layers of many channels whose planes have too few 4x4 blocks of outputs for
F(4x4, 3x3) to amortise its weights (14 x 14 with 512 channels; not 7 x 7, which its tiles
fit badly, below); in float32, layers of large planes (``_TILES``).

The transforms' constants cost precision: the rounding error grows with the weights and
inputs of a whole tile rather than of one 3x3 window. F(4x4, 3x3)'s (up to 8, and 1/24)
cost the most: on random normal data (64 and 256 channels) the largest error relative to
the largest output was 1.1e-14 to 1.2e-14 in float64 (im2col: 5e-16 to 8e-16; both
against long-double sums), far inside the 1e-10 the tests hold it to, but 7e-6 to 8e-6 in
float32 (im2col: 4e-7), too much to give up for speed, so float32 never takes it.
F(2x2, 3x3)'s are 0, +-1 and 1/2, and its error stays close to im2col's: forward 1.1e-15
in float64 (512 channels), 3.4e-7 to 7.4e-7 in float32 (64 and 256 channels; im2col 4.9e-7
to 5.7e-7); in float32 review measured dx and dw at 1.2-1.9x im2col's error (3.2e-7 to
8.8e-7 against 1.8e-7 to 5.6e-7). For the same reason a tile must never hold a value the
convolution does not multiply in: no stride (even along an axis with one output, whose
other rows a tile would read) and no input under 3 wide (some tap would meet only padding,
whose product the oracle drops exactly, while here that weight is mixed with the others
before the products).

The route also steps aside where it would not pay: few tiles (the weight transform then
costs more than it saves), few channels or filters (the GEMMs too thin), tiles that reach
so far past the plane's edge that they save less than 2x of im2col's multiply-adds
(``_saving``), or a workspace limit too small for one row of tiles. An algorithm whose
transformed weights do not fit the limit gives way to the next that pays (F(2x2, 3x3)'s
are 16/36 the size).

An inf or NaN meets other products here than in the oracle's sums (a tile mixes its 36
or 16 inputs), so a chunk whose output is not all finite gives the call back to im2col, which
propagates them as the oracle does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from .geometry import ConvGeometry
from .validation import ConvError
from .workspace import get_workspace_limit, scratch


class _Tile(NamedTuple):
    """One of Winograd's algorithms F(m x m, 3x3), and where it pays.

    Tiles of ``m + 2`` squared inputs, ``m`` apart; ``gg``, G g G^T of a 3x3 g as
    ``kron(G, G) @ g.ravel()``, one row per component, in the dtype it serves; taken from
    ``min_tiles`` tiles in the call on, with at least ``min_channels`` channels and filters,
    where im2col needs at least ``min_saving`` times its multiply-adds (``_saving``).
    """

    m: int
    gg: np.ndarray
    min_tiles: int
    min_channels: int
    min_saving: float

    @property
    def components(self) -> int:
        return (self.m + 2) ** 2

    def forced(self) -> _Tile:
        """This algorithm with no thresholds: taken wherever it applies (tests, scripts)."""
        return self._replace(min_tiles=0, min_channels=1, min_saving=0.0)

    def kernels(self) -> tuple[Callable, Callable, Callable]:
        """Its input transform, output transform and the output transform's adjoint."""
        from . import kernels

        if self.m == 4:
            return kernels.winograd_input, kernels.winograd_output, kernels.winograd_grad_output
        return kernels.winograd2_input, kernels.winograd2_output, kernels.winograd2_grad_output


# G of each, one row per transformed tap.
_G4 = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ]
)
_G2 = np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]])

# The algorithms of each dtype in order of preference, the first that pays taken. Where each
# pays was measured against im2col (docs/design.md, docs/scripts/winograd_thresholds.py):
# - F(4x4, 3x3) from 128 tiles on ran in 0.6-0.9 of im2col's time, while vgg_7x7_512
#   (8 samples of 7x7: 32 tiles) ran its forward+backward 1.1-1.45x slower, the weights'
#   transform and reading as costly as the tiles. Thin GEMMs (few channels or filters) run
#   far below the BLAS's speed: 8 channels 1.04x, 3 channels 3.2x. Not in float32, where
#   its error is 20x im2col's.
# - F(2x2, 3x3) has 4 times as many tiles, and transformed weights of 16 rather than 36
#   planes, but saves only 2.25x of the flops, and its GEMMs are thinner still. In float64
#   it paid only with 512 channels and filters or more (from 64 tiles on: forward+backward
#   0.79-0.96 of im2col's time; 32-49 tiles: 1.2-1.55), and lost with 384 and fewer at 128
#   tiles (1.04-1.30). In float32, where its error stays within 2x of im2col's, it paid on
#   large planes, from 2048 tiles on (0.37-1.01; below, 0.96-1.33).
# - Either only where its tiles save at least half of im2col's multiply-adds. On a 7 x 7
#   plane F(2x2, 3x3) computes 8 x 8 outputs for 49 and saves 1.72x, not 2.25x: with 512
#   channels and filters in float64 it ran 1.02-1.50x slower than im2col forward+backward
#   from 64 to 512 tiles (4 to 32 samples; an Intel AVX-512 machine, against im2col's
#   chunks of twice the weights), and 0.76-0.89 on 14 x 14 planes from 294 tiles on. The
#   same 2x holds F(4x4, 3x3) back only on planes under 6 x 6, where it was not measured.
_TILES = {
    np.dtype(np.float64): (
        _Tile(4, np.kron(_G4, _G4), 128, 16, 2.0),
        _Tile(2, np.kron(_G2, _G2), 64, 512, 2.0),
    ),
    np.dtype(np.float32): (_Tile(2, np.kron(_G2, _G2).astype(np.float32), 2048, 16, 2.0),),
}
# Chunks of samples of about this size: the GEMMs want many tiles, the transforms want their
# tiles in cache (cifar_3x3: 29 ms at 16 MiB, 31 at 8, 42 at 32).
_CHUNK_BYTES = 16 * 2**20
# And at least twice the transformed weights' bytes of data, so that each chunk's GEMMs
# amortise reading them (and, for dw, adding each chunk's part of their gradient): with
# 256 or 512 channels, chunks of one row of tiles ran the route 3-4x slower than im2col
# (8 samples of 256 x 14 x 14: forward 94 against 30 ms), twice the weights 0.6-0.75 of
# im2col's time (1x: 0.63-0.83, 4x: 0.58-0.83). docs/design.md has the table.
_DATA_PER_WEIGHTS = 2


def _tiles(geo: ConvGeometry, m: int) -> tuple[int, int]:
    """Tiles per sample down and across: each gives an m x m block of outputs."""
    oh, ow = geo.out_size
    return -(-oh // m), -(-ow // m)


def _saving(geo: ConvGeometry, m: int) -> float:
    """im2col's multiply-adds over the route's with tiles of ``m``: ``9 / components``
    for each of a tile's ``m * m`` outputs, less for the outputs that the tiles compute past
    the plane's edge and drop."""
    th, tw = _tiles(geo, m)
    return 9 * math.prod(geo.out_size) / ((m + 2) ** 2 * th * tw)


def _paying(geo: ConvGeometry, dtype: np.dtype) -> Iterator[_Tile]:
    """The algorithms that pay for ``geo`` in ``dtype`` (``_TILES``), in order of preference."""
    for t in _TILES.get(np.dtype(dtype), ()):
        th, tw = _tiles(geo, t.m)
        if (
            geo.batch * th * tw >= max(1, t.min_tiles)
            and min(geo.channels, geo.filters) >= t.min_channels
            and _saving(geo, t.m) >= t.min_saving
        ):
            yield t


class Plan(NamedTuple):
    """How the route computes a call: the algorithm, and its chunks ``(n0, n1, t0, t1)``,
    samples ``n0:n1`` and rows of tiles ``t0:t1`` of each."""

    tile: _Tile
    chunks: list[tuple[int, int, int, int]]


def _elements(geo: ConvGeometry, t: _Tile, samples: int, rows: int) -> tuple[int, int, int]:
    """A chunk's padded input, transformed input and products, in elements: ``rows`` rows
    of tiles ``t`` of each of ``samples`` samples."""
    tw = _tiles(geo, t.m)[1]
    tiles = samples * rows * tw
    return (
        samples * geo.channels * (t.m * rows + 2) * (t.m * tw + 2),
        t.components * geo.channels * tiles,
        t.components * geo.filters * tiles,
    )


# CONVCOL_WINOGRAD's values, as a switch; anything else is refused rather than read as "on"
# (a user who wrote "off" and got the route anyway would compare the wrong numbers).
_SWITCH = dict.fromkeys(("1", "on", "true", "yes"), True) | dict.fromkeys(
    ("0", "off", "false", "no"), False
)


def _enabled() -> bool:
    """Whether ``CONVCOL_WINOGRAD`` (unset or empty: on) leaves the route on."""
    text = os.environ.get("CONVCOL_WINOGRAD") or "1"
    value = _SWITCH.get(text.strip().lower())
    if value is None:
        raise ConvError(
            f"CONVCOL_WINOGRAD must be 0 or 1 (or off/on, false/true, no/yes), got {text!r}"
        )
    return value


def plan(geo: ConvGeometry, dtype: np.dtype, n_weights: int = 1) -> Plan | None:
    """The route's plan for ``geo`` in ``dtype``: the first algorithm that pays and fits
    the workspace limit with ``n_weights`` arrays of transformed weights (one for the
    forward pass, two for ``weight_grad``), and its chunks (``_chunks``); None where the
    route does not apply, would not pay or does not fit, and when ``CONVCOL_WINOGRAD`` is
    0 (or off, false, no).
    """
    if geo.nd != 2 or not _enabled():
        return None
    if not (
        not geo.channels_last
        and geo.groups == 1
        and geo.padding_mode == "zeros"
        and geo.kernel == (3, 3)
        # Not kernel_args()'s stride, 1 along an axis with one output: a tile would then
        # read input the convolution never does (review found 1e20 there spoiling it).
        and geo.stride == (1, 1)
        and geo.dilation == (1, 1)
        # At least 3 wide: else some tap meets only padding, whose product the oracle and
        # im2col drop exactly, while here its weight is mixed with the others before the
        # products (review: a 1-pixel-wide input and one tap of 1e20 gave all zeros).
        and min(geo.in_size) >= 3
    ):
        return None
    for t in _paying(geo, dtype):
        chunks = _chunks(geo, t, dtype.itemsize, n_weights)
        if chunks:
            return Plan(t, chunks)
    return None


def _chunks(
    geo: ConvGeometry, t: _Tile, size: int, n_weights: int
) -> list[tuple[int, int, int, int]]:
    """The chunks of ``geo`` in tiles ``t``, elements of ``size`` bytes, within the
    workspace limit beside ``n_weights`` arrays of transformed weights; empty if one row of
    tiles does not fit.

    Whole samples, as many as fit 16 MiB with the transformed weights, or twice the
    weights' size (``_DATA_PER_WEIGHTS``); else runs of tile rows of one sample, as
    im2col's row chunks (a 224 x 224 sample with 64 channels needs 142 MB). ``weight_grad``
    needs only one array of weights where the whole call is one chunk: that is tried first.
    """
    th = _tiles(geo, t.m)[0]
    if n_weights == 2:
        whole = _chunks(geo, t, size, 1)
        if len(whole) == 1:
            return whole
    one = t.components * geo.filters * geo.channels * size
    row = sum(_elements(geo, t, 1, 1)) * size
    limit = get_workspace_limit()
    if n_weights * one + row > limit:
        return []
    weights = n_weights * one
    budget = min(limit - weights, max(_CHUNK_BYTES - weights, _DATA_PER_WEIGHTS * one, row))
    sample = sum(_elements(geo, t, 1, th)) * size
    if sample <= budget:
        step = min(geo.batch, budget // sample)
        return [(n0, min(n0 + step, geo.batch), 0, th) for n0 in range(0, geo.batch, step)]
    # A run of R tile rows takes row + (R - 1) * more bytes (two rows of padding are shared).
    more = sum(_elements(geo, t, 1, 2)) * size - row
    step = min(th, 1 + (budget - row) // more)
    return [
        (n, n + 1, t0, min(t0 + step, th)) for n in range(geo.batch) for t0 in range(0, th, step)
    ]


def _chunked(
    x: np.ndarray, geo: ConvGeometry, route: Plan, n_weights: int
) -> tuple[list[np.ndarray], Iterator[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]]:
    """This thread's buffer laid out for the route: ``n_weights`` arrays of transformed
    weights (components, F, C), then for each chunk in turn, once its padded input has been
    transformed, ``(chunk, V, room)`` with ``V`` (components, C, tiles) and ``room``
    (components, F, tiles) for the products or their gradient."""
    from . import kernels

    t, chunks = route
    k, m = t.components, t.m
    F, C = geo.filters, geo.channels
    H, W = geo.in_size
    wp = m * _tiles(geo, m)[1] + 2
    pad = geo.kernel_args()[2]
    n0, n1, t0, t1 = chunks[0]  # the largest
    n_xp, n_v, n_f = _elements(geo, t, n1 - n0, t1 - t0)
    n_u = k * F * C
    buf = scratch((n_weights * n_u + n_xp + n_v + n_f) * x.itemsize).view(x.dtype)
    weights = [buf[i * n_u : (i + 1) * n_u].reshape(k, F, C) for i in range(n_weights)]
    buf = buf[n_weights * n_u :]
    transform = t.kernels()[0]

    def transformed() -> Iterator[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]:
        for chunk in chunks:
            n0, n1, t0, t1 = chunk
            nb, hp = n1 - n0, m * (t1 - t0) + 2
            e_xp, e_v, e_f = _elements(geo, t, nb, t1 - t0)
            xp = buf[:e_xp].reshape(nb, C, 1, 1, 1, 1, hp, wp)
            v = buf[n_xp : n_xp + e_v].reshape(k, C, -1)
            room = buf[n_xp + n_v : n_xp + n_v + e_f].reshape(k, F, -1)
            kernels.pad_region(x[n0:n1].reshape(nb, C, 1, H, W), xp, (0, m * t0), pad, (0,))
            transform(xp.reshape(nb, C, hp, wp), v)
            yield chunk, v, room

    return weights, transformed()


def forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry, route: Plan
) -> np.ndarray | None:
    """The convolution of ``x`` (N, C, H, W) by ``w`` (F, C, 3, 3), plus ``b``, by
    ``route``, ``plan(geo, x.dtype)``, or None if its output is not all finite (the caller
    then takes im2col). The arrays are C-contiguous, of a dtype in ``_TILES``."""
    t = route.tile
    F, C = geo.filters, geo.channels
    (u,), tiles = _chunked(x, geo, route, 1)
    bias = np.empty(0, x.dtype) if b is None else b
    out = np.empty(geo.out_shape, x.dtype)
    output = t.kernels()[1]
    with _quiet():
        np.matmul(t.gg, w.reshape(F * C, 9).T, out=u.reshape(t.components, F * C))
        for (n0, n1, t0, t1), v, prod in tiles:
            np.matmul(u, v, out=prod)
            block = out[n0:n1, :, t.m * t0 : t.m * t1]
            output(prod, block, bias)
            # The sum is finite when every output is (or, rarely, overflows: then im2col
            # too), without np.isfinite's boolean array outside the workspace limit.
            if not np.isfinite(block.sum()):
                return None
    return out


def weight_grad(
    dout: np.ndarray, x: np.ndarray, geo: ConvGeometry, route: Plan
) -> np.ndarray | None:
    """``dw`` of ``forward`` by ``route``, ``plan(geo, x.dtype, 2)``, or None if it is not
    all finite (the caller then takes im2col).

    The forward pass's adjoint: the products' gradient is ``Z = A dY A^T`` per tile
    (``kernels.winograd_grad_output``), the transformed weights' gradient the GEMMs
    ``Z[k] @ V[k].T``, summed over the chunks (a second array holds each chunk's part where
    there are several), and ``dw = G^T dU G``. Its GEMMs reduce over the tiles, a long
    reduction that OpenBLAS runs well.
    """
    t = route.tile
    F, C = geo.filters, geo.channels
    weights, tiles = _chunked(x, geo, route, 1 if len(route.chunks) == 1 else 2)
    du, part = weights[0], weights[-1]
    grad_output = t.kernels()[2]
    with _quiet():
        for i, ((n0, n1, t0, t1), v, z) in enumerate(tiles):
            grad_output(dout[n0:n1, :, t.m * t0 : t.m * t1], z)
            np.matmul(z, v.transpose(0, 2, 1), out=part if i else du)
            if i:
                du += part
        dw = np.matmul(du.reshape(t.components, F * C).T, t.gg).reshape(geo.w_shape)
        return dw if np.isfinite(dw.sum()) else None


def _quiet() -> np.errstate:
    """No warnings (nor errors, under ``np.errstate``) from an attempt that meets an inf
    or NaN: it gives the call back, and im2col then warns where the oracle would. A finite
    result met none (every product that an inf or NaN enters is inf or NaN)."""
    return np.errstate(invalid="ignore", over="ignore")
