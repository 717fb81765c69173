"""condgen: GAN, cGAN and Pix2Pix, small enough to read, trained for real."""

from .hub import CheckpointError, HubMixin, resolve
from .mnist import DiscriminatorCGAN, DiscriminatorGAN, GeneratorCGAN, GeneratorGAN, Maxout, one_hot
from .pix2pix import Discriminator, EncoderDecoderGenerator, UNetGenerator, load_generator

__all__ = [
    "CheckpointError", "HubMixin", "resolve",
    "GeneratorGAN", "DiscriminatorGAN", "GeneratorCGAN", "DiscriminatorCGAN", "Maxout", "one_hot",
    "EncoderDecoderGenerator", "UNetGenerator", "Discriminator", "load_generator",
]
