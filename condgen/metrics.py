"""Image metrics for sketch -> color: L1, PSNR, SSIM and a colorfulness ratio.

    python -m condgen.metrics --pairs ../shared/data/pokemon/sketch2pokemon-val --weights weights/pix2pix-unet

Tensors come in the generator's range [-1, 1] and every metric is computed on [0, 1] (the usual
image scale; L1 on [0, 1] is half the L1 on [-1, 1]). On the 24 real Sketch2Pokemon pairs the
sketch itself, taken as the output, scores L1 0.157 and SSIM 0.707 this way: the baseline a
colorizer must beat.

- SSIM: Wang et al. 2004, https://ece.uwaterloo.ca/~z70wang/publications/ssim.pdf, with their
  11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, valid positions only, mean over RGB.
- Colorfulness: Hasler & Suesstrunk 2003, "Measuring colourfulness in natural images": from
  rg = R - G and yb = (R + G)/2 - B on 0..255, M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mu_rg^2 + mu_yb^2).
  The ratio is the predictions' mean M over the truths' mean M: an L1-only model, which hedges
  toward gray-brown averages, scores well below 1 (Isola et al. 2017, Sec. 4.2 and Fig. 7).
"""

import argparse
import sys

import torch
import torch.nn.functional as F


def _unit(t):
    return (t.float() + 1) / 2  # [-1, 1] -> [0, 1]


def l1(pred, target):
    """Mean absolute error per image [N], on [0, 1]."""
    return (_unit(pred) - _unit(target)).abs().flatten(1).mean(1)


def psnr(pred, target):
    """Peak signal-to-noise ratio per image [N] in dB, peak 1.0."""
    mse = (_unit(pred) - _unit(target)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def ssim(pred, target, window=11, sigma=1.5):
    """Structural similarity per image [N] (Wang et al. 2004), on [0, 1] per channel, averaged."""
    x, y = _unit(pred).float(), _unit(target).float()
    g = torch.exp(-((torch.arange(window, dtype=torch.float32) - window // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()

    def blur(t):  # the 2-D Gaussian is separable: a row pass then a column pass, valid positions
        n, c = t.shape[:2]
        t = t.reshape(n * c, 1, *t.shape[2:])
        t = F.conv2d(F.conv2d(t, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
        return t.view(n, c, *t.shape[2:])

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


def colorfulness(img):
    """Hasler-Suesstrunk colorfulness M per image [N], RGB on 0..255 (gray images score 0)."""
    r, g, b = (_unit(img) * 255).unbind(1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    mean = (rg.mean(1) ** 2 + yb.mean(1) ** 2).sqrt()
    return std + 0.3 * mean


def scores(pred, target):
    """Mean metrics over a batch of images in [-1, 1]: dict of floats for the log and the cards."""
    return dict(
        L1=l1(pred, target).mean().item(),
        PSNR=psnr(pred, target).mean().item(),
        SSIM=ssim(pred, target).mean().item(),
        colorfulness_ratio=(colorfulness(pred).mean() / colorfulness(target).mean().clamp_min(1e-6)).item(),
    )


@torch.no_grad()
def predict(G, x, batch_size=8, stochastic=False):
    """G's outputs for x [N, 3, 256, 256] in [-1, 1]; eval mode, dropout kept on if stochastic."""
    was_training = G.training
    G.eval()
    if stochastic:
        for m in G.modules():
            if isinstance(m, torch.nn.Dropout):
                m.train()
    device = next(G.parameters()).device
    out = torch.cat([G(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
    G.train(was_training)
    return out


def evaluate(G, x, y, stochastic=False):
    """Scores of G on pairs x -> y (tensors in [-1, 1])."""
    return scores(predict(G, x, stochastic=stochastic), y)


def baselines(x, y):
    """What trivial colorizers score: the sketch itself, and an all-white image."""
    return {"sketch as output": scores(x, y), "white image": scores(torch.ones_like(y), y)}


def table(rows):
    """Markdown table of {name: scores}."""
    lines = ["| model | L1 | PSNR | SSIM | colorfulness ratio |", "|---|---|---|---|---|"]
    for name, s in rows.items():
        lines.append(f"| {name} | {s['L1']:.3f} | {s['PSNR']:.2f} | {s['SSIM']:.3f} | {s['colorfulness_ratio']:.2f} |")
    return "\n".join(lines)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows the docstring as written, and every flag's default."""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--pairs", required=True, help="folder of side-by-side pairs (sketch left) or with A/ and B/")
    p.add_argument("--weights", nargs="*", default=[], help="generator folders, training run folders or Hub ids to score (none: baselines only)")
    p.add_argument("--stochastic", action="store_true", help="keep dropout on at test time, as the paper did")
    p.add_argument("--seed", type=int, default=0, help="seed for --stochastic dropout")
    args = p.parse_args(argv)

    from .data import load_pairs, to_unit
    from .hub import CheckpointError
    from .paper import normalize_batch
    from .pix2pix import load_generator

    try:
        x, y = load_pairs(args.pairs)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    x, y = to_unit(x), to_unit(y)
    rows = baselines(x, y)
    for w in args.weights:
        try:
            G = load_generator(w)
        except (CheckpointError, OSError) as e:
            sys.exit(f"error: {e}")
        torch.manual_seed(args.seed)
        rows[f"{type(G).__name__} {w}"] = evaluate(G, normalize_batch(x), y, args.stochastic)  # as colorize: condgen.paper
    print(f"{len(x)} pairs from {args.pairs}" + (" (stochastic: dropout on)" if args.stochastic else ""))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
