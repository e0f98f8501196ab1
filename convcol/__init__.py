"""convcol: fast, exact convolution for NumPy neural nets.

The fast path lays input windows out as matrix columns (im2col, a Numba kernel) and does one
GEMM; the backward pass is two GEMMs and a col2im scatter-add. ``convcol.naive`` holds the
plain-loop oracle every fast result is tested against.

Where to start:

- ``conv2d`` and ``conv2d_backward`` (``conv1d``, ``conv3d``, ``conv_transpose2d``...): the
  functions, with PyTorch's options (stride, padding, dilation, groups, padding modes,
  channels-last data);
- ``Conv2d`` and the other layers: ``forward`` and ``backward`` for a NumPy net;
- ``conv_forward`` and ``conv_backward``: drop-in replacements for cs231n's
  ``conv_forward_naive`` and ``conv_backward_naive``;
- ``naive``, the oracle, and ``check_conv`` (``convcol check`` in a shell): your own
  convolution checked against it; ``gradcheck``: gradients against finite differences;
- ``workspace_limit``: the memory the fast path may use; ``ConvError``: the one exception
  bad input raises;
- ``convcol bench`` in a shell: the speed against the naive loops, NumPy and PyTorch.
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
