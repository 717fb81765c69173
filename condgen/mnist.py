"""GAN and conditional GAN on MNIST, with the tutorial's class names.

- GAN: Goodfellow et al. 2014, "Generative Adversarial Nets", https://arxiv.org/abs/1406.2661
- cGAN: Mirza & Osindero 2014, "Conditional Generative Adversarial Nets",
  https://arxiv.org/abs/1411.1784 (Sec. 4.1: Maxout discriminator, dropout 0.5)

Where we part from the TensorFlow tutorial this project grew out of:
- Maxout takes the max over its pieces (the tutorial's reshape leaves a size-1 axis to reduce,
  so its "maxout" is a plain linear layer).
- Discriminators return logits, trained with BCE-with-logits (the tutorial's sigmoid followed by
  BCE on probabilities saturates and is numerically worse).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .hub import HubMixin

NZ = 100  # noise size, as in the tutorial
PAPER_CGAN_WIDTHS = (200, 1000, 1200)  # Mirza & Osindero 2014, Sec. 4.1: z -> 200, y -> 1000, joint 1200
IMAGE = (1, 28, 28)


class GeneratorGAN(nn.Module, HubMixin, tags=["mnist", "gan", "unconditional-image-generation"]):
    """z [N, nz] -> image [N, 1, 28, 28] in [-1, 1]; Linear 100-128-256-512-784 (the tutorial's
    hidden widths; `widths` sets others). BatchNorm after each hidden Linear by default, as
    train_mnist.py and the bundled weights (see GeneratorCGAN); batchnorm=False is the tutorial's G."""

    def __init__(self, nz: int = NZ, batchnorm: bool = True, widths: tuple = (128, 256, 512)):
        super().__init__()
        self.nz = nz
        self.net = _mlp([nz, *widths], batchnorm)
        self.out = nn.Linear(widths[-1], 784)

    def forward(self, z):
        return torch.tanh(self.out(self.net(z))).view(-1, *IMAGE)


class DiscriminatorGAN(nn.Module, HubMixin, tags=["mnist", "gan"]):
    """image [N, 1, 28, 28] -> logit [N]; Linear 784-512-256-128-1 (the tutorial's).

    `minibatch_std` > 0 adds the minibatch standard deviation feature before the last layer
    (MinibatchStd), the documented variant against mode collapse that the bundled GAN uses.
    """

    def __init__(self, in_features: int = 784, minibatch_std: int = 0):
        super().__init__()
        self.net = _mlp([in_features, 512, 256, 128], batchnorm=False)
        self.std = MinibatchStd(minibatch_std) if minibatch_std else nn.Identity()
        self.out = nn.Linear(128 + bool(minibatch_std), 1)

    def forward(self, x):
        return self.out(self.std(self.net(x.flatten(1)))).squeeze(1)


