"""im2col and col2im padding one channel's plane at a time, in cache, against padding the
chunk's whole input region into a buffer first (``pad_region``, then im2col from it; col2im
into it, then ``unpad_add``), the way convcol did until 2026-12-03, on suite shapes of
im2col's route, forward and forward+backward.

env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python docs/scripts/plane_at_a_time.py

The old way is rebuilt here: its two kernels, and the engine's workspace and chunk sizes
with a whole region per chunk (so its chunks hold fewer columns, as they did), but both
ways plan their chunks with today's ``conv._plan``, whose rule that samples share a chunk
only where three fit is newer (cifar_3x3 float32: the old way in 32 chunks, not 16). The
candidates alternate in one process, each figure the fastest of its rounds
(``convcol.bench.interleaved_minimum``); the old way is timed twice, as two candidates,
and their ratio ("A/A") shows how far two runs of the same code differ here. Winograd's
route is turned off, so that cifar_3x3 and the other 3x3 shapes take im2col's. Arguments:
shape names (default r50_3x3_s2, r50_conv1, deepspeech_conv1, vgg_7x7_512, cifar_3x3,
r50_res2a_3x3, the classic case) and ``float32`` or ``float64`` (default both).
"""

import contextlib
import math
import sys

import numba
import numpy as np

from convcol import bench, conv, winograd
from convcol.kernels import _phase_runs, _row_start, _unpad_plane, pad_region
from convcol.workspace import scratch


@numba.njit(cache=True, nogil=True)
def old_im2col(xp, cols, offs, out_size, base, r0, r1):
    nb, C = xp.shape[:2]
    HQ, WQ = xp.shape[6:]
    src, dst = xp.reshape(-1), cols.reshape(-1)
    plane, T, M = src.size // max(1, nb * C), offs.shape[0], cols.shape[1]
    _, OH, OW = out_size
    R = r1 - r0
    for n in range(nb):
        for c in range(C):
            for t in range(T):
                s0, d0 = (n * C + c) * plane + offs[t], (c * T + t) * M + n * R * OW
                od, oh = r0 // OH, r0 % OH
                for r in range(R):
                    s = s0 + _row_start(od, oh, base, HQ, WQ)
                    d = d0 + r * OW
                    for ow in range(OW):
                        dst[np.uint64(d + ow)] = src[np.uint64(s + ow)]
                    oh += 1
                    if oh == OH:
                        oh, od = 0, od + 1


@numba.njit(cache=True, nogil=True)
def old_col2im(cols, xp, offs, out_size, base, r0, r1):
    nb, C = xp.shape[:2]
    HQ, WQ = xp.shape[6:]
    src, dst = cols.reshape(-1), xp.reshape(-1)
    plane, T, M = dst.size // max(1, nb * C), offs.shape[0], cols.shape[1]
    _, OH, OW = out_size
    R = r1 - r0
    for n in range(nb):
        for c in range(C):
            for t in range(T):
                d0, s0 = (n * C + c) * plane + offs[t], (c * T + t) * M + n * R * OW
                od, oh = r0 // OH, r0 % OH
                for r in range(R):
                    d = d0 + _row_start(od, oh, base, HQ, WQ)
                    s = s0 + r * OW
                    for ow in range(OW):
                        dst[np.uint64(d + ow)] += src[np.uint64(s + ow)]
                    oh += 1
                    if oh == OH:
                        oh, od = 0, od + 1


@numba.njit(cache=True, nogil=True)
def old_unpad_add(xp, dx, base, pad, phases):
    lo, hi = _phase_runs(phases, xp, pad[2], dx.shape[4])
    for n in range(dx.shape[0]):
        for c in range(dx.shape[1]):
            _unpad_plane(xp[n, c], dx[n, c], base, pad, phases, lo, hi)


PATCHED = ("_chunk_elements", "_workspace", "_im2col_into", "_col2im_into")
new = {k: getattr(conv, k) for k in PATCHED}


def region_shape(geo, chunk):
    """The old buffer: every channel's plane for each of the chunk's samples."""
    return (chunk.n1 - chunk.n0, geo.channels, *conv._region(geo, chunk)[1])


def old_chunk_elements(geo, chunk):
    columns, plane = new["_chunk_elements"](geo, chunk)
    if geo.channels_last or conv._is_depthwise(geo):
        return columns, plane
    return columns, math.prod(region_shape(geo, chunk))


