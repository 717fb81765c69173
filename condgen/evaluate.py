"""Evaluate a trained generator, one task at a time:

    python -m condgen.evaluate mnist --weights weights/cgan --data-dir data/mnist
    python -m condgen.evaluate pix2pix --pairs ../shared/data/pokemon/sketch2pokemon-val --weights weights/pix2pix-unet

mnist: GAN and cGAN, judged by condgen's MNIST classifier (condgen.evaluate_mnist). pix2pix:
sketch -> color against the true colors (condgen.evaluate_pix2pix). `TASK --help` lists its flags.
"""

import importlib
import sys

TASKS = {"mnist": "condgen.evaluate_mnist", "pix2pix": "condgen.evaluate_pix2pix"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in TASKS:
        sys.exit(f"usage: python -m condgen.evaluate {{{','.join(TASKS)}}} [flags]\n\n{__doc__}")
    return importlib.import_module(TASKS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
