"""The Numba kernels: im2col and its adjoint col2im.

Private and plain on purpose: callers (``convcol.conv``) validate, allocate every buffer with
NumPy (its allocator gets huge pages; Numba's does not) and pass it in.

Layouts (all indices in C order, K = KD * KH * KW taps, P = OD * OH * OW outputs):

- channels first: ``x`` (N, C, D, H, W) and ``cols`` (C * K, N * P), row ``(c, tap)``,
  column ``(n, output)``: a window is a column, so ``w @ cols`` is the convolution.
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


@numba.njit(cache=True, nogil=True)
def im2col(x, cols, kernel, stride, pad, dilation, out_size, r0, r1):
    N, C, D, H, W = x.shape
    KD, KH, KW = kernel
    _, OH, OW = out_size
    K = KD * KH * KW
    R = r1 - r0
    for job in range(N * C):
        n, c = job // C, job % C
        for kd in range(KD):
            for kh in range(KH):
                for kw in range(KW):
                    row = c * K + (kd * KH + kh) * KW + kw
                    off_w = kw * dilation[2] - pad[2]
                    lo, hi = _valid_range(off_w, stride[2], W, OW)
                    for r in range(r0, r1):
                        od, oh = r // OH, r % OH
                        i_d = od * stride[0] + kd * dilation[0] - pad[0]
                        i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                        base = (n * R + r - r0) * OW
                        # Row views: plain 1-D loops that LLVM vectorises.
                        crow = cols[row, base : base + OW]
                        if i_d < 0 or i_d >= D or i_h < 0 or i_h >= H:
                            crow[:] = 0
                            continue
                        crow[:lo] = 0
                        if stride[2] == 1:  # a contiguous run: a slice copy (30% faster)
                            crow[lo:hi] = x[n, c, i_d, i_h, lo + off_w : hi + off_w]
                        else:
                            xrow = x[n, c, i_d, i_h]
                            for ow in range(lo, hi):
                                crow[ow] = xrow[ow * stride[2] + off_w]
                        crow[hi:] = 0


@numba.njit(cache=True, nogil=True)
def col2im(cols, dx, kernel, stride, pad, dilation, out_size, r0, r1):
    # Adds into dx (the caller zeroes it), so that chunks of output rows can be added in turn.
    N, C, D, H, W = dx.shape
    KD, KH, KW = kernel
    _, OH, OW = out_size
    K = KD * KH * KW
    R = r1 - r0
    for job in range(N * C):
        n, c = job // C, job % C
        for kd in range(KD):
            for kh in range(KH):
                for kw in range(KW):
                    row = c * K + (kd * KH + kh) * KW + kw
                    off_w = kw * dilation[2] - pad[2]
                    lo, hi = _valid_range(off_w, stride[2], W, OW)
                    for r in range(r0, r1):
                        od, oh = r // OH, r % OH
                        i_d = od * stride[0] + kd * dilation[0] - pad[0]
                        if i_d < 0 or i_d >= D:
                            continue
                        i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                        if i_h < 0 or i_h >= H:
                            continue
                        base = (n * R + r - r0) * OW
                        crow = cols[row, base : base + OW]
                        dxrow = dx[n, c, i_d, i_h]
                        for ow in range(lo, hi):
                            dxrow[ow * stride[2] + off_w] += crow[ow]


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
