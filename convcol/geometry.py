"""Convolution geometry for the fast path: resolved padding, output size, the 3-D view.

Every convolution convcol computes (any rank, layout or option) is described by one
``ConvGeometry``. A transposed convolution is described by the convolution it is the
adjoint of. The kernels only ever see the 3-D form: a 1-D or 2-D convolution is a 3-D one
whose leading spatial axes have size 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .validation import (
    DATA_FORMATS,
    PADDING_MODES,
    ConvError,
    Pads,
    as_int,
    check_conv_shapes,
    check_element_count,
    check_padding_mode,
    check_transpose_options,
    check_window_fits,
    choice,
    parse_padding,
    per_axis,
)

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one convolution, every option resolved to explicit per-axis ints."""

    batch: int
    channels: int
    filters: int
    groups: int
    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: Pads
    out_size: tuple[int, ...]
    padding_mode: str = "zeros"
    channels_last: bool = False

    @property
    def nd(self) -> int:
        return len(self.in_size)

    def _shape(self, channels: int, size: tuple[int, ...]) -> tuple[int, ...]:
        if self.channels_last:
            return (self.batch, *size, channels)
        return (self.batch, channels, *size)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return self._shape(self.channels, self.in_size)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.filters, self.channels // self.groups, *self.kernel)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._shape(self.filters, self.out_size)

    @property
    def window(self) -> int:
        """Kernel taps per channel (kd * kh * kw)."""
        return math.prod(self.kernel)

    @property
    def positions(self) -> int:
        """Output positions per sample and filter (od * oh * ow)."""
        return math.prod(self.out_size)

    def padded(self) -> ConvGeometry:
        """The same convolution of the already-padded input, with zero padding."""
        size = tuple(n + lo + hi for n, (lo, hi) in zip(self.in_size, self.pads, strict=True))
        return replace(self, in_size=size, pads=((0, 0),) * self.nd, padding_mode="zeros")

    def kernel_args(self) -> tuple[Triple, Triple, Triple, Triple, Triple, Triple]:
        """(kernel, stride, pad_before, dilation, in_size, out_size) as 3-tuples."""
        lead = (1,) * (3 - self.nd)
        pad_lo = (0,) * (3 - self.nd) + tuple(lo for lo, _ in self.pads)
        # Along an axis with one output the stride is never used: 1 there spares the kernels
        # a padded copy with `stride` phases (stride 10**8 on a 3-wide input: 1.6 GB).
        stride = tuple(1 if o == 1 else s for s, o in zip(self.stride, self.out_size, strict=True))
        return (  # type: ignore[return-value]
            lead + self.kernel,
            lead + stride,
            pad_lo,
            lead + self.dilation,
            lead + self.in_size,
            lead + self.out_size,
        )


def resolve_same(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's 'same': output ceil(n / s), the odd pixel of padding after."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def _common(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None,
    nd: int,
    stride: Any,
    dilation: Any,
    groups: Any,
    data_format: Any,
    transposed: bool,
) -> tuple[tuple[int, ...], tuple[int, ...], int, bool]:
    stride_t = per_axis("stride", stride, nd, 1)
    dilation_t = per_axis("dilation", dilation, nd, 1)
    g = as_int("groups", groups, 1)
    channels_last = choice("data_format", data_format, DATA_FORMATS) == "channels_last"
    check_conv_shapes(
        x_shape, w_shape, b_shape, g, nd, channels_last=channels_last, transposed=transposed
    )
    return stride_t, dilation_t, g, channels_last


def _split(x_shape: tuple[int, ...], channels_last: bool) -> tuple[int, tuple[int, ...]]:
    """(channels, spatial size) of an input in either layout."""
    if channels_last:
        return x_shape[-1], tuple(x_shape[1:-1])
    return x_shape[1], tuple(x_shape[2:])


