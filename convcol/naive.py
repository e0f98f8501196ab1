"""The oracle: convolution by plain loops, the definition of "correct" for convcol.

These are the tutorial's loops (one window at a time, ``out = sum(window * w) + b``),
extended to every option the fast path supports: 1-D, 2-D and 3-D, per-axis stride, every
padding form and padding mode, dilation, groups, channels-last data, and the transposed
convolution (each input pixel scatters ``x * w`` onto its window of the output). They share
argument checking with the fast path (``convcol.validation``) but nothing that computes:
padding here is ``np.pad``, an output size is a count of the windows that fit, and 'same' is
resolved here, so a bug in the fast path's arithmetic cannot hide in the oracle.

They are slow (a Python loop per output element); use them on small inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .validation import (
    DATA_FORMATS,
    PADDING_MODES,
    ConvError,
    as_array,
    as_int,
    check_conv_shapes,
    check_dout,
    check_padding_mode,
    check_transpose_options,
    check_window_fits,
    choice,
    compute_dtype,
    parse_conv_param,
    parse_padding,
    per_axis,
)

__all__ = [
    "conv_backward_naive",
    "conv_backward_single",
    "conv_forward_naive",
    "conv_forward_single",
    "conv_nd_backward_naive",
    "conv_nd_naive",
    "conv_transpose_nd_backward_naive",
    "conv_transpose_nd_naive",
]

# np.pad's names for PyTorch's padding modes.
_NP_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _span(k: int, d: int) -> int:
    # Input pixels covered by a kernel of k taps, d apart.
    return len(range(0, d * (k - 1) + 1))


class _Args:
    """The checked arguments of one oracle call, data moved to channels-first."""

    def __init__(
        self, x: Any, w: Any, b: Any, dout: Any, options: dict[str, Any], transposed: bool
    ) -> None:
        x, w = as_array("x", x), as_array("w", w)
        b = None if b is None else as_array("b", b)
        dout = None if dout is None else as_array("dout", dout)
        nd = x.ndim - 2
        if nd not in (1, 2, 3):
            raise ConvError(
                f"x must be 3-, 4- or 5-D (a 1-, 2- or 3-D batch), got x.shape={x.shape}"
            )
        self.nd = nd
        self.stride = per_axis("stride", options.get("stride", 1), nd, 1)
        self.dilation = per_axis("dilation", options.get("dilation", 1), nd, 1)
        self.groups = as_int("groups", options.get("groups", 1), 1)
        self.mode = choice("padding_mode", options.get("padding_mode", "zeros"), PADDING_MODES)
        fmt = choice("data_format", options.get("data_format", "channels_first"), DATA_FORMATS)
        self.channels_last = fmt == "channels_last"
        padding = parse_padding("padding", options.get("padding", 0), nd)
        check_conv_shapes(
            x.shape,
            w.shape,
            None if b is None else b.shape,
            self.groups,
            nd,
            channels_last=self.channels_last,
            transposed=transposed,
        )
        self.dtype = compute_dtype(x, w, b, dout)
        self.x = self.channels_first(x.astype(self.dtype))
        self.w = w.astype(self.dtype)
        self.b = None if b is None else b.astype(self.dtype)
        self.dout = None if dout is None else dout.astype(self.dtype)
        self.shapes = f"x.shape={x.shape}, w.shape={w.shape}"
        self.kernel = w.shape[2:]
        in_size = self.x.shape[2:]
        if transposed:
            self.output_padding = per_axis(
                "output_padding", options.get("output_padding", 0), nd, 0
            )
            check_transpose_options(
                padding, self.mode, self.output_padding, self.stride, self.dilation
            )
            self.pads = padding
        else:
            self.pads = self._resolve(padding, in_size)
            check_window_fits(in_size, self.pads, self.kernel, self.dilation, self.shapes)
            if self.mode != "zeros":
                check_padding_mode(self.mode, in_size, self.pads, self.shapes)

    def _resolve(self, padding: Any, in_size: tuple[int, ...]) -> Any:
        if padding != "same":
            return padding
        pads = []
        for n, k, s, d in zip(in_size, self.kernel, self.stride, self.dilation, strict=True):
            wanted = len(range(0, n, s))  # one output per stride step that starts inside x
            needed = s * (wanted - 1) + _span(k, d)  # padded length giving `wanted` windows
            total = max(0, needed - n)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)

    def channels_first(self, a: np.ndarray) -> np.ndarray:
        return np.moveaxis(a, -1, 1) if self.channels_last else a

    def given_format(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(a, 1, -1) if self.channels_last else a)

    def window(self, pos: tuple[int, ...]) -> tuple[slice, ...]:
        """The (dilated) window of output position ``pos`` in padded coordinates."""
        return tuple(
            slice(i * s, i * s + _span(k, d), d)
            for i, s, k, d in zip(pos, self.stride, self.kernel, self.dilation, strict=True)
        )

    def out_positions(self, padded_size: tuple[int, ...]) -> tuple[int, ...]:
        # Window starts are every stride-th padded pixel from which the whole kernel fits.
        return tuple(
            len(range(0, n - _span(k, d) + 1, s))
            for n, k, s, d in zip(padded_size, self.kernel, self.stride, self.dilation, strict=True)
        )

    def group_slices(self, groups_of: int, per_group: int, channel: int) -> slice:
        g = channel // groups_of
        return slice(g * per_group, (g + 1) * per_group)

    def pad(self, a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, 0), *self.pads), mode=_NP_PAD_MODE[self.mode])

    def unpad(self, dpad: np.ndarray, in_size: tuple[int, ...]) -> np.ndarray:
        """Send each padded pixel's gradient to the input pixel it was copied from."""
        d = dpad
        for ax, (n, (lo, hi)) in enumerate(zip(in_size, self.pads, strict=True)):
            axis = 2 + ax
            if self.mode == "zeros":
                d = np.take(d, np.arange(lo, lo + n), axis=axis)
                continue
            source = np.pad(np.arange(n), (lo, hi), mode=_NP_PAD_MODE[self.mode])
            folded = np.zeros((*d.shape[:axis], n, *d.shape[axis + 1 :]), d.dtype)
            for j, i in enumerate(source):
                index = (slice(None),) * axis
                folded[(*index, i)] += d[(*index, j)]
            d = folded
        return d