class MinibatchStd(nn.Module):
    """Karras et al. 2018 (https://arxiv.org/abs/1710.10196, Sec. 3): append to each sample's
    features the mean standard deviation of the features over its group of `group` consecutive
    samples. A collapsed G makes batches with little variety, which D can now see and punish;
    the cGAN's label spreads its samples over the digits, this looks at the variety within a batch.

    Groups are consecutive, so a batch of N real then N fake samples (train_mnist's one D call)
    never mixes the two while N is a multiple of `group`.
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, h):
        n, f = h.shape
        if n % self.group:
            raise ValueError(f"MinibatchStd: batch of {n} is not a multiple of the group size {self.group}")
        # (N / group, 1)
        s = h.view(n // self.group, self.group, f).std(dim=1, unbiased=False).mean(dim=1, keepdim=True)
        return torch.cat([h, s.repeat_interleave(self.group, dim=0)], dim=1)  # (N, f + 1)


class Maxout(nn.Module):
    """Goodfellow et al. 2013: `pieces` affine maps, the element-wise max over them.

    The tutorial reshapes to (-1, pieces, units) but reduces a size-1 axis, so it never takes a
    max; here the max really runs over the pieces axis.
    """

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x):
        # one matmul for all pieces: (N, units * pieces) -> (N, units, pieces) -> max over pieces.
        # max, not amax: its backward routes the gradient by the saved argmax, where amax's compares
        # the input with the output again (slower forward + backward, in bf16 most; docs/performance.md).
        return self.linear(x).view(-1, self.units, self.pieces).max(dim=2).values


class FastDropout(nn.Dropout):
    """nn.Dropout with its keep mask drawn as `rand >= p`: the same Bernoulli(1 - p) mask and
    1 / (1 - p) scaling, from a cheaper draw: on CPU torch's bernoulli_ takes several times as long
    as rand, a visible share of a cGAN training step (docs/performance.md). Elsewhere: F.dropout.
    No parameters or buffers: state dicts are those of nn.Dropout."""

    def forward(self, x):
        if not self.training or x.device.type != "cpu" or not 0 < self.p < 1:
            return super().forward(x)
        # the mask in x's dtype: under bf16 autocast an fp32 mask would promote the activations to fp32
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        return x * keep.to(x.dtype).mul_(1 / (1 - self.p))


class GeneratorCGAN(nn.Module, HubMixin, tags=["mnist", "cgan", "conditional-image-generation"]):
    """(z [N, nz], one-hot c [N, 10]) -> image [N, 1, 28, 28] in [-1, 1].

    The tutorial's generator: z -> 256 and c -> 256 (ReLU each), concat -> 512 (ReLU) -> 784, tanh.
    `widths` (z path, c path, joint) sets others: the cGAN paper's (Sec. 4.1) is (200, 1000, 1200),
    PAPER_CGAN_WIDTHS. `batchnorm` adds BatchNorm after each hidden Linear (Radford et al. 2015,
    DCGAN), which makes the small MLP converge in far fewer epochs: the default, as train_mnist.py's
    --g-batchnorm and the bundled weights; batchnorm=False is the tutorial's G.
    """

    def __init__(self, nz: int = NZ, num_classes: int = 10, batchnorm: bool = True, widths: tuple = (256, 256, 512)):
        super().__init__()
        self.nz, self.num_classes = nz, num_classes
        z_units, c_units, joint_units = widths
        self.z_path = _mlp([nz, z_units], batchnorm)
        self.c_path = _mlp([num_classes, c_units], batchnorm)
        self.joint = _mlp([z_units + c_units, joint_units], batchnorm)
        self.out = nn.Linear(joint_units, 784)

    def forward(self, z, c):
        h = torch.cat([self.z_path(z), self.c_path(c)], dim=1)  # (N, 512)
        return torch.tanh(self.out(self.joint(h))).view(-1, *IMAGE)


class DiscriminatorCGAN(nn.Module, HubMixin, tags=["mnist", "cgan"]):
    """(image, one-hot c) -> logit [N]; the cGAN paper's Maxout discriminator (Sec. 4.1):
    image -> maxout 240 units x 5 pieces, label -> maxout 50 x 5, joint maxout 240 x 4, dropout 0.5.

    `minibatch_std` > 0 adds MinibatchStd before the last layer, as DiscriminatorGAN does: a variant
    beside the paper's D (the Maxout layers stay), measured in docs/mnist.md.
    """

    def __init__(self, num_classes: int = 10, dropout: float = 0.5, minibatch_std: int = 0):
        super().__init__()
        self.x_path = Maxout(784, 240, 5)
        self.c_path = Maxout(num_classes, 50, 5)
        self.joint = Maxout(290, 240, 4)
        self.std = MinibatchStd(minibatch_std) if minibatch_std else nn.Identity()
        self.out = nn.Linear(240 + bool(minibatch_std), 1)
        self.drop = FastDropout(dropout)

    def forward(self, x, c):
        h = torch.cat([self.drop(self.x_path(x.flatten(1))), self.drop(self.c_path(c))], dim=1)
        return self.out(self.std(self.drop(self.joint(h)))).squeeze(1)  # (N,)


def _mlp(sizes, batchnorm):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if batchnorm else []) + [nn.ReLU()]
    return nn.Sequential(*layers)


def load_generator(path):
    """A saved GeneratorGAN or GeneratorCGAN: a folder, a training run's folder or a Hub id. The class
    is found by loading, not by reading config.json, so a Hub id needs no file fetched beforehand."""
    from .hub import load_first

    return load_first([GeneratorCGAN, GeneratorGAN], path, "GAN or cGAN generator")


def one_hot(labels, num_classes=10):
    """Integer labels -> float one-hot, the cGAN's conditioning input."""
    labels = torch.as_tensor(labels)
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {labels.tolist()}")
    return F.one_hot(labels.long(), num_classes).float()
