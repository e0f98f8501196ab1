"""Convolution geometry for the fast path: resolved padding, output size, the 3-D view.

Every convolution convcol computes (any rank, any option) is described by one
:class:`ConvGeometry`; the kernels only ever see its 3-D form, a 1-D or 2-D convolution being
a 3-D one with leading spatial axes of size 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .validation import (
    Pads,
    as_int,
    check_conv_shapes,
    check_window_fits,
    parse_padding,
    per_axis,
)


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one convolution, all options resolved to explicit per-axis ints."""

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

    @property
    def nd(self) -> int:
        return len(self.in_size)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels, *self.in_size)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.filters, self.channels // self.groups, *self.kernel)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.batch, self.filters, *self.out_size)

    @property
    def window(self) -> int:
        """Kernel positions per channel (kd * kh * kw)."""
        return int(np.prod(self.kernel))

    @property
    def positions(self) -> int:
        """Output positions per sample and filter (od * oh * ow)."""
        return int(np.prod(self.out_size))

    def kernel_args(self) -> tuple[tuple[int, int, int], ...]:
        """(kernel, stride, pad_before, dilation, in_size, out_size) as 3-tuples for the kernels."""
        lead = 3 - self.nd

        def three(t: tuple[int, ...]) -> tuple[int, int, int]:
            return (1,) * lead + tuple(t)  # type: ignore[return-value]

        pad_lo = (0,) * lead + tuple(lo for lo, _ in self.pads)
        return (
            three(self.kernel),
            three(self.stride),
            pad_lo,  # type: ignore[return-value]
            three(self.dilation),
            three(self.in_size),
            three(self.out_size),
        )


def resolve_same(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's 'same': output ceil(n / s), the odd pixel of padding after."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def conv_geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None,
    nd: int,
    *,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
) -> ConvGeometry:
    """Validate a convolution's arguments and resolve its geometry."""
    stride_t = per_axis("stride", stride, nd, 1)
    dilation_t = per_axis("dilation", dilation, nd, 1)
    pad_spec = parse_padding("padding", padding, nd)
    g = as_int("groups", groups, 1)
    check_conv_shapes(x_shape, w_shape, b_shape, g, nd)
    in_size = tuple(x_shape[2:])
    kernel = tuple(w_shape[2:])
    if pad_spec == "same":
        pads = tuple(
            resolve_same(n, k, s, d)
            for n, k, s, d in zip(in_size, kernel, stride_t, dilation_t, strict=True)
        )
    else:
        pads = pad_spec
    check_window_fits(in_size, pads, kernel, dilation_t, f"x.shape={x_shape}, w.shape={w_shape}")
    out_size = tuple(
        (n + lo + hi - (k - 1) * d - 1) // s + 1
        for n, (lo, hi), k, s, d in zip(in_size, pads, kernel, stride_t, dilation_t, strict=True)
    )
    return ConvGeometry(
        batch=x_shape[0],
        channels=x_shape[1],
        filters=w_shape[0],
        groups=g,
        in_size=in_size,
        kernel=kernel,
        stride=stride_t,
        dilation=dilation_t,
        pads=pads,
        out_size=out_size,
    )
