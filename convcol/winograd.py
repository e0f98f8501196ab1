"""Winograd's minimal filtering F(4x4, 3x3): float64 3x3 convolutions at stride 1.

A 3x3 window slides over each 6x6 tile of the input to give a 4x4 block of outputs: 144
multiplications per channel and filter as a GEMM over im2col columns. Winograd's algorithm
(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015) needs 36:

    Y = A^T [(G g G^T) * (B^T d B)] A      (* elementwise, summed over channels)

so the convolution becomes 36 GEMMs ``U[k] @ V[k]``, each (F x C) @ (C x tiles), with a
quarter of im2col's flops: ``U = G g G^T`` the transformed weights (36, F, C), ``V`` the
transformed input tiles (36, C, tiles) and ``A^T M A`` each tile's outputs
(``kernels.winograd_input``, ``kernels.winograd_output``).

Only in float64. The transforms' constants (up to 8, and 1/24) cost precision: on random
normal data (64 and 256 channels), the largest error relative to the largest output was
1.1e-14 to 1.2e-14 in float64 (im2col: 5e-16 to 8e-16; both against long-double sums), far
inside the 1e-10 the tests hold it to, but 7e-6 to 8e-6 in float32 (im2col: 4e-7), too much
to give up for speed, so float32 stays on im2col.

The route also steps aside where it would not pay: few tiles (the weight transform then
costs more than it saves), few channels or filters (the GEMMs too thin), or a workspace
limit too small for one sample.

An inf or NaN meets other products here than in the oracle's sums (a tile mixes its 36
inputs), so a chunk whose output is not all finite gives the call back to im2col, which
propagates them as the oracle does.
"""

from __future__ import annotations

import math

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

# Where the route pays, measured in float64 (docs/design.md): the 3x3 layers of the
# benchmark suite with 64 channels ran in 0.4-0.7 of im2col's time, while vgg_7x7_512 (8
# samples of 7x7: 32 tiles) ran 2x slower (54.5 against 26.7 ms), the transform of its
# 512 x 512 weights alone taking 10.7 ms. Thin GEMMs (few channels or filters) run far below
# the BLAS's speed.
_MIN_TILES = 128
_MIN_CHANNELS = 16
# Chunks of samples of about this size: the GEMMs want many tiles, the transforms want their
# tiles in cache (cifar_3x3: 29 ms at 16 MiB, 31 at 8, 42 at 32).
_CHUNK_BYTES = 16 * 2**20


def _tiles(geo: ConvGeometry) -> tuple[int, int]:
    """Tiles per sample down and across: each gives a 4x4 block of outputs."""
    oh, ow = geo.out_size
    return -(-oh // 4), -(-ow // 4)


def _sample_elements(geo: ConvGeometry) -> tuple[int, int, int]:
    """One sample's padded input, transformed input and products, in elements."""
    th, tw = _tiles(geo)
    return (
        geo.channels * (4 * th + 2) * (4 * tw + 2),
        36 * geo.channels * th * tw,
        36 * geo.filters * th * tw,
    )


def chunk_samples(geo: ConvGeometry, dtype: np.dtype) -> int:
    """Samples per chunk on this route, or 0 where it does not apply or would not pay."""
    kernel, stride, *_ = geo.kernel_args()
    if not (
        dtype == np.float64
        and geo.nd == 2
        and not geo.channels_last
        and geo.groups == 1
        and geo.padding_mode == "zeros"
        and kernel == (1, 3, 3)
        and stride == (1, 1, 1)
        and geo.dilation == (1, 1)
        and min(geo.channels, geo.filters) >= _MIN_CHANNELS
        and geo.batch * math.prod(_tiles(geo)) >= _MIN_TILES
    ):
        return 0
    weights = 36 * geo.filters * geo.channels * dtype.itemsize
    sample = sum(_sample_elements(geo)) * dtype.itemsize
    room = get_workspace_limit() - weights
    if sample > room:
        return 0
    return min(geo.batch, room // sample, max(1, (_CHUNK_BYTES - weights) // sample))


def forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry
) -> np.ndarray | None:
    """The convolution of ``x`` (N, C, H, W) by ``w`` (F, C, 3, 3), plus ``b``, or None if
    its output is not all finite (the caller then takes im2col). ``geo`` must have
    ``chunk_samples(geo, x.dtype) > 0``; the arrays are C-contiguous float64."""
    from . import kernels

    nb = chunk_samples(geo, x.dtype)
    F, C = geo.filters, geo.channels
    H, W = geo.in_size
    th, tw = _tiles(geo)
    pad = geo.kernel_args()[2]
    n_xp, n_v, n_m = (nb * e for e in _sample_elements(geo))
    n_u = 36 * F * C
    buf = scratch((n_u + n_xp + n_v + n_m) * x.itemsize).view(x.dtype)
    u, buf = buf[:n_u].reshape(36, F, C), buf[n_u:]
    np.matmul(_GG, w.reshape(F * C, 9).T, out=u.reshape(36, F * C))
    bias = np.empty(0, x.dtype) if b is None else b
    out = np.empty(geo.out_shape, x.dtype)
    for n0 in range(0, geo.batch, nb):
        n1 = min(n0 + nb, geo.batch)
        m, tiles = n1 - n0, (n1 - n0) * th * tw
        xp = buf[: m * n_xp // nb].reshape(m, C, 1, 1, 1, 1, 4 * th + 2, 4 * tw + 2)
        v = buf[n_xp : n_xp + 36 * C * tiles].reshape(36, C, tiles)
        prod = buf[n_xp + n_v : n_xp + n_v + 36 * F * tiles].reshape(36, F, tiles)
        kernels.pad_region(x[n0:n1].reshape(m, C, 1, H, W), xp, (0, 0), pad, (0,))
        kernels.winograd_input(xp.reshape(m, C, 4 * th + 2, 4 * tw + 2), v)
        np.matmul(u, v, out=prod)
        kernels.winograd_output(prod, out[n0:n1], bias)
        if not np.isfinite(out[n0:n1]).all():
            return None
    return out