def conv_geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None,
    nd: int,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: Any = "zeros",
    data_format: Any = "channels_first",
) -> ConvGeometry:
    """Validate a convolution's arguments and resolve its geometry."""
    stride_t, dilation_t, g, channels_last = _common(
        x_shape, w_shape, b_shape, nd, stride, dilation, groups, data_format, False
    )
    pad_spec = parse_padding("padding", padding, nd)
    mode = choice("padding_mode", padding_mode, PADDING_MODES)
    channels, in_size = _split(x_shape, channels_last)
    kernel = tuple(w_shape[2:])
    if pad_spec == "same":
        pads = tuple(
            resolve_same(n, k, s, d)
            for n, k, s, d in zip(in_size, kernel, stride_t, dilation_t, strict=True)
        )
    else:
        pads = pad_spec
    shapes = f"x.shape={x_shape}, w.shape={w_shape}"
    check_window_fits(in_size, pads, kernel, dilation_t, shapes)
    if mode != "zeros":
        check_padding_mode(mode, in_size, pads, shapes)
    out_size = tuple(
        (n + lo + hi - (k - 1) * d - 1) // s + 1
        for n, (lo, hi), k, s, d in zip(in_size, pads, kernel, stride_t, dilation_t, strict=True)
    )
    geo = ConvGeometry(
        batch=x_shape[0],
        channels=channels,
        filters=w_shape[0],
        groups=g,
        in_size=in_size,
        kernel=kernel,
        stride=stride_t,
        dilation=dilation_t,
        pads=pads,
        out_size=out_size,
        padding_mode=mode,
        channels_last=channels_last,
    )
    check_element_count("the output", geo.out_shape, shapes)
    check_element_count("the padded input", geo.padded().x_shape, shapes)
    return geo


def transpose_geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None,
    nd: int,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: Any = "zeros",
    data_format: Any = "channels_first",
) -> ConvGeometry:
    """The geometry of the convolution whose adjoint is this transposed convolution.

    Its input is the transposed convolution's output, its output the transposed
    convolution's input, and its weight is ``w`` as given: (C_in, C_out // groups, k...)
    reads as (F, C // groups, k...) from the convolution's side.
    """
    stride_t, dilation_t, g, channels_last = _common(
        x_shape, w_shape, b_shape, nd, stride, dilation, groups, data_format, True
    )
    mode = choice("padding_mode", padding_mode, PADDING_MODES)
    pad_spec = parse_padding("padding", padding, nd)
    out_pad = per_axis("output_padding", output_padding, nd, 0)
    check_transpose_options(pad_spec, mode, out_pad, stride_t, dilation_t)
    channels, in_size = _split(x_shape, channels_last)
    kernel = tuple(w_shape[2:])
    out_size = []
    for ax, (n, (lo, hi), k, s, d, op) in enumerate(
        zip(in_size, pad_spec, kernel, stride_t, dilation_t, out_pad, strict=True)
    ):
        size = (n - 1) * s - lo - hi + (k - 1) * d + op + 1
        if size < 1:
            raise ConvError(
                f"the transposed convolution's output would have size {size} along spatial "
                f"axis {ax}: (n - 1) * stride - padding + dilation * (k - 1) + output_padding "
                f"+ 1 with n={n}, stride={s}, padding=({lo}, {hi}), dilation={d}, k={k}, "
                f"output_padding={op} (x.shape={x_shape}, w.shape={w_shape})"
            )
        out_size.append(size)
    geo = ConvGeometry(
        batch=x_shape[0],
        channels=w_shape[1] * g,
        filters=channels,
        groups=g,
        in_size=tuple(out_size),
        kernel=kernel,
        stride=stride_t,
        dilation=dilation_t,
        pads=pad_spec,
        out_size=in_size,
        channels_last=channels_last,
    )
    check_element_count("the output", geo.x_shape, f"x.shape={x_shape}, w.shape={w_shape}")
    return geo


def source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each of the ``lo + n + hi`` padded positions, the input position it copies."""
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        period = 2 * (n - 1) if n > 1 else 1
        i = np.abs(i) % period
        return np.where(i >= n, period - i, i)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        return i % n
    raise AssertionError(mode)
