"""An exponential moving average of G's weights, the model both training scripts publish.

Yazici et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training",
https://arxiv.org/abs/1806.04498: the raw G jitters around the equilibrium from step to step (its
digits get salt noise, its colors drift); the average sits nearer the centre. Training itself is
unchanged: only the published copy is averaged.
"""

import itertools

import torch
from torch import nn


@torch.no_grad()
def update_ema(G_ema, G, decay):
    """G_ema <- decay * G_ema + (1 - decay) * G, weights only; one fused kernel for all tensors."""
    torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - decay)


@torch.no_grad()
def recalibrate_batchnorm(G, batches, count=None):
    """BatchNorm statistics that belong to the averaged weights: re-estimated as a cumulative
    average over forward passes in training mode (averaging the raw G's statistics would pair them
    with other weights). `batches` yields tuples of G's inputs; the first `count` are used (all if
    None). Dropout is on during the passes, as it was when the raw G's statistics were gathered.
    G is returned in eval mode (unchanged if it has no BatchNorm)."""
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return G
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes below
    G.train()
    for inputs in itertools.islice(batches, count):
        G(*inputs)
    for m in norms:
        m.momentum = 0.1
    return G.eval()
