"""A small CNN in plain NumPy, trained on scikit-learn's 8x8 digits with convcol.Conv2d.

    conv 3x3 (1 -> 16) - relu - 2x2 max-pool - affine (256 -> 64) - relu - affine (64 -> 10)
    - softmax cross-entropy

Run ``python examples/digits_cnn.py`` (needs scikit-learn, which ships the data set: no
download). ``--layer naive`` trains with convcol's oracle loops instead, to feel the
difference; every run also times one epoch's worth of batches with both layers.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import convcol
from convcol.naive import conv_backward_naive, conv_forward_naive


class NaiveConv2d:
    """convcol.Conv2d's interface on top of the oracle's loops (same weights, same maths)."""

    def __init__(self, fast: convcol.Conv2d) -> None:
        self.weight, self.bias = fast.weight, fast.bias
        self.conv_param = {"stride": 1, "pad": 1}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out, self.cache = conv_forward_naive(x, self.weight, self.bias, self.conv_param)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, self.grad_weight, self.grad_bias = conv_backward_naive(dout, self.cache)
        return dx


class Net:
    def __init__(self, rng: np.random.Generator) -> None:
        self.conv = convcol.Conv2d(1, 16, 3, padding=1, rng=rng)
        self.w1 = rng.standard_normal((256, 64)) * np.sqrt(2 / 256)
        self.b1 = np.zeros(64)
        self.w2 = rng.standard_normal((64, 10)) * np.sqrt(2 / 64)
        self.b2 = np.zeros(10)
        self.layer: convcol.Conv2d | NaiveConv2d = self.conv

    def params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [
            (self.conv.weight, self.layer.grad_weight),
            (self.conv.bias, self.layer.grad_bias),
            (self.w1, self.dw1),
            (self.b1, self.db1),
            (self.w2, self.dw2),
            (self.b2, self.db2),
        ]

    def forward(self, x: np.ndarray) -> np.ndarray:
        c = self.layer(x)  # (N, 16, 8, 8)
        r = np.maximum(c, 0)
        n = x.shape[0]
        blocks = r.reshape(n, 16, 4, 2, 4, 2)
        p = blocks.max(axis=(3, 5))  # (N, 16, 4, 4)
        h_in = p.reshape(n, -1)
        h = np.maximum(h_in @ self.w1 + self.b1, 0)
        self.saved = (c, blocks, p, h_in, h)
        return h @ self.w2 + self.b2

    def loss_and_backward(self, scores: np.ndarray, y: np.ndarray) -> float:
        c, blocks, p, h_in, h = self.saved
        n = scores.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(n), y]).mean()
        dscores = probs
        dscores[np.arange(n), y] -= 1
        dscores /= n
        self.dw2, self.db2 = h.T @ dscores, dscores.sum(axis=0)
        dh = dscores @ self.w2.T * (h > 0)
        self.dw1, self.db1 = h_in.T @ dh, dh.sum(axis=0)
        dp = (dh @ self.w1.T).reshape(p.shape)
        # The max-pool's gradient goes to the maximum of each 2x2 block (ties share it).
        mask = blocks == p[:, :, :, None, :, None]
        dblocks = mask * (dp[:, :, :, None, :, None] / mask.sum(axis=(3, 5), keepdims=True))
        dc = dblocks.reshape(c.shape) * (c > 0)
        self.layer.backward(dc)
        return float(loss)


def load_digits_split(seed: int) -> tuple[np.ndarray, ...]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("this example needs scikit-learn (pip install scikit-learn) for its data set")
    digits = load_digits()
    x = (digits.images / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    split = int(0.8 * len(y))
    return x[:split], y[:split], x[split:], y[split:]


def progress(epoch: int, epochs: int, done: int, total: int, loss: float) -> None:
    tty = sys.stderr.isatty()
    if not tty and done < total:
        return  # piped: one line per epoch, not a bar redrawn with carriage returns
    width, start = 30, "\r" if tty else ""
    filled = int(width * done / total)
    sys.stderr.write(
        f"{start}epoch {epoch}/{epochs} [{'#' * filled}{'.' * (width - filled)}] "
        f"{done}/{total} loss {loss:.3f}"
    )
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def accuracy(net: Net, x: np.ndarray, y: np.ndarray) -> float:
    return float((net.forward(x).argmax(axis=1) == y).mean())


def time_layers(net: Net, x: np.ndarray, y: np.ndarray, batch: int, batches: int) -> None:
    """One epoch's conv work on a subset: the same batches through both layers."""
    naive = NaiveConv2d(net.conv)
    for name, layer in [("convcol", net.conv), ("naive", naive)]:
        t0 = time.perf_counter()
        for i in range(batches):
            xb = x[i * batch : (i + 1) * batch]
            out = layer(xb)
            layer.backward(np.ones_like(out))
        per_batch = (time.perf_counter() - t0) / batches
        print(f"  conv forward+backward, {name:7}: {per_batch * 1e3:9.2f} ms per batch of {batch}")


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--layer", choices=["convcol", "naive"], default="convcol")
    parser.add_argument(
        "--time-batches",
        type=int,
        default=3,
        help="batches timed with both layers after each epoch (0: none)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x_train, y_train, x_test, y_test = load_digits_split(args.seed)
    net = Net(rng)
    if args.layer == "naive":
        net.layer = NaiveConv2d(net.conv)
    velocity: list[np.ndarray] | None = None  # SGD momentum, made at the first step
    steps = int(np.ceil(len(y_train) / args.batch))
    training = 0.0  # seconds spent training, the timing comparison left out
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(y_train))
        for step in range(steps):
            idx = order[step * args.batch : (step + 1) * args.batch]
            loss = net.loss_and_backward(net.forward(x_train[idx]), y_train[idx])
            if velocity is None:
                velocity = [np.zeros_like(p) for p, _ in net.params()]
            for v, (param, grad) in zip(velocity, net.params(), strict=True):
                v *= 0.9
                v -= args.lr * grad
                param += v
            progress(epoch, args.epochs, step + 1, steps, loss)
        training += time.perf_counter() - start
        print(
            f"epoch {epoch}: test accuracy {accuracy(net, x_test, y_test):.3f} "
            f"({training:.1f} s of training so far)"
        )
        if args.time_batches:
            time_layers(net, x_train, y_train, args.batch, args.time_batches)
    acc = accuracy(net, x_test, y_test)
    print(
        f"final test accuracy {acc:.3f} with the {args.layer} layer, {training:.1f} s of training"
    )
    return acc


if __name__ == "__main__":
    main()
