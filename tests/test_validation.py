"""Every bad input is refused with ConvError, and the message says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

import convcol
from convcol import ConvError
from convcol.naive import (
    conv_backward_naive,
    conv_forward_naive,
    conv_nd_naive,
    conv_transpose_nd_naive,
)

X = np.zeros((2, 3, 5, 5))
W = np.zeros((4, 3, 3, 3))
DOUT = np.zeros((2, 4, 3, 3))


def fwd(x=X, w=W, b=None, **kw):
    return lambda: convcol.conv2d(x, w, b, **kw)


def cs(conv_param, x=X, w=W, b=None):
    return lambda: convcol.conv_forward(x, w, b, conv_param)


BAD = [
    # ranks and shapes
    (
        "x_rank",
        fwd(x=np.zeros((3, 5, 5))),
        r"x must be 4-D \(N, C, H, W\), got 3-D x.shape=\(3, 5, 5\)",
    ),
    ("w_rank", fwd(w=np.zeros((4, 3, 3))), r"w must be 4-D .* got 3-D w.shape=\(4, 3, 3\)"),
    (
        "channel_mismatch",
        fwd(w=np.zeros((4, 2, 3, 3))),
        r"w has 2 input channels per group but x has 3 channels and groups=1 .*w.shape\[1\] must equal C // groups",
    ),
    (
        "groups_not_dividing_C",
        fwd(w=np.zeros((4, 1, 3, 3)), groups=2),
        r"groups=2 does not divide the 3 input channels \(x.shape=\(2, 3, 5, 5\)",
    ),
    (
        "groups_not_dividing_F",
        fwd(x=np.zeros((2, 4, 5, 5)), w=np.zeros((3, 2, 3, 3)), groups=2),
        r"groups=2 does not divide the 3 filters of w",
    ),
    ("groups_zero", fwd(groups=0), r"groups must be >= 1, got 0"),
    ("groups_negative", fwd(groups=-2), r"groups must be >= 1, got -2"),
    ("groups_float", fwd(groups=1.0), r"groups must be an integer, got 1.0 of type float"),
    (
        "bias_shape",
        fwd(b=np.zeros(3)),
        r"b must have shape \(F,\) = \(4,\), one per output channel of w.shape=\(4, 3, 3, 3\), got b.shape=\(3,\)",
    ),
    ("bias_2d", fwd(b=np.zeros((4, 1))), r"b must have shape \(F,\) = \(4,\)"),
    (
        "kernel_too_big",
        fwd(w=np.zeros((4, 3, 6, 3))),
        r"kernel does not fit the padded input along spatial axis 0: kernel size 6 .* 5 \+ padding 0 \+ 0 = 5",
    ),
    (
        "dilated_kernel_too_big",
        fwd(dilation=3),
        r"kernel size 3 with dilation 3 spans 7 but the input is 5",
    ),
    # stride, dilation
    ("stride_zero", fwd(stride=0), r"stride must be >= 1, got 0"),
    ("stride_negative", fwd(stride=-1), r"stride must be >= 1, got -1"),
    ("stride_axis_zero", fwd(stride=(1, 0)), r"stride\[1\] must be >= 1, got 0"),
    ("stride_float", fwd(stride=1.5), r"stride must be an integer, got 1.5 of type float"),
    ("stride_integral_float", fwd(stride=2.0), r"stride must be an integer, got 2.0"),
    ("stride_string", fwd(stride="2"), r"stride must be an integer, got '2' of type str"),
    ("stride_bool", fwd(stride=True), r"stride must be an integer, got the bool True"),
    ("stride_none", fwd(stride=None), r"stride must be an integer, got None"),
    (
        "stride_three_axes",
        fwd(stride=(1, 2, 3)),
        r"stride must be an int or a sequence of 2 ints .* got \(1, 2, 3\) of length 3",
    ),
    ("dilation_zero", fwd(dilation=0), r"dilation must be >= 1, got 0"),
    ("dilation_float", fwd(dilation=(1, 0.5)), r"dilation\[1\] must be an integer, got 0.5"),
    # padding
    ("pad_negative", fwd(padding=-1), r"padding must be >= 0, got -1"),
    ("pad_axis_negative", fwd(padding=(1, -1)), r"padding\[1\] must be >= 0, got -1"),
    (
        "pad_pair_negative",
        fwd(padding=((0, 0), (1, -2))),
        r"padding\[1\]\[1\] must be >= 0, got -2",
    ),
    (
        "pad_wrong_length",
        fwd(padding=(1, 1, 1)),
        r"padding must be an int, 'valid', 'same'.* got \(1, 1, 1\) of length 3",
    ),
    (
        "pad_pair_of_three",
        fwd(padding=((1, 1, 1), (0, 0))),
        r"padding\[0\] must be a \(before, after\) pair, got \(1, 1, 1\)",
    ),
    (
        "pad_unknown_string",
        fwd(padding="full"),
        r"padding must be an int, 'valid', 'same'.*got the string 'full'",
    ),
    ("pad_float", fwd(padding=0.5), r"padding must be an integer, got 0.5"),
    # dtypes
    (
        "x_bool",
        fwd(x=np.zeros((2, 3, 5, 5), bool)),
        r"x must have a real numeric dtype .* got dtype bool",
    ),
    (
        "w_complex",
        fwd(w=np.zeros((4, 3, 3, 3), complex)),
        r"w must have a real numeric dtype .* got dtype complex128",
    ),
    (
        "b_object",
        fwd(b=np.zeros(4, object)),
        r"b must have a real numeric dtype .* got dtype object",
    ),
    (
        "x_string",
        fwd(x=np.full((2, 3, 5, 5), "a")),
        r"x must have a real numeric dtype .* got dtype <U1",
    ),
    ("x_ragged", fwd(x=[[1.0], [1.0, 2.0]]), r"x could not be read as an array"),
    (
        "x_longdouble",
        fwd(x=X.astype(np.longdouble)),
        r"dtype float(96|128) is not supported; use float32 or float64",
    ),
    # gradients
    (
        "dout_shape",
        lambda: convcol.conv2d_backward(np.zeros((2, 4, 3, 4)), X, W),
        r"dout.shape=\(2, 4, 3, 4\) does not match the forward output shape \(2, 4, 3, 3\)",
    ),
    (
        "dout_rank",
        lambda: convcol.conv2d_backward(np.zeros((2, 4, 9)), X, W),
        r"dout.shape=\(2, 4, 9\) does not match the forward output shape \(2, 4, 3, 3\)",
    ),
    (
        "dout_complex",
        lambda: convcol.conv2d_backward(DOUT.astype(complex), X, W),
        r"dout must have a real numeric dtype .* got dtype complex128",
    ),
    (
        "cache_tuple",
        lambda: convcol.conv_backward(DOUT, (X, W, None, {"stride": 1, "pad": 0})),
        r"cache must be the ConvCache returned by convcol.conv_forward, got tuple",
    ),
    (
        "cache_from_other_call",
        lambda: convcol.conv_backward(DOUT, convcol.conv_forward(X, W, None, {"pad": 1})[1]),
        r"dout.shape=\(2, 4, 3, 3\) does not match the forward output shape \(2, 4, 5, 5\) \(cache from conv_forward",
    ),
    # conv_param
    ("conv_param_not_dict", cs([("stride", 1)]), r"conv_param must be a dict .* got list"),
    (
        "conv_param_unknown_key",
        cs({"strides": 2}),
        r"conv_param has unknown key\(s\) \['strides'\]",
    ),
    ("conv_param_pad_negative", cs({"pad": -1}), r"conv_param\['pad'\] must be >= 0, got -1"),
    (
        "conv_param_stride_float",
        cs({"stride": 1.5}),
        r"conv_param\['stride'\] must be an integer, got 1.5",
    ),
    (
        "conv_param_stride_string",
        cs({"stride": "a"}),
        r"conv_param\['stride'\] must be an integer, got 'a'",
    ),
    ("conv_param_groups_zero", cs({"groups": 0}), r"conv_param\['groups'\] must be >= 1, got 0"),
    # im2col / col2im
    (
        "im2col_rank",
        lambda: convcol.im2col(np.zeros((3, 5, 5)), 3),
        r"x must be 4-D \(N, C, H, W\), got 3-D",
    ),
    ("im2col_kernel_zero", lambda: convcol.im2col(X, 0), r"kernel_size must be >= 1, got 0"),
    (
        "col2im_shape",
        lambda: convcol.col2im(np.zeros((27, 10)), X.shape, 3),
        r"cols.shape=\(27, 10\) does not match x_shape=\(2, 3, 5, 5\) .* expected .* = \(27, 18\)",
    ),
    (
        "col2im_x_shape_rank",
        lambda: convcol.col2im(np.zeros((27, 18)), (3, 5, 5), 3),
        r"x_shape must be a tuple of 4 ints \(N, C, H, W\), got \(3, 5, 5\)",
    ),
    # padding modes, data formats (the N-d issue)
    (
        "padding_mode_unknown",
        fwd(padding_mode="mirror"),
        r"padding_mode must be one of \('zeros', 'reflect', 'replicate', 'circular'\), got 'mirror'",
    ),
    (
        "data_format_unknown",
        fwd(data_format="NHWC"),
        r"data_format must be one of \('channels_first', 'channels_last'\), got 'NHWC'",
    ),
    (
        "reflect_pad_too_large",
        fwd(padding=5, padding_mode="reflect"),
        r"padding_mode='reflect' needs each pad < the input size, but spatial axis 0 has size 5 and pads \(5, 5\)",
    ),
    (
        "circular_pad_too_large",
        fwd(padding=((0, 0), (6, 0)), padding_mode="circular"),
        r"padding_mode='circular' needs each pad <= the input size, but spatial axis 1 has size 5 and pads \(6, 0\)",
    ),
    (
        "conv1d_rank",
        lambda: convcol.conv1d(X, np.zeros((4, 3, 3))),
        r"x must be 3-D \(N, C, L\), got 4-D x.shape=\(2, 3, 5, 5\)",
    ),
    ("conv3d_rank", lambda: convcol.conv3d(X, W), r"x must be 5-D \(N, C, D, H, W\), got 4-D"),
    (
        "channels_last_rank",
        lambda: convcol.conv2d(np.zeros((2, 5, 5)), W, data_format="channels_last"),
        r"x must be 4-D \(N, H, W, C\), got 3-D",
    ),
    (
        "channels_last_channels",
        lambda: convcol.conv2d(X, W, data_format="channels_last"),
        r"w has 3 input channels per group but x has 5 channels",
    ),
    (
        "kernel_size_zero",
        fwd(w=np.zeros((4, 3, 0, 3))),
        r"w has a kernel of size 0 along spatial axis 0 .* every kernel size must be >= 1",
    ),
    # transposed convolution
    (
        "transpose_output_padding",
        lambda: convcol.conv_transpose2d(X, np.zeros((3, 2, 3, 3)), stride=2, output_padding=2),
        r"output_padding=2 along spatial axis 0 must be smaller than the stride \(2\) or the dilation \(1\)",
    ),
    (
        "transpose_output_padding_negative",
        lambda: convcol.conv_transpose2d(X, np.zeros((3, 2, 3, 3)), output_padding=-1),
        r"output_padding must be >= 0, got -1",
    ),
    (
        "transpose_same",
        lambda: convcol.conv_transpose2d(X, np.zeros((3, 2, 3, 3)), padding="same"),
        r"padding='same' is not defined for a transposed convolution",
    ),
    (
        "transpose_padding_mode",
        lambda: convcol.conv_transpose1d(
            np.zeros((1, 3, 5)), np.zeros((3, 2, 3)), padding_mode="reflect"
        ),
        r"padding_mode='reflect' is not defined for a transposed convolution",
    ),
    (
        "transpose_channels",
        lambda: convcol.conv_transpose2d(X, np.zeros((4, 2, 3, 3))),
        r"w has 4 input channels but x has 3 .* a transposed convolution's w.shape\[0\] must equal C",
    ),
    (
        "transpose_groups",
        lambda: convcol.conv_transpose2d(X, np.zeros((3, 2, 3, 3)), groups=2),
        r"groups=2 does not divide the 3 input channels",
    ),
    (
        "transpose_bias",
        lambda: convcol.conv_transpose2d(X, np.zeros((3, 2, 3, 3)), np.zeros(3)),
        r"b must have shape \(F,\) = \(2,\)",
    ),
    (
        "transpose_empty_output",
        lambda: convcol.conv_transpose2d(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)), padding=1),
        r"the transposed convolution's output would have size -1 along spatial axis 0",
    ),
    (
        "transpose_spatial_0",
        lambda: convcol.conv_transpose1d(np.zeros((1, 1, 0)), np.zeros((1, 1, 1)), stride=2),
        r"output would have size -1 along spatial axis 0",
    ),
    (
        "transpose_dout",
        lambda: convcol.conv_transpose2d_backward(
            np.zeros((2, 2, 5, 5)), X, np.zeros((3, 2, 3, 3))
        ),
        r"dout.shape=\(2, 2, 5, 5\) does not match the forward output shape \(2, 2, 7, 7\)",
    ),
    # sizes
    (
        "stride_too_large",
        fwd(stride=2**63),
        r"stride=9223372036854775808 is too large \(at most 2\*\*62\)",
    ),
    (
        "output_too_large",
        fwd(padding=2**61),
        r"the output would have shape .* elements: more than 2\*\*62",
    ),
    (
        "stride_array_2d",
        fwd(stride=np.ones((2, 2), int)),
        r"(?s)stride must be an integer, got array.*; stride must be an int or a sequence of 2 ints",
    ),
    # layer
    (
        "layer_dtype",
        lambda: convcol.Conv2d(3, 4, 3, dtype=np.int32),
        r"dtype must be float32 or float64, got int32",
    ),
    (
        "layer_dtype_not_a_dtype",
        lambda: convcol.Conv2d(3, 4, 3, dtype="foo"),
        r"dtype must be float32 or float64, got 'foo'",
    ),
    (
        "layer_groups",
        lambda: convcol.Conv2d(3, 4, 3, groups=2),
        r"groups=2 must divide in_channels=3 and out_channels=4",
    ),
    (
        "layer_backward_first",
        lambda: convcol.Conv2d(3, 4, 3).backward(DOUT),
        r"backward\(\) called before forward\(\)",
    ),
    ("layer_kernel", lambda: convcol.Conv2d(3, 4, (3, 0)), r"kernel_size\[1\] must be >= 1, got 0"),
    (
        "layer_stride_at_construction",
        lambda: convcol.Conv2d(3, 4, 3, stride=0),
        r"stride must be >= 1, got 0",
    ),
    (
        "layer_padding_at_construction",
        lambda: convcol.Conv2d(3, 4, 3, padding="bogus"),
        r"padding must be an int, 'valid', 'same'.*got the string 'bogus'",
    ),
    (
        "layer_mode_at_construction",
        lambda: convcol.Conv1d(3, 4, 3, padding_mode="zero"),
        r"padding_mode must be one of",
    ),
    (
        "layer_in_channels",
        lambda: convcol.Conv2d(4, 4, 3)(np.ones((1, 3, 5, 5))),
        r"Conv2d has in_channels=4 but x has 3 channels \(x.shape=\(1, 3, 5, 5\), data_format='channels_first'\)",
    ),
    (
        "layer_rng_string",
        lambda: convcol.Conv2d(2, 3, 3, rng="seed"),
        r"rng \(a seed\) must be an integer, got 'seed'",
    ),
    ("layer_rng_negative", lambda: convcol.Conv2d(2, 3, 3, rng=-1), r"rng \(a seed\) must be >= 0"),
    (
        "transposed_layer_output_padding_at_construction",
        lambda: convcol.ConvTranspose2d(2, 3, 3, stride=2, output_padding=2),
        r"output_padding=2 along spatial axis 0 must be smaller than the stride \(2\)",
    ),
    (
        "transposed_layer_mode_at_construction",
        lambda: convcol.ConvTranspose2d(2, 3, 3, padding_mode="reflect"),
        r"padding_mode='reflect' is not defined for a transposed convolution",
    ),
    (
        "workspace_limit_checked_at_once",
        lambda: convcol.workspace_limit(0),
        r"nbytes must be >= 1, got 0",
    ),
    (
        "layer_output_padding",
        lambda: convcol.ConvTranspose2d(3, 4, 3, output_padding=-1),
        r"output_padding must be >= 0, got -1",
    ),
]


@pytest.mark.parametrize(("name", "call", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_conv_error(name, call, match):
    with pytest.raises(ConvError, match=match):
        call()


@pytest.mark.parametrize("stride", [-1, 0, np.int64(-3)])
def test_an_int_out_of_range_is_not_called_the_wrong_form(stride):
    # A negative int is the right form with a wrong value: the message says only that,
    # not that stride must be "an int or a sequence" (a new user read it as a type error).
    with pytest.raises(ConvError) as info:
        fwd(stride=stride)()
    assert str(info.value) == f"stride must be >= 1, got {int(stride)}"


def test_conv_error_is_a_value_error():
    assert issubclass(ConvError, ValueError)
    with pytest.raises(ValueError):
        convcol.conv2d(X, W, stride=0)


ORACLE_BAD = [
    (
        "foreign_cache",
        lambda: conv_backward_naive(DOUT, convcol.conv_forward(X, W, None, {})[1]),
        r"cache must be the \(x, w, b, conv_param\) tuple returned by conv_forward_naive, got ConvCache",
    ),
    ("nd_rank", lambda: conv_nd_naive(np.zeros((2, 3)), W), r"x must be 3-, 4- or 5-D"),
    (
        "nd_reflect",
        lambda: conv_nd_naive(X, W, padding=5, padding_mode="reflect"),
        r"padding_mode='reflect' needs each pad < the input size",
    ),
    (
        "transpose_output_padding",
        lambda: conv_transpose_nd_naive(X, np.zeros((3, 2, 3, 3)), stride=2, output_padding=2),
        r"output_padding=2 along spatial axis 0 must be smaller",
    ),
    (
        # Regression (found by fuzzing): the oracle allocated before checking this size.
        "transpose_spatial_0",
        lambda: conv_transpose_nd_naive(np.zeros((1, 1, 0)), np.zeros((1, 1, 1)), stride=2),
        r"output would have size -1 along spatial axis 0",
    ),
    (
        "transpose_empty_output",
        lambda: conv_transpose_nd_naive(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)), padding=1),
        r"output would have size -1 along spatial axis 0",
    ),
    (
        "channel_mismatch",
        lambda: conv_forward_naive(X, np.zeros((4, 2, 3, 3)), None, {}),
        r"w has 2 input channels",
    ),
    (
        "kernel_too_big",
        lambda: conv_forward_naive(X, W, None, {"dilation": 3}),
        r"spans 7 but the input is 5",
    ),
    (
        "unknown_key",
        lambda: conv_forward_naive(X, W, None, {"padding": 1}),
        r"unknown key\(s\) \['padding'\]",
    ),
    (
        "dout_shape",
        lambda: conv_backward_naive(np.zeros((2, 4, 2, 2)), (X, W, None, {})),
        r"dout.shape=\(2, 4, 2, 2\) does not match the forward output shape \(2, 4, 3, 3\)",
    ),
]


@pytest.mark.parametrize(("name", "call", "match"), ORACLE_BAD, ids=[b[0] for b in ORACLE_BAD])
def test_oracle_refuses_the_same_inputs(name, call, match):
    with pytest.raises(ConvError, match=match):
        call()


def test_inputs_unchanged_after_refusal():
    x, w = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3))
    with pytest.raises(ConvError):
        convcol.conv2d(x, w, padding=-1)
    np.testing.assert_array_equal(x, np.ones((2, 3, 5, 5)), strict=True)
    np.testing.assert_array_equal(w, np.ones((4, 3, 3, 3)), strict=True)
