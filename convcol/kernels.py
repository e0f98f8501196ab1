"""The Numba kernels: im2col and its adjoint col2im.

Private and plain on purpose: callers (``convcol.conv``) validate, allocate every buffer with
NumPy (its allocator gets huge pages; Numba's does not) and pass it in.

Layouts (all indices in C order, K = KD * KH * KW taps, P = OD * OH * OW outputs):

- channels first: ``x`` (N, C, D, H, W) and ``cols`` (C * K, N * P), row ``(c, tap)``,
  column ``(n, output)``: a window is a column, so ``w @ cols`` is the convolution. im2col
  reads (and col2im writes) a padded, phase-split copy of the input region (``pad_region``,
  ``unpad_add``), so that every copy is a contiguous run with no bounds logic.
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
# the stride, and the kernels have no bounds logic at all. Written as explicit loops over
# views with the bare loop index: Numba compiles those to vector code, whereas slice
# assignment and computed indices (``a[off + j]``) stay scalar, 2-4x slower here.


@numba.njit(cache=True, nogil=True)
def pad_region(x, xp, base, pad):
    # xp[n, c, i, j, q, k] = x[n, c, i + base[0] - pad[0], j + base[1] - pad[1],
    # S * k + q - pad[2]], or 0 where that lies outside x.
    N, C, D, H, W = x.shape
    _, _, DR, HR, S, WQ = xp.shape
    for n in range(N):
        for c in range(C):
            for i in range(DR):
                d = i + base[0] - pad[0]
                for j in range(HR):
                    h = j + base[1] - pad[1]
                    for q in range(S):
                        dst = xp[n, c, i, j, q]
                        lo, hi = _valid_range(q - pad[2], S, W, WQ)
                        if d < 0 or d >= D or h < 0 or h >= H:
                            lo, hi = WQ, WQ
                        for k in range(lo):
                            dst[k] = 0
                        if hi > lo:
                            src = x[n, c, d, h, S * lo + q - pad[2] :: S]
                            seg = dst[lo:hi]
                            for k in range(hi - lo):
                                seg[k] = src[k]
                        for k in range(hi, WQ):
                            dst[k] = 0


@numba.njit(cache=True, nogil=True)
def unpad_add(xp, dx, base, pad):
    # The adjoint of pad_region: adds each padded element that came from dx back into it.
    N, C, D, H, W = dx.shape
    _, _, DR, HR, S, WQ = xp.shape
    for n in range(N):
        for c in range(C):
            for i in range(DR):
                d = i + base[0] - pad[0]
                if d < 0 or d >= D:
                    continue
                for j in range(HR):
                    h = j + base[1] - pad[1]
                    if h < 0 or h >= H:
                        continue
                    for q in range(S):
                        lo, hi = _valid_range(q - pad[2], S, W, WQ)
                        if hi > lo:
                            dst = dx[n, c, d, h, S * lo + q - pad[2] :: S]
                            seg = xp[n, c, i, j, q, lo:hi]
                            for k in range(hi - lo):
                                dst[k] += seg[k]


@numba.njit(cache=True, nogil=True)
def im2col(xp, cols, kernel, stride, dilation, out_size, base, r0, r1):
    # cols (C * K, nb * R): row (c, tap), column (n, output row r0 + r, ow).
    N, C, _, _, S, _ = xp.shape
    KD, KH, KW = kernel
    _, OH, OW = out_size
    K = KD * KH * KW
    R = r1 - r0
    for n in range(N):
        for c in range(C):
            for kd in range(KD):
                for kh in range(KH):
                    for kw in range(KW):
                        row = c * K + (kd * KH + kh) * KW + kw
                        q, k0 = (kw * dilation[2]) % S, (kw * dilation[2]) // S
                        od, oh = r0 // OH, r0 % OH
                        for r in range(R):
                            i = od * stride[0] + kd * dilation[0] - base[0]
                            j = oh * stride[1] + kh * dilation[1] - base[1]
                            src = xp[n, c, i, j, q, k0 : k0 + OW]
                            dst = cols[row, (n * R + r) * OW : (n * R + r + 1) * OW]
                            for ow in range(OW):
                                dst[ow] = src[ow]
                            oh += 1  # no division per row: that alone cost 10-20%
                            if oh == OH:
                                oh, od = 0, od + 1


@numba.njit(cache=True, nogil=True)
def col2im(cols, xp, kernel, stride, dilation, out_size, base, r0, r1):
    # The adjoint of im2col: adds into xp (the caller zeroes it).
    N, C, _, _, S, _ = xp.shape
    KD, KH, KW = kernel
    _, OH, OW = out_size
    K = KD * KH * KW
    R = r1 - r0
    for n in range(N):
        for c in range(C):
            for kd in range(KD):
                for kh in range(KH):
                    for kw in range(KW):
                        row = c * K + (kd * KH + kh) * KW + kw
                        q, k0 = (kw * dilation[2]) % S, (kw * dilation[2]) // S
                        od, oh = r0 // OH, r0 % OH
                        for r in range(R):
                            i = od * stride[0] + kd * dilation[0] - base[0]
                            j = oh * stride[1] + kh * dilation[1] - base[1]
                            dst = xp[n, c, i, j, q, k0 : k0 + OW]
                            src = cols[row, (n * R + r) * OW : (n * R + r + 1) * OW]
                            for ow in range(OW):
                                dst[ow] += src[ow]
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


# Depthwise convolution (one input channel per group, groups == C, F = m * C) computed
# directly: an im2col would copy each input value K times for a GEMM of inner size K. The
# innermost loops run along a row of the output, contiguous in memory.


@numba.njit(cache=True, nogil=True)
def depthwise_forward(x, w, out, stride, pad, dilation):
    N, C, D, H, W = x.shape
    _, F, OD, OH, OW = out.shape
    _, _, KD, KH, KW = w.shape
    m = F // C
    for n in range(N):
        for f in range(F):
            c = f // m
            out[n, f] = 0
            for kd in range(KD):
                for kh in range(KH):
                    for kw in range(KW):
                        wv = w[f, 0, kd, kh, kw]
                        off_w = kw * dilation[2] - pad[2]
                        lo, hi = _valid_range(off_w, stride[2], W, OW)
                        for od in range(OD):
                            i_d = od * stride[0] + kd * dilation[0] - pad[0]
                            if i_d < 0 or i_d >= D:
                                continue
                            for oh in range(OH):
                                i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                                if i_h < 0 or i_h >= H:
                                    continue
                                # Row views: plain 1-D loops that LLVM vectorises.
                                orow = out[n, f, od, oh, lo:hi]
                                xrow = x[n, c, i_d, i_h, lo * stride[2] + off_w :]
                                for j in range(orow.shape[0]):
                                    orow[j] += wv * xrow[j * stride[2]]


@numba.njit(cache=True, nogil=True)
def depthwise_backward_input(dout, w, dx, stride, pad, dilation):
    N, C, D, H, W = dx.shape
    _, F, OD, OH, OW = dout.shape
    _, _, KD, KH, KW = w.shape
    m = F // C
    for n in range(N):
        for c in range(C):
            dx[n, c] = 0
            for f in range(c * m, (c + 1) * m):
                for kd in range(KD):
                    for kh in range(KH):
                        for kw in range(KW):
                            wv = w[f, 0, kd, kh, kw]
                            off_w = kw * dilation[2] - pad[2]
                            lo, hi = _valid_range(off_w, stride[2], W, OW)
                            for od in range(OD):
                                i_d = od * stride[0] + kd * dilation[0] - pad[0]
                                if i_d < 0 or i_d >= D:
                                    continue
                                for oh in range(OH):
                                    i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                                    if i_h < 0 or i_h >= H:
                                        continue
                                    grow = dout[n, f, od, oh, lo:hi]
                                    dxrow = dx[n, c, i_d, i_h, lo * stride[2] + off_w :]
                                    for j in range(grow.shape[0]):
                                        dxrow[j * stride[2]] += wv * grow[j]


# Reassociation lets LLVM vectorise the dot products; no-NaN/no-inf assumptions stay off so
# that non-finite values propagate exactly.
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def depthwise_backward_weight(x, dout, dw, stride, pad, dilation):
    N, C, D, H, W = x.shape
    _, F, OD, OH, OW = dout.shape
    _, _, KD, KH, KW = dw.shape
    m = F // C
    for f in range(F):
        c = f // m
        for kd in range(KD):
            for kh in range(KH):
                for kw in range(KW):
                    off_w = kw * dilation[2] - pad[2]
                    lo, hi = _valid_range(off_w, stride[2], W, OW)
                    acc = dw[f, 0, kd, kh, kw]  # zeroed by the caller; sets acc's dtype
                    for n in range(N):
                        for od in range(OD):
                            i_d = od * stride[0] + kd * dilation[0] - pad[0]
                            if i_d < 0 or i_d >= D:
                                continue
                            for oh in range(OH):
                                i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                                if i_h < 0 or i_h >= H:
                                    continue
                                grow = dout[n, f, od, oh, lo:hi]
                                xrow = x[n, c, i_d, i_h, lo * stride[2] + off_w :]
                                for j in range(grow.shape[0]):
                                    acc += xrow[j * stride[2]] * grow[j]
                    dw[f, 0, kd, kh, kw] = acc


# Depthwise, stride 1, 1-D or 2-D: on the zero-padded input every tap is one long contiguous
# loop over the flattened plane. The output is computed "wide" (Wp columns per row, the last
# Wp - OW of them garbage that the caller drops), so the rows need no separate loops.


@numba.njit(cache=True, nogil=True)
def depthwise_forward_wide(xp, w, out_wide, dilation):
    N, C, _, Wp = xp.shape
    F, _, KH, KW = w.shape
    OH = out_wide.shape[2]
    m = F // C
    length = OH * Wp - (KW - 1) * dilation[1]
    for n in range(N):
        for f in range(F):
            src = xp[n, f // m].ravel()
            dst = out_wide[n, f].ravel()
            dst[:] = 0
            for kh in range(KH):
                for kw in range(KW):
                    wv = w[f, 0, kh, kw]
                    off = kh * dilation[0] * Wp + kw * dilation[1]
                    # Aligned slices, so that the loop indexes both the same way (2x faster).
                    d, s = dst[:length], src[off : off + length]
                    for q in range(length):
                        d[q] += wv * s[q]


@numba.njit(cache=True, nogil=True)
def depthwise_backward_input_wide(dout_wide, w, dxp, dilation):
    # dout_wide's garbage columns must be zero. Adds into dxp (zeroed by the caller).
    N, C, _, Wp = dxp.shape
    F, _, KH, KW = w.shape
    OH = dout_wide.shape[2]
    m = F // C
    length = OH * Wp - (KW - 1) * dilation[1]
    for n in range(N):
        for f in range(F):
            src = dout_wide[n, f].ravel()
            dst = dxp[n, f // m].ravel()
            for kh in range(KH):
                for kw in range(KW):
                    wv = w[f, 0, kh, kw]
                    off = kh * dilation[0] * Wp + kw * dilation[1]
                    d, s = dst[off : off + length], src[:length]
                    for q in range(length):
                        d[q] += wv * s[q]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def depthwise_backward_weight_wide(xp, dout_wide, dw, dilation):
    # dout_wide's garbage columns must be zero; dw is zeroed by the caller.
    N, C, _, Wp = xp.shape
    F, _, KH, KW = dw.shape
    OH = dout_wide.shape[2]
    m = F // C
    length = OH * Wp - (KW - 1) * dilation[1]
    for f in range(F):
        for kh in range(KH):
            for kw in range(KW):
                off = kh * dilation[0] * Wp + kw * dilation[1]
                acc = dw[f, 0, kh, kw]
                for n in range(N):
                    s = xp[n, f // m].ravel()[off : off + length]
                    g = dout_wide[n, f].ravel()[:length]
                    for q in range(length):
                        acc += s[q] * g[q]
                dw[f, 0, kh, kw] = acc