def conv_nd_naive(x: Any, w: Any, b: Any = None, **options: Any) -> np.ndarray:
    """Convolution of any rank by loops: ``convcol.conv1d/2d/3d``'s definition.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) (or (N, *spatial, C), channels last)
    w : array_like, shape (F, C // groups, *kernel)
    b : array_like, shape (F,), optional
    **options
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``, ``data_format``
        as for ``convcol.conv2d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convcol.naive import conv_nd_naive
    >>> conv_nd_naive(np.arange(5.0).reshape(1, 1, 5), np.ones((1, 1, 2)), padding=1,
    ...               padding_mode="circular")   # pads to [4, 0, 1, 2, 3, 4, 0]
    array([[[4., 1., 3., 5., 7., 4.]]])
    """
    a = _Args(x, w, b, None, options, transposed=False)
    xp = a.pad(a.x)
    N, F = a.x.shape[0], a.w.shape[0]
    Cg, Fg = a.w.shape[1], F // a.groups
    out_size = a.out_positions(xp.shape[2:])
    out = np.zeros((N, F, *out_size), a.dtype)
    for n in range(N):
        for f in range(F):
            channels = a.group_slices(Fg, Cg, f)  # filter f sees only its group's channels
            for pos in np.ndindex(*out_size):
                out[(n, f, *pos)] = np.sum(xp[(n, channels, *a.window(pos))] * a.w[f])
                if a.b is not None:
                    out[(n, f, *pos)] += a.b[f]
    return a.given_format(out)


