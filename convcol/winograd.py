"""Winograd's minimal filtering F(4x4, 3x3): float64 3x3 convolutions at stride 1.

A 3x3 window slides over each 6x6 tile of the input to give a 4x4 block of outputs: 144
multiplications per channel and filter as a GEMM over im2col columns. Winograd's algorithm
(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015) needs 36:

    Y = A^T [(G g G^T) * (B^T d B)] A      (* elementwise, summed over channels)

so the convolution becomes 36 GEMMs ``U[k] @ V[k]``, each (F x C) @ (C x tiles), with a
quarter of im2col's flops: ``U = G g G^T`` the transformed weights (36, F, C), ``V`` the
transformed input tiles (36, C, tiles) and ``A^T M A`` each tile's outputs
(``kernels.winograd_input``, ``kernels.winograd_output``). ``weight_grad`` is its adjoint
for ``dw``; ``dx`` is the forward pass of the swapped convolution (``conv._winograd_dx_plan``).

Only in float64. The transforms' constants (up to 8, and 1/24) cost precision: the
rounding error grows with the weights and inputs of a whole 6x6 tile rather than of one 3x3
window. On random normal data (64 and 256 channels) the largest error relative to the
largest output was 1.1e-14 to 1.2e-14 in float64 (im2col: 5e-16 to 8e-16; both against
long-double sums), far inside the 1e-10 the tests hold it to, but 7e-6 to 8e-6 in float32
(im2col: 4e-7), too much to give up for speed, so float32 stays on im2col. For the same
reason a tile must never hold a value the convolution does not multiply in: no stride
(even along an axis with one output, whose other rows a tile would read) and no input
under 3 wide (some tap would meet only padding, whose product the oracle drops exactly,
while here that weight is mixed with the others before the products).

The route also steps aside where it would not pay: few tiles (the weight transform then
costs more than it saves), few channels or filters (the GEMMs too thin), or a workspace
limit too small for one sample.

An inf or NaN meets other products here than in the oracle's sums (a tile mixes its 36
inputs), so a chunk whose output is not all finite gives the call back to im2col, which
propagates them as the oracle does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from .geometry import ConvGeometry
from .workspace import get_workspace_limit, scratch

# G of F(4x4, 3x3), one row per transformed tap; G g G^T of a 3x3 g is kron(G, G) @ g.ravel().
_G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ]
)
_GG = np.kron(_G, _G)  # (36, 9)

# Where the route pays, measured in float64 (docs/design.md): from 128 tiles on it ran in
# 0.6-0.9 of im2col's time, while vgg_7x7_512 (8 samples of 7x7: 32 tiles) ran its
# forward+backward 1.45x slower, the weights' transform and reading as costly as the tiles.
# Thin GEMMs (few channels or filters) run far below the BLAS's speed: 8 channels 1.04x,
# 3 channels 3.2x.
_MIN_TILES = 128
_MIN_CHANNELS = 16
# Chunks of samples of about this size: the GEMMs want many tiles, the transforms want their
# tiles in cache (cifar_3x3: 29 ms at 16 MiB, 31 at 8, 42 at 32).
_CHUNK_BYTES = 16 * 2**20
# And at least twice the transformed weights' bytes of data, so that each chunk's 36 GEMMs
# amortise reading them (and, for dw, adding each chunk's part of their gradient): with
# 256 or 512 channels, chunks of one row of tiles ran the route 3-4x slower than im2col
# (8 samples of 256 x 14 x 14: forward 94 against 30 ms), twice the weights 0.6-0.75 of
# im2col's time (1x: 0.63-0.83, 4x: 0.58-0.83). docs/design.md has the table.
_DATA_PER_WEIGHTS = 2


def _tiles(geo: ConvGeometry) -> tuple[int, int]:
    """Tiles per sample down and across: each gives a 4x4 block of outputs."""
    oh, ow = geo.out_size
    return -(-oh // 4), -(-ow // 4)


def _elements(geo: ConvGeometry, samples: int, rows: int) -> tuple[int, int, int]:
    """A chunk's padded input, transformed input and products, in elements: ``rows`` rows
    of tiles of each of ``samples`` samples."""
    tw = _tiles(geo)[1]
    tiles = samples * rows * tw
    return (
        samples * geo.channels * (4 * rows + 2) * (4 * tw + 2),
        36 * geo.channels * tiles,
        36 * geo.filters * tiles,
    )


def plan(geo: ConvGeometry, dtype: np.dtype, n_weights: int = 1) -> list[tuple[int, int, int, int]]:
    """The chunks ``(n0, n1, t0, t1)`` of this route, samples ``n0:n1`` and rows of tiles
    ``t0:t1`` of each, within the workspace limit; empty where the route does not apply or
    would not pay.

    Whole samples, as many as fit 16 MiB with the transformed weights, or twice the
    weights' size (``_DATA_PER_WEIGHTS``); else runs of tile rows of one sample, as
    im2col's row chunks (a 224 x 224 sample with 64 channels needs 142 MB). ``n_weights``
    arrays of transformed weights (36, F, C) are held beside them: one for the forward
    pass, two for ``weight_grad``. None at all when ``CONVCOL_WINOGRAD=0``.
    """
    if geo.nd != 2 or os.environ.get("CONVCOL_WINOGRAD", "1").strip() == "0":
        return []
    th, tw = _tiles(geo)
    if not (
        dtype == np.float64
        and not geo.channels_last
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
        and min(geo.channels, geo.filters) >= _MIN_CHANNELS
        and geo.batch * th * tw >= max(1, _MIN_TILES)  # and not empty
    ):
        return []
    size = dtype.itemsize
    weights = n_weights * 36 * geo.filters * geo.channels * size
    row = sum(_elements(geo, 1, 1)) * size
    limit = get_workspace_limit()
    if weights + row > limit:
        return []
    one = 36 * geo.filters * geo.channels * size
    budget = min(limit - weights, max(_CHUNK_BYTES - weights, _DATA_PER_WEIGHTS * one, row))
    sample = sum(_elements(geo, 1, th)) * size
    if sample <= budget:
        step = min(geo.batch, budget // sample)
        return [(n0, min(n0 + step, geo.batch), 0, th) for n0 in range(0, geo.batch, step)]
    # A run of R tile rows takes row + (R - 1) * more bytes (two rows of padding are shared).
    more = sum(_elements(geo, 1, 2)) * size - row
    step = min(th, 1 + (budget - row) // more)
    return [
        (n, n + 1, t0, min(t0 + step, th)) for n in range(geo.batch) for t0 in range(0, th, step)
    ]


def _chunked(
    x: np.ndarray, geo: ConvGeometry, chunks: list[tuple[int, int, int, int]], n_weights: int
) -> tuple[list[np.ndarray], Iterator[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]]:
    """This thread's buffer laid out for the route: ``n_weights`` arrays (36, F, C), then for
    each chunk in turn, once its padded input has been transformed, ``(chunk, V, room)``
    with ``V`` (36, C, tiles) and ``room`` (36, F, tiles) for the products or their
    gradient."""
    from . import kernels

    F, C = geo.filters, geo.channels
    H, W = geo.in_size
    wp = 4 * _tiles(geo)[1] + 2
    pad = geo.kernel_args()[2]
    n0, n1, t0, t1 = chunks[0]  # the largest
    n_xp, n_v, n_f = _elements(geo, n1 - n0, t1 - t0)
    n_u = 36 * F * C
    buf = scratch((n_weights * n_u + n_xp + n_v + n_f) * x.itemsize).view(x.dtype)
    weights = [buf[i * n_u : (i + 1) * n_u].reshape(36, F, C) for i in range(n_weights)]
    buf = buf[n_weights * n_u :]

    def transformed() -> Iterator[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]:
        for chunk in chunks:
            n0, n1, t0, t1 = chunk
            m, hp = n1 - n0, 4 * (t1 - t0) + 2
            e_xp, e_v, e_f = _elements(geo, m, t1 - t0)
            xp = buf[:e_xp].reshape(m, C, 1, 1, 1, 1, hp, wp)
            v = buf[n_xp : n_xp + e_v].reshape(36, C, -1)
            room = buf[n_xp + n_v : n_xp + n_v + e_f].reshape(36, F, -1)
            kernels.pad_region(x[n0:n1].reshape(m, C, 1, H, W), xp, (0, 4 * t0), pad, (0,))
            kernels.winograd_input(xp.reshape(m, C, hp, wp), v)
            yield chunk, v, room

    return weights, transformed()


def forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    geo: ConvGeometry,
    chunks: list[tuple[int, int, int, int]],
) -> np.ndarray | None:
    """The convolution of ``x`` (N, C, H, W) by ``w`` (F, C, 3, 3), plus ``b``, in the
    ``chunks`` of ``plan(geo, x.dtype)`` (not empty), or None if its output is not all
    finite (the caller then takes im2col). The arrays are C-contiguous float64."""
    from . import kernels

    F, C = geo.filters, geo.channels
    (u,), tiles = _chunked(x, geo, chunks, 1)
    bias = np.empty(0, x.dtype) if b is None else b
    out = np.empty(geo.out_shape, x.dtype)
    with _quiet():
        np.matmul(_GG, w.reshape(F * C, 9).T, out=u.reshape(36, F * C))
        for (n0, n1, t0, t1), v, prod in tiles:
            np.matmul(u, v, out=prod)
            block = out[n0:n1, :, 4 * t0 : 4 * t1]
            kernels.winograd_output(prod, block, bias)
            # The sum is finite when every output is (or, rarely, overflows: then im2col
            # too), without np.isfinite's boolean array outside the workspace limit.
            if not np.isfinite(block.sum()):
                return None
    return out


def weight_grad(
    dout: np.ndarray, x: np.ndarray, geo: ConvGeometry, chunks: list[tuple[int, int, int, int]]
) -> np.ndarray | None:
    """``dw`` of ``forward``, in the ``chunks`` of ``plan(geo, x.dtype, 2)`` (not empty), or
    None if it is not all finite (the caller then takes im2col).

    The forward pass's adjoint: the products' gradient is ``Z = A dY A^T`` per tile
    (``kernels.winograd_grad_output``), the transformed weights' gradient the 36 GEMMs
    ``Z[k] @ V[k].T``, summed over the chunks, and ``dw = G^T dU G``. Its GEMMs reduce over
    the tiles, a long reduction that OpenBLAS runs well.
    """
    from . import kernels

    F, C = geo.filters, geo.channels
    (du, part), tiles = _chunked(x, geo, chunks, 2)
    du[...] = 0
    with _quiet():
        for (n0, n1, t0, t1), v, z in tiles:
            kernels.winograd_grad_output(dout[n0:n1, :, 4 * t0 : 4 * t1], z)
            np.matmul(z, v.transpose(0, 2, 1), out=part)
            du += part
        dw = np.matmul(du.reshape(36, F * C).T, _GG).reshape(geo.w_shape)
        return dw if np.isfinite(dw.sum()) else None


def _quiet() -> np.errstate:
    """No warnings (nor errors, under ``np.errstate``) from an attempt that meets an inf
    or NaN: it gives the call back, and im2col then warns where the oracle would. A finite
    result met none (every product that an inf or NaN enters is inf or NaN)."""
    return np.errstate(invalid="ignore", over="ignore")
