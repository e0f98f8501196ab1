"""Layers for NumPy nets: parameters plus forward/backward, the fast path underneath."""

from __future__ import annotations

from typing import Any

import numpy as np

from .conv import _backward, _bias_grad, _forward, _prepare
from .geometry import ConvGeometry
from .validation import (
    DATA_FORMATS,
    PADDING_MODES,
    ConvError,
    as_array,
    as_int,
    check_dout,
    check_transpose_options,
    choice,
    parse_padding,
    per_axis,
)

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


class _ConvNd:
    """Shared by every convolution layer; subclasses set ``nd`` and ``transposed``."""

    nd: int
    transposed: bool = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: Any = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: Any = np.float64,
        rng: np.random.Generator | int | None = None,
        padding_mode: str = "zeros",
        data_format: str = "channels_first",
    ) -> None:
        try:
            resolved = np.dtype(dtype)
        except TypeError:  # not a dtype at all ('foo'): the same error as a wrong one
            resolved = None
        if resolved not in (np.float32, np.float64):
            got = repr(dtype) if resolved is None else resolved
            raise ConvError(f"dtype must be float32 or float64, got {got}")
        dtype = resolved
        c_in = as_int("in_channels", in_channels, 1)
        c_out = as_int("out_channels", out_channels, 1)
        g = as_int("groups", groups, 1)
        if c_in % g or c_out % g:
            raise ConvError(f"groups={g} must divide in_channels={c_in} and out_channels={c_out}")
        kernel = per_axis("kernel_size", kernel_size, self.nd, 1)
        # Checked now rather than at the first forward pass; kept as given.
        per_axis("stride", stride, self.nd, 1)
        per_axis("dilation", dilation, self.nd, 1)
        parse_padding("padding", padding, self.nd)
        choice("padding_mode", padding_mode, PADDING_MODES)
        choice("data_format", data_format, DATA_FORMATS)
        self.options: dict[str, Any] = {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": g,
            "padding_mode": padding_mode,
            "data_format": data_format,
        }
        # PyTorch's weight layouts: (out, in // groups, k...), transposed (in, out // groups, k...).
        shape = (c_in, c_out // g, *kernel) if self.transposed else (c_out, c_in // g, *kernel)
        fan_in = shape[1] * int(np.prod(kernel))
        if isinstance(rng, np.random.Generator):
            gen = rng
        elif rng is None:
            gen = np.random.default_rng()
        else:
            gen = np.random.default_rng(as_int("rng (a seed)", rng, 0))
        self.in_channels, self.out_channels = c_in, c_out
        self.weight = (gen.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
        self.bias = np.zeros(c_out, dtype) if bias else None
        self.grad_weight: np.ndarray | None = None
        self.grad_bias: np.ndarray | None = None
        self._saved: tuple[np.ndarray, ConvGeometry] | None = None

    def forward(self, x: Any) -> np.ndarray:
        """Apply the layer to ``x`` and remember it for ``backward``."""
        x = as_array("x", x).astype(self.weight.dtype, copy=False)
        channel_axis = -1 if self.options["data_format"] == "channels_last" else 1
        if x.ndim == self.nd + 2 and x.shape[channel_axis] != self.in_channels:
            raise ConvError(
                f"{type(self).__name__} has in_channels={self.in_channels} but x has "
                f"{x.shape[channel_axis]} channels (x.shape={x.shape}, "
                f"data_format={self.options['data_format']!r})"
            )
        xc, w, b, _, geo = _prepare(
            self.nd, x, self.weight, self.bias, transposed=self.transposed, **self.options
        )
        self._saved = (xc, geo)
        if self.transposed:
            out, _ = _backward(xc, None, w, geo)
            if b is not None:
                out += b if geo.channels_last else b.reshape((-1,) + (1,) * geo.nd)
            return out  # type: ignore[return-value]
        return _forward(xc, w, b, geo)

    __call__ = forward

    def backward(self, dout: Any) -> np.ndarray:
        """Return ``dx``; store ``grad_weight`` and ``grad_bias`` for the last forward input."""
        if self._saved is None:
            raise ConvError("backward() called before forward(): no input to differentiate")
        x, geo = self._saved
        d = as_array("dout", dout)
        expected = geo.x_shape if self.transposed else geo.out_shape
        check_dout(d, expected, f"last forward input x.shape={x.shape}")
        d = np.ascontiguousarray(d, dtype=self.weight.dtype)
        w = np.ascontiguousarray(self.weight)
        if self.transposed:
            dx = _forward(d, w, None, geo)
            _, dw = _backward(x, d, w, geo, want_dx=False)
        else:
            dx, dw = _backward(d, x, w, geo)  # type: ignore[assignment]
        self.grad_weight = dw
        self.grad_bias = _bias_grad(d, geo) if self.bias is not None else None
        return dx  # type: ignore[return-value]

    def __repr__(self) -> str:
        a, b_, *kernel = self.weight.shape
        c_in, c_out = (
            (a, b_ * self.options["groups"])
            if self.transposed
            else (b_ * self.options["groups"], a)
        )
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return (
            f"{type(self).__name__}({c_in}, {c_out}, kernel_size={tuple(kernel)}, {opts}, "
            f"bias={self.bias is not None}, dtype={self.weight.dtype})"
        )


_DOC = """A {nd}-D {what} layer with PyTorch's arguments and weight layout.

Parameters
----------
in_channels : int
    Channels of the input.
out_channels : int
    Channels of the output.
kernel_size : int or tuple of {ints}
stride : int or tuple of {ints}, default 1
padding : int, tuple, or {padding_strings}, default 0
    As for ``convcol.{function}``.{extra_doc}
dilation : int or tuple of {ints}, default 1
groups : int, default 1
bias : bool, default True
    Whether the layer adds a learned bias (initialised to zero).
dtype : float32 or float64, default float64
    The dtype of the parameters; inputs and upstream gradients are converted to it.
rng : numpy.random.Generator or int, optional
    Source of the He-normal initial weights, ``N(0, 2 / fan_in)`` with
    ``fan_in = weight.shape[1] * prod(kernel_size)``. Pass a seed for reproducible weights.
padding_mode : str, default 'zeros'
    {mode_doc}
data_format : {{'channels_first', 'channels_last'}}, default 'channels_first'
    The layout of the input, the output and ``dx``; the weight keeps PyTorch's layout.

Attributes
----------
weight : ndarray, shape {wshape}
bias : ndarray, shape (out_channels,), or None
grad_weight, grad_bias : ndarray or None
    Set by ``backward``.

Notes
-----
``forward`` keeps a reference to its input (converted to ``dtype`` if it was not already)
for ``backward``, as cs231n's layers keep theirs in the cache: changing that array in place
between the two calls changes the gradients.
{example}"""


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2


class Conv3d(_ConvNd):
    nd = 3


class _ConvTransposeNd(_ConvNd):
    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: Any = 0,
        output_padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: Any = np.float64,
        rng: np.random.Generator | int | None = None,
        padding_mode: str = "zeros",
        data_format: str = "channels_first",
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            dtype,
            rng,
            padding_mode,
            data_format,
        )
        # The transposed convolution's own rules, checked now rather than at the first call.
        check_transpose_options(
            parse_padding("padding", padding, self.nd),
            padding_mode,
            per_axis("output_padding", output_padding, self.nd, 0),
            per_axis("stride", stride, self.nd, 1),
            per_axis("dilation", dilation, self.nd, 1),
        )
        self.options["output_padding"] = output_padding


class ConvTranspose1d(_ConvTransposeNd):
    nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    nd = 3


_EXAMPLES = {
    Conv1d: """
Examples
--------
>>> import numpy as np, convcol
>>> layer = convcol.Conv1d(4, 8, 5, padding="same", padding_mode="reflect", rng=0)
>>> layer(np.ones((2, 4, 100))).shape
(2, 8, 100)
""",
    Conv3d: """
Examples
--------
>>> import numpy as np, convcol
>>> layer = convcol.Conv3d(2, 4, 3, stride=2, padding=1, rng=0)
>>> y = layer(np.ones((1, 2, 8, 8, 8)))
>>> y.shape, layer.backward(np.ones_like(y)).shape
((1, 4, 4, 4, 4), (1, 2, 8, 8, 8))
""",
    ConvTranspose1d: """
Examples
--------
>>> import numpy as np, convcol
>>> convcol.ConvTranspose1d(4, 2, 4, stride=2, padding=1, rng=0)(np.ones((1, 4, 10))).shape
(1, 2, 20)
""",
    ConvTranspose3d: """
Examples
--------
>>> import numpy as np, convcol
>>> convcol.ConvTranspose3d(4, 2, 2, stride=2, rng=0)(np.ones((1, 4, 3, 3, 3))).shape
(1, 2, 6, 6, 6)
""",
    Conv2d: """
Examples
--------
>>> import numpy as np, convcol
>>> layer = convcol.Conv2d(3, 8, 3, padding=1, rng=0)
>>> y = layer(np.ones((2, 3, 16, 16)))
>>> y.shape
(2, 8, 16, 16)
>>> dx = layer.backward(np.ones_like(y))
>>> dx.shape, layer.grad_weight.shape, layer.grad_bias.shape
((2, 3, 16, 16), (8, 3, 3, 3), (8,))
""",
    ConvTranspose2d: """
Examples
--------
>>> import numpy as np, convcol
>>> up = convcol.ConvTranspose2d(8, 3, 4, stride=2, padding=1, rng=0)
>>> up(np.ones((2, 8, 16, 16))).shape
(2, 3, 32, 32)
""",
}

for _cls in (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d):
    _t = _cls.transposed
    _cls.__doc__ = _DOC.format(
        nd=_cls.nd,
        ints="1 int" if _cls.nd == 1 else f"{_cls.nd} ints",
        what="transposed convolution" if _t else "convolution",
        function=f"conv_transpose{_cls.nd}d" if _t else f"conv{_cls.nd}d",
        padding_strings="tuple of pairs" if _t else "tuple of pairs, 'valid' or 'same'",
        extra_doc=(
            "\noutput_padding : int or tuple, default 0\n    As for "
            f"``convcol.conv_transpose{_cls.nd}d``: < stride or < dilation."
            if _t
            else ""
        ),
        mode_doc=(
            "Only 'zeros' is defined for a transposed convolution."
            if _t
            else "'zeros', 'reflect', 'replicate' or 'circular', as in PyTorch."
        ),
        wshape=(
            "(in_channels, out_channels // groups, *kernel_size)"
            if _t
            else "(out_channels, in_channels // groups, *kernel_size)"
        ),
        example=_EXAMPLES.get(_cls, ""),
    )
del _cls, _t
