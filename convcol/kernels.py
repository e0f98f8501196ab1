"""The Numba kernels: the padded input region, im2col and col2im, and depthwise convolution.

Private and plain on purpose: callers (``convcol.conv``) validate, allocate every buffer with
NumPy (its allocator gets huge pages; Numba's does not) and pass it in.

Layouts (all indices in C order, K = KD * KH * KW taps, P = OD * OH * OW outputs):

- channels first: ``x`` (N, C, D, H, W) and ``cols`` (C * K, N * P), row ``(c, tap)``,
  column ``(n, output)``: a window is a column, so ``w @ cols`` is the convolution. im2col
  and col2im take not ``x`` but ``xp``, a padded, phase-split copy of the input region
  (``pad_region``, ``unpad_add``), in which tap t of an output row starts ``offs[t]``
  elements after the row's start: every copy is a contiguous run with no bounds logic.
- channels last: ``x`` (N, D, H, W, C) and ``cols`` (N * P, C * K), row ``(n, output)``,
  column ``(g, tap, c % Cg)`` for channel c of group g: a window is a row, copied as runs of
  Cg contiguous channels, and ``cols @ w.T`` is the convolution, already channels-last.

The kernels are serial and release the GIL, so concurrent callers run in parallel. They are
not ``prange`` loops: on 2 cores a parallel im2col bought nothing end to end, because it runs
between GEMMs and OpenBLAS's worker threads busy-wait for a while after each GEMM, taking the
second core (measurements in docs/design.md); and Numba's ``omp`` layer busy-waits after a
``prange`` in turn, slowing the GEMM that follows.
"""

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _valid_range(off, stride, n_in, n_out):
    # The output indices o with 0 <= o * stride + off < n_in, as a half-open range [lo, hi).
    # Both ends are clipped to [0, n_out]: a tap can miss the input for every output.
    lo = 0 if off >= 0 else min((-off + stride - 1) // stride, n_out)
    hi = (n_in - 1 - off) // stride + 1 if n_in - 1 - off >= 0 else 0
    hi = min(hi, n_out)
    return lo, max(lo, hi)


# Channels first, the im2col/col2im pair works on a padded copy of the input region a chunk
# reads, ``xp`` (nb, C, DR, HR, S, WQ): rows of the padded input from ``base`` on (depth,
# height), each split into its S = stride_w phases, so that padded column S * k + q is
# ``xp[..., q, k]``. Every tap then reads OW *contiguous* elements per output row, whatever
# the stride, and the kernels have no bounds logic at all. Written as explicit loops with
# unsigned indices (or a bare loop index): Numba compiles those to vector code, whereas
# slice assignment and signed computed indices (``a[off + j]``, checked for wraparound)
# stay scalar, 2-4x slower here.


# ``phases`` is a tuple of S zeros: its length is a compile-time constant, so each stride
# gets its own machine code, with ``S * k + q`` a constant stride that LLVM vectorises
# (the stride-2 copies 1.2-2x faster than with S read from the array's shape). An empty
# tuple means "read S from the shape": the caller passes one for strides above 8, rather
# than compile a new kernel for every large stride.


@numba.njit(cache=True, nogil=True)
def pad_region(x, xp, base, pad, phases):
    # xp[n, c, i, j, q, k] = x[n, c, i + base[0] - pad[0], j + base[1] - pad[1],
    # S * k + q - pad[2]], or 0 where that lies outside x.
    N, C, D, H, W = x.shape
    _, _, DR, HR, _, WQ = xp.shape
    S = len(phases) if len(phases) > 0 else xp.shape[4]  # see above
    # Each phase's run of columns inside x, worked out once: rows are short (WQ is 29 for
    # a stride-2 56-wide input), so per-row arithmetic would cost as much as the copy.
    lo, hi = np.empty(S, np.int64), np.empty(S, np.int64)
    for q in range(S):
        lo[q], hi[q] = _valid_range(q - pad[2], S, W, WQ)
    for n in range(N):
        for c in range(C):
            for i in range(DR):
                d = i + base[0] - pad[0]
                for j in range(HR):
                    h = j + base[1] - pad[1]
                    row = xp[n, c, i, j]
                    if not (0 <= d < D and 0 <= h < H):
                        row[:] = 0
                        continue
                    src = x[n, c, d, h]
                    for q in range(S):
                        dst = row[q]
                        a, b = lo[q], hi[q]
                        first = S * a + q - pad[2]
                        for k in range(a):
                            dst[k] = 0
                        for k in range(b - a):
                            dst[np.uint64(a + k)] = src[np.uint64(first + S * k)]
                        for k in range(b, WQ):
                            dst[k] = 0


@numba.njit(cache=True, nogil=True)
def unpad_add(xp, dx, base, pad, phases):
    # The adjoint of pad_region: adds each padded element that came from dx back into it.
    N, C, D, H, W = dx.shape
    _, _, DR, HR, _, WQ = xp.shape
    S = len(phases) if len(phases) > 0 else xp.shape[4]  # see above
    lo, hi = np.empty(S, np.int64), np.empty(S, np.int64)
    for q in range(S):
        lo[q], hi[q] = _valid_range(q - pad[2], S, W, WQ)
    for n in range(N):
        for c in range(C):
            for i in range(DR):
                d = i + base[0] - pad[0]
                for j in range(HR):
                    h = j + base[1] - pad[1]
                    if not (0 <= d < D and 0 <= h < H):
                        continue
                    dst = dx[n, c, d, h]
                    for q in range(S):
                        src = xp[n, c, i, j, q]
                        a, first = lo[q], S * lo[q] + q - pad[2]
                        for k in range(hi[q] - a):
                            dst[np.uint64(first + S * k)] += src[np.uint64(a + k)]


@numba.njit(cache=True, inline="always")
def _row_start(od, oh, stride, base, rows, row_len):
    return ((od * stride[0] - base[0]) * rows + oh * stride[1] - base[1]) * row_len


@numba.njit(cache=True, nogil=True)
def im2col(xp, cols, offs, stride, out_size, base, r0, r1):
    # cols (C * T, nb * R * OW): row (c, t), column (n, output row r0 + r, ow). Tap t of
    # output row (od, oh) starts at _row_start(...) + offs[t] in channel c's flattened
    # region plane. Flat unsigned indices, not views: a view per row costs as much as
    # copying a short row (1.5x faster on 16- to 56-wide rows).
    nb, C, DR, HR, S, WQ = xp.shape
    src, dst = xp.reshape(-1), cols.reshape(-1)
    plane, T, M = DR * HR * S * WQ, offs.shape[0], cols.shape[1]
    _, OH, OW = out_size
    R = r1 - r0
    for n in range(nb):
        for c in range(C):
            for t in range(T):
                s0, d0 = (n * C + c) * plane + offs[t], (c * T + t) * M + n * R * OW
                od, oh = r0 // OH, r0 % OH
                for r in range(R):
                    s = s0 + _row_start(od, oh, stride, base, HR, S * WQ)
                    d = d0 + r * OW
                    for ow in range(OW):
                        dst[np.uint64(d + ow)] = src[np.uint64(s + ow)]
                    oh += 1  # no division per row: that alone cost 10-20%
                    if oh == OH:
                        oh, od = 0, od + 1


@numba.njit(cache=True, nogil=True)
def col2im(cols, xp, offs, stride, out_size, base, r0, r1):
    # The adjoint of im2col: adds into xp (the caller zeroes it).
    nb, C, DR, HR, S, WQ = xp.shape
    src, dst = cols.reshape(-1), xp.reshape(-1)
    plane, T, M = DR * HR * S * WQ, offs.shape[0], cols.shape[1]
    _, OH, OW = out_size
    R = r1 - r0
    for n in range(nb):
        for c in range(C):
            for t in range(T):
                d0, s0 = (n * C + c) * plane + offs[t], (c * T + t) * M + n * R * OW
                od, oh = r0 // OH, r0 % OH
                for r in range(R):
                    d = d0 + _row_start(od, oh, stride, base, HR, S * WQ)
                    s = s0 + r * OW
                    for ow in range(OW):
                        dst[np.uint64(d + ow)] += src[np.uint64(s + ow)]
                    oh += 1
                    if oh == OH:
                        oh, od = 0, od + 1


@numba.njit(cache=True, nogil=True)
def im2col_cl(x, cols, kernel, stride, pad, dilation, out_size, groups, r0, r1):
    N, D, H, W, C = x.shape
    KD, KH, KW = kernel
    _, OH, OW = out_size
    K = KD * KH * KW
    Cg = C // groups
    row = 0
    for n in range(N):
        for r in range(r0, r1):
            od, oh = r // OH, r % OH
            for ow in range(OW):
                for kd in range(KD):
                    i_d = od * stride[0] + kd * dilation[0] - pad[0]
                    for kh in range(KH):
                        i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                        for kw in range(KW):
                            i_w = ow * stride[2] + kw * dilation[2] - pad[2]
                            tap = (kd * KH + kh) * KW + kw
                            inside = 0 <= i_d < D and 0 <= i_h < H and 0 <= i_w < W
                            for g in range(groups):
                                col = (g * K + tap) * Cg
                                if inside:
                                    for c in range(Cg):
                                        cols[row, col + c] = x[n, i_d, i_h, i_w, g * Cg + c]
                                else:
                                    for c in range(Cg):
                                        cols[row, col + c] = 0
                row += 1


@numba.njit(cache=True, nogil=True)
def col2im_cl(cols, dx, kernel, stride, pad, dilation, out_size, groups, r0, r1):
    # Adds into dx (the caller zeroes it).
    N, D, H, W, C = dx.shape
    KD, KH, KW = kernel
    _, OH, OW = out_size
    K = KD * KH * KW
    Cg = C // groups
    row = 0
    for n in range(N):
        for r in range(r0, r1):
            od, oh = r // OH, r % OH
            for ow in range(OW):
                for kd in range(KD):
                    i_d = od * stride[0] + kd * dilation[0] - pad[0]
                    for kh in range(KH):
                        i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                        for kw in range(KW):
                            i_w = ow * stride[2] + kw * dilation[2] - pad[2]
                            if not (0 <= i_d < D and 0 <= i_h < H and 0 <= i_w < W):
                                continue
                            tap = (kd * KH + kh) * KW + kw
                            for g in range(groups):
                                col = (g * K + tap) * Cg
                                for c in range(Cg):
                                    dx[n, i_d, i_h, i_w, g * Cg + c] += cols[row, col + c]
                row += 1


# Depthwise convolution (groups == C, F = m * C) computed directly, on the same padded,
# phase-split input region as im2col: an im2col would copy each input value K times for a
# GEMM of inner size K. In a channel's region plane, flattened, tap t of output row
# (od, oh) starts at _row_start(...) + offs[t] and runs for OW contiguous elements.
#
# With stride 1 the caller may pass whole flattened planes as one long "row" each
# (out_size (1, 1, L), base (0, 0)) for loops some 50 times longer: the output comes out
# "wide", with Wp - OW garbage columns per row that the caller drops, and a gradient's
# garbage columns must be zeros. Those zeros meet real data (0 * inf is NaN), which the
# caller rules out or redoes row by row.


@numba.njit(cache=True, nogil=True)
def depthwise_forward(xp, w, out, offs, first, stride, out_size, base, r0, r1):
    # Adds the taps offs (a tuple, so its length is a compile-time constant: the tap loop
    # unrolls and the loop along the row vectorises, 2-3x faster than taps outside) with
    # weights w (F, len(offs)) into out (nb, F, (r1 - r0) * OW), output rows r0:r1; the
    # first call overwrites out instead. Indices are cast to unsigned: Numba skips the
    # negative-index check on those, which would otherwise stop the vectorisation.
    nb, C, _, HR, S, WQ = xp.shape
    m = w.shape[0] // C
    _, OH, OW = out_size
    for n in range(nb):
        for f in range(w.shape[0]):
            src, wt, o = xp[n, f // m].reshape(-1), w[f], out[n, f]
            od, oh = r0 // OH, r0 % OH
            for r in range(r1 - r0):
                start = _row_start(od, oh, stride, base, HR, S * WQ)
                row = o[r * OW : (r + 1) * OW]
                if first:
                    for ow in range(OW):
                        v = wt[0] * src[np.uint64(start + offs[0] + ow)]
                        for t in range(1, len(offs)):
                            v += wt[t] * src[np.uint64(start + offs[t] + ow)]
                        row[ow] = v
                else:
                    for ow in range(OW):
                        v = row[ow]
                        for t in range(len(offs)):
                            v += wt[t] * src[np.uint64(start + offs[t] + ow)]
                        row[ow] = v
                oh += 1
                if oh == OH:
                    oh, od = 0, od + 1


@numba.njit(cache=True, nogil=True)
def depthwise_backward_input(dout, w, xp, offs, stride, out_size, base, r0, r1):
    # The adjoint of depthwise_forward, every tap (offs an array): adds into xp (zeroed by
    # the caller). Tap by tap: neighbouring outputs' taps overlap, so the taps of one
    # output inside the loop along the row would stop it vectorising.
    nb, C, _, HR, S, WQ = xp.shape
    F, T = w.shape
    m = F // C
    _, OH, OW = out_size
    for n in range(nb):
        for f in range(F):
            dst, g = xp[n, f // m].reshape(-1), dout[n, f]
            for t in range(T):
                wv = w[f, t]
                od, oh = r0 // OH, r0 % OH
                for r in range(r1 - r0):
                    d = _row_start(od, oh, stride, base, HR, S * WQ) + offs[t]
                    for ow in range(OW):
                        dst[np.uint64(d + ow)] += wv * g[np.uint64(r * OW + ow)]
                    oh += 1
                    if oh == OH:
                        oh, od = 0, od + 1


# Reassociation lets LLVM vectorise the dot products; no-NaN/no-inf assumptions stay off so
# that non-finite values propagate exactly.
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def depthwise_backward_weight(xp, dout, dw, offs, stride, out_size, base, r0, r1):
    # Adds into dw (F, T) (zeroed by the caller): one dot product per tap and output row.
    # (Rows shorter than one pass of the vectorised loop, 28 wide at stride 2, run scalar;
    # partial sums per column were 1.6x faster there but, in the same kernel, made the
    # long wide rows 1.6x slower.)
    nb, C, _, HR, S, WQ = xp.shape
    F, T = dw.shape
    m = F // C
    _, OH, OW = out_size
    for f in range(F):
        for t in range(T):
            acc = dw[f, t]
            for n in range(nb):
                src, g = xp[n, f // m].reshape(-1), dout[n, f]
                od, oh = r0 // OH, r0 % OH
                for r in range(r1 - r0):
                    s = _row_start(od, oh, stride, base, HR, S * WQ) + offs[t]
                    for ow in range(OW):
                        acc += g[np.uint64(r * OW + ow)] * src[np.uint64(s + ow)]
                    oh += 1
                    if oh == OH:
                        oh, od = 0, od + 1
            dw[f, t] = acc
