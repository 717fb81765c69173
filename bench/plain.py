"""The plain D-then-G steps, written as the papers and the tutorial write them: two D calls, D's
weights getting gradients in the G step too, a `.item()` per loss. The training scripts' train_step
is checked against them (tests/test_train_mnist.py) and timed against them (bench/run_all.py).
"""

import torch
import torch.nn.functional as F


def plain_mnist_step(G, D, opt_G, opt_D, x, c=None, real_label=0.9):
    """One D step then one G step on real images x with one-hot labels c (None: the GAN); returns
    (loss_D, loss_G) as floats."""
    cond = (c,) if c is not None else ()
    z = torch.randn(len(x), G.nz)
    fake = G(z, *cond)
    loss_D = (F.binary_cross_entropy_with_logits(D(x, *cond), torch.full((len(x),), real_label))
              + F.binary_cross_entropy_with_logits(D(fake.detach(), *cond), torch.zeros(len(x))))
    opt_D.zero_grad()
    loss_D.backward()
    opt_D.step()
    loss_G = F.binary_cross_entropy_with_logits(D(fake, *cond), torch.ones(len(x)))
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    return loss_D.item(), loss_G.item()


def plain_pix2pix_step(G, D, opt_G, opt_D, x, y, lambda_L1=100.0):
    """Pix2Pix's D step (objective halved, Sec. 3.3) then G step (GAN loss + lambda_L1 * L1)."""
    fake = G(x)
    d_real, d_fake = D(x, y), D(x, fake.detach())
    loss_D = 0.5 * (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                    + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    opt_D.zero_grad()
    loss_D.backward()
    opt_D.step()
    d_fake = D(x, fake)
    loss_G = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)) + lambda_L1 * (fake - y).abs().mean()
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    return loss_D.item(), loss_G.item()
