"""Named convolution configurations that every implementation is checked on.

Every regression found gets a case here, with its name saying what it guards.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Case(NamedTuple):
    name: str
    x: tuple[int, int, int, int]
    w: tuple[int, int, int, int]
    conv_param: dict[str, Any]
    bias: bool = True


CASES = [
    Case("tutorial_3x3_2x2", (1, 1, 3, 3), (1, 1, 2, 2), {"stride": 1, "pad": 0}),
    Case("cs231n_notebook", (2, 3, 4, 4), (3, 3, 4, 4), {"stride": 2, "pad": 1}),
    Case("classic_small", (3, 3, 9, 9), (5, 3, 3, 3), {"stride": 2, "pad": 1}),
    Case("rect_kernel", (2, 2, 7, 8), (3, 2, 2, 3), {"stride": 1, "pad": 0}),
    Case("rect_kernel_tall", (2, 2, 8, 5), (3, 2, 4, 1), {"stride": 1, "pad": 1}),
    Case("stride_per_axis", (2, 3, 9, 10), (4, 3, 3, 3), {"stride": (2, 3), "pad": 1}),
    Case("stride_not_tiling", (2, 2, 8, 8), (2, 2, 3, 3), {"stride": 3, "pad": 0}),
    Case("huge_stride", (2, 2, 6, 6), (2, 2, 2, 2), {"stride": 10, "pad": 0}),
    Case("pad_per_axis", (1, 2, 5, 6), (2, 2, 3, 3), {"stride": 1, "pad": (2, 0)}),
    Case("pad_asymmetric", (2, 2, 5, 6), (3, 2, 3, 2), {"stride": 2, "pad": ((1, 0), (0, 2))}),
    Case("pad_larger_than_kernel", (1, 1, 3, 3), (1, 1, 2, 2), {"stride": 1, "pad": 3}),
    Case("same_stride1_odd", (2, 3, 7, 6), (2, 3, 3, 3), {"stride": 1, "pad": "same"}),
    Case("same_stride1_even", (2, 3, 7, 6), (2, 3, 4, 2), {"stride": 1, "pad": "same"}),
    Case("same_stride2", (2, 2, 7, 8), (3, 2, 3, 3), {"stride": 2, "pad": "same"}),
    Case(
        "same_stride3_dilated",
        (1, 2, 10, 7),
        (2, 2, 3, 2),
        {"stride": 3, "pad": "same", "dilation": 2},
    ),
    Case("valid", (2, 2, 6, 5), (2, 2, 3, 3), {"stride": 1, "pad": "valid"}),
    Case("dilation2", (2, 2, 9, 9), (3, 2, 3, 3), {"stride": 1, "pad": 2, "dilation": 2}),
    Case(
        "dilation_per_axis", (1, 2, 9, 9), (2, 2, 2, 3), {"stride": 2, "pad": 1, "dilation": (3, 1)}
    ),
    Case("groups2", (2, 4, 6, 6), (6, 2, 3, 3), {"stride": 1, "pad": 1, "groups": 2}),
    Case("groups3_strided", (1, 6, 7, 7), (3, 2, 3, 2), {"stride": 2, "pad": 1, "groups": 3}),
    Case("depthwise", (2, 4, 6, 6), (4, 1, 3, 3), {"stride": 1, "pad": 1, "groups": 4}),
    Case("depthwise_multiplier", (2, 3, 5, 5), (6, 1, 3, 3), {"stride": 2, "pad": 1, "groups": 3}),
    Case("pointwise_1x1", (2, 5, 4, 4), (3, 5, 1, 1), {"stride": 1, "pad": 0}),
    Case("kernel_equals_padded_input", (2, 2, 3, 4), (2, 2, 5, 6), {"stride": 1, "pad": 1}),
    Case("output_1x1", (2, 3, 4, 4), (2, 3, 4, 4), {"stride": 1, "pad": 0}),
    Case("input_1x1", (3, 2, 1, 1), (2, 2, 1, 1), {"stride": 1, "pad": 0}),
    Case("input_1x1_padded", (2, 2, 1, 1), (2, 2, 3, 3), {"stride": 1, "pad": 1}),
    Case("no_bias", (2, 3, 5, 5), (2, 3, 3, 3), {"stride": 1, "pad": 1}, bias=False),
    Case("batch_1_channel_1", (1, 1, 5, 5), (1, 1, 3, 3), {"stride": 1, "pad": 0}),
    Case("batch_0", (0, 3, 5, 5), (2, 3, 3, 3), {"stride": 1, "pad": 1}),
    Case("channels_0", (2, 0, 5, 5), (2, 0, 3, 3), {"stride": 1, "pad": 1}),
    # Regression: a dilated tap that lies wholly in the padding for every output made im2col
    # write zeros past the end of its row (found by hypothesis).
    Case(
        "tap_wholly_in_padding",
        (2, 1, 1, 1),
        (1, 1, 1, 2),
        {"stride": 1, "pad": ((0, 0), (2, 0)), "dilation": (1, 2)},
    ),
    Case(
        "tap_wholly_in_padding_strided",
        (2, 2, 3, 4),
        (2, 2, 2, 3),
        {"stride": 2, "pad": ((3, 0), (5, 1)), "dilation": 3},
    ),
    Case("defaults_only", (2, 2, 4, 4), (2, 2, 3, 3), {}),
]
