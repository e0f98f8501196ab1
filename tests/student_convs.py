"""A student's cs231n convolution, correct and with each classic bug, for ``convcol check``.

Written the way the assignment is usually solved (loops over n, f, i, j), independently of
convcol.naive, so that the checker is tested on code it did not write.
"""

import numpy as np


def forward_correct(x, w, b, conv_param):
    s, p = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho, Wo = 1 + (H + 2 * p - HH) // s, 1 + (W + 2 * p - WW) // s
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, f, i, j] = np.sum(
                        xp[n, :, i * s : i * s + HH, j * s : j * s + WW] * w[f]
                    )
            out[n, f] += b[f]
    return out, (x, w, b, conv_param)


def backward_correct(dout, cache, overwrite=False):
    x, w, _, conv_param = cache
    s, p = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = (n, slice(None), slice(i * s, i * s + HH), slice(j * s, j * s + WW))
                    dw[f] += xp[window] * dout[n, f, i, j]
                    if overwrite:  # the bug: = where the scatter must add
                        dxp[window] = w[f] * dout[n, f, i, j]
                    else:
                        dxp[window] += w[f] * dout[n, f, i, j]
    return dxp[:, :, p : p + H, p : p + W], dw, db


def forward_transposed_kernel(x, w, b, conv_param):
    # Reads the kernel with its two spatial indices swapped: w[f, c, q, p] for tap (p, q).
    wt = np.swapaxes(w, 2, 3).reshape(w.shape)
    return forward_correct(x, wt, b, conv_param)[0], (x, w, b, conv_param)


def forward_pad_one_side(x, w, b, conv_param):
    # All the padding before the image, none after: same output size, shifted windows.
    p = conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (2 * p, 0), (2 * p, 0)))
    out, _ = forward_correct(xp, w, b, {**conv_param, "pad": 0})
    return out, (x, w, b, conv_param)


def forward_stride_on_kernel_offset(x, w, b, conv_param):
    # Steps through the kernel taps by the stride as well: tap (p, q) reads x[i*s + p*s, ...].
    s, p = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho, Wo = 1 + (H + 2 * p - HH) // s, 1 + (W + 2 * p - WW) // s
    xp = np.pad(x, ((0, 0), (0, 0), (p, p + HH * s), (p, p + WW * s)))  # room to read past
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    win = xp[n, :, i * s : i * s + HH * s : s, j * s : j * s + WW * s : s]
                    out[n, f, i, j] = np.sum(win * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def forward_bias_per_channel(x, w, b, conv_param):
    # Adds the bias once per input channel instead of once per filter.
    out, cache = forward_correct(x, w, np.zeros_like(b), conv_param)
    return out + x.shape[1] * b[None, :, None, None], cache


def backward_overwrite(dout, cache):
    return backward_correct(dout, cache, overwrite=True)


def backward_unpad_negative_slice(dout, cache):
    # Strips the padding with p:-p, which is empty, not everything, when p == 0.
    dx, dw, db = backward_correct(dout, cache)
    p = cache[3]["pad"]
    dxp = np.pad(dx, ((0, 0), (0, 0), (p, p), (p, p)))
    return dxp[:, :, p:-p, p:-p], dw, db


def forward_raises(x, w, b, conv_param):
    if w.shape[2] != w.shape[3]:
        raise ValueError("only square kernels")
    return forward_correct(x, w, b, conv_param)


def backward_stride_ignored(dout, cache):
    # Scatters dx with stride 1 whatever the stride: windows at i:i+HH instead of i*s:i*s+HH.
    x, w, b, conv_param = cache
    return (
        backward_correct(dout, (x, w, b, {**conv_param, "stride": 1}))[0:1]
        + (backward_correct(dout, cache)[1:])
    )


def forward_without_cache(x, w, b, conv_param):
    return forward_correct(x, w, b, conv_param)[0]


def forward_centres_input_in_place(x, w, b, conv_param):
    # Right output, but the caller's x is changed afterwards (a "cleanup" step): the backward
    # pass, which reads x from the cache, then sees other data.
    out, cache = forward_correct(x, w, b, conv_param)
    x -= x.mean()
    return out, cache


def backward_scales_dout_in_place(dout, cache):
    # Right gradients, but the caller's dout is left doubled.
    dout *= 2
    dx, dw, db = backward_correct(dout, cache)
    return dx / 2, dw / 2, db / 2


def backward_without_db(dout, cache):
    return backward_correct(dout, cache)[:2]


def forward_in_float32(x, w, b, conv_param):
    out, cache = forward_correct(x.astype(np.float32), w.astype(np.float32), b, conv_param)
    return out.astype(np.float32), cache
