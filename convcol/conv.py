"""The fast path: convolution as im2col + GEMM, its gradients as two GEMMs + col2im.

For a batch chunk of ``nb`` samples, im2col lays each window of the input out as one column
(channels first) or one row (channels last) of a matrix ``cols``; with groups its C * K taps
split into G blocks, and ``w`` into G blocks of (F / G) filters, so that one stacked
``matmul`` does every group at once:

- forward: ``out[g] = w[g] @ cols[g]``
- backward: ``dw[g] += dout[g] @ cols[g].T``, ``dcols[g] = w[g].T @ dout[g]``, then
  ``dx = col2im(dcols)``, the scatter-add that is im2col's adjoint.

One GEMM covers the whole chunk (not one per sample), which keeps GEMMs large when the
spatial size is small; the chunk is as many samples as fit the workspace limit. A transposed
convolution is the adjoint of a convolution, so its forward pass is that convolution's ``dx``
and its backward pass that convolution's forward pass and ``dw``: no second engine.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import winograd
from .geometry import ConvGeometry, conv_geometry, source_index, transpose_geometry
from .validation import (
    ConvError,
    as_array,
    as_int,
    check_dout,
    compute_dtype,
    parse_conv_param,
    per_axis,
)
from .workspace import _KEEP_BYTES, get_workspace_limit, scratch

__all__ = [
    "ConvCache",
    "col2im",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "conv3d",
    "conv3d_backward",
    "conv_backward",
    "conv_forward",
    "conv_transpose1d",
    "conv_transpose1d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose3d",
    "conv_transpose3d_backward",
    "im2col",
]

IntOrTuple = int | tuple[int, ...]
Padding = int | str | tuple[Any, ...]


def _kernels() -> Any:
    # Imported on first use so that `import convcol` does not pay for importing Numba.
    from . import kernels

    return kernels


def _size(n: int) -> str:
    """A byte count for people: KiB below a MiB, MiB above."""
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


# im2col fills the columns a chunk at a time and the GEMM reads them straight back, so a
# chunk should stay in cache between the two, yet give the GEMM enough columns to run at
# speed. Measured on the dense shapes of the benchmark suite (docs/benchmarks.md), 8 MiB
# was best or within noise of the best of 1 to 64 MiB.
_CHUNK_BYTES = 8 * 2**20
# But at least this many times the weights' bytes (up to the buffer a thread keeps between
# calls, workspace._KEEP_BYTES, beyond which every call would fault a fresh one in): each
# chunk reads every weight (the forward pass, dx) and adds a weight-sized part to dw, and
# with fewer columns than weights those passes cost more than cache-sized columns save
# (vgg_7x7_512, whose 3 chunks of 8 MiB became one: docs/design.md, "Memory and chunks").
_CHUNKS_PER_WEIGHTS = 2
# Samples share a chunk (one GEMM, then a reorder of its output) only if the budget has
# room for this many (a batch, or a last chunk, of two still shares one). Where it had
# room for two, one at a time took 0.94-0.96 of the time on r50_3x3_s2 and 0.89-0.94 on
# googlenet_5x5's swapped convolution (float32, forward and forward+backward; the only
# suite shapes with room for two) in two runs, 0.96-1.24 in a noisier third.
_MIN_SAMPLES_SHARING = 3


@dataclass(frozen=True)
class _Chunk:
    """Samples ``n0:n1`` and, of each, output rows ``r0:r1`` (a row is OW positions)."""

    n0: int
    n1: int
    r0: int
    r1: int
    whole: bool  # whole samples: r0 == 0 and r1 is every row

    @property
    def columns(self) -> int:
        return (self.n1 - self.n0) * (self.r1 - self.r0)


def _rows(geo: ConvGeometry) -> tuple[int, int]:
    """(rows per sample, positions per row): a row is one (od, oh) line of OW outputs."""
    *_, out_size = geo.kernel_args()
    return out_size[0] * out_size[1], out_size[2]


# Memoised: every step of a chunk (its workspace, padding, im2col, col2im) asks again, and
# the chunks of a call share their geometry.
@functools.lru_cache(maxsize=256)
def _region(geo: ConvGeometry, chunk: _Chunk) -> tuple[tuple[int, int], tuple[int, ...]]:
    """Where the chunk's windows lie in the padded input, and the shape of one channel's
    copy of it.

    Returns ``(base, shape)``: the first output (depth, row) of the chunk, whose windows
    start the copy, and the shape (SD, SH, SW, DQ, HQ, WQ) of the phase-split plane that
    the kernels pad each channel into in turn (channels-first only).
    """
    kernel, stride, _, dilation, _, (OD, OH, OW) = geo.kernel_args()
    if 0 in (OD, OH, OW) or chunk.r1 <= chunk.r0:  # no outputs (transposed input of size 0)
        return (0, 0), (*stride, 0, 0, 0)
    # Whole samples, or a run of rows within one depth plane (_plan).
    (od0, oh0), (od1, oh1) = divmod(chunk.r0, OH), divmod(chunk.r1 - 1, OH)
    assert chunk.whole or od0 == od1, chunk
    last = (od1 - od0, oh1 - oh0, OW - 1)  # the last output, from the first
    # Each axis: the padded span the windows read, in steps of the stride (rounded up).
    q = [
        o + -(-((k - 1) * d + 1) // s)
        for o, k, d, s in zip(last, kernel, dilation, stride, strict=True)
    ]
    return (od0, oh0), (*stride, *q)


def _phases(geo: ConvGeometry) -> tuple[int, ...]:
    """The kernels' compile-time stride along W: a tuple of that many zeros (kernels.py)."""
    s = geo.kernel_args()[1][2]
    return (0,) * s if s <= 8 else ()


def _has_ones_row(geo: ConvGeometry) -> bool:
    """Whether the chunks' columns have room for a row of ones under them, for a bias
    that the forward GEMM adds (``_bias_folds``): channels first, one group, not depthwise."""
    return not geo.channels_last and geo.groups == 1 and not _is_depthwise(geo)


def _chunk_elements(geo: ConvGeometry, chunk: _Chunk) -> tuple[int, int]:
    """(elements of the chunk's columns, with a row of ones under them where
    ``_has_ones_row``; elements of one channel's plane of its padded input region, which
    im2col and col2im pad each channel into in turn).

    A depthwise convolution has no columns and copies one channel at a time: per thread,
    its wide scratch (a plane, and room for the taps' reach) takes their place, and two
    padded planes (input and gradient) the region's.
    """
    positions = chunk.columns * _rows(geo)[1]
    columns = (geo.channels * geo.window + int(_has_ones_row(geo))) * positions
    if geo.channels_last:
        return columns, 0
    _, shape = _region(geo, chunk)
    plane = math.prod(shape)
    if _is_depthwise(geo):
        return plane + max(_tap_offset_list(geo, shape)), 2 * plane
    return columns, plane


def _reorder_elements(geo: ConvGeometry, chunk: _Chunk) -> int:
    """Room to reorder a chunk's output block (_forward) or dout block (_gemm_backward)
    between (nb, G, Fg, P) and one GEMM's (G, Fg, nb * P): chunks of several samples,
    channels first. In the thread's buffer with the rest (``_workspace``): as a temporary
    of its own it went uncounted, and calls went 5-11 MB over a 4-9 MiB limit (review)."""
    several = chunk.whole and chunk.n1 - chunk.n0 > 1
    if not several or geo.channels_last or _is_depthwise(geo):
        return 0
    return geo.filters * chunk.columns * _rows(geo)[1]


def _chunk_bytes(geo: ConvGeometry, chunk: _Chunk, itemsize: int) -> int:
    return (sum(_chunk_elements(geo, chunk)) + _reorder_elements(geo, chunk)) * itemsize


def _row_bytes(geo: ConvGeometry, itemsize: int) -> int:
    """One output row's workspace, the least a chunk needs."""
    return _chunk_bytes(geo, _Chunk(0, 1, 0, 1, False), itemsize)


def _budget(geo: ConvGeometry, itemsize: int, shapes: str = "") -> tuple[int, int]:
    """(bytes of one output row's workspace, bytes per chunk); refuses a row over the limit.

    ``shapes`` names the caller's arrays in the message (``geo`` may be a transposed or
    channels-first version of them).
    """
    row_bytes = _row_bytes(geo, itemsize)
    limit = get_workspace_limit()
    shapes = shapes or f"x.shape={geo.x_shape}, w.shape={geo.w_shape}"
    if row_bytes > limit:
        raise ConvError(
            f"one output row needs {row_bytes} bytes ({_size(row_bytes)}) of workspace (the "
            "im2col columns or depthwise scratch it is computed in, and the padded input rows "
            f"it reads) but the workspace limit is {limit} "
            f"bytes ({_size(limit)}) ({shapes}); raise it "
            "with convcol.workspace_limit(nbytes) or the CONVCOL_WORKSPACE_LIMIT environment "
            "variable"
        )
    # (A depthwise convolution has no GEMM to read its weights.)
    weights = 0 if _is_depthwise(geo) else math.prod(geo.w_shape) * itemsize
    floor = max(_CHUNK_BYTES, row_bytes, min(_CHUNKS_PER_WEIGHTS * weights, _KEEP_BYTES))
    return row_bytes, min(limit, floor)


