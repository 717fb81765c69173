"""Sampling the MNIST generators: noise by seed, spherical interpolation, the digit table (a row per
digit, the columns sharing z) and grids; what train_mnist.py, the app and this CLI draw.

    python -m condgen.sample --weights weights/cgan --out samples.png            # rows: digits 0-9
    python -m condgen.sample --weights weights/cgan --digits 777 --out sevens.png
    python -m condgen.sample --weights weights/gan --out gan.png
"""

import argparse
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .hub import CheckpointError
from .mnist import GeneratorCGAN, load_generator, one_hot

NOISE_ROWS = 64  # noise() draws at least this many rows (the app's largest count)
GRID_PAD = 2


def noise(n, nz, seed):
    """z of samples 0..n-1 of a seed. Draws NOISE_ROWS rows at least: torch's CPU randn fills a
    tensor differently by its size, and sample i of a seed should not depend on the count."""
    return torch.randn(max(n, NOISE_ROWS), nz, generator=torch.Generator().manual_seed(seed))[:n]


def slerp(a, b, t):
    """Spherical interpolation (White 2016, https://arxiv.org/abs/1609.04468): a straight line
    between two Gaussian z passes through short z that the generator never saw in training."""
    omega = torch.arccos((a / a.norm() * b / b.norm()).sum().clamp(-1, 1))
    t = t[:, None]  # (steps, 1)
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def digit_table(G, z, digits=range(10)):
    """A cGAN's row per digit, the columns sharing z [columns, nz]: each column keeps its style
    while the digit changes. Returns (len(digits) * columns, 1, 28, 28), row by row."""
    digits = torch.as_tensor(list(digits))
    c = one_hot(digits.repeat_interleave(len(z))).to(z)  # row r asks for digits[r]
    return G(z.repeat(len(digits), 1), c)  # (rows * columns, nz): every row reuses the same z


def grid(x, cols):
    """(N, 1, 28, 28) in [-1, 1] -> PIL image of a grid with GRID_PAD gaps, upscaled (nearest) to
    ~1000 px wide."""
    n, _, h, w = x.shape
    step = (h + GRID_PAD, w + GRID_PAD)
    out = np.full((math.ceil(n / cols) * step[0] + GRID_PAD, cols * step[1] + GRID_PAD), 60, np.uint8)
    for i, tile in enumerate(((x.clamp(-1, 1) + 1) * 127.5).round().byte()[:, 0].numpy()):
        r, c = divmod(i, cols)
        out[GRID_PAD + r * step[0]:][:h, GRID_PAD + c * step[1]:][:, :w] = tile
    scale = max(1, min(8, 1024 // out.shape[1]))
    return Image.fromarray(out).resize((out.shape[1] * scale, out.shape[0] * scale), Image.NEAREST)


@torch.no_grad()
def training_grid(G, z_fixed, conditional):
    """train_mnist's grid per epoch. GAN: 8x8 samples. cGAN: the digit table, 10 columns."""
    import torchvision  # here, not at the top: it imports slowly, and the app needs none of it
    was_training = G.training
    G.eval()
    x = digit_table(G, z_fixed[:10]) if conditional else G(z_fixed[:64])
    G.train(was_training)
    return torchvision.utils.make_grid(x.cpu(), nrow=10 if conditional else 8, normalize=True, value_range=(-1, 1),
                                       pad_value=1)


def noise_batches(G, conditional, device, batches=50, batch_size=256):
    """(z[, c]) batches for re-estimating G_ema's BatchNorm statistics, from a fixed seed: they
    leave the training RNG stream alone."""
    gen = torch.Generator(device=device).manual_seed(0)
    for _ in range(batches):
        z = torch.randn(batch_size, G.nz, device=device, generator=gen)
        if not conditional:
            yield (z,)
            continue
        yield z, F.one_hot(torch.randint(0, 10, (batch_size,), device=device, generator=gen), 10).float()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", default="weights/cgan", help="generator folder or Hub repo id")
    p.add_argument("--digits", default="0123456789", help="cGAN: one row per digit listed")
    p.add_argument("--n", type=int, default=10, help="samples per row (cGAN) or in all (GAN)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--out", default="samples.png", help="PNG to write")
    args = p.parse_args(argv)
    if not 1 <= args.n <= 256:
        p.error(f"--n must be in 1..256, got {args.n}")
    if not args.digits or not args.digits.isdigit():
        p.error(f"--digits must be digits 0-9, got {args.digits!r}")

    import torchvision

    try:
        G = load_generator(args.weights)
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    conditional = isinstance(G, GeneratorCGAN)
    torch.manual_seed(args.seed)
    with torch.inference_mode():
        z = torch.randn(args.n, G.nz)
        x = digit_table(G, z, [int(d) for d in args.digits]) if conditional else G(z)
    nrow = args.n if conditional else int(args.n**0.5 + 0.999)
    torchvision.utils.save_image(x, args.out, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1)
    print(f"wrote {args.out} ({len(x)} samples from {args.weights})")


if __name__ == "__main__":
    main()
