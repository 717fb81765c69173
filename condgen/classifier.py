"""A small CNN MNIST classifier: the judge for the GAN/cGAN evaluation (condgen.evaluate).

It is trained on its own (never by the GANs' loops), so it can say whether "draw me a 7" gave a 7.
Its 128-d penultimate layer is the feature space for the Fréchet distance (as FID uses Inception's).

    python -m condgen.classifier --data-dir data/mnist --out weights/classifier
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from .hub import HubMixin


class MnistClassifier(nn.Module, HubMixin, tags=["mnist", "image-classification"]):
    """x [N, 1, 28, 28] in [-1, 1] -> logits [N, 10]. conv32-conv32-pool-conv64-conv64-pool-fc128-fc10."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            # (N,32,14,14)
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            # (N,64,7,7)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, num_classes))

    def embed(self, x):
        """The 128-d features the Fréchet distance is computed in."""
        return self.features(x)

    def forward(self, x):
        return self.head(self.features(x))


@torch.no_grad()
def accuracy(model, x, y, batch_size=1000):
    model.eval()
    pred = torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    return (pred == y).float().mean().item()


def main(argv=None):
    from .checkpoint import save_pretrained_atomic
    from .data import mnist_tensors, shuffled_batches

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default="data/mnist", help="torchvision MNIST root")
    p.add_argument("--epochs", type=int, default=6, help="passes over the 60k training images")
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine-decayed to 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", default="weights/classifier", help="output folder")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    x, y = mnist_tensors(args.data_dir, train=True)
    x_test, y_test = mnist_tensors(args.data_dir, train=False)
    model = MnistClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * (len(x) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        t0 = time.time()
        model.train()
        for idx in shuffled_batches(len(x), args.batch_size, gen):
            # small random shifts (±2 px) so the judge is not fooled by off-centre GAN digits
            xb = torch.roll(x[idx], shifts=tuple(torch.randint(-2, 3, (2,), generator=gen).tolist()), dims=(2, 3))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: test accuracy {accuracy(model, x_test, y_test):.4f} ({time.time() - t0:.0f}s)")
    save_pretrained_atomic(model, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
