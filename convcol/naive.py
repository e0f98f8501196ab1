"""The oracle: convolution by plain loops, the definition of "correct" for convcol.

These are the tutorial's loops (one window at a time, ``out = sum(window * w) + b``),
extended to every option the fast path supports: per-axis stride, every padding form,
dilation and groups. They share argument checking with the fast path
(:mod:`convcol.validation`) but nothing that computes: the padding is ``np.pad``, the output
size is a count of the windows that fit, and 'same' is resolved here, so a bug in the fast
path's arithmetic cannot hide in the oracle.

They are slow (a Python loop per output element); use them on small inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .validation import (
    Pads,
    as_array,
    check_conv_shapes,
    check_dout,
    check_window_fits,
    compute_dtype,
    parse_conv_param,
)

__all__ = [
    "conv_backward_naive",
    "conv_backward_single",
    "conv_forward_naive",
    "conv_forward_single",
]


def _span(k: int, d: int) -> int:
    # Input pixels covered by a kernel of k taps, d apart.
    return len(range(0, d * (k - 1) + 1))


def _explicit_pads(
    padding: Pads | str,
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> Pads:
    if padding != "same":
        return padding  # type: ignore[return-value]
    pads = []
    for n, k, s, d in zip(in_size, kernel, stride, dilation, strict=True):
        wanted = len(range(0, n, s))  # one output per stride step that starts inside x
        needed = s * (wanted - 1) + _span(k, d)  # padded length that yields `wanted` windows
        total = max(0, needed - n)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _setup(x: Any, w: Any, b: Any, conv_param: Any, dout: Any = None) -> tuple[Any, ...]:
    p = parse_conv_param(conv_param)
    x, w = as_array("x", x), as_array("w", w)
    b = None if b is None else as_array("b", b)
    dout = None if dout is None else as_array("dout", dout)
    check_conv_shapes(x.shape, w.shape, None if b is None else b.shape, p["groups"], 2)
    dtype = compute_dtype(x, w, b, dout)
    x, w = x.astype(dtype), w.astype(dtype)
    b = None if b is None else b.astype(dtype)
    dout = None if dout is None else dout.astype(dtype)
    pads = _explicit_pads(p["padding"], x.shape[2:], w.shape[2:], p["stride"], p["dilation"])
    check_window_fits(
        x.shape[2:], pads, w.shape[2:], p["dilation"], f"x.shape={x.shape}, w.shape={w.shape}"
    )
    x_pad = np.pad(x, ((0, 0), (0, 0), *pads))
    (sh, sw), (dh, dw), (HH, WW) = p["stride"], p["dilation"], w.shape[2:]
    # Window starts are every stride-th padded pixel from which the whole kernel still fits.
    rows = range(0, x_pad.shape[2] - _span(HH, dh) + 1, sh)
    cols = range(0, x_pad.shape[3] - _span(WW, dw) + 1, sw)

    def window(i: int, j: int) -> tuple[slice, slice]:
        return (
            slice(rows[i], rows[i] + _span(HH, dh), dh),
            slice(cols[j], cols[j] + _span(WW, dw), dw),
        )

    if dout is not None:
        check_dout(
            dout,
            (x.shape[0], w.shape[0], len(rows), len(cols)),
            f"x.shape={x.shape}, w.shape={w.shape}",
        )
    return x, w, b, dout, x_pad, pads, p["groups"], len(rows), len(cols), window


def conv_forward_naive(
    x: Any, w: Any, b: Any, conv_param: dict[str, Any]
) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Forward pass by loops; cs231n's signature and semantics.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    w : array_like, shape (F, C // groups, HH, WW)
    b : array_like, shape (F,), or None
    conv_param : dict
        ``'stride'``, ``'pad'``, ``'dilation'``, ``'groups'``, as for
        :func:`convcol.conv_forward`.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
    cache : tuple
        ``(x, w, b, conv_param)``, as cs231n's.

    Examples
    --------
    >>> import numpy as np
    >>> from convcol.naive import conv_forward_naive
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> out, _ = conv_forward_naive(x, np.ones((1, 1, 2, 2)), None, {"stride": 2, "pad": 0})
    >>> out
    array([[[[10., 18.],
             [42., 50.]]]])
    """
    cache = (x, w, b, conv_param)
    x, w, b, _, x_pad, _, groups, Hout, Wout, window = _setup(x, w, b, conv_param)
    N, F = x.shape[0], w.shape[0]
    Cg, Fg = w.shape[1], F // groups
    out = np.zeros((N, F, Hout, Wout), x.dtype)
    for n in range(N):
        for f in range(F):
            g = f // Fg  # filter f sees only the channels of its group
            channels = slice(g * Cg, (g + 1) * Cg)
            for i in range(Hout):
                for j in range(Wout):
                    out[n, f, i, j] = np.sum(x_pad[(n, channels, *window(i, j))] * w[f])
                    if b is not None:
                        out[n, f, i, j] += b[f]
    return out, cache


