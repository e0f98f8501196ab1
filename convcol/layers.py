"""Layers for NumPy nets: parameters plus forward/backward, the fast path underneath."""

from __future__ import annotations

from typing import Any

import numpy as np

from .conv import _backward, _forward, _prepare
from .geometry import ConvGeometry
from .validation import ConvError, as_array, as_int, check_dout, per_axis

__all__ = ["Conv2d"]


class Conv2d:
    """A 2-D convolution layer with PyTorch's arguments and weight layout.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kh, kw)
    stride, padding, dilation, groups
        As for :func:`convcol.conv2d`.
    bias : bool
        Whether the layer adds a learned bias (initialised to zero).
    dtype : float32 or float64
        The dtype of the parameters; inputs are converted to it.
    rng : numpy.random.Generator or int, optional
        Source of the He-normal initial weights, ``N(0, 2 / fan_in)`` with
        ``fan_in = in_channels // groups * kh * kw``. Pass a seed for reproducible weights.

    Attributes
    ----------
    weight : ndarray, shape (out_channels, in_channels // groups, kh, kw)
    bias : ndarray, shape (out_channels,), or None
    grad_weight, grad_bias : ndarray or None
        Set by :meth:`backward`.

    Examples
    --------
    >>> import numpy as np, convcol
    >>> layer = convcol.Conv2d(3, 8, 3, padding=1, rng=0)
    >>> x = np.ones((2, 3, 16, 16))
    >>> y = layer(x)
    >>> y.shape
    (2, 8, 16, 16)
    >>> dx = layer.backward(np.ones_like(y))
    >>> dx.shape, layer.grad_weight.shape, layer.grad_bias.shape
    ((2, 3, 16, 16), (8, 3, 3, 3), (8,))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Any = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: Any = np.float64,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ConvError(f"dtype must be float32 or float64, got {dtype}")
        c_in = as_int("in_channels", in_channels, 1)
        c_out = as_int("out_channels", out_channels, 1)
        g = as_int("groups", groups, 1)
        if c_in % g or c_out % g:
            raise ConvError(f"groups={g} must divide in_channels={c_in} and out_channels={c_out}")
        kernel = per_axis("kernel_size", kernel_size, 2, 1)
        self.options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": g}
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        fan_in = c_in // g * kernel[0] * kernel[1]
        self.weight = (
            gen.standard_normal((c_out, c_in // g, *kernel)) * np.sqrt(2.0 / fan_in)
        ).astype(dtype)
        self.bias = np.zeros(c_out, dtype) if bias else None
        self.grad_weight: np.ndarray | None = None
        self.grad_bias: np.ndarray | None = None
        self._saved: tuple[np.ndarray, ConvGeometry] | None = None

    def forward(self, x: Any) -> np.ndarray:
        """Convolve ``x`` (N, C, H, W) and remember it for :meth:`backward`."""
        x = as_array("x", x).astype(self.weight.dtype, copy=False)
        xc, w, b, _, geo = _prepare(2, x, self.weight, self.bias, **self.options)
        self._saved = (xc, geo)
        return _forward(xc, w, b, geo)

    __call__ = forward

    def backward(self, dout: Any) -> np.ndarray:
        """Return ``dx``; store ``grad_weight`` and ``grad_bias`` for the last forward input."""
        if self._saved is None:
            raise ConvError("backward() called before forward(): no input to differentiate")
        x, geo = self._saved
        d = as_array("dout", dout)
        check_dout(d, geo.out_shape, f"last forward input x.shape={x.shape}")
        dtype = self.weight.dtype
        dx, dw, db = _backward(
            np.ascontiguousarray(d, dtype=dtype), x, np.ascontiguousarray(self.weight), geo
        )
        self.grad_weight = dw
        self.grad_bias = db if self.bias is not None else None
        return dx

    def __repr__(self) -> str:
        F, Cg, kh, kw = self.weight.shape
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return (
            f"Conv2d({Cg * self.options['groups']}, {F}, kernel_size=({kh}, {kw}), {opts}, "
            f"bias={self.bias is not None}, dtype={self.weight.dtype})"
        )
