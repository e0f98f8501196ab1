"""Draw docs/img/im2col.png: how the windows of an image become the columns of a matrix.

Run from the repository root: ``python docs/scripts/make_figures.py`` (needs matplotlib).
The numbers in the picture are computed by convcol.im2col, not typed in.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

import convcol

OUT = Path(__file__).resolve().parent.parent / "img" / "im2col.png"
x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # one 4x4 image, one channel
k = 3
cols = convcol.im2col(x, k)  # (1 * 3 * 3, 1 * 2 * 2): one column per output position
colors = ["#e41a1c", "#377eb8", "#4daf4a", "#ff7f00"]

fig, (ax_img, ax_cols) = plt.subplots(
    1, 2, figsize=(10, 5.2), gridspec_kw={"width_ratios": [1, 1.05]}
)
for ax in (ax_img, ax_cols):
    ax.set_aspect("equal")
    ax.axis("off")

# The image, with the four 3x3 windows outlined.
for i in range(4):
    for j in range(4):
        ax_img.add_patch(Rectangle((j, 3 - i), 1, 1, fill=False, lw=1))
        ax_img.text(j + 0.5, 3.5 - i, f"{x[0, 0, i, j]:.0f}", ha="center", va="center", fontsize=13)
for p, (oi, oj) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    inset = 0.06 * (p + 1)
    ax_img.add_patch(
        Rectangle(
            (oj + inset, 4 - oi - k + inset),
            k - 2 * inset,
            k - 2 * inset,
            fill=False,
            lw=2.5,
            ec=colors[p],
        )
    )
ax_img.set_xlim(-0.2, 4.2)
ax_img.set_ylim(-0.9, 4.2)
ax_img.set_title("x: one 4x4 channel, 3x3 windows at stride 1", fontsize=12)
ax_img.text(2, -0.55, "output position (oh, ow) = window (oh, ow)", ha="center", fontsize=10)

# The column matrix: row r = tap (r // 3, r % 3), column p = output position.
rows, ncols = cols.shape
for r in range(rows):
    for c in range(ncols):
        ax_cols.add_patch(
            Rectangle(
                (c, rows - 1 - r), 1, 1, fill=True, alpha=0.18, fc=colors[c], ec="black", lw=1
            )
        )
        ax_cols.text(
            c + 0.5, rows - 0.5 - r, f"{cols[r, c]:.0f}", ha="center", va="center", fontsize=12
        )
    ax_cols.text(
        -0.3, rows - 0.5 - r, f"tap ({r // k}, {r % k})", ha="right", va="center", fontsize=9
    )
for c in range(ncols):
    ax_cols.text(
        c + 0.5, rows + 0.3, f"({c // 2}, {c % 2})", ha="center", fontsize=10, color=colors[c]
    )
ax_cols.set_xlim(-2.2, ncols + 0.2)
ax_cols.set_ylim(-0.9, rows + 1.2)
ax_cols.set_title("im2col(x, 3): one column per window", fontsize=12)
ax_cols.text(ncols / 2, -0.55, "w.reshape(F, 9) @ cols = the convolution", ha="center", fontsize=10)

fig.add_artist(
    FancyArrowPatch(
        (0.45, 0.5),
        (0.55, 0.5),
        transform=fig.transFigure,
        arrowstyle="-|>",
        mutation_scale=25,
        lw=2,
    )
)
fig.tight_layout()
OUT.parent.mkdir(exist_ok=True)
fig.savefig(OUT, dpi=100)
print(f"wrote {OUT}")
