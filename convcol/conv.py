"""The fast path: convolution as im2col + GEMM, its gradients as two GEMMs + col2im.

For a batch chunk of ``nb`` samples, ``cols`` is the (C * K, nb * P) matrix whose column
``(n, p)`` holds the C * K input values under the window of output position ``p`` (K kernel
positions, P output positions). With groups, its rows split into G blocks of Cg * K rows and
``w`` into G blocks of (Fg, Cg * K), so one stacked ``matmul`` does every group at once:

- forward: ``out[g] = w[g] @ cols[g]``
- backward: ``dw[g] += dout[g] @ cols[g].T``, ``dcols[g] = w[g].T @ dout[g]``, then
  ``dx = col2im(dcols)``, the scatter-add that is im2col's adjoint.

One GEMM covers the whole chunk (not one per sample), which keeps GEMMs large when the
spatial size is small. The chunk is as many samples as fit the workspace limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry import ConvGeometry, conv_geometry
from .validation import (
    ConvError,
    as_array,
    as_int,
    check_dout,
    compute_dtype,
    parse_conv_param,
    per_axis,
)

__all__ = [
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv_backward",
    "conv_forward",
    "im2col",
]

# Bytes of im2col columns held at once; the batch is processed in chunks that fit.
_WORKSPACE_BYTES = 256 * 2**20

IntOrPair = int | tuple[int, int]


def _kernels() -> Any:
    # Imported on first use so that `import convcol` does not pay for importing Numba.
    from . import kernels

    return kernels


def _chunks(geo: ConvGeometry, itemsize: int) -> Iterator[tuple[int, int]]:
    per_sample = max(1, geo.channels * geo.window * geo.positions * itemsize)
    step = max(1, _WORKSPACE_BYTES // per_sample)
    for n0 in range(0, geo.batch, step):
        yield n0, min(n0 + step, geo.batch)


class _Workspace:
    """One flat buffer, handed out as C-contiguous (rows, nb * P) column matrices."""

    def __init__(self, geo: ConvGeometry, dtype: np.dtype) -> None:
        self.rows = geo.channels * geo.window
        self.positions = geo.positions
        step = max((n1 - n0 for n0, n1 in _chunks(geo, dtype.itemsize)), default=0)
        self.flat = np.empty(self.rows * step * self.positions, dtype)

    def cols(self, nb: int) -> np.ndarray:
        return self.flat[: self.rows * nb * self.positions].reshape(self.rows, nb * self.positions)


def _as5d(a: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    return a.reshape(a.shape[:2] + geo.kernel_args()[4])


def _im2col_into(x: np.ndarray, cols: np.ndarray, geo: ConvGeometry) -> None:
    """Fill ``cols`` (C * K, n * P) from the ``n`` samples of ``x``."""
    kernel, stride, pad, dilation, _, out_size = geo.kernel_args()
    _kernels().im2col(_as5d(x, geo), cols, kernel, stride, pad, dilation, out_size)


def _col2im_into(cols: np.ndarray, dx: np.ndarray, geo: ConvGeometry) -> None:
    """Overwrite ``dx`` (n samples) with the scatter-add of ``cols`` (C * K, n * P)."""
    kernel, stride, pad, dilation, _, out_size = geo.kernel_args()
    _kernels().col2im(cols, _as5d(dx, geo), kernel, stride, pad, dilation, out_size)


def _forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry) -> np.ndarray:
    """``x``, ``w`` and ``b`` are C-contiguous, native and of the compute dtype."""
    dtype = x.dtype
    G, F, K, P = geo.groups, geo.filters, geo.window, geo.positions
    Fg, Cg = F // G, geo.channels // G
    wmat = w.reshape(G, Fg, Cg * K)
    out = np.empty((geo.batch, G, Fg, P), dtype)
    ws = _Workspace(geo, dtype)
    for n0, n1 in _chunks(geo, dtype.itemsize):
        nb = n1 - n0
        cols = ws.cols(nb)
        _im2col_into(x[n0:n1], cols, geo)
        res = np.matmul(wmat, cols.reshape(G, Cg * K, nb * P))
        # (G, Fg, nb, P) -> (nb, G, Fg, P): the copy is output-sized, the GEMM stays whole.
        out[n0:n1] = res.reshape(G, Fg, nb, P).transpose(2, 0, 1, 3)
    if b is not None:
        out += b.reshape(G, Fg, 1)
    return out.reshape(geo.out_shape)


def _backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray, geo: ConvGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`_forward`; all arrays C-contiguous, native, compute dtype."""
    dtype = x.dtype
    G, F, K, P = geo.groups, geo.filters, geo.window, geo.positions
    Fg, Cg = F // G, geo.channels // G
    dx = np.empty_like(x)
    wmat_t = w.reshape(G, Fg, Cg * K).transpose(0, 2, 1)
    dout4 = dout.reshape(geo.batch, G, Fg, P)
    dw = np.zeros((G, Fg, Cg * K), dtype)
    ws = _Workspace(geo, dtype)
    for n0, n1 in _chunks(geo, dtype.itemsize):
        nb = n1 - n0
        cols = ws.cols(nb)
        cols_g = cols.reshape(G, Cg * K, nb * P)
        _im2col_into(x[n0:n1], cols, geo)
        dout_g = np.ascontiguousarray(dout4[n0:n1].transpose(1, 2, 0, 3)).reshape(G, Fg, nb * P)
        dw += np.matmul(dout_g, cols_g.transpose(0, 2, 1))
        # The columns are spent: their buffer takes the column gradient.
        np.matmul(wmat_t, dout_g, out=cols_g)
        _col2im_into(cols, dx[n0:n1], geo)
    db = dout.reshape(geo.batch, F, P).sum(axis=(0, 2))
    return dx, dw.reshape(geo.w_shape), db


