"""convcol: fast, exact convolution for NumPy neural nets.

The fast path lays input windows out as matrix columns (im2col, a Numba kernel) and does one
GEMM; the backward pass is two GEMMs and a col2im scatter-add. :mod:`convcol.naive` holds the
plain-loop oracle every fast result is tested against.
"""

from . import gradcheck, naive
from .conv import (
    ConvCache,
    col2im,
    conv2d,
    conv2d_backward,
    conv_backward,
    conv_forward,
    im2col,
)
from .layers import Conv2d
from .validation import ConvError

__version__ = "0.1.0"

__all__ = [
    "Conv2d",
    "ConvCache",
    "ConvError",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv_backward",
    "conv_forward",
    "gradcheck",
    "im2col",
    "naive",
]