def _plan(geo: ConvGeometry, itemsize: int) -> list[_Chunk]:
    """The chunks a convolution's columns are built in, each within the workspace limit.

    In order, and each sample's first chunk, and only that one, starts at row 0: the
    backward passes zero ``dx`` sample by sample there (``_col2im_into``).
    """
    rows, _ = _rows(geo)
    row_bytes, budget = _budget(geo, itemsize)
    columns, plane = (e * itemsize for e in _chunk_elements(geo, _Chunk(0, 1, 0, rows, True)))
    if columns + plane <= budget:
        if _is_depthwise(geo):  # its workspace is one channel's, whatever the samples
            step = geo.batch
        else:
            # Each sample adds its columns and room to reorder the outputs
            # (_reorder_elements); the chunk keeps one padded plane for all of them.
            reorder = _reorder_elements(geo, _Chunk(0, 2, 0, rows, True)) // 2 * itemsize
            step = (budget - plane) // max(1, columns + reorder)
            if step < _MIN_SAMPLES_SHARING:
                step = 1
        return [
            _Chunk(n0, min(n0 + step, geo.batch), 0, rows, True) for n0 in range(0, geo.batch, step)
        ]
    # Runs of output rows of one sample, each within one depth plane so that its input
    # region is a band of rows. A run's workspace grows linearly with its length R (its
    # columns, and its band by `stride` rows a row): take the longest that fits.
    *_, (_, oh, _) = geo.kernel_args()
    two = _chunk_bytes(geo, _Chunk(0, 1, 0, 2, False), itemsize) if oh > 1 else row_bytes
    step = oh if two <= row_bytes else max(1, (budget - row_bytes) // (two - row_bytes) + 1)
    step = min(step, oh)
    return [
        _Chunk(n, n + 1, plane + r0, plane + min(r0 + step, oh), False)
        for n in range(geo.batch)
        for plane in range(0, rows, oh)
        for r0 in range(0, oh, step)
    ]


def _workspace(
    geo: ConvGeometry, chunk: _Chunk, dtype: np.dtype, ones: bool = False
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The chunk's columns (or depthwise scratch), a plane of its padded input region (two
    for a depthwise convolution) and reorder room (``_reorder_elements``, flat), in this
    thread's reusable buffer. With ``ones``
    (only where ``_has_ones_row``) the columns come with a last row of ones."""
    assert not ones or _has_ones_row(geo), geo
    n_cols, n_region = _chunk_elements(geo, chunk)
    flat = scratch(_chunk_bytes(geo, chunk, dtype.itemsize)).view(dtype)
    cols, region = flat[:n_cols], flat[n_cols : n_cols + n_region]
    taps, positions = geo.channels * geo.window, chunk.columns * _rows(geo)[1]
    room = flat[n_cols + n_region :][: _reorder_elements(geo, chunk)]
    if geo.channels_last:
        return cols.reshape(positions, taps), None, room
    _, shape = _region(geo, chunk)
    if _is_depthwise(geo):  # a wide scratch (or none), two padded planes
        return cols, region.reshape(2, *shape), room
    cols = cols.reshape(taps + int(_has_ones_row(geo)), positions)
    if ones:
        cols[-1] = 1  # (each chunk: the row moves with the chunk's number of positions)
    return (cols if ones else cols[:taps]), region.reshape(shape), room


def _as5d(a: np.ndarray, geo: ConvGeometry, channels: int) -> np.ndarray:
    """View a batch as 3-D spatial data, (n, C, D, H, W) or (n, D, H, W, C)."""
    size = (
        (1,) * (3 - geo.nd) + a.shape[1:-1]
        if geo.channels_last
        else ((1,) * (3 - geo.nd) + a.shape[2:])
    )
    if geo.channels_last:
        return a.reshape((a.shape[0], *size, channels))
    return a.reshape((a.shape[0], channels, *size))


def _im2col_into(
    x: np.ndarray, cols: np.ndarray, region: np.ndarray | None, geo: ConvGeometry, chunk: _Chunk
) -> None:
    """Fill ``cols`` with the chunk's windows of ``x`` (padding already zeros-only), channels
    first through ``region``, a plane of scratch."""
    kernel, stride, pad, dilation, _, out_size = geo.kernel_args()
    k = _kernels()
    x5 = _as5d(x[chunk.n0 : chunk.n1], geo, geo.channels)
    if region is None:
        k.im2col_cl(
            x5, cols, kernel, stride, pad, dilation, out_size, geo.groups, chunk.r0, chunk.r1
        )
        return
    base, shape = _region(geo, chunk)
    offs = _tap_offsets(geo, shape)
    k.im2col(x5, region, cols, offs, out_size, base, pad, _phases(geo), chunk.r0, chunk.r1)


def _col2im_into(
    cols: np.ndarray, region: np.ndarray | None, dx: np.ndarray, geo: ConvGeometry, chunk: _Chunk
) -> None:
    """Add the scatter of the chunk's ``cols`` into ``dx`` (``region`` is scratch), its
    samples zeroed first by their first chunk (rows from 0): zeroing all of ``dx`` up front
    was a pass over memory of its own (1 ms of r50_3x3_s2's float64 backward pass)."""
    kernel, stride, pad, dilation, _, out_size = geo.kernel_args()
    k = _kernels()
    dx5 = _as5d(dx[chunk.n0 : chunk.n1], geo, geo.channels)
    if chunk.r0 == 0:
        dx5[...] = 0
    if region is None:
        k.col2im_cl(
            cols, dx5, kernel, stride, pad, dilation, out_size, geo.groups, chunk.r0, chunk.r1
        )
        return
    base, shape = _region(geo, chunk)
    offs = _tap_offsets(geo, shape)
    k.col2im(cols, region, dx5, offs, out_size, base, pad, _phases(geo), chunk.r0, chunk.r1)


def _spatial_axes(geo: ConvGeometry) -> tuple[int, ...]:
    first = 1 if geo.channels_last else 2
    return tuple(range(first, first + geo.nd))


def _pad(x: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """``x`` padded by ``geo.padding_mode``: one gather through per-axis source indices."""
    index: list[Any] = [slice(None)] * x.ndim
    grids = np.ix_(
        *(
            source_index(n, lo, hi, geo.padding_mode)
            for n, (lo, hi) in zip(geo.in_size, geo.pads, strict=True)
        )
    )
    for ax, grid in zip(_spatial_axes(geo), grids, strict=True):
        index[ax] = grid
    return x[tuple(index)]


def _fold(dxp: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """The adjoint of ``_pad``: each padded pixel's gradient goes to its source pixel."""
    for ax, n, (lo, hi) in zip(_spatial_axes(geo), geo.in_size, geo.pads, strict=True):
        src = source_index(n, lo, hi, geo.padding_mode)
        moved = np.moveaxis(dxp, ax, 0)
        folded = moved[lo : lo + n].copy()
        for j in [*range(lo), *range(lo + n, lo + n + hi)]:  # the border only
            folded[src[j]] += moved[j]
        dxp = np.moveaxis(folded, 0, ax)
    return np.ascontiguousarray(dxp)


def _group_weights(w: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """``w`` as G stacked GEMM operands: (G, Fg, Cg*K), or (G, K*Cg, Fg) for channels last."""
    G = geo.groups
    Fg, Cg = geo.filters // G, geo.channels // G
    if geo.channels_last:
        return w.reshape(G, Fg, Cg, geo.window).transpose(0, 3, 2, 1).reshape(G, -1, Fg)
    return w.reshape(G, Fg, Cg * geo.window)


# Channels-last data is convolved in its own layout (no transposes, the GEMM's product is
# already channels-last) when each group has at least this many channels. With fewer, the
# runs im2col copies and the per-group GEMMs are too short and channels-first wins: for
# float32 (8, 128, 28, 28) 3x3, forward was 12.0 vs 15.0 ms (channels last vs first) at
# 16 channels per group but 15.1 vs 12.4 ms at 4 and 22 vs 11 ms at 2.
_MIN_GROUP_CHANNELS_LAST = 8


def _via_channels_first(geo: ConvGeometry) -> bool:
    return geo.channels_last and geo.channels // max(geo.groups, 1) < _MIN_GROUP_CHANNELS_LAST


def _first(a: np.ndarray) -> np.ndarray:
    """Channels-last ``a`` (N, ..., C) as a channels-first copy (N, C, ...)."""
    n, c, p = a.shape[0], a.shape[-1], math.prod(a.shape[1:-1])
    return _swap_last_axes(a.reshape(n, p, c)).reshape(n, c, *a.shape[1:-1])


def _last(a: np.ndarray) -> np.ndarray:
    """Channels-first ``a`` (N, C, ...) as a channels-last copy (N, ..., C)."""
    n, c, p = a.shape[0], a.shape[1], math.prod(a.shape[2:])
    return _swap_last_axes(a.reshape(n, c, p)).reshape(n, *a.shape[2:], c)


# Elements from which a transpose is shared between threads (about 0.2 ms of copying).
_MIN_THREAD_ELEMENTS = 2**20


def _swap_last_axes(a: np.ndarray) -> np.ndarray:
    """(N, A, B) -> a C-contiguous (N, B, A) copy: kernels.swap_last_axes in threads."""
    out = np.empty((a.shape[0], a.shape[2], a.shape[1]), a.dtype)
    if out.size == 0:
        return out
    if a.dtype not in (np.float32, np.float64) or not a.flags.c_contiguous:
        out[...] = a.transpose(0, 2, 1)  # (the compute dtypes come contiguous; any other)
        return out
    k = _kernels()
    units = a.shape[0] * -(-a.shape[1] // k.TILE)
    threads = min(_threads(), units, max(1, a.size // _MIN_THREAD_ELEMENTS))
    _in_threads(lambda u0, u1: k.swap_last_axes(a, out, u0, u1), units, threads)
    return out


def _out_block(a: np.ndarray, geo: ConvGeometry, chunk: _Chunk) -> np.ndarray:
    """The chunk's part of an output-shaped array as G stacked GEMM operands, a view.

    Channels first: (G, Fg, positions) of one sample, or (nb, G, Fg, P) of whole samples.
    Channels last: (G, positions, Fg), rows of consecutive positions.
    """
    G, Fg, P = geo.groups, geo.filters // geo.groups, geo.positions
    nb = chunk.n1 - chunk.n0
    _, width = _rows(geo)
    q0, q1 = chunk.r0 * width, chunk.r1 * width
    if geo.channels_last:
        rows = a[chunk.n0 : chunk.n1].reshape(nb, P, geo.filters)[:, q0:q1]
        return rows.reshape(nb * (q1 - q0), G, Fg).transpose(1, 0, 2)
    if chunk.whole and nb > 1:
        return a[chunk.n0 : chunk.n1].reshape(nb, G, Fg, P)
    return a[chunk.n0].reshape(G, Fg, P)[:, :, q0:q1]


def _forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry) -> np.ndarray:
    """The convolution; ``x``, ``w``, ``b`` C-contiguous, native, of the compute dtype."""
    if _via_channels_first(geo):
        return _last(_forward(_first(x), w, b, replace(geo, channels_last=False)))
    if geo.padding_mode != "zeros":
        x, geo = _pad(x, geo), geo.padded()
    if _is_depthwise(geo):
        return _depthwise_forward(x, w, b, geo)
    route = winograd.plan(geo, x.dtype)
    out = winograd.forward(x, w, b, geo, route) if route else None
    if out is not None:
        return out
    # (A call Winograd gave back has an inf or NaN: straight to im2col, exact as the oracle,
    # rather than through the swapped convolution, which would try Winograd once more.)
    if not route and _swap(geo, w):  # the output is the swapped convolution's dx
        out, _ = _backward(x, None, _swapped_weights(w, geo), _swapped(geo))
        return _add_bias(out, b, geo)  # type: ignore[arg-type]
    wg = _group_weights(w, geo)
    out = np.empty(geo.out_shape, x.dtype)
    if _is_pointwise(geo):
        np.matmul(*_pointwise_operands(x, wg, geo), out=_pointwise_view(out, geo, geo.filters))
        return _add_bias(out, b, geo)
    _im2col_pass(x, wg, geo, out=out, b=b)
    return out


def _column_groups(cols: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """A chunk's columns as G stacked GEMM operands, a view: (G, Cg*K, M) channels first,
    (G, M, K*Cg) channels last (M the chunk's positions)."""
    taps = geo.channels // geo.groups * geo.window
    if geo.channels_last:
        return cols.reshape(cols.shape[0], geo.groups, taps).transpose(1, 0, 2)
    return cols.reshape(geo.groups, taps, cols.shape[1])


def _gemm_block(a: np.ndarray, geo: ConvGeometry, chunk: _Chunk, room: np.ndarray) -> np.ndarray:
    """The chunk's block of the output-shaped ``a`` as one GEMM operand (``_out_block``),
    several samples copied into ``room`` as (G, Fg, nb * P)."""
    block = _out_block(a, geo, chunk)
    if block.ndim == 4:
        nb, G, Fg, P = block.shape
        room = room.reshape(G, Fg, nb * P)
        room.reshape(G, Fg, nb, P)[...] = block.transpose(1, 2, 0, 3)
        return room
    return block


def _transposed_dw_pays(filters: int, taps: int, positions: int, itemsize: int) -> bool:
    """Whether ``(cols @ g.T).T`` is the faster weight gradient GEMM than ``g @ cols.T``
    (filters x taps, a reduction over the chunk's positions).

    OpenBLAS runs the two orientations of this long, thin product at different speeds.
    Measured with the add into the gradient, over a grid of 16-192 filters and 27-1152 taps
    (8 MiB chunks, SkylakeX; docs/scripts/dw_gemm_orientation.py): with at most 64 filters
    and at least twice as many taps, the taps on the left take 0.45-0.91 of the time in
    float32, and in float64 0.65-0.92 up to 300 taps, 1.0-1.25 beyond (r50_conv1's 64 x
    147: 0.84 float32, 0.87 float64; deepspeech_conv1's 32 x 100: 0.64, 0.75). With more
    filters it gains little or loses (googlenet_5x5's swapped 192 x 800: 1.05x slower), and
    so with few positions, where the transposed add costs more than the product saves
    (vgg_7x7_512's 512 x 4608 over 343 positions: 2x slower). With AVX2 kernels (Haswell)
    the region gains less, 0.55-1.01, and the two layers' backward passes by no more than
    that machine's noise; the rule is not tuned per kernel.
    """
    if positions < 512 or filters > 64 or taps < 2 * filters:
        return False
    return itemsize != 8 or taps <= 300


def _add_weight_grad(dwg: np.ndarray, g: np.ndarray, cols_g: np.ndarray, geo: ConvGeometry) -> None:
    """``dwg += g @ cols.T`` per group (the layouts of ``_group_weights``)."""
    if geo.channels_last:
        dwg += np.matmul(cols_g.transpose(0, 2, 1), g)
    elif _transposed_dw_pays(g.shape[1], cols_g.shape[1], g.shape[2], g.dtype.itemsize):
        dwg += np.matmul(cols_g, g.transpose(0, 2, 1)).transpose(0, 2, 1)
    else:
        dwg += np.matmul(g, cols_g.transpose(0, 2, 1))


def _bias_folds(geo: ConvGeometry) -> bool:
    """Whether the forward GEMM adds the bias, as a last column of the weights against a
    row of ones below the columns (``_workspace``), rather than a pass over each chunk's
    output: a median 0.92 of r50_conv1's float64 forward pass, 0.89 of the classic case's
    (docs/design.md, "Forward"; docs/scripts/bias_in_gemm.py). Not where the weights
    outnumber the output positions, since the weights are copied to add the column
    (vgg_7x7_512: 1.05-1.14x slower)."""
    return _has_ones_row(geo) and geo.channels * geo.window <= geo.batch * geo.positions


def _im2col_pass(
    x: np.ndarray,
    wg: np.ndarray,
    geo: ConvGeometry,
    *,
    out: np.ndarray | None = None,
    b: np.ndarray | None = None,
    grad: np.ndarray | None = None,
) -> np.ndarray | None:
    """One pass over ``x``'s im2col columns, chunk by chunk: the convolution into ``out``
    (plus ``b``: by the GEMM itself where ``_bias_folds``, else after it), if given, and
    the weight gradient for the output gradient ``grad``, if given (returned in ``wg``'s
    layout), from the same columns."""
    G = geo.groups
    dwg = None if grad is None else np.zeros(wg.shape, x.dtype)
    w_out, fold = wg, False
    if b is not None and out is not None and _bias_folds(geo):
        w_out, fold = np.concatenate([wg, b.reshape(1, -1, 1)], axis=2), True
    for chunk in _plan(geo, x.dtype.itemsize):
        full, region, room = _workspace(geo, chunk, x.dtype, ones=fold)
        cols = full[:-1] if fold else full
        _im2col_into(x, cols, region, geo, chunk)
        cols_g = _column_groups(cols, geo)
        cols_out = full[None] if fold else cols_g  # (G is 1 where fold)
        if out is not None:
            block = _out_block(out, geo, chunk)
            if geo.channels_last:
                np.matmul(cols_g, wg, out=block)
            elif block.ndim == 3:
                # The GEMM writes straight into the output (rows P apart), no copy.
                np.matmul(w_out, cols_out, out=block)
            else:
                # Several small samples in one GEMM, then an output-sized reorder.
                nb, _, Fg, P = block.shape
                res = np.matmul(w_out, cols_out, out=room.reshape(G, Fg, nb * P))
                block[...] = res.reshape(G, Fg, nb, P).transpose(2, 0, 1, 3)
            if b is not None and not fold:  # while the chunk's output is in cache
                block += b.reshape((G, 1, -1) if geo.channels_last else (G, -1, 1))
        if dwg is not None:  # (after the forward pass's reorder: they share the room)
            _add_weight_grad(dwg, _gemm_block(grad, geo, chunk, room), cols_g, geo)
    return dwg


def _add_bias(out: np.ndarray, b: np.ndarray | None, geo: ConvGeometry) -> np.ndarray:
    if b is not None:
        out += b if geo.channels_last else b.reshape((-1,) + (1,) * geo.nd)
    return out


def _is_pointwise(geo: ConvGeometry) -> bool:
    # A 1x1 kernel, stride 1, no padding, and (unlike a transposed convolution's with
    # output_padding) an output as large as the input: the input is the column matrix.
    return (
        geo.window == 1
        and set(geo.stride) == {1}
        and not any(map(any, geo.pads))
        and geo.in_size == geo.out_size
    )


def _engine_geometry(geo: ConvGeometry) -> ConvGeometry | None:
    """The geometry the chunked engine computes ``geo`` in, or None if it needs no workspace.

    As ``_forward`` and ``_backward`` dispatch: narrow channels-last groups go channels-first,
    padding modes pad first, and a pointwise convolution uses no workspace.
    """
    if _via_channels_first(geo):
        geo = replace(geo, channels_last=False)
    if geo.padding_mode != "zeros":
        geo = geo.padded()
    return None if _is_pointwise(geo) and not _is_depthwise(geo) else geo


def _pointwise_view(a: np.ndarray, geo: ConvGeometry, channels: int) -> np.ndarray:
    """An input- or output-shaped array as G stacked matrices, a view.

    Channels first: (N, G, channels/G, P). Channels last: (G, N*P, channels/G).
    """
    G, P = geo.groups, geo.positions
    if geo.channels_last:
        return a.reshape(geo.batch * P, G, channels // G).transpose(1, 0, 2)
    return a.reshape(geo.batch, G, channels // G, P)


def _pointwise_operands(
    x: np.ndarray, wg: np.ndarray, geo: ConvGeometry
) -> tuple[np.ndarray, np.ndarray]:
    xv = _pointwise_view(x, geo, geo.channels)
    return (xv, wg) if geo.channels_last else (wg, xv)


def _backward(
    dout: np.ndarray,
    x: np.ndarray | None,
    w: np.ndarray,
    geo: ConvGeometry,
    *,
    want_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(dx, dw)`` of ``_forward``; ``dw`` only when ``x`` is given, ``dx`` on request."""
    if _via_channels_first(geo):
        dx, dw = _backward(
            _first(dout),
            None if x is None else _first(x),
            w,
            replace(geo, channels_last=False),
            want_dx=want_dx,
        )
        return (None if dx is None else _last(dx)), dw
    outer = geo
    if geo.padding_mode != "zeros":
        x, geo = (None if x is None else _pad(x, geo)), geo.padded()
    if _is_depthwise(geo):
        dx, dw = _depthwise_backward(dout, x, w, geo, want_dx)
    else:
        dx, dw = _gemm_backward(dout, x, w, geo, want_dx)
    if dx is not None and outer.padding_mode != "zeros":
        dx = _fold(dx, outer)
    return dx, dw


# With stride 1, a convolution (C -> F channels, padding p) and its dx are each other's
# transposes: dx is the forward pass of the swapped convolution (F -> C, the kernel flipped,
# padding dilation * (k - 1) - p), whose own dx is the forward pass. So either pass can be
# computed from the im2col columns of its input or those of the other side: C * K or F * K
# rows. The smaller wins once it saves a quarter: the columns are the pass's traffic
# besides its GEMM (googlenet_5x5, 192 -> 32 channels, float32: forward 53 -> 30 ms,
# backward 102 -> 79 ms; float64 forward 159 -> 56 ms). Below 1, so that a convolution and
# its swap never both pay (each would hand the pass to the other for ever).
_SWAP_SAVING = 0.75


def _swappable(geo: ConvGeometry) -> bool:
    """Whether ``_swapped(geo)`` exists: stride 1, no pad beyond the kernel's reach."""
    return (
        not geo.channels_last
        and set(geo.stride) == {1}
        and all(lo <= d * (k - 1) and hi <= d * (k - 1)
                for (lo, hi), k, d in zip(geo.pads, geo.kernel, geo.dilation, strict=True))
        and not _is_pointwise(geo)
    )  # fmt: skip


def _swap_pays(geo: ConvGeometry) -> bool:
    """Whether ``geo``'s forward pass (and its dx) costs less through ``_swapped(geo)``."""
    return _swappable(geo) and (
        geo.filters * geo.window * math.prod(geo.in_size)
        < _SWAP_SAVING * geo.channels * geo.window * math.prod(geo.out_size)
    )


def _swap_applies(geo: ConvGeometry, itemsize: int) -> bool:
    """Whether the swapped route pays for ``geo`` and one row of the swapped convolution's
    workspace fits the limit (it may need more than one of ``geo``'s, which the up-front
    check passed)."""
    return _swap_pays(geo) and _row_bytes(_swapped(geo), itemsize) <= get_workspace_limit()


def _swap(geo: ConvGeometry, w: np.ndarray) -> bool:
    """Whether to compute ``geo``'s forward pass (or dx) by the swapped route: when it fits
    and pays, and every weight is finite (the two routes meet the zero padding in
    different products, and an inf or NaN weight times a padded zero is NaN in one and
    absent from the other)."""
    return _swap_applies(geo, w.dtype.itemsize) and bool(np.isfinite(w).all())


def _winograd_dx_plan(geo: ConvGeometry, w: np.ndarray) -> winograd.Plan | None:
    """The plan of dx as the swapped convolution's forward pass by Winograd, or None where
    that route does not apply (then also for a weight that is not finite, as in ``_swap``;
    the route checks its own workspace, so no ``_row_bytes`` check)."""
    route = winograd.plan(_swapped(geo), w.dtype) if _swappable(geo) else None
    return route if route and np.isfinite(w).all() else None


def _swapped(geo: ConvGeometry) -> ConvGeometry:
    """The convolution whose forward pass is ``geo``'s dx, and whose dx ``geo``'s forward."""
    pads = tuple(
        (d * (k - 1) - lo, d * (k - 1) - hi)
        for (lo, hi), k, d in zip(geo.pads, geo.kernel, geo.dilation, strict=True)
    )
    return replace(
        geo,
        channels=geo.filters,
        filters=geo.channels,
        in_size=geo.out_size,
        out_size=geo.in_size,
        pads=pads,
    )


def _swapped_weights(w: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """``_swapped(geo)``'s weights: each group's filters and channels swapped, flipped."""
    G, F, C = geo.groups, geo.filters, geo.channels
    ws = w.reshape(G, F // G, C // G, *geo.kernel).swapaxes(1, 2)
    ws = ws[(..., *[slice(None, None, -1)] * geo.nd)]
    return np.ascontiguousarray(ws).reshape(C, F // G, *geo.kernel)


def _gemm_backward(
    dout: np.ndarray, x: np.ndarray | None, w: np.ndarray, geo: ConvGeometry, want_dx: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    G = geo.groups
    wg = _group_weights(w, geo)
    if _is_pointwise(geo):
        return _pointwise_backward(dout, x, wg, geo, want_dx)
    # Each gradient by its fastest route, Winograd or the swapped convolution (dw with dx
    # from dout's columns, or dx alone) where they apply, and whatever is left by im2col,
    # both in one pass over the columns. A route that gives a call back (for an inf or
    # NaN) is not followed by another that would meet them too.
    dw = dx = None
    route = None if x is None else winograd.plan(geo, dout.dtype, 2)
    if route:
        dw = winograd.weight_grad(dout, x, geo, route)  # type: ignore[arg-type]
    dx_route = _winograd_dx_plan(geo, w) if want_dx else None
    if dx_route:  # (the swapped weights, beyond the limit, are freed before im2col's dw)
        dx = winograd.forward(dout, _swapped_weights(w, geo), None, _swapped(geo), dx_route)
    need_dx = want_dx and not dx_route
    if x is not None and not route and _swap_applies(geo, dout.dtype.itemsize):
        swapped_dx, dw = _swapped_backward(dout, x, w, geo, need_dx)
        if swapped_dx is not None:
            dx = swapped_dx
    if need_dx and dx is None and _swap(geo, w):
        dx = _forward(dout, _swapped_weights(w, geo), None, _swapped(geo))
    if (dw is not None or x is None) and (dx is not None or not want_dx):
        return dx, dw
    dwg = np.zeros(wg.shape, dout.dtype) if x is not None and dw is None else None
    dx_cols = want_dx and dx is None
    if dx_cols:  # (zeroed chunk by chunk, _col2im_into: the plan has one per sample at least)
        dx = np.empty(geo.x_shape, dout.dtype)
    for chunk in _plan(geo, dout.dtype.itemsize):
        cols, region, room = _workspace(geo, chunk, dout.dtype)
        cols_g = _column_groups(cols, geo)
        block = _gemm_block(dout, geo, chunk, room)
        if dwg is not None:
            _im2col_into(x, cols, region, geo, chunk)  # type: ignore[arg-type]
            _add_weight_grad(dwg, block, cols_g, geo)
        if dx_cols:
            # The columns are spent: their buffer takes the column gradient.
            if geo.channels_last:
                np.matmul(block, wg.transpose(0, 2, 1), out=cols_g)
            else:
                np.matmul(wg.transpose(0, 2, 1), block, out=cols_g)
            _col2im_into(cols, region, dx, geo, chunk)  # type: ignore[arg-type]
    if dwg is not None:
        if geo.channels_last:
            Cg = geo.channels // G
            dwg = dwg.reshape(G, geo.window, Cg, geo.filters // G).transpose(0, 3, 2, 1)
        dw = np.ascontiguousarray(dwg).reshape(geo.w_shape)
    return dx, dw


def _swapped_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, geo: ConvGeometry, want_dx: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(dx, dw)`` from one pass over the columns of ``dout``, the swapped convolution's
    input: its weight gradient for the output gradient ``x`` is ``dw``, swapped and flipped
    (the form ``<conv(x, w), dout>`` is the same either way round), and its forward pass
    is ``dx``, if wanted and every weight is finite (as in ``_swap``). Either is None where
    not computed.

    This ``dw`` multiplies x by dout's padding where im2col's multiplies dout by x's, so an
    inf or NaN in either meets other products than the oracle's: the route is taken only
    when both are finite (their sums), and its ``dw`` kept only when finite (else it
    overflowed, and im2col's order decides as the oracle's does).
    """
    swapped = _swapped(geo)
    if _is_depthwise(swapped) or not _finite_sums(dout, x):
        return None, None  # (a depthwise convolution has no columns)
    want_dx = want_dx and bool(np.isfinite(w).all())
    out = np.empty(geo.x_shape, dout.dtype) if want_dx else None
    ws = _group_weights(_swapped_weights(w, geo), swapped)
    dws = _im2col_pass(dout, ws, swapped, out=out, grad=x)
    if dws is None or not _finite_sums(dws):
        return out, None
    return out, _swapped_weights(dws.reshape(swapped.w_shape), swapped)


def _finite_sums(*arrays: np.ndarray) -> bool:
    """Whether every element is finite, judged by each array's sum: no boolean array
    outside the workspace limit, and no warning (inf + -inf, or a sum that overflows, which
    counts as not finite: the caller then takes the route that matches the oracle)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return all(np.isfinite(a.sum()) for a in arrays)


def _pointwise_backward(
    dout: np.ndarray, x: np.ndarray | None, wg: np.ndarray, geo: ConvGeometry, want_dx: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The 1x1 backward pass: GEMMs straight on x and dout, no columns."""
    g = _pointwise_view(dout, geo, geo.filters)
    dx = dw = None
    if want_dx:
        dx = np.empty(geo.x_shape, dout.dtype)
        if geo.channels_last:
            np.matmul(g, wg.transpose(0, 2, 1), out=_pointwise_view(dx, geo, geo.channels))
        else:
            np.matmul(wg.transpose(0, 2, 1), g, out=_pointwise_view(dx, geo, geo.channels))
    if x is not None:
        xv = _pointwise_view(x, geo, geo.channels)
        if geo.channels_last:  # (G, Cg, Fg) over all N*P rows in one GEMM per group
            dw = np.matmul(xv.transpose(0, 2, 1), g).transpose(0, 2, 1)
        else:  # one GEMM per sample and group, each added in as it comes: one stacked
            # matmul and a sum held all N partial sums at once, memory that grew with the
            # batch outside the workspace limit (16 MiB for r50_1x1_256_1024 float64), and
            # was no faster (the suite's 1x1 backward passes, in one process: this way
            # took 0.96-1.01 of its time)
            dw = np.zeros(wg.shape, dout.dtype)
            part = np.empty_like(dw)
            for g_n, x_n in zip(g, xv, strict=True):
                dw += np.matmul(g_n, x_n.transpose(0, 2, 1), out=part)
        dw = np.ascontiguousarray(dw).reshape(geo.w_shape)
    return dx, dw


def _is_depthwise(geo: ConvGeometry) -> bool:
    # One input channel per group: the direct kernels (channels-first data only; narrow
    # groups of channels-last data were already moved to channels-first).
    return geo.groups > 1 and geo.groups == geo.channels and not geo.channels_last


def _wide_length(region_shape: tuple[int, ...], offs: tuple[int, ...]) -> int:
    """How far the depthwise kernels' wide rows run (kernels.py): every output of a plane,
    with the garbage columns between its rows, lies in the first DQ * HQ * WQ elements, and
    no tap may leave the plane."""
    plane = math.prod(region_shape)
    return max(0, min(math.prod(region_shape[3:]), plane - max(offs)))


# The most taps kernels.depthwise_forward unrolls in one group: above 16 LLVM stops
# unrolling and the tuple is indexed at run time, 40x slower.
_MAX_UNROLLED_TAPS = 16


def _tap_offsets(geo: ConvGeometry, region_shape: tuple[int, ...]) -> np.ndarray:
    """Where each tap (kd, kh, kw) starts in a flattened region plane, relative to its row."""
    return np.array(_tap_offset_list(geo, region_shape), np.int64)


@functools.lru_cache(maxsize=256)  # asked for by every chunk; np.indices costs ~10 us
def _tap_offset_list(geo: ConvGeometry, region_shape: tuple[int, ...]) -> tuple[int, ...]:
    kernel, _, _, dilation, _, _ = geo.kernel_args()
    sd, sh, sw, dq, hq, wq = region_shape
    a, b, c = np.indices(kernel).reshape(3, -1) * np.array(dilation)[:, None]
    phase = ((a % sd) * sh + b % sh) * sw + c % sw
    return tuple((phase * (dq * hq * wq) + ((a // sd) * hq + b // sh) * wq + c // sw).tolist())


@functools.lru_cache(maxsize=256)
def _tap_groups(offs: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The taps as equal groups for kernels.depthwise_forward: ``(bases, cols)``.

    Tap ``g * J + j`` starts at ``bases[g] + cols[j]``. The largest groups (of at most
    ``_MAX_UNROLLED_TAPS``) that split the taps in order into copies of one pattern: the
    whole of a 3x3 kernel, the rows of a 7x7, single taps at worst.
    """
    a = np.array(offs, np.int64)
    for j in range(min(len(a), _MAX_UNROLLED_TAPS), 1, -1):
        groups = a.reshape(-1, j) if len(a) % j == 0 else a[:0].reshape(0, j)
        pattern = groups - groups[:, :1]
        if len(groups) and (pattern == pattern[0]).all():
            return groups[:, 0].copy(), tuple(pattern[0].tolist())
    return a, (0,)


@functools.lru_cache(maxsize=256)
def _phase_taps(
    offs: tuple[int, ...], plane_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The taps by the phase of the padded plane they read, for kernels._gather_phases:
    ``(start, order, within)``, tap ``order[k]`` for ``k`` in ``start[p]:start[p + 1]``
    starting ``within[k]`` into phase ``p`` (``plane_shape``: (SD, SH, SW, DQ, HQ, WQ))."""
    phases, size = math.prod(plane_shape[:3]), math.prod(plane_shape[3:])
    phase, within = np.divmod(np.array(offs, np.int64), size)  # (_tap_offset_list)
    order = np.argsort(phase, kind="stable")
    start = np.searchsorted(phase[order], np.arange(phases + 1))
    return start.astype(np.int64), order.astype(np.int64), within[order]


def _threads() -> int:
    """Threads for the depthwise kernels: ``NUMBA_NUM_THREADS``, else ``OMP_NUM_THREADS``,
    else the CPUs this process may run on."""
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# A thread is worth starting for this many multiply-adds or more (about 0.1 ms): handing
# work to the pool and collecting it costs some 20-50 us.
_MIN_THREAD_WORK = 2**18
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    # A forked child has none of the parent's threads: a pool inherited from it would
    # queue work that nothing runs.
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _in_threads(task: Callable[[int, int], None], units: int, threads: int) -> None:
    """``task(u0, u1)`` over ``[0, units)`` split into ``threads`` parts, one of them run
    by the calling thread; returns when all are done, raising the first error."""
    global _pool, _pool_size
    bounds = [units * i // threads for i in range(threads + 1)]
    parts = list(itertools.pairwise(bounds))
    futures = []
    if threads > 1:
        with _pool_lock:
            if _pool is None or _pool_size < threads - 1:  # the thread count went up
                if _pool is not None:
                    _pool.shutdown(wait=False)  # its queued work still runs
                _pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="convcol")
                _pool_size = threads - 1
            pool = _pool
        futures = [pool.submit(task, *part) for part in parts[1:]]
    try:
        task(*parts[0])
    finally:
        for f in futures:  # wait for every part, even after an error: they write our arrays
            f.exception()
    for f in futures:
        f.result()


def _depthwise_threads(geo: ConvGeometry, chunk: _Chunk, itemsize: int) -> int:
    """How many threads share a depthwise chunk, each with its own workspace."""
    work = chunk.columns * _rows(geo)[1] * geo.filters * geo.window
    per_thread = max(1, _chunk_bytes(geo, chunk, itemsize))
    fit = get_workspace_limit() // per_thread
    return max(1, min(_threads(), geo.channels, work // _MIN_THREAD_WORK, fit))


def _depthwise_calls(geo: ConvGeometry, dtype: np.dtype, call: Callable[..., None]) -> None:
    """``call(chunk, base, offs, L, tmp, planes, c0, c1)`` for every chunk, channels in
    threads.

    ``offs`` are the taps' offsets (a tuple), ``L`` the length of the wide rows, ``tmp`` the
    wide scratch and ``planes`` two padded planes: this thread's workspace.
    """

    def task(chunk: _Chunk, c0: int, c1: int) -> None:
        base, shape = _region(geo, chunk)
        offs = _tap_offset_list(geo, shape)
        tmp, planes, _ = _workspace(geo, chunk, dtype)  # this thread's own
        call(chunk, base, offs, _wide_length(shape, offs), tmp, planes, c0, c1)

    for chunk in _plan(geo, dtype.itemsize):
        threads = _depthwise_threads(geo, chunk, dtype.itemsize)
        _in_threads(functools.partial(task, chunk), geo.channels, threads)


def _depthwise_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry
) -> np.ndarray:
    k = _kernels()
    _, _, pad, _, _, out_size = geo.kernel_args()
    out = np.empty(geo.out_shape, x.dtype)
    if out.size == 0:
        return out
    x5, w2 = _as5d(x, geo, geo.channels), w.reshape(geo.filters, geo.window)
    out3 = out.reshape(geo.batch, geo.filters, geo.positions)
    b = np.empty(0, x.dtype) if b is None else b  # the kernel's "no bias"

    def call(
        chunk: _Chunk, base: Any, offs: Any, L: int, tmp: Any, planes: Any, c0: int, c1: int
    ) -> None:
        bases, cols = _tap_groups(offs)
        k.depthwise_forward(
            x5, w2, b, out3, planes[0], tmp[:L], bases, cols, pad, _phases(geo), out_size,
            base, chunk.n0, chunk.n1, chunk.r0, chunk.r1, c0, c1,
        )  # fmt: skip

    _depthwise_calls(geo, x.dtype, call)
    return out


def _depthwise_backward(
    dout: np.ndarray, x: np.ndarray | None, w: np.ndarray, geo: ConvGeometry, want_dx: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    k = _kernels()
    _, _, pad, _, _, out_size = geo.kernel_args()
    w2 = w.reshape(geo.filters, geo.window)
    # (dx is zeroed by the kernel, each plane by its sample's first chunk, where there are
    # outputs: else there are no chunks.)
    dx = (np.empty if dout.size else np.zeros)(geo.x_shape, dout.dtype) if want_dx else None
    dw = np.zeros(w2.shape, dout.dtype) if x is not None else None
    none5 = np.empty((0, 1, 1, 1, 1), dout.dtype)  # the kernel's "not wanted"
    g3 = dout.reshape(geo.batch, geo.filters, geo.positions)
    # In the wide form dout is spread out with zeros in the garbage columns, and each
    # gradient reads those zeros against real data: dx against the weights, exact when
    # they are finite (else rows); dw against x, where an inf or NaN gives NaN (redone
    # along rows below).
    finite_w = bool(np.isfinite(w2).all())

    def run(dx5: np.ndarray, dw2: np.ndarray, wide_dw: bool, wide_dx: bool) -> None:
        x5 = _as5d(x, geo, geo.channels) if dw2.size else none5  # type: ignore[arg-type]

        def call(
            chunk: _Chunk, base: Any, offs: Any, L: int, tmp: Any, planes: Any, c0: int, c1: int
        ) -> None:
            bases, cols = _tap_groups(offs)
            k.depthwise_backward(
                g3, x5, w2, dx5, dw2, planes[0], planes[1], tmp, np.array(offs, np.int64),
                bases, tuple(-c for c in cols), _phase_taps(offs, planes.shape[1:]),
                L, wide_dw, wide_dx, pad, _phases(geo), out_size, base, chunk.n0, chunk.n1,
                chunk.r0, chunk.r1, c0, c1,
            )  # fmt: skip

        _depthwise_calls(geo, dout.dtype, call)

    if dout.size:
        dx5 = none5 if dx is None else _as5d(dx, geo, geo.channels)
        # (Not w2[:0]: a view of the caller's w, maybe read-only, which Numba cannot write.)
        dw2 = np.empty((0, geo.window), dout.dtype) if dw is None else dw
        run(dx5, dw2, True, finite_w)
        if dw is not None and not np.isfinite(dw).all():
            dw[...] = 0
            run(none5, dw, False, False)
    return dx, (None if dw is None else dw.reshape(geo.w_shape))


# The most bytes _bias_grad's vector of ones and partial sums may take: they are outside
# the workspace, and with large planes (or many samples and filters) the BLAS's lead is
# small next to them (review: 446 KB past a 1 MiB limit's bound with 256 x 256 planes).
_BIAS_GRAD_BYTES = 32 * 2**10


def _bias_grad(dout: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """``db``: ``dout`` (C-contiguous) summed over every axis but the channels'. Channels
    first, as products of its planes with a vector of ones on the BLAS, 2-5x faster than
    ``np.sum`` over those axes (float32 (8, 128, 56, 56): 0.24 against 0.64 ms), with the
    same infs and NaNs, where those arrays are small; else, and channels last (where it
    already adds whole rows), ``np.sum``."""
    if geo.channels_last:
        return dout.reshape(math.prod(dout.shape[:-1]), dout.shape[-1]).sum(axis=0)
    planes = dout.reshape(*dout.shape[:2], math.prod(dout.shape[2:]))
    if max(planes.shape[0] * planes.shape[1], planes.shape[2]) * dout.itemsize > _BIAS_GRAD_BYTES:
        return planes.sum(axis=(0, 2))
    return (planes @ np.ones(planes.shape[2], dout.dtype)).sum(axis=0)


def _prepare(
    nd: int,
    x: Any,
    w: Any,
    b: Any,
    dout: Any = None,
    *,
    transposed: bool = False,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, ConvGeometry]:
    """Validate, resolve the geometry, and convert to C-contiguous native compute-dtype arrays.

    ``np.ascontiguousarray`` copies only what needs it (non-contiguous, broadcast,
    byte-swapped or other-dtype input), so the kernels see one memory layout per dtype.
    """
    x = as_array("x", x)
    w = as_array("w", w)
    b = None if b is None else as_array("b", b)
    dout = None if dout is None else as_array("dout", dout)
    make = transpose_geometry if transposed else conv_geometry
    geo = make(x.shape, w.shape, None if b is None else b.shape, nd, **options)
    if dout is not None:
        # A transposed convolution's output is its convolution's input.
        expected = geo.x_shape if transposed else geo.out_shape
        check_dout(dout, expected, f"x.shape={x.shape}, w.shape={w.shape}")
    dtype = compute_dtype(x, w, b, dout)
    engine = _engine_geometry(geo)
    if engine is not None:  # refuse an impossible workspace before allocating
        _budget(engine, dtype.itemsize, f"x.shape={x.shape}, w.shape={w.shape}")

    def native(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a, dtype=dtype)

    return native(x), native(w), native(b), native(dout), geo  # type: ignore[return-value]


def _conv(nd: int, x: Any, w: Any, b: Any, **options: Any) -> np.ndarray:
    x, w, b, _, geo = _prepare(nd, x, w, b, **options)
    return _forward(x, w, b, geo)


def _conv_backward(
    nd: int, dout: Any, x: Any, w: Any, **options: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, w, _, dout, geo = _prepare(nd, x, w, None, dout, **options)
    dx, dw = _backward(dout, x, w, geo)  # type: ignore[arg-type]
    return dx, dw, _bias_grad(dout, geo)  # type: ignore[return-value,arg-type]


def _conv_transpose(nd: int, x: Any, w: Any, b: Any, **options: Any) -> np.ndarray:
    x, w, b, _, geo = _prepare(nd, x, w, b, transposed=True, **options)
    # x plays the convolution's dout, and the result is the convolution's dx.
    out, _ = _backward(x, None, w, geo)
    if b is not None:
        out += b if geo.channels_last else b.reshape((-1,) + (1,) * geo.nd)  # type: ignore[operator]
    return out  # type: ignore[return-value]


def _conv_transpose_backward(
    nd: int, dout: Any, x: Any, w: Any, **options: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, w, _, dout, geo = _prepare(nd, x, w, None, dout, transposed=True, **options)
    dx = _forward(dout, w, None, geo)  # type: ignore[arg-type]
    _, dw = _backward(x, dout, w, geo, want_dx=False)
    return dx, dw, _bias_grad(dout, geo)  # type: ignore[return-value,arg-type]


_AXES = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "k", 2: "kh, kw", 3: "kd, kh, kw"}
_OUT = {1: "Lo", 2: "Ho, Wo", 3: "Do, Ho, Wo"}
_SAME_PARAMS = """\
stride : int or tuple of {ints}
    Step between neighbouring windows, per spatial axis; >= 1.
padding : int, tuple of {ints} or of {pairs}, 'valid' or 'same'
    How much to pad each side of each spatial axis. ``'same'`` gives an output of
    ``ceil(n / stride)`` along each axis, padding ``total // 2`` before and the rest after
    (TensorFlow's rule; for stride 1 it equals PyTorch's ``'same'``).
dilation : int or tuple of {ints}
    Step between the taps of the kernel, per spatial axis; >= 1.
groups : int
    Channels and filters split into this many groups, each convolved separately.
padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}
    What the padding is filled with, as in PyTorch; the gradient of a copied border pixel
    flows back to the pixel it was copied from. 'reflect' needs each pad < the input size,
    'circular' each pad <= it.
data_format : {{'channels_first', 'channels_last'}}
    ``x``, the output and ``dx`` are (N, C, {axes}) or (N, {axes}, C); ``w`` keeps
    PyTorch's layout either way."""

_CONV_DOC = """{nd}-D convolution (cross-correlation) of a batch, with PyTorch's semantics.

Parameters
----------
x : array_like, shape (N, C, {axes})
    Input batch (or (N, {axes}, C) with ``data_format='channels_last'``).
w : array_like, shape (F, C // groups, {kernel})
    Filters, in PyTorch's layout.
b : array_like, shape (F,), optional
    Bias, one per filter.
{params}

Returns
-------
out : ndarray, shape (N, F, {out})
    Along each axis ``out = floor((n + before + after - dilation * (k - 1) - 1) / stride) + 1``:
    like PyTorch, windows that would run past the padded input are dropped. dtype: NumPy
    promotion of the inputs, integers computed in float64, float16 in float32.

Raises
------
ConvError
    On any invalid argument; the message names it, the shapes and the rule.

See Also
--------
conv{nd}d_backward : its gradients.
{example}"""

_CONV_BACKWARD_DOC = """Gradients of ``conv{nd}d`` with respect to ``x``, ``w`` and ``b``.

Parameters
----------
dout : array_like, shape of ``conv{nd}d``'s output
    Gradient of the loss with respect to ``conv{nd}d(x, w, ...)``.
x, w
    As given to ``conv{nd}d``.
{params}

Returns
-------
dx : ndarray, shape of ``x``
dw : ndarray, shape of ``w``
db : ndarray, shape (F,)
    ``dout`` summed over the batch and positions (whether or not a bias was used).
{example}"""

_TRANSPOSE_PARAMS = """\
stride : int or tuple of {ints}
    As for the convolution this is the transpose of; >= 1.
padding : int, tuple of {ints} or of {pairs}
    Removed from each side of the full output (``'same'`` is not defined here).
output_padding : int or tuple of {ints}
    Extra size added after the last position of each axis, to pick one of the input sizes a
    strided convolution maps to the same output size; must be < stride or < dilation.
dilation : int or tuple of {ints}
    As for the convolution this is the transpose of; >= 1.
groups : int
    Input channels and output channels split into this many groups.
padding_mode : 'zeros'
    The only mode defined for a transposed convolution (as in PyTorch).
data_format : {{'channels_first', 'channels_last'}}
    As for ``conv{nd}d``."""

_TRANSPOSE_DOC = """{nd}-D transposed convolution, with PyTorch's semantics and weight layout.

The adjoint of ``conv{nd}d``: every input pixel scatters ``x * w`` onto its window
of the output, so ``conv_transpose{nd}d(g, w)`` is the ``dx`` of ``conv{nd}d(x, w)`` for
upstream gradient ``g``. Often used to upsample.

Parameters
----------
x : array_like, shape (N, C_in, {axes})
w : array_like, shape (C_in, C_out // groups, {kernel})
b : array_like, shape (C_out,), optional
{params}

Returns
-------
out : ndarray, shape (N, C_out, {out})
    Along each axis ``out = (n - 1) * stride - before - after + dilation * (k - 1) +
    output_padding + 1``.

See Also
--------
conv_transpose{nd}d_backward : its gradients.
{example}"""

_TRANSPOSE_BACKWARD_DOC = """Gradients of ``conv_transpose{nd}d`` for ``x``, ``w`` and ``b``.

Parameters
----------
dout : array_like, shape of ``conv_transpose{nd}d``'s output
x, w
    As given to ``conv_transpose{nd}d``.
{params}

Returns
-------
dx : ndarray, shape of ``x``
    The convolution ``conv{nd}d`` of ``dout`` with ``w``.
dw : ndarray, shape of ``w``
db : ndarray, shape (C_out,)
{example}"""


def _doc(template: str, params: str, nd: int, example: str) -> str:
    fields = {
        "nd": nd,
        "axes": _AXES[nd],
        "kernel": _KERNEL[nd],
        "out": _OUT[nd],
        "ints": "1 int" if nd == 1 else f"{nd} ints",
        "pairs": "1 (before, after) pair" if nd == 1 else f"{nd} (before, after) pairs",
    }
    return template.format(params=params.format(**fields), example=example, **fields)


_EXAMPLES = {
    "conv1d": """
Examples
--------
>>> import numpy as np, convcol
>>> convcol.conv1d(np.arange(6.0).reshape(1, 1, 6), np.ones((1, 1, 3)), stride=2)
array([[[3., 9.]]])
>>> convcol.conv1d(np.arange(4.0).reshape(1, 1, 4), np.ones((1, 1, 3)), padding=1,
...                padding_mode="reflect")   # pads to [1, 0, 1, 2, 3, 2]
array([[[2., 3., 6., 7.]]])
""",
    "conv2d": """
Examples
--------
>>> import numpy as np, convcol
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> w = np.ones((1, 1, 2, 2))
>>> convcol.conv2d(x, w, stride=2)
array([[[[10., 18.],
         [42., 50.]]]])
>>> convcol.conv2d(x, w, padding="same").shape
(1, 1, 4, 4)
>>> convcol.conv2d(x.transpose(0, 2, 3, 1), w, stride=2, data_format="channels_last")[..., 0]
array([[[10., 18.],
        [42., 50.]]])
""",
    "conv3d": """
Examples
--------
>>> import numpy as np, convcol
>>> convcol.conv3d(np.ones((2, 3, 4, 5, 6)), np.ones((8, 3, 3, 3, 3)), padding=1).shape
(2, 8, 4, 5, 6)
""",
    "conv2d_backward": """
Examples
--------
>>> import numpy as np, convcol
>>> x = np.arange(9.0).reshape(1, 1, 3, 3)
>>> w = np.ones((1, 1, 2, 2))
>>> dx, dw, db = convcol.conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
>>> dx[0, 0]
array([[1., 2., 1.],
       [2., 4., 2.],
       [1., 2., 1.]])
>>> dw[0, 0], db
(array([[ 8., 12.],
       [20., 24.]]), array([4.]))
""",
    "conv_transpose1d": """
Examples
--------
>>> import numpy as np, convcol
>>> convcol.conv_transpose1d(np.array([[[1.0, 2.0]]]), np.array([[[1.0, 10.0, 100.0]]]),
...                          stride=2)
array([[[  1.,  10., 102.,  20., 200.]]])
""",
    "conv1d_backward": """
Examples
--------
>>> import numpy as np, convcol
>>> x, w = np.arange(5.0).reshape(1, 1, 5), np.ones((1, 1, 2))
>>> dx, dw, db = convcol.conv1d_backward(np.ones((1, 1, 4)), x, w)
>>> dx, dw, db                     # each pixel is in 1 or 2 windows; dw sums the windows
(array([[[1., 2., 2., 2., 1.]]]), array([[[ 6., 10.]]]), array([4.]))
""",
    "conv3d_backward": """
Examples
--------
>>> import numpy as np, convcol
>>> x, w = np.ones((2, 3, 4, 4, 4)), np.ones((5, 3, 3, 3, 3))
>>> dx, dw, db = convcol.conv3d_backward(np.ones((2, 5, 2, 2, 2)), x, w)
>>> dx.shape, dw.shape, db
((2, 3, 4, 4, 4), (5, 3, 3, 3, 3), array([16., 16., 16., 16., 16.]))
""",
    "conv_transpose1d_backward": """
Examples
--------
>>> import numpy as np, convcol
>>> x, w = np.array([[[1.0, 2.0]]]), np.array([[[1.0, 10.0, 100.0]]])
>>> dx, dw, db = convcol.conv_transpose1d_backward(np.ones((1, 1, 5)), x, w, stride=2)
>>> dx, dw, db                     # dx is conv1d(dout, w, stride=2)
(array([[[111., 111.]]]), array([[[3., 3., 3.]]]), array([5.]))
""",
    "conv_transpose2d_backward": """
Examples
--------
>>> import numpy as np, convcol
>>> x, w = np.ones((2, 4, 3, 3)), np.ones((4, 2, 2, 2))
>>> dx, dw, db = convcol.conv_transpose2d_backward(np.ones((2, 2, 6, 6)), x, w, stride=2)
>>> dx.shape, dw.shape, db
((2, 4, 3, 3), (4, 2, 2, 2), array([72., 72.]))
""",
    "conv_transpose3d": """
Examples
--------
>>> import numpy as np, convcol
>>> convcol.conv_transpose3d(np.ones((1, 8, 4, 4, 4)), np.ones((8, 2, 2, 2, 2)),
...                          stride=2).shape
(1, 2, 8, 8, 8)
""",
    "conv_transpose3d_backward": """
Examples
--------
>>> import numpy as np, convcol
>>> x, w = np.ones((1, 2, 2, 2, 2)), np.ones((2, 3, 2, 2, 2))
>>> dx, dw, db = convcol.conv_transpose3d_backward(np.ones((1, 3, 4, 4, 4)), x, w, stride=2)
>>> dx.shape, dw.shape, db
((1, 2, 2, 2, 2), (2, 3, 2, 2, 2), array([64., 64., 64.]))
""",
    "conv_transpose2d": """
Examples
--------
>>> import numpy as np, convcol
>>> x = np.ones((1, 4, 5, 5))
>>> w = np.ones((4, 2, 3, 3))          # (C_in, C_out // groups, kh, kw)
>>> convcol.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1).shape
(1, 2, 10, 10)
""",
}


def _public(fn: Callable[..., Any], name: str, template: str, params: str, nd: int) -> Any:
    """Name and document one of the functions the factories below make."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = _doc(template, params, nd, _EXAMPLES.get(name, ""))
    return fn


# One factory per kind; each makes the 1-D, 2-D and 3-D function, which differ only in rank.
def _make_conv(nd: int) -> Callable[..., np.ndarray]:
    def conv(
        x: Any,
        w: Any,
        b: Any = None,
        *,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        data_format: str = "channels_first",
    ) -> np.ndarray:
        return _conv(
            nd,
            x,
            w,
            b,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            padding_mode=padding_mode,
            data_format=data_format,
        )

    return _public(conv, f"conv{nd}d", _CONV_DOC, _SAME_PARAMS, nd)


def _make_conv_backward(nd: int) -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    def conv_backward(
        dout: Any,
        x: Any,
        w: Any,
        *,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        data_format: str = "channels_first",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _conv_backward(
            nd,
            dout,
            x,
            w,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            padding_mode=padding_mode,
            data_format=data_format,
        )

    return _public(conv_backward, f"conv{nd}d_backward", _CONV_BACKWARD_DOC, _SAME_PARAMS, nd)


def _make_conv_transpose(nd: int) -> Callable[..., np.ndarray]:
    def conv_transpose(
        x: Any,
        w: Any,
        b: Any = None,
        *,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        output_padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        data_format: str = "channels_first",
    ) -> np.ndarray:
        return _conv_transpose(
            nd,
            x,
            w,
            b,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
            padding_mode=padding_mode,
            data_format=data_format,
        )

    return _public(conv_transpose, f"conv_transpose{nd}d", _TRANSPOSE_DOC, _TRANSPOSE_PARAMS, nd)


def _make_conv_transpose_backward(
    nd: int,
) -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    def conv_transpose_backward(
        dout: Any,
        x: Any,
        w: Any,
        *,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        output_padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        data_format: str = "channels_first",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _conv_transpose_backward(
            nd,
            dout,
            x,
            w,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
            padding_mode=padding_mode,
            data_format=data_format,
        )

    return _public(
        conv_transpose_backward,
        f"conv_transpose{nd}d_backward",
        _TRANSPOSE_BACKWARD_DOC,
        _TRANSPOSE_PARAMS,
        nd,
    )


conv1d, conv2d, conv3d = (_make_conv(nd) for nd in (1, 2, 3))
conv1d_backward, conv2d_backward, conv3d_backward = (_make_conv_backward(nd) for nd in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (
    _make_conv_transpose(nd) for nd in (1, 2, 3)
)
conv_transpose1d_backward, conv_transpose2d_backward, conv_transpose3d_backward = (
    _make_conv_transpose_backward(nd) for nd in (1, 2, 3)
)


@dataclass(frozen=True, eq=False)
class ConvCache:
    """What ``conv_forward`` keeps for ``conv_backward``.

    It holds references to ``x`` and ``w`` (converted to the compute dtype if they were not
    already), like the tuple cs231n's naive layer keeps: changing them in place between the
    two calls changes the gradients.
    """

    x: np.ndarray
    w: np.ndarray
    has_bias: bool
    geometry: ConvGeometry


def conv_forward(
    x: Any, w: Any, b: Any, conv_param: dict[str, Any]
) -> tuple[np.ndarray, ConvCache]:
    """cs231n's ``conv_forward_naive`` signature, computed by the fast path.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    w : array_like, shape (F, C // groups, HH, WW)
    b : array_like, shape (F,), or None
    conv_param : dict
        ``'stride'`` (default 1) and ``'pad'`` (default 0), and optionally ``'dilation'``
        and ``'groups'``. Each may be per-axis (``(sh, sw)``), and ``'pad'`` takes every form
        ``conv2d``'s ``padding`` does. Unknown keys are an error.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
    cache : ConvCache
        Pass it to ``conv_backward``.

    Examples
    --------
    A cs231n notebook can swap it in directly:

    >>> from convcol import conv_forward as conv_forward_fast
    >>> from convcol import conv_backward as conv_backward_fast
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, w, b = rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(4, 3, 3, 3)), np.zeros(4)
    >>> out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    >>> dx, dw, db = conv_backward_fast(np.ones_like(out), cache)
    >>> out.shape, dx.shape, dw.shape, db.shape
    ((2, 4, 8, 8), (2, 3, 8, 8), (4, 3, 3, 3), (4,))
    """
    options = parse_conv_param(conv_param)
    x, w, b, _, geo = _prepare(2, x, w, b, **options)
    return _forward(x, w, b, geo), ConvCache(x, w, b is not None, geo)


def conv_backward(dout: Any, cache: ConvCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cs231n's ``conv_backward_naive`` signature: ``(dx, dw, db)`` from ``dout`` and the cache.

    ``cache`` must be the one ``conv_forward`` returned for this ``dout``'s forward pass;
    anything else (a cs231n tuple, a cache from another layer whose output shape differs)
    raises ``ConvError``.

    Examples
    --------
    >>> import numpy as np, convcol
    >>> out, cache = convcol.conv_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)),
    ...                                   np.zeros(1), {"stride": 1, "pad": 0})
    >>> dx, dw, db = convcol.conv_backward(np.ones_like(out), cache)
    >>> dx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> convcol.conv_backward(np.ones((1, 1, 3, 3)), cache)
    Traceback (most recent call last):
    ...
    convcol.ConvError: dout.shape=(1, 1, 3, 3) does not match the forward output shape ...
    """
    if not isinstance(cache, ConvCache):
        raise ConvError(
            "cache must be the ConvCache returned by convcol.conv_forward, got "
            f"{type(cache).__name__} (a cache from another implementation cannot be used)"
        )
    geo = cache.geometry
    d = as_array("dout", dout)
    check_dout(
        d,
        geo.out_shape,
        f"cache from conv_forward with x.shape={geo.x_shape}, w.shape={geo.w_shape}",
    )
    dtype = compute_dtype(cache.x, d)
    x, w = (np.ascontiguousarray(a, dtype=dtype) for a in (cache.x, cache.w))
    d = np.ascontiguousarray(d, dtype=dtype)
    dx, dw = _backward(d, x, w, geo)
    return dx, dw, _bias_grad(d, geo)  # type: ignore[return-value]


def _patch_geometry(
    x_shape: tuple[int, ...], kernel_size: Any, stride: Any, padding: Any, dilation: Any
) -> ConvGeometry:
    if len(x_shape) != 4:
        raise ConvError(f"x must be 4-D (N, C, H, W), got {len(x_shape)}-D shape {x_shape}")
    kernel = per_axis("kernel_size", kernel_size, 2, 1)
    return conv_geometry(
        x_shape,
        (1, x_shape[1], *kernel),
        None,
        2,
        stride=stride,
        padding=padding,
        dilation=dilation,
    )


def im2col(
    x: Any,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: Any = 0,
    dilation: IntOrTuple = 1,
) -> np.ndarray:
    """Lay every (zero-padded) window of ``x`` out as a column of a matrix.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride, padding, dilation
        As for ``conv2d``.

    Returns
    -------
    cols : ndarray, shape (C * kh * kw, N * Ho * Wo)
        Row ``(c * kh + i) * kw + j`` holds tap ``(i, j)`` of channel ``c``; column
        ``(n * Ho + oh) * Wo + ow`` is the window of output position ``(oh, ow)`` of sample
        ``n``. So ``w.reshape(F, -1) @ cols`` is the convolution, laid out as (F, N, Ho, Wo).

    Examples
    --------
    >>> import numpy as np, convcol
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> convcol.im2col(x, 2)
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    arr = as_array("x", x)
    geo = _patch_geometry(arr.shape, kernel_size, stride, padding, dilation)
    arr = np.ascontiguousarray(arr, dtype=compute_dtype(arr))
    chunk = _Chunk(0, geo.batch, 0, _rows(geo)[0], True)
    cols = np.empty((geo.channels * geo.window, geo.batch * geo.positions), arr.dtype)
    _im2col_into(arr, cols, np.empty(_region(geo, chunk)[1], arr.dtype), geo, chunk)
    return cols


def col2im(
    cols: Any,
    x_shape: tuple[int, int, int, int],
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: Any = 0,
    dilation: IntOrTuple = 1,
) -> np.ndarray:
    """The adjoint of ``im2col``: scatter-add columns back onto an image.

    Every entry of ``cols`` is added to the input pixel ``im2col`` read it from; entries
    that came from padding are dropped. It is *not* the inverse of ``im2col``: a pixel
    covered by several windows receives the sum of all of them, which is exactly the
    gradient ``dx`` when ``cols`` is the gradient of the columns. Formally,
    ``<im2col(x), c> == <x, col2im(c)>`` for all ``x`` and ``c``.

    Parameters
    ----------
    cols : array_like, shape (C * kh * kw, N * Ho * Wo)
        In ``im2col``'s layout.
    x_shape : (N, C, H, W)
        The shape of the image the columns came from.
    kernel_size, stride, padding, dilation
        As given to ``im2col``.

    Returns
    -------
    ndarray, shape ``x_shape``

    Examples
    --------
    >>> import numpy as np, convcol
    >>> convcol.col2im(np.ones((4, 4)), (1, 1, 3, 3), 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    c = as_array("cols", cols)
    if not isinstance(x_shape, (tuple, list)) or len(x_shape) != 4:
        raise ConvError(f"x_shape must be a tuple of 4 ints (N, C, H, W), got {x_shape!r}")
    shape = tuple(as_int(f"x_shape[{i}]", n, 0) for i, n in enumerate(x_shape))
    geo = _patch_geometry(shape, kernel_size, stride, padding, dilation)
    expected = (geo.channels * geo.window, geo.batch * geo.positions)
    if c.shape != expected:
        raise ConvError(
            f"cols.shape={c.shape} does not match x_shape={shape} with kernel {geo.kernel}: "
            f"expected (C * kh * kw, N * Ho * Wo) = {expected}"
        )
    c = np.ascontiguousarray(c, dtype=compute_dtype(c))
    dx = np.empty(shape, c.dtype)
    chunk = _Chunk(0, geo.batch, 0, _rows(geo)[0], True)  # (zeroes dx: rows from 0)
    _col2im_into(c, np.empty(_region(geo, chunk)[1], c.dtype), dx, geo, chunk)
    return dx
