"""Seconds per MNIST epoch for the GAN and the cGAN: in-memory tensor batches (what train_mnist.py
does) side by side with a straightforward per-sample DataLoader over torchvision's MNIST dataset.

    python bench/mnist.py --data-dir data/mnist [--epochs 1] [--subset 0]

Both variants run the same D-then-G step; only the data feeding differs.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python bench/mnist.py`

from condgen.data import mnist_tensors, shuffled_batches  # noqa: E402
from condgen.mnist import DiscriminatorCGAN, DiscriminatorGAN, GeneratorCGAN, GeneratorGAN  # noqa: E402


def step(G, D, opt_G, opt_D, x, c):
    cond = (c,) if c is not None else ()
    z = torch.randn(len(x), G.nz)
    fake = G(z, *cond)
    real_t, fake_t = torch.full((len(x),), 0.9), torch.zeros(len(x))
    loss_D = F.binary_cross_entropy_with_logits(D(x, *cond), real_t) + F.binary_cross_entropy_with_logits(D(fake.detach(), *cond), fake_t)
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()
    loss_G = F.binary_cross_entropy_with_logits(D(fake, *cond), torch.ones(len(x)))
    opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    opt_G.step()


def epoch_seconds(model, feed, args):
    torch.manual_seed(0)
    conditional = model == "cgan"
    G = GeneratorCGAN(batchnorm=True) if conditional else GeneratorGAN(batchnorm=True)
    D = DiscriminatorCGAN() if conditional else DiscriminatorGAN()
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    t = time.perf_counter()
    if feed == "tensor":
        x_all, c_all = mnist_tensors(args.data_dir)  # decoding counted: it is part of the epoch's cost
        if args.subset:
            x_all, c_all = x_all[: args.subset], c_all[: args.subset]
        for idx in shuffled_batches(len(x_all), args.batch_size, torch.Generator().manual_seed(0)):
            step(G, D, opt_G, opt_D, x_all[idx], F.one_hot(c_all[idx], 10).float() if conditional else None)
    else:
        tf = torchvision.transforms.Compose([torchvision.transforms.ToTensor(), torchvision.transforms.Normalize([0.5], [0.5])])
        ds = torchvision.datasets.MNIST(args.data_dir, train=True, transform=tf)
        if args.subset:
            ds = torch.utils.data.Subset(ds, range(args.subset))
        for x, c in DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers):
            step(G, D, opt_G, opt_D, x, F.one_hot(c, 10).float() if conditional else None)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default="data/mnist", help="torchvision MNIST root")
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--subset", type=int, default=0, help="first N images only (0: the full 60k epoch)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for the baseline")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, {args.subset or 60000} images")
    print(f"{'model':6} {'DataLoader s':>13} {'tensor s':>9} {'speed-up':>9}")
    for model in ["gan", "cgan"]:
        base = epoch_seconds(model, "dataloader", args)
        fast = epoch_seconds(model, "tensor", args)
        print(f"{model:6} {base:13.2f} {fast:9.2f} {base / fast:8.2f}x")


if __name__ == "__main__":
    main()
