"""convcol: fast, exact convolution for NumPy neural nets.

The fast path lays input windows out as matrix columns (im2col, a Numba kernel) and does one
GEMM; the backward pass is two GEMMs and a col2im scatter-add. ``convcol.naive`` holds the
plain-loop oracle every fast result is tested against.
"""

from . import gradcheck, naive
from .check import check_conv
from .conv import (
    ConvCache,
    col2im,
    conv1d,
    conv1d_backward,
    conv2d,
    conv2d_backward,
    conv3d,
    conv3d_backward,
    conv_backward,
    conv_forward,
    conv_transpose1d,
    conv_transpose1d_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
    conv_transpose3d,
    conv_transpose3d_backward,
    im2col,
)
from .layers import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .validation import ConvError
from .workspace import get_workspace_limit, workspace_limit

__version__ = "0.1.0"

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvCache",
    "ConvError",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "check_conv",
    "col2im",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "conv3d",
    "conv3d_backward",
    "conv_backward",
    "conv_forward",
    "conv_transpose1d",
    "conv_transpose1d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose3d",
    "conv_transpose3d_backward",
    "get_workspace_limit",
    "gradcheck",
    "im2col",
    "naive",
    "workspace_limit",
]
