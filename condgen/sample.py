"""Draw a sample grid from a GAN or cGAN generator (bundled weights, a local run, or a Hub repo).

    python -m condgen.sample --weights weights/cgan --out samples.png            # rows: digits 0-9
    python -m condgen.sample --weights weights/cgan --digits 777 --out sevens.png
    python -m condgen.sample --weights weights/gan --out gan.png
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import torchvision

from .hub import CheckpointError
from .mnist import GeneratorCGAN, GeneratorGAN, one_hot


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

    config = Path(args.weights) / "config.json"
    conditional = not config.is_file() or "num_classes" in json.loads(config.read_text())
    try:
        G = (GeneratorCGAN if conditional else GeneratorGAN).from_pretrained(args.weights)
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    torch.manual_seed(args.seed)
    with torch.inference_mode():
        if conditional:
            digits = torch.tensor([int(d) for d in args.digits])
            z = torch.randn(args.n, G.nz).repeat(len(digits), 1)  # columns share noise: same style, other digit
            x = G(z, one_hot(digits.repeat_interleave(args.n)))
        else:
            x = G(torch.randn(args.n, G.nz))
    nrow = args.n if conditional else int(args.n**0.5 + 0.999)
    torchvision.utils.save_image(x, args.out, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1)
    print(f"wrote {args.out} ({len(x)} samples from {args.weights})")


if __name__ == "__main__":
    main()