def _prepare(
    nd: int, x: Any, w: Any, b: Any, dout: Any = None, **options: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, ConvGeometry]:
    """Validate, resolve the geometry, and convert to C-contiguous native compute-dtype arrays.

    ``np.ascontiguousarray`` copies only what needs it (non-contiguous, broadcast,
    byte-swapped or other-dtype input), so the kernels see one memory layout per dtype.
    """
    x = as_array("x", x)
    w = as_array("w", w)
    b = None if b is None else as_array("b", b)
    dout = None if dout is None else as_array("dout", dout)
    geo = conv_geometry(x.shape, w.shape, None if b is None else b.shape, nd, **options)
    if dout is not None:
        check_dout(dout, geo.out_shape, f"x.shape={x.shape}, w.shape={w.shape}")
    dtype = compute_dtype(x, w, b, dout)

    def native(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a, dtype=dtype)

    return native(x), native(w), native(b), native(dout), geo  # type: ignore[return-value]


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    stride: IntOrPair = 1,
    padding: Any = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D convolution (cross-correlation) of a batch, with PyTorch's semantics.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Input batch.
    w : array_like, shape (F, C // groups, kh, kw)
        Filters, in PyTorch's layout.
    b : array_like, shape (F,), optional
        Bias, one per filter.
    stride, dilation : int or (int, int)
        Step between windows, and between kernel taps; each >= 1.
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        Zero padding. ``'same'`` gives an output of ``ceil(H / stride)`` rows (and likewise
        columns), padding ``total // 2`` before and the rest after, as TensorFlow does; for
        stride 1 this equals PyTorch's ``'same'``.
    groups : int
        Channels and filters are split into this many groups, each convolved separately.

    Returns
    -------
    out : ndarray, shape (N, F, Ho, Wo)
        ``Ho = floor((H + top + bottom - dilation_h * (kh - 1) - 1) / stride_h) + 1``: like
        PyTorch, windows that would run past the padded input are dropped. dtype: NumPy
        promotion of the inputs, integers computed in float64.

    Raises
    ------
    ConvError
        On any invalid argument; the message names it and the rule.

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
    """
    x, w, b, _, geo = _prepare(
        2, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return _forward(x, w, b, geo)


def conv2d_backward(
    dout: Any,
    x: Any,
    w: Any,
    *,
    stride: IntOrPair = 1,
    padding: Any = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d` with respect to ``x``, ``w`` and ``b``.

    Parameters
    ----------
    dout : array_like, shape (N, F, Ho, Wo)
        Gradient of the loss with respect to the output of ``conv2d(x, w, ...)``.
    x, w, stride, padding, dilation, groups
        As given to :func:`conv2d`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    dw : ndarray, shape of ``w``
    db : ndarray, shape (F,)
        ``dout`` summed over batch and positions (returned whether or not a bias was used).

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
    """
    x, w, _, dout, geo = _prepare(
        2, x, w, None, dout, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return _backward(dout, x, w, geo)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class ConvCache:
    """What :func:`conv_forward` keeps for :func:`conv_backward`.

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
        :func:`conv2d`'s ``padding`` does. Unknown keys are an error.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
    cache : ConvCache
        Pass it to :func:`conv_backward`.

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

    ``cache`` must be the one :func:`conv_forward` returned for this ``dout``'s forward pass;
    anything else (a cs231n tuple, a cache from another layer whose output shape differs)
    raises :class:`ConvError`.
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
    return _backward(np.ascontiguousarray(d, dtype=dtype), x, w, geo)


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
        groups=1,
    )


def im2col(
    x: Any,
    kernel_size: IntOrPair,
    *,
    stride: IntOrPair = 1,
    padding: Any = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """Lay every (zero-padded) window of ``x`` out as a column of a matrix.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride, padding, dilation
        As for :func:`conv2d`.

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
    cols = np.empty((geo.channels * geo.window, geo.batch * geo.positions), arr.dtype)
    _im2col_into(arr, cols, geo)
    return cols


def col2im(
    cols: Any,
    x_shape: tuple[int, int, int, int],
    kernel_size: IntOrPair,
    *,
    stride: IntOrPair = 1,
    padding: Any = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: scatter-add columns back onto an image.

    Every entry of ``cols`` is added to the input pixel :func:`im2col` read it from; entries
    that came from padding are dropped. It is *not* the inverse of :func:`im2col`: a pixel
    covered by several windows receives the sum of all of them, which is exactly the
    gradient ``dx`` when ``cols`` is the gradient of the columns. Formally,
    ``<im2col(x), c> == <x, col2im(c)>`` for all ``x`` and ``c``.

    Parameters
    ----------
    cols : array_like, shape (C * kh * kw, N * Ho * Wo)
        In :func:`im2col`'s layout.
    x_shape : (N, C, H, W)
        The shape of the image the columns came from.
    kernel_size, stride, padding, dilation
        As given to :func:`im2col`.

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
    _col2im_into(c, dx, geo)
    return dx
