"""condgen: GAN, cGAN and Pix2Pix, small enough to read, trained for real."""

from .hub import CheckpointError, HubMixin, resolve
from .mnist import DiscriminatorCGAN, DiscriminatorGAN, GeneratorCGAN, GeneratorGAN, Maxout, one_hot

__all__ = [
    "CheckpointError", "HubMixin", "resolve",
    "GeneratorGAN", "DiscriminatorGAN", "GeneratorCGAN", "DiscriminatorCGAN", "Maxout", "one_hot",
]