def old_workspace(geo, chunk, dtype, ones=False):
    n_cols, n_region = old_chunk_elements(geo, chunk)
    flat = scratch(conv._chunk_bytes(geo, chunk, dtype.itemsize)).view(dtype)
    taps, positions = geo.channels * geo.window, chunk.columns * conv._rows(geo)[1]
    room = flat[n_cols + n_region :][: conv._reorder_elements(geo, chunk)]
    cols = flat[:n_cols].reshape(taps + 1, positions)
    if ones:
        cols[-1] = 1
    region = flat[n_cols : n_cols + n_region].reshape(region_shape(geo, chunk))
    return (cols if ones else cols[:taps]), region, room


def old_im2col_into(x, cols, region, geo, chunk):
    _, _, pad, _, _, out_size = geo.kernel_args()
    base, shape = conv._region(geo, chunk)
    pad_region(conv._as5d(x[chunk.n0 : chunk.n1], geo, geo.channels), region, base, pad,
               conv._phases(geo))  # fmt: skip
    offs = conv._tap_offsets(geo, shape)
    old_im2col(region, cols, offs, out_size, base, chunk.r0, chunk.r1)


def old_col2im_into(cols, region, dx, geo, chunk):
    _, _, pad, _, _, out_size = geo.kernel_args()
    dx5 = conv._as5d(dx[chunk.n0 : chunk.n1], geo, geo.channels)
    if chunk.r0 == 0:
        dx5[...] = 0
    base, shape = conv._region(geo, chunk)
    region.fill(0)
    old_col2im(cols, region, conv._tap_offsets(geo, shape), out_size, base, chunk.r0, chunk.r1)
    old_unpad_add(region, dx5, base, pad, conv._phases(geo))


old = {
    "_chunk_elements": old_chunk_elements,
    "_workspace": old_workspace,
    "_im2col_into": old_im2col_into,
    "_col2im_into": old_col2im_into,
}


def run_with(patch, fn):
    def run():
        for k, v in patch.items():
            setattr(conv, k, v)
        try:
            return fn()
        finally:
            for k, v in new.items():
                setattr(conv, k, v)

    return run


def tuple_of(result):
    return result if isinstance(result, tuple) else (result,)


@contextlib.contextmanager
def counting():
    """The chunks of the calls inside (those of im2col's route), as a list."""
    seen, plan = [], conv._plan

    def counted(geo, itemsize):
        chunks = plan(geo, itemsize)
        seen.extend(chunks)
        return chunks

    conv._plan = counted
    try:
        yield seen
    finally:
        conv._plan = plan


for dtype in list(winograd._TILES):
    winograd._TILES[dtype] = ()
args = sys.argv[1:]
dtypes = [a for a in args if a.startswith("float")] or ["float64", "float32"]
names = [a for a in args if not a.startswith("float")] or [
    "r50_3x3_s2", "r50_conv1", "deepspeech_conv1", "vgg_7x7_512", "cifar_3x3",
    "r50_res2a_3x3", "cs231n_classic",
]  # fmt: skip
print(f"BLAS: {bench.describe_blas(bench.blas_info())}")
print("shape             dtype    pass              plane  region  ratio  (A/A)  chunks")
for name in names:
    shape = next(s for s in bench.SHAPES if s.name == name)
    for dtype in dtypes:
        calls = bench.convcol_calls(shape, bench.make_inputs(shape, dtype))
        results = {}
        for pass_ in ("forward", "forward+backward"):
            fn = calls[pass_]
            cands = {"plane": run_with(new, fn), "region": run_with(old, fn),
                     "region again": run_with(old, fn)}  # fmt: skip
            outs, chunks = {}, {}
            for k, f in cands.items():  # also the warm-up
                with counting() as chunks[k]:
                    outs[k] = f()
            for k in ("region", "region again"):  # the same numbers, up to the sums' order
                for p, q in zip(tuple_of(outs["plane"]), tuple_of(outs[k]), strict=True):
                    scale = float(np.abs(q).max()) if q.size else 0.0
                    np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-4 * scale, strict=True)
            best = bench.interleaved_minimum(cands, 25, 30.0)
            region = min(best["region"], best["region again"])
            print(
                f"{name:17} {dtype:8} {pass_:16} {best['plane'] * 1e3:7.2f} {region * 1e3:7.2f}"
                f"  {best['plane'] / region:5.3f}  {best['region again'] / best['region']:5.3f}"
                f"  {len(chunks['plane'])} / {len(chunks['region'])}",
                flush=True,
            )