def conv_nd_backward_naive(
    dout: Any, x: Any, w: Any, **options: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``conv_nd_naive`` by loops: each output's gradient spread over its window.

    Returns ``(dx, dw, db)``, shaped like ``x``, ``w`` and (F,).

    Examples
    --------
    >>> import numpy as np
    >>> from convcol.naive import conv_nd_backward_naive
    >>> dx, dw, db = conv_nd_backward_naive(np.ones((1, 1, 4)), np.arange(5.0).reshape(1, 1, 5),
    ...                                     np.ones((1, 1, 2)))
    >>> dx, dw, db
    (array([[[1., 2., 2., 2., 1.]]]), array([[[ 6., 10.]]]), array([4.]))
    """
    a = _Args(x, w, None, dout, options, transposed=False)
    xp = a.pad(a.x)
    N, F = a.x.shape[0], a.w.shape[0]
    Cg, Fg = a.w.shape[1], F // a.groups
    out_size = a.out_positions(xp.shape[2:])
    check_dout(a.dout, a.given_format(np.empty((N, F, *out_size), a.dtype)).shape, a.shapes)
    g = a.channels_first(a.dout)
    dxp = np.zeros(xp.shape, a.dtype)
    dw = np.zeros(a.w.shape, a.dtype)
    db = np.zeros(F, a.dtype)
    for n in range(N):
        for f in range(F):
            channels = a.group_slices(Fg, Cg, f)
            db[f] += g[n, f].sum()
            for pos in np.ndindex(*out_size):
                patch = (n, channels, *a.window(pos))
                dw[f] += xp[patch] * g[(n, f, *pos)]
                dxp[patch] += a.w[f] * g[(n, f, *pos)]
    return a.given_format(a.unpad(dxp, a.x.shape[2:])), dw, db


def _full_size(a: _Args, in_size: tuple[int, ...]) -> tuple[int, ...]:
    # Every input pixel's window, laid end to end by the stride, plus output_padding.
    return tuple(
        (n - 1) * s + _span(k, d) + op
        for n, s, k, d, op in zip(
            in_size, a.stride, a.kernel, a.dilation, a.output_padding, strict=True
        )
    )


def _crop(a: _Args, full: tuple[int, ...]) -> tuple[slice, ...]:
    crop = []
    for ax, (size, (lo, hi)) in enumerate(zip(full, a.pads, strict=True)):
        if size - lo - hi < 1:
            raise ConvError(
                f"the transposed convolution's output would have size {size - lo - hi} along "
                f"spatial axis {ax} ({a.shapes})"
            )
        crop.append(slice(lo, size - hi))
    return (slice(None), slice(None), *crop)


def conv_transpose_nd_naive(x: Any, w: Any, b: Any = None, **options: Any) -> np.ndarray:
    """Transposed convolution by loops: each input pixel scatters ``x * w`` onto its window.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial) (or channels last)
    w : array_like, shape (C_in, C_out // groups, *kernel)
    b : array_like, shape (C_out,), optional
    **options
        ``stride``, ``padding``, ``output_padding``, ``dilation``, ``groups``,
        ``padding_mode`` (only 'zeros'), ``data_format``, as for
        ``convcol.conv_transpose2d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convcol.naive import conv_transpose_nd_naive
    >>> conv_transpose_nd_naive(np.array([[[1.0, 2.0]]]), np.array([[[1.0, 10.0, 100.0]]]),
    ...                         stride=2)
    array([[[  1.,  10., 102.,  20., 200.]]])
    """
    a = _Args(x, w, b, None, options, transposed=True)
    N, C_in = a.x.shape[:2]
    Cog = a.w.shape[1]
    Cig = C_in // a.groups
    full = _full_size(a, a.x.shape[2:])
    crop = _crop(a, full)
    y = np.zeros((N, Cog * a.groups, *full), a.dtype)
    for n in range(N):
        for ci in range(C_in):
            outs = a.group_slices(Cig, Cog, ci)  # input channel ci feeds its group's outputs
            for pos in np.ndindex(*a.x.shape[2:]):
                y[(n, outs, *a.window(pos))] += a.x[(n, ci, *pos)] * a.w[ci]
    y = y[crop]
    if a.b is not None:
        y = y + a.b.reshape((-1,) + (1,) * a.nd)
    return a.given_format(y)


def conv_transpose_nd_backward_naive(
    dout: Any, x: Any, w: Any, **options: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``conv_transpose_nd_naive`` by loops; ``(dx, dw, db)``.

    Examples
    --------
    >>> import numpy as np
    >>> from convcol.naive import conv_transpose_nd_backward_naive
    >>> conv_transpose_nd_backward_naive(np.ones((1, 1, 5)), np.array([[[1.0, 2.0]]]),
    ...                                  np.array([[[1.0, 10.0, 100.0]]]), stride=2)
    (array([[[111., 111.]]]), array([[[3., 3., 3.]]]), array([5.]))
    """
    a = _Args(x, w, None, dout, options, transposed=True)
    N, C_in = a.x.shape[:2]
    Cog = a.w.shape[1]
    Cig = C_in // a.groups
    full = _full_size(a, a.x.shape[2:])
    crop = _crop(a, full)
    out_shape = np.empty((N, Cog * a.groups, *full))[crop].shape
    check_dout(a.dout, a.given_format(np.empty(out_shape)).shape, a.shapes)
    g_full = np.zeros((N, Cog * a.groups, *full), a.dtype)
    g_full[crop] = a.channels_first(a.dout)
    dx = np.zeros(a.x.shape, a.dtype)
    dw = np.zeros(a.w.shape, a.dtype)
    for n in range(N):
        for ci in range(C_in):
            outs = a.group_slices(Cig, Cog, ci)
            for pos in np.ndindex(*a.x.shape[2:]):
                patch = g_full[(n, outs, *a.window(pos))]
                dx[(n, ci, *pos)] = np.sum(patch * a.w[ci])
                dw[ci] += a.x[(n, ci, *pos)] * patch
    db = a.channels_first(a.dout).sum(axis=(0, *range(2, 2 + a.nd)))
    return a.given_format(dx), dw, db


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
        ``convcol.conv_forward``.

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
    options = parse_conv_param(conv_param)
    _check_4d(x)
    return conv_nd_naive(x, w, b, **options), (x, w, b, conv_param)


def conv_backward_naive(
    dout: Any, cache: tuple[Any, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass by loops: every output's gradient is spread back over its window.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
    cache : tuple
        ``(x, w, b, conv_param)`` from ``conv_forward_naive``.

    Returns
    -------
    dx, dw, db : ndarray
        Shaped like ``x``, ``w`` and (F,).

    Examples
    --------
    >>> import numpy as np
    >>> from convcol.naive import conv_forward_naive, conv_backward_naive
    >>> out, cache = conv_forward_naive(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)),
    ...                                 np.zeros(1), {"stride": 1, "pad": 0})
    >>> conv_backward_naive(np.ones_like(out), cache)[1]
    array([[[[4., 4.],
             [4., 4.]]]])
    """
    if not (isinstance(cache, tuple) and len(cache) == 4):
        raise ConvError(
            "cache must be the (x, w, b, conv_param) tuple returned by conv_forward_naive, "
            f"got {type(cache).__name__}"
        )
    x, w, b, conv_param = cache
    options = parse_conv_param(conv_param)
    _check_4d(x)
    dtype = compute_dtype(
        *(as_array(n, a) for n, a in (("x", x), ("w", w), ("dout", dout))),
        None if b is None else as_array("b", b),
    )
    dx, dw, db = conv_nd_backward_naive(dout, x, w, **options)
    return dx.astype(dtype), dw.astype(dtype), db.astype(dtype)


def _check_4d(x: Any) -> None:
    shape = np.shape(x)
    if len(shape) != 4:
        raise ConvError(f"x must be 4-D (N, C, H, W), got {len(shape)}-D x.shape={shape}")


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

    Examples
    --------
    >>> import numpy as np
    >>> from convcol.naive import conv_forward_single, conv_backward_single
    >>> H, cache = conv_forward_single(np.arange(1.0, 10.0).reshape(3, 3), np.ones((2, 2)))
    >>> dX, dW = conv_backward_single(np.ones((2, 2)), cache)
    >>> dW
    array([[12., 16.],
           [24., 28.]])
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