def conv_backward_naive(
    dout: Any, cache: tuple[Any, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass by loops: every output's gradient is spread back over its window.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
    cache : tuple
        ``(x, w, b, conv_param)`` from :func:`conv_forward_naive`.

    Returns
    -------
    dx, dw, db : ndarray
        Shaped like ``x``, ``w`` and (F,).
    """
    x, w, b, conv_param = cache
    x, w, _, dout, x_pad, pads, groups, Hout, Wout, window = _setup(x, w, b, conv_param, dout)
    dtype = x.dtype
    N, F = x.shape[0], w.shape[0]
    Cg, Fg = w.shape[1], F // groups
    dx_pad = np.zeros(x_pad.shape, dtype)
    dw = np.zeros(w.shape, dtype)
    db = np.zeros(F, dtype)
    for n in range(N):
        for f in range(F):
            g = f // Fg
            channels = slice(g * Cg, (g + 1) * Cg)
            db[f] += dout[n, f].sum()
            for i in range(Hout):
                for j in range(Wout):
                    patch = (n, channels, *window(i, j))
                    dw[f] += x_pad[patch] * dout[n, f, i, j]
                    dx_pad[patch] += w[f] * dout[n, f, i, j]
    (top, _), (left, _) = pads
    dx = dx_pad[:, :, top : top + x.shape[2], left : left + x.shape[3]].copy()
    return dx, dw, db


def conv_forward_single(X: Any, W: Any) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The tutorial's single-channel forward pass: no padding, stride 1.

    Parameters
    ----------
    X : array_like, shape (H, W)
    W : array_like, shape (fh, fw)

    Returns
    -------
    H : ndarray, shape (H - fh + 1, W - fw + 1)
        ``H[h, w] = sum(X[h:h+fh, w:w+fw] * W)``.
    cache : (X, W)

    Examples
    --------
    The tutorial's worked example, ``h11 = W11 X11 + W12 X12 + W21 X21 + W22 X22``:

    >>> import numpy as np
    >>> from convcol.naive import conv_forward_single
    >>> H, _ = conv_forward_single(np.arange(1.0, 10.0).reshape(3, 3), np.array([[1.0, 0], [0, 1]]))
    >>> H
    array([[ 6.,  8.],
           [12., 14.]])
    """
    X, W = np.asarray(X, dtype=float), np.asarray(W, dtype=float)
    fh, fw = W.shape
    H = np.zeros((X.shape[0] - fh + 1, X.shape[1] - fw + 1))
    for h in range(H.shape[0]):
        for w in range(H.shape[1]):
            H[h, w] = np.sum(X[h : h + fh, w : w + fw] * W)
    return H, (X, W)


def conv_backward_single(
    dH: Any, cache: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's single-channel backward pass, with its indexing bug fixed.

    The tutorial writes ``dH(h,w)``, which calls the array instead of indexing it; the
    gradient of output ``(h, w)`` is ``dH[h, w]``.

    Returns
    -------
    dX : ndarray, shape of X
        ``dX[h:h+fh, w:w+fw] += W * dH[h, w]`` over all outputs.
    dW : ndarray, shape of W
        ``dW += X[h:h+fh, w:w+fw] * dH[h, w]`` over all outputs.
    """
    X, W = cache
    dH = np.asarray(dH, dtype=float)
    fh, fw = W.shape
    dX = np.zeros(X.shape)
    dW = np.zeros(W.shape)
    for h in range(dH.shape[0]):
        for w in range(dH.shape[1]):
            dX[h : h + fh, w : w + fw] += W * dH[h, w]
            dW += X[h : h + fh, w : w + fw] * dH[h, w]
    return dX, dW
