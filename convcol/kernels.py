"""The Numba kernels: padded input planes, im2col and col2im, and depthwise convolution.

Private and plain on purpose: callers (``convcol.conv``) validate, allocate every buffer with
NumPy (its allocator gets huge pages; Numba's does not) and pass it in.

Layouts (all indices in C order, K = KD * KH * KW taps, P = OD * OH * OW outputs):

- channels first: ``x`` (N, C, D, H, W) and ``cols`` (C * K, N * P), row ``(c, tap)``,
  column ``(n, output)``: a window is a column, so ``w @ cols`` is the convolution. im2col
  and col2im copy each channel of the input region to (or from) a padded, phase-split plane
  first (``_pad_plane``, ``_unpad_plane``), in which tap t of output (od, oh, ow) is element
  ``_row_start(od, oh, ...) + offs[t] + ow`` of the flattened plane: every copy is a
  contiguous run with no bounds logic.
- channels last: ``x`` (N, D, H, W, C) and ``cols`` (N * P, C * K), row ``(n, output)``,
  column ``(g, tap, c % Cg)`` for channel c of group g: a window is a row, copied as runs of
  Cg contiguous channels, and ``cols @ w.T`` is the convolution, already channels-last.

The kernels are serial and release the GIL, so concurrent callers run in parallel. They are
not ``prange`` loops: on 2 cores a parallel im2col bought nothing end to end, because it runs
between GEMMs and OpenBLAS's worker threads busy-wait for a while after each GEMM, taking the
second core (measurements in docs/design.md); and Numba's ``omp`` layer busy-waits after a
``prange`` in turn, slowing the GEMM that follows. The depthwise kernels, which have no GEMM
around them, take a range of channels, and the caller runs shares of a call on its own
threads.
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


# Channels first, the kernels work on a padded copy of the input region a chunk reads, one
# channel's plane (SD, SH, SW, DQ, HQ, WQ) at a time (``xp`` (nb, C, ...) for all of them in
# pad_region): from output depth and row ``base`` on, the padded input split by phase along
# every axis (S* the strides), so that padded element
# (d, h, w) = (base[0] * SD + SD * i + pd, base[1] * SH + SH * j + ph, SW * k + q) is
# ``xp[..., pd, ph, q, i, j, k]``. Each tap then reads a plane of its phase that moves by
# one element per output along every axis, as in a stride-1 convolution: output (od, oh, ow)
# reads element _row_start(od, oh, base, HQ, WQ) + ow + offs[t] of the flattened plane, a
# contiguous run per output row, whatever the stride, and the kernels have no bounds logic
# at all. Written as explicit loops with unsigned indices (or a bare loop index): Numba
# compiles those to vector code, whereas slice assignment and signed computed indices
# (``a[off + j]``, checked for wraparound) stay scalar, 2-4x slower here.


# ``phases`` is a tuple of SW zeros: its length is a compile-time constant, so each stride
# gets its own machine code, with ``SW * k + q`` a constant stride that LLVM vectorises
# (the stride-2 copies 1.2-2x faster than with SW read from the array's shape). An empty
# tuple means "read SW from the shape": the caller passes one for strides above 8, rather
# than compile a new kernel for every large stride.


@numba.njit(cache=True, inline="always")
def _phase_runs(phases, xp, pad_w, W):
    # Each W phase's run of columns inside x, worked out once per call: rows are short (WQ
    # is 29 for a stride-2 56-wide input), so per-row arithmetic would cost as much as a
    # copy.
    S = len(phases) if len(phases) > 0 else xp.shape[-4]
    WQ = xp.shape[-1]
    lo, hi = np.empty(S, np.int64), np.empty(S, np.int64)
    for q in range(S):
        lo[q], hi[q] = _valid_range(q - pad_w, S, W, WQ)
    return lo, hi


@numba.njit(cache=True, inline="always")
def _pad_plane(src, dst, base, pad, phases, lo, hi):
    # One channel: src (D, H, W) into dst (SD, SH, SW, DQ, HQ, WQ), zeros outside src.
    if len(phases) == 2:
        _pad_plane2(src, dst, base, pad, lo, hi)
        return
    D, H, _ = src.shape
    SD, SH, S_, DQ, HQ, WQ = dst.shape
    S = len(phases) if len(phases) > 0 else S_  # see above
    for pd in range(SD):
        for i in range(DQ):
            d = (base[0] + i) * SD + pd - pad[0]
            for j in range(HQ):  # source rows in order, read sequentially
                for ph in range(SH):
                    h = (base[1] + j) * SH + ph - pad[1]
                    inside = 0 <= d < D and 0 <= h < H
                    for q in range(S):
                        o = dst[pd, ph, q, i, j]
                        if not inside:
                            o[:] = 0
                            continue
                        s = src[d, h]
                        a, b = lo[q], hi[q]
                        first = S * a + q - pad[2]
                        for k in range(a):
                            o[k] = 0
                        for k in range(b - a):
                            o[np.uint64(a + k)] = s[np.uint64(first + S * k)]
                        for k in range(b, WQ):
                            o[k] = 0


@numba.njit(cache=True, inline="always")
def _unpad_plane(src, dst, base, pad, phases, lo, hi):
    # The adjoint of _pad_plane: adds each padded element that came from dst back into it.
    if len(phases) == 2:
        _unpad_plane2(src, dst, base, pad, lo, hi)
        return
    D, H, _ = dst.shape
    SD, SH, S_, DQ, HQ, _ = src.shape
    S = len(phases) if len(phases) > 0 else S_
    for pd in range(SD):
        for i in range(DQ):
            d = (base[0] + i) * SD + pd - pad[0]
            for j in range(HQ):  # source rows in order, read sequentially
                for ph in range(SH):
                    h = (base[1] + j) * SH + ph - pad[1]
                    if not (0 <= d < D and 0 <= h < H):
                        continue
                    o = dst[d, h]
                    for q in range(S):
                        s = src[pd, ph, q, i, j]
                        a, first = lo[q], S * lo[q] + q - pad[2]
                        for k in range(hi[q] - a):
                            o[np.uint64(first + S * k)] += s[np.uint64(a + k)]


# Stride 2 along W, the commonest stride, in one pass per source row for both phases: padded
# column 2k + q is source column 2k + q - pad_w, so where both phases take an element, the
# columns [j0, j1) (_joint), one loop reads (or, in the adjoint, writes) them interleaved,
# which LLVM vectorises with permutes. Phase 1 never starts or ends after phase 0 (its
# source columns are one further on) and their ranges differ by at most one at each end,
# so phase 1 may have one column before the joint ones and phase 0 one after, no more.
# The padded plane is zeroed in one pass first rather than row by row, and the rows go in
# source order: short loops per row cost more than their work here (rows of 28).
# mobilenetv2_dw3x3_s2's 1152 planes of 56 x 56 padded in 1.6 ms against 4.6 with a loop
# per phase and row, and the layer ran 1.8x faster, forward and backward.


@numba.njit(cache=True, inline="always")
def _joint(lo, hi):
    # The columns where both phases take a source element: [j0, j1), maybe empty
    # (lo[1] <= lo[0] and hi[1] <= hi[0], above).
    return lo[0], max(lo[0], hi[1])


@numba.njit(cache=True, inline="always")
def _source_rows(H, base, pad, SH, HQ):
    # The source rows that land in the plane: [h0, h1).
    return max(0, base[1] * SH - pad[1]), min(H, (base[1] + HQ) * SH - pad[1])


@numba.njit(cache=True, inline="always")
def _pad_plane2(src, dst, base, pad, lo, hi):
    D, H, _ = src.shape
    SD, SH, _, DQ, HQ, _ = dst.shape
    flat = dst.reshape(-1)
    for k in range(flat.shape[0]):
        flat[k] = 0
    j0, j1 = _joint(lo, hi)
    b0, a1, pw = hi[0], lo[1], pad[2]
    at = 2 * j0 - pw
    h0, h1 = _source_rows(H, base, pad, SH, HQ)
    for pd in range(SD):
        for i in range(DQ):
            d = (base[0] + i) * SD + pd - pad[0]
            if not 0 <= d < D:
                continue
            for h in range(h0, h1):
                t = h + pad[1] - base[1] * SH
                ph, j = t % SH, t // SH
                o0, o1, s = dst[pd, ph, 0, i, j], dst[pd, ph, 1, i, j], src[d, h]
                if a1 < j0:
                    o1[a1] = s[2 * a1 + 1 - pw]
                if j1 < b0:
                    o0[j1] = s[2 * j1 - pw]
                for k in range(j1 - j0):
                    o0[np.uint64(j0 + k)] = s[np.uint64(at + 2 * k)]
                    o1[np.uint64(j0 + k)] = s[np.uint64(at + 2 * k + 1)]


@numba.njit(cache=True, inline="always")
def _unpad_plane2(src, dst, base, pad, lo, hi):
    D, H, _ = dst.shape
    SD, SH, _, DQ, HQ, _ = src.shape
    j0, j1 = _joint(lo, hi)
    b0, a1, pw = hi[0], lo[1], pad[2]
    at = 2 * j0 - pw
    h0, h1 = _source_rows(H, base, pad, SH, HQ)
    for pd in range(SD):
        for i in range(DQ):
            d = (base[0] + i) * SD + pd - pad[0]
            if not 0 <= d < D:
                continue
            for h in range(h0, h1):
                t = h + pad[1] - base[1] * SH
                ph, j = t % SH, t // SH
                s0, s1, o = src[pd, ph, 0, i, j], src[pd, ph, 1, i, j], dst[d, h]
                if a1 < j0:
                    o[2 * a1 + 1 - pw] += s1[a1]
                if j1 < b0:
                    o[2 * j1 - pw] += s0[j1]
                for k in range(j1 - j0):
                    o[np.uint64(at + 2 * k)] += s0[np.uint64(j0 + k)]
                    o[np.uint64(at + 2 * k + 1)] += s1[np.uint64(j0 + k)]


@numba.njit(cache=True, nogil=True)
def pad_region(x, xp, base, pad, phases):
    # xp[n, c] = the padded copy of x[n, c] (_pad_plane), for every sample and channel.
    lo, hi = _phase_runs(phases, xp, pad[2], x.shape[4])
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            _pad_plane(x[n, c], xp[n, c], base, pad, phases, lo, hi)


@numba.njit(cache=True, inline="always")
def _row_start(od, oh, base, HQ, WQ):
    # Where output row (od, oh) starts in a flattened plane of the padded copy.
    return ((od - base[0]) * HQ + oh - base[1]) * WQ


# im2col and col2im take the input (or dx) itself and one channel's padded plane of scratch:
# each channel is padded into the plane and its taps copied out of it (or added into it and
# the plane added back) before the next, so the plane stays in cache and the input is read
# from memory once. Padding the whole chunk's region first and copying from it went through
# memory twice more, and its buffer left less of the workspace to the columns
# (docs/design.md, "The padded input region").


@numba.njit(cache=True, inline="always")
def _tap_rows(padded, p0, cols, c0, out_size, base, HQ, WQ, r0, R, add):
    # One tap's output rows r0 .. r0 + R: padded[p0 + row start + ow] to cols[c0 + r * OW +
    # ow], both flat, or with ``add`` the other way, added. Flat unsigned indices, not
    # views: a view per row costs as much as copying a short row (1.5x faster on 16- to
    # 56-wide rows).
    _, OH, OW = out_size
    od, oh = r0 // OH, r0 % OH
    for r in range(R):
        p = p0 + _row_start(od, oh, base, HQ, WQ)
        c = c0 + r * OW
        if add:
            for ow in range(OW):
                padded[np.uint64(p + ow)] += cols[np.uint64(c + ow)]
        else:
            for ow in range(OW):
                cols[np.uint64(c + ow)] = padded[np.uint64(p + ow)]
        oh += 1  # no division per row: that alone cost 10-20%
        if oh == OH:
            oh, od = 0, od + 1


@numba.njit(cache=True, nogil=True)
def im2col(x, plane, cols, offs, out_size, base, pad, phases, r0, r1):
    # cols (C * T, nb * R * OW): row (c, t), column (n, output row r0 + r, ow), from x
    # (nb, C, D, H, W) through the padded plane (SD, SH, SW, DQ, HQ, WQ).
    nb, C = x.shape[:2]
    HQ, WQ = plane.shape[4:]
    T, M, R, OW = offs.shape[0], cols.shape[1], r1 - r0, out_size[2]
    if R <= 0:  # no rows (then OH may be 0, and r0 // OH an error)
        return
    lo, hi = _phase_runs(phases, plane, pad[2], x.shape[4])
    flat, out = plane.reshape(-1), cols.reshape(-1)
    for n in range(nb):
        for c in range(C):
            _pad_plane(x[n, c], plane, base, pad, phases, lo, hi)
            for t in range(T):
                c0 = (c * T + t) * M + n * R * OW
                _tap_rows(flat, offs[t], out, c0, out_size, base, HQ, WQ, r0, R, False)


@numba.njit(cache=True, nogil=True)
def col2im(cols, plane, dx, offs, out_size, base, pad, phases, r0, r1):
    # The adjoint of im2col: adds into dx (the caller zeroes it).
    nb, C = dx.shape[:2]
    HQ, WQ = plane.shape[4:]
    T, M, R, OW = offs.shape[0], cols.shape[1], r1 - r0, out_size[2]
    if R <= 0:
        return
    lo, hi = _phase_runs(phases, plane, pad[2], dx.shape[4])
    flat, grad = plane.reshape(-1), cols.reshape(-1)
    for n in range(nb):
        for c in range(C):
            for k in range(flat.shape[0]):
                flat[k] = 0
            for t in range(T):
                c0 = (c * T + t) * M + n * R * OW
                _tap_rows(flat, offs[t], grad, c0, out_size, base, HQ, WQ, r0, R, True)
            _unpad_plane(plane, dx[n, c], base, pad, phases, lo, hi)


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


# Depthwise convolution (groups == C, F = m * C) computed directly: an im2col would copy
# each input value K times for a GEMM of inner size K. One channel at a time, for the
# samples n0:n1 and the output rows r0:r1 of each, and the channels c0:c1 only, so that
# threads can share a call (each channel's filters, weights and gradients are its own).
# Each channel's input is copied into ``xp``, one padded, phase-split plane
# (SD, SH, SW, DQ, HQ, WQ) as im2col's, small enough to stay in cache while
# its taps are read, and the output goes straight to ``out``: nothing the size of the input
# goes through memory twice (1.3-2x faster than padding the whole chunk first).
#
# In that layout every output moves its taps by one element, whatever the stride, so the
# kernels run along the flattened plane as one long row ("wide"), for loops some 50 times
# longer than an output row (a loop along a 28- or 56-wide row spends much of its time
# outside the vectorised part). Each result comes out with WQ - OW garbage columns per
# row: in ``tmp``, L elements from the plane's start, whence the rows are copied out. For
# the gradients ``tmp`` holds dout spread out with zeros in the garbage columns; those
# zeros meet real data (0 * inf is NaN), which the caller rules out by going along the
# output rows instead (``wide`` false: dx when a weight is not finite, dw again when the
# wide dw is not).


@numba.njit(cache=True, inline="always")
def _taps(dst, d, src, s, wt, k, cols, count, add):
    # dst[d + i] (+)= sum_j wt[k + j] * src[s + cols[j] + i] for i < count. cols is a tuple,
    # its length a compile-time constant: the tap loop unrolls and the loop along i
    # vectorises, 2-3x faster than taps outside. Indices are cast to unsigned: Numba skips
    # the negative-index check on those, which would otherwise stop the vectorisation.
    if add:
        for i in range(count):
            v = dst[np.uint64(d + i)]
            for j in range(len(cols)):
                v += wt[k + j] * src[np.uint64(s + cols[j] + i)]
            dst[np.uint64(d + i)] = v
    else:
        for i in range(count):
            v = wt[k] * src[np.uint64(s + cols[0] + i)]
            for j in range(1, len(cols)):
                v += wt[k + j] * src[np.uint64(s + cols[j] + i)]
            dst[np.uint64(d + i)] = v


@numba.njit(cache=True, nogil=True)
def depthwise_forward(
    x, w, b, out, xp, tmp, bases, cols, pad, phases, out_size, base, n0, n1, r0, r1, c0, c1
):
    # out[n, f, p] for output positions p of rows r0:r1, from x (N, C, D, H, W), w (F, T)
    # and the bias b (F,), or none if b is empty: added as the rows are copied out, not in
    # a pass of its own over the output (which cost up to a third of the forward pass).
    # The T taps come as groups with the same shape: tap (g, j) starts at bases[g] + cols[j]
    # (a tuple, unrolled: one group of 9 for a 3x3 kernel, 7 of 7 for 7x7).
    C, F, J = x.shape[1], w.shape[0], len(cols)
    m = F // C
    HQ, WQ = xp.shape[4:]
    lo, hi = _phase_runs(phases, xp, pad[2], x.shape[4])
    _, OH, OW = out_size
    src = xp.reshape(-1)
    for c in range(c0, c1):
        for n in range(n0, n1):
            _pad_plane(x[n, c], xp, base, pad, phases, lo, hi)
            for f in range(c * m, (c + 1) * m):
                wt, o = w[f], out[n, f]
                for g in range(bases.shape[0]):
                    _taps(tmp, 0, src, bases[g], wt, g * J, cols, tmp.shape[0], g > 0)
                od, oh = r0 // OH, r0 % OH
                for r in range(r0, r1):
                    start = _row_start(od, oh, base, HQ, WQ)
                    if b.shape[0] > 0:
                        bf = b[f]
                        for ow in range(OW):
                            o[np.uint64(r * OW + ow)] = tmp[np.uint64(start + ow)] + bf
                    else:
                        for ow in range(OW):
                            o[np.uint64(r * OW + ow)] = tmp[np.uint64(start + ow)]
                    oh += 1  # no division per row: that alone cost 10-20%
                    if oh == OH:
                        oh, od = 0, od + 1


@numba.njit(cache=True, inline="always")
def _spread(tmp, at, g, out_size, base, HQ, WQ, r0, r1):
    # The wide form of dout rows r0:r1 from tmp[at] on, zeros around and between the rows.
    _, OH, OW = out_size
    tmp[:] = 0
    od, oh = r0 // OH, r0 % OH
    for r in range(r0, r1):
        start = at + _row_start(od, oh, base, HQ, WQ)
        for ow in range(OW):
            tmp[np.uint64(start + ow)] = g[np.uint64(r * OW + ow)]
        oh += 1
        if oh == OH:
            oh, od = 0, od + 1


@numba.njit(cache=True, inline="always", fastmath={"reassoc", "contract"})
def _dots3(dw, t, offs, tmp, M, src, L):
    # dw[t + i] += sum_j tmp[M + j] * src[offs[t + i] + j] for j < L, i < 3 (fewer at the
    # end: the missing taps repeat the last and are dropped). Three taps per pass read dout
    # once for three dot products, with three accumulators in registers: 1.5x (float32) to
    # 2x (float64) faster than a pass per tap, which reads a plane that no longer fits L1.
    T = offs.shape[0]
    o0, o1, o2 = offs[t], offs[min(t + 1, T - 1)], offs[min(t + 2, T - 1)]
    a0 = a1 = a2 = dw.dtype.type(0)
    for j in range(L):
        v = tmp[np.uint64(M + j)]
        a0 += v * src[np.uint64(o0 + j)]
        a1 += v * src[np.uint64(o1 + j)]
        a2 += v * src[np.uint64(o2 + j)]
    dw[t] += a0
    if t + 1 < T:
        dw[t + 1] += a1
    if t + 2 < T:
        dw[t + 2] += a2


@numba.njit(cache=True, inline="always")
def _gather_phases(dst, tmp, M, wt, by_phase, add):
    # The wide dx gather of a padded plane split into several phases, phase by phase, each
    # from the taps that read it alone: dst[p * PL + j] (+)= sum_t wt[t] * tmp[M - r_t + j]
    # over the taps t of phase p, r_t where t starts in it. Gathering every tap over the
    # whole plane would do as many multiply-adds per phase as there are taps in all (at
    # stride 2 along two axes, 4x as many for a 3x3 kernel; 3x slower). by_phase is
    # (start, order, within): tap order[k] for k in start[p]:start[p + 1] reads phase p
    # from within[k] on. Up to four taps to a pass, their offsets known only at run time
    # (the unused ones repeat the last, never read: LLVM unswitches the loop on n).
    start, order, within = by_phase
    PL = dst.shape[0] // (start.shape[0] - 1)
    for p in range(start.shape[0] - 1):
        d, s, e = p * PL, start[p], start[p + 1]
        if s == e and not add:  # a phase no tap reads (a stride beyond the kernel, or
            # one that shares a factor with the dilation: 3 taps 2 apart at stride 2)
            for i in range(PL):
                dst[np.uint64(d + i)] = 0
        for q in range(s, e, 4):
            n = min(4, e - q)
            k0, k1, k2, k3 = q, q + min(1, n - 1), q + min(2, n - 1), q + min(3, n - 1)
            w0, w1, w2, w3 = wt[order[k0]], wt[order[k1]], wt[order[k2]], wt[order[k3]]
            a0, a1, a2 = M - within[k0], M - within[k1], M - within[k2]
            a3, more = M - within[k3], add or q > s
            for i in range(PL):
                v = w0 * tmp[np.uint64(a0 + i)]
                if n > 1:
                    v += w1 * tmp[np.uint64(a1 + i)]
                if n > 2:
                    v += w2 * tmp[np.uint64(a2 + i)]
                if n > 3:
                    v += w3 * tmp[np.uint64(a3 + i)]
                if more:
                    v += dst[np.uint64(d + i)]
                dst[np.uint64(d + i)] = v


# Reassociation lets LLVM vectorise dw's dot products; no-NaN/no-inf assumptions stay off
# so that non-finite values propagate exactly.
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def depthwise_backward(
    dout, x, w, dx, dw, xp, dxp, tmp, offs, bases, back, by_phase, L, wide_dw, wide_dx, pad,
    phases, out_size, base, n0, n1, r0, r1, c0, c1,
):  # fmt: skip
    # The adjoint of depthwise_forward: adds into dx (N, C, D, H, W) and dw (F, T) the
    # gradients from dout rows r0:r1; dw zeroed by the caller, dx here, by the chunk with
    # rows from 0 (each sample's first). Either may be 0-sized: not wanted
    # (then x may be too). offs is every tap's start (an array); bases the forward pass's
    # groups of taps, and back (a tuple) minus their shape; by_phase the taps by phase
    # (_gather_phases).
    #
    # dw is a dot product per tap, in the wide form three taps to a pass (_dots3). dx in
    # the wide form is a gather like the forward pass, with the taps turned round: dout
    # spread wide starts M = max(offs) into tmp, so dxp[j] = sum_t w[t] * tmp[j + M -
    # offs[t]], every tap of a group unrolled (1.6x faster than adding each tap's share in a
    # pass of its own), or with several phases each phase from its own taps
    # (_gather_phases). Along the rows it is the latter, tap by tap (neighbouring outputs'
    # taps overlap, so the taps of one output in the loop along the row would stop it
    # vectorising). Then dxp goes back through the padding.
    want_dw, want_dx = dw.shape[0] > 0, dx.shape[0] > 0
    xs = x.shape if want_dw else dx.shape
    F, T, J = w.shape[0], offs.shape[0], len(back)
    m = F // xs[1]
    HQ, WQ = xp.shape[4:]
    lo, hi = _phase_runs(phases, xp, pad[2], xs[4])
    _, OH, OW = out_size
    M = 0
    for t in range(T):
        M = max(M, offs[t])
    src, dst = xp.reshape(-1), dxp.reshape(-1)
    for c in range(c0, c1):
        for n in range(n0, n1):
            if want_dw:
                _pad_plane(x[n, c], xp, base, pad, phases, lo, hi)
            if want_dx and not (wide_dx and m > 0):  # else the first gather writes it all
                dxp[...] = 0
            for f in range(c * m, (c + 1) * m):
                g, wt = dout[n, f], w[f]
                if wide_dw or wide_dx:
                    _spread(tmp, M, g, out_size, base, HQ, WQ, r0, r1)
                for t in range(0, T if want_dw and wide_dw else 0, 3):
                    _dots3(dw[f], t, offs, tmp, M, src, L)
                for t in range(T if want_dw and not wide_dw else 0):
                    acc, o = dw[f, t], offs[t]  # in locals: stores could alias an array
                    od, oh = r0 // OH, r0 % OH
                    for r in range(r0, r1):
                        s = _row_start(od, oh, base, HQ, WQ) + o
                        for ow in range(OW):
                            acc += g[np.uint64(r * OW + ow)] * src[np.uint64(s + ow)]
                        oh += 1
                        if oh == OH:
                            oh, od = 0, od + 1
                    dw[f, t] = acc
                if want_dx and wide_dx and by_phase[0].shape[0] > 2:
                    _gather_phases(dst, tmp, M, wt, by_phase, f > c * m)
                elif want_dx and wide_dx:
                    for k in range(bases.shape[0]):
                        add = f > c * m or k > 0
                        _taps(dst, 0, tmp, M - bases[k], wt, k * J, back, dst.size, add)
                for t in range(T if want_dx and not wide_dx else 0):
                    wv, o = wt[t], offs[t]
                    od, oh = r0 // OH, r0 % OH
                    for r in range(r0, r1):
                        d = _row_start(od, oh, base, HQ, WQ) + o
                        for ow in range(OW):
                            dst[np.uint64(d + ow)] += wv * g[np.uint64(r * OW + ow)]
                        oh += 1
                        if oh == OH:
                            oh, od = 0, od + 1
            if want_dx:
                if r0 == 0:  # the sample's first chunk: dx comes unzeroed (the caller's
                    # zeroing pass over all of dx cost 0.5 ms of 2.6 on mobilenet_dw3x3)
                    dx[n, c] = 0
                _unpad_plane(dxp, dx[n, c], base, pad, phases, lo, hi)


# Channels-last data that goes through channels-first (narrow groups, depthwise) is
# transposed there and back: the last two axes of (N, A, B) swapped, in tiles of TILE x
# TILE, each read and written while both its rows and its columns are in cache. NumPy's
# copy of the moved axes walks one side with a stride of a whole row: 4x (float32) to 16x
# (float64) slower on (8, 3136, 128) here.
TILE = 32


@numba.njit(cache=True, nogil=True)
def swap_last_axes(src, dst, u0, u1):
    # dst[n, b, a] = src[n, a, b] for src (N, A, B), over units u0:u1 of (n, a run of TILE
    # values of a), unit u = n * ceil(A / TILE) + run.
    _, A, B = src.shape
    runs = (A + TILE - 1) // TILE
    for u in range(u0, u1):
        n, a0 = u // runs, (u % runs) * TILE
        a1 = min(A, a0 + TILE)
        for b0 in range(0, B, TILE):
            for b in range(b0, min(B, b0 + TILE)):
                for a in range(a0, a1):
                    dst[n, b, a] = src[n, a, b]


# Winograd's F(4x4, 3x3) (convcol/winograd.py): each 6x6 tile of the padded input, 4
# apart, becomes V = B^T d B, and each 6x6 block of products M becomes the tile's 4x4
# outputs A^T M A. Both transforms go in two passes: along the rows first, whole padded rows
# at a time (contiguous, vectorised), then along the columns of the result, tile by tile.
# The constants are the rows of B^T and A^T (Lavin and Gray, 2015, with points 0, +-1, +-2).


@numba.njit(cache=True, inline="always")
def _bt(d0, d1, d2, d3, d4, d5):
    # B^T d for a run of 6 values: the input transform along one axis.
    return (
        4 * d0 - 5 * d2 + d4,
        d3 + d4 - 4 * (d1 + d2),
        4 * (d1 - d2) - d3 + d4,
        2 * (d3 - d1) - d2 + d4,
        2 * (d1 - d3) - d2 + d4,
        4 * d1 - 5 * d3 + d5,
    )


@numba.njit(cache=True, inline="always")
def _a(y0, y1, y2, y3):
    # A y for a run of 4 output gradients: the adjoint of the output transform A^T m.
    return (
        y0,
        y0 + y1 + y2 + y3,
        y0 - y1 + y2 - y3,
        y0 + 2 * y1 + 4 * y2 + 8 * y3,
        y0 - 2 * y1 + 4 * y2 - 8 * y3,
        y3,
    )


@numba.njit(cache=True, nogil=True)
def winograd_input(xp, V):
    # xp (nb, C, 4 * TH + 2, 4 * TW + 2), a padded input; V (36, C, nb * TH * TW): component
    # (i, j) of tile (n, ty, tx) of channel c is V[6 * i + j, c, (n * TH + ty) * TW + tx].
    nb, C, HP, WP = xp.shape
    TH, TW = (HP - 2) // 4, (WP - 2) // 4
    e = np.empty((6, WP), xp.dtype)
    for c in range(C):
        for n in range(nb):
            for ty in range(TH):
                r0, r1, r2 = xp[n, c, 4 * ty], xp[n, c, 4 * ty + 1], xp[n, c, 4 * ty + 2]
                r3, r4, r5 = xp[n, c, 4 * ty + 3], xp[n, c, 4 * ty + 4], xp[n, c, 4 * ty + 5]
                for j in range(WP):
                    e0, e1, e2, e3, e4, e5 = _bt(r0[j], r1[j], r2[j], r3[j], r4[j], r5[j])
                    e[0, j], e[1, j], e[2, j], e[3, j], e[4, j], e[5, j] = e0, e1, e2, e3, e4, e5
                t0 = (n * TH + ty) * TW
                for i in range(6):
                    a = e[i]
                    v0, v1, v2 = V[6 * i, c], V[6 * i + 1, c], V[6 * i + 2, c]
                    v3, v4, v5 = V[6 * i + 3, c], V[6 * i + 4, c], V[6 * i + 5, c]
                    for tx in range(TW):
                        j, t = np.uint64(4 * tx), np.uint64(t0 + tx)
                        d = _bt(a[j], a[j + 1], a[j + 2], a[j + 3], a[j + 4], a[j + 5])
                        v0[t], v1[t], v2[t], v3[t], v4[t], v5[t] = d


@numba.njit(cache=True, nogil=True)
def winograd_output(M, out, b):
    # M (36, F, nb * TH * TW), laid out as V; out (nb, F, OH, OW), written whole (tiles
    # past the edge are cut); b (F,) the bias, or empty for none. A^T written out rather
    # than through a helper like _bt's: that measured 5-10% slower here.
    nb, F, OH, OW = out.shape
    TH, TW = (OH + 3) // 4, (OW + 3) // 4
    full = OW // 4
    s = np.empty((4, 6, TW), M.dtype)
    for f in range(F):
        bf = b[f] if b.shape[0] > 0 else M.dtype.type(0)
        for n in range(nb):
            for ty in range(TH):
                t0 = (n * TH + ty) * TW
                for j in range(6):
                    m0, m1, m2 = M[j, f], M[6 + j, f], M[12 + j, f]
                    m3, m4, m5 = M[18 + j, f], M[24 + j, f], M[30 + j, f]
                    s0, s1, s2, s3 = s[0, j], s[1, j], s[2, j], s[3, j]
                    for tx in range(TW):
                        t = np.uint64(t0 + tx)
                        a1, a2 = m1[t] + m2[t], m1[t] - m2[t]
                        a3, a4 = m3[t] + m4[t], m3[t] - m4[t]
                        s0[tx] = m0[t] + a1 + a3
                        s1[tx] = a2 + 2 * a4
                        s2[tx] = a1 + 4 * a3
                        s3[tx] = a2 + 8 * a4 + m5[t]
                for r in range(min(4, OH - 4 * ty)):
                    o = out[n, f, 4 * ty + r]
                    q0, q1, q2, q3, q4, q5 = s[r, 0], s[r, 1], s[r, 2], s[r, 3], s[r, 4], s[r, 5]
                    for tx in range(full):
                        u = np.uint64(tx)
                        a1, a2 = q1[u] + q2[u], q1[u] - q2[u]
                        a3, a4 = q3[u] + q4[u], q3[u] - q4[u]
                        y0, y1 = q0[u] + a1 + a3 + bf, a2 + 2 * a4 + bf
                        y2, y3 = a1 + 4 * a3 + bf, a2 + 8 * a4 + q5[u] + bf
                        j = np.uint64(4 * tx)
                        o[j], o[j + 1], o[j + 2], o[j + 3] = y0, y1, y2, y3
                    if full < TW:  # the last tile, past the edge: its first OW % 4 columns
                        a1, a2 = q1[full] + q2[full], q1[full] - q2[full]
                        a3, a4 = q3[full] + q4[full], q3[full] - q4[full]
                        y = (q0[full] + a1 + a3, a2 + 2 * a4, a1 + 4 * a3)
                        for k in range(OW - 4 * full):
                            o[4 * full + k] = y[k] + bf


@numba.njit(cache=True, nogil=True)
def winograd_grad_output(g, Z):
    # The adjoint of winograd_output: Z = A g A^T for each 4x4 block of g (nb, F, R, OW),
    # a chunk's rows of dout, zero past its edges; Z (36, F, nb * TH * TW) laid out as V.
    # Row pass over whole rows (4 of g copied into y, zeros past the last), then tile by tile.
    nb, F, R, OW = g.shape
    TH, TW = (R + 3) // 4, (OW + 3) // 4
    y = np.zeros((4, OW), g.dtype)
    e = np.zeros((6, 4 * TW), g.dtype)  # columns past OW stay 0
    for f in range(F):
        for n in range(nb):
            for ty in range(TH):
                for a in range(4):
                    if 4 * ty + a < R:
                        y[a] = g[n, f, 4 * ty + a]
                    else:
                        y[a] = 0
                y0, y1, y2, y3 = y[0], y[1], y[2], y[3]
                for j in range(OW):
                    e0, e1, e2, e3, e4, e5 = _a(y0[j], y1[j], y2[j], y3[j])
                    e[0, j], e[1, j], e[2, j], e[3, j], e[4, j], e[5, j] = e0, e1, e2, e3, e4, e5
                t0 = (n * TH + ty) * TW
                for i in range(6):
                    q = e[i]
                    z0, z1, z2 = Z[6 * i, f], Z[6 * i + 1, f], Z[6 * i + 2, f]
                    z3, z4, z5 = Z[6 * i + 3, f], Z[6 * i + 4, f], Z[6 * i + 5, f]
                    for tx in range(TW):
                        j, t = np.uint64(4 * tx), np.uint64(t0 + tx)
                        z0[t], z1[t], z2[t], z3[t], z4[t], z5[t] = _a(
                            q[j], q[j + 1], q[j + 2], q[j + 3]
                        )


# F(2x2, 3x3): each 4x4 tile of the padded input, 2 apart, becomes V = B^T d B, and each
# 4x4 block of products its 2x2 outputs A^T M A; B^T's and A^T's entries are 0 and +-1
# (points 0, +-1), so the transforms are additions alone. Laid out as F(4x4, 3x3)'s, with
# 16 components (4 * i + j) instead of 36 and the same two passes.


@numba.njit(cache=True, inline="always")
def _bt2(d0, d1, d2, d3):
    # B^T d for a run of 4 values.
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@numba.njit(cache=True, inline="always")
def _a2(y0, y1):
    # A y for a pair of output gradients: the adjoint of y0 = m0 + m1 + m2, y1 = m1 - m2 - m3.
    return y0, y0 + y1, y0 - y1, -y1


@numba.njit(cache=True, nogil=True)
def winograd2_input(xp, V):
    # xp (nb, C, 2 * TH + 2, 2 * TW + 2); V (16, C, nb * TH * TW).
    nb, C, HP, WP = xp.shape
    TH, TW = (HP - 2) // 2, (WP - 2) // 2
    e = np.empty((4, WP), xp.dtype)
    for c in range(C):
        for n in range(nb):
            for ty in range(TH):
                r0, r1 = xp[n, c, 2 * ty], xp[n, c, 2 * ty + 1]
                r2, r3 = xp[n, c, 2 * ty + 2], xp[n, c, 2 * ty + 3]
                for j in range(WP):
                    e[0, j], e[1, j], e[2, j], e[3, j] = _bt2(r0[j], r1[j], r2[j], r3[j])
                t0 = (n * TH + ty) * TW
                for i in range(4):
                    a = e[i]
                    v0, v1, v2, v3 = V[4 * i, c], V[4 * i + 1, c], V[4 * i + 2, c], V[4 * i + 3, c]
                    for tx in range(TW):
                        j, t = np.uint64(2 * tx), np.uint64(t0 + tx)
                        v0[t], v1[t], v2[t], v3[t] = _bt2(a[j], a[j + 1], a[j + 2], a[j + 3])


@numba.njit(cache=True, nogil=True)
def winograd2_output(M, out, b):
    # M (16, F, nb * TH * TW); out (nb, F, OH, OW), written whole; b (F,) or empty.
    nb, F, OH, OW = out.shape
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    full = OW // 2
    s = np.empty((2, 4, TW), M.dtype)
    for f in range(F):
        bf = b[f] if b.shape[0] > 0 else M.dtype.type(0)
        for n in range(nb):
            for ty in range(TH):
                t0 = (n * TH + ty) * TW
                for j in range(4):
                    m0, m1, m2, m3 = M[j, f], M[4 + j, f], M[8 + j, f], M[12 + j, f]
                    s0, s1 = s[0, j], s[1, j]
                    for tx in range(TW):
                        t = np.uint64(t0 + tx)
                        s0[tx] = m0[t] + m1[t] + m2[t]
                        s1[tx] = m1[t] - m2[t] - m3[t]
                for r in range(min(2, OH - 2 * ty)):
                    o = out[n, f, 2 * ty + r]
                    q0, q1, q2, q3 = s[r, 0], s[r, 1], s[r, 2], s[r, 3]
                    for tx in range(full):
                        u, j = np.uint64(tx), np.uint64(2 * tx)
                        o[j] = q0[u] + q1[u] + q2[u] + bf
                        o[j + 1] = q1[u] - q2[u] - q3[u] + bf
                    if full < TW:  # the last tile, past the edge: its first column
                        o[2 * full] = q0[full] + q1[full] + q2[full] + bf


@numba.njit(cache=True, nogil=True)
def winograd2_grad_output(g, Z):
    # The adjoint of winograd2_output: Z = A g A^T for each 2x2 block of g (nb, F, R, OW),
    # zero past its edges; Z (16, F, nb * TH * TW).
    nb, F, R, OW = g.shape
    TH, TW = (R + 1) // 2, (OW + 1) // 2
    e = np.zeros((4, 2 * TW), g.dtype)  # the column past an odd OW stays 0
    for f in range(F):
        for n in range(nb):
            for ty in range(TH):
                y0 = g[n, f, 2 * ty]
                last = 2 * ty + 1 < R
                for j in range(OW):
                    y1 = g[n, f, 2 * ty + 1, j] if last else g.dtype.type(0)
                    e[0, j], e[1, j], e[2, j], e[3, j] = _a2(y0[j], y1)
                t0 = (n * TH + ty) * TW
                for i in range(4):
                    q = e[i]
                    z0, z1, z2, z3 = Z[4 * i, f], Z[4 * i + 1, f], Z[4 * i + 2, f], Z[4 * i + 3, f]
                    for tx in range(TW):
                        j, t = np.uint64(2 * tx), np.uint64(t0 + tx)
                        z0[t], z1[t], z2[t], z3[t] = _a2(q[j], q[j + 1])
