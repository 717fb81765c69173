"""Image metrics for sketch -> color: L1, PSNR, SSIM, colorfulness, and four that see what a
person sees: chroma-TV ratio (speckle), outline ratio (kept lines), blur-L1 (region colors) and
region-spread ratio (one color per region).

    python -m condgen.evaluate pix2pix --pairs ../shared/data/pokemon/sketch2pokemon-val \\
        --weights weights/pix2pix-unet --sheet runs/sheet.png

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

L1 and colorfulness both score speckle (rainbow noise inside a region) as color. Four more, per
pair and then the median over pairs:
- chroma-TV ratio: TV(pred) / TV(truth), where TV is the mean absolute vertical plus horizontal
  difference of the opponent-chroma channels r - g and (r + g)/2 - b. Art is flat regions with
  sharp borders: 1. Speckle is far above 1; gray or blurred output far below.
- outline ratio: mean darkness 1 - lum of the prediction over the sketch's ink pixels (lum < 0.5)
  over that of the truth, lum = 0.299 r + 0.587 g + 0.114 b: 1 when the lines stay as dark as in
  the art, 0 when they are painted over.
- blur-L1: L1 after a Gaussian blur (sigma 4 px) of both images: region colors, not detail.
- region-spread ratio: how far the colors inside each region the sketch's lines enclose stray
  from that region's median color (opponent chroma, as chroma-TV), the prediction's over the
  truth's. Art fills a region with one color and some shading: 1. A body painted half in one hue
  and half in another, or as a patchwork, is far above 1, even where it is smooth (low chroma-TV).
`--sheet` writes a contact sheet, sketch | each model | truth per pair: look at it after every run.
"""

import argparse
import sys

import torch

from .color import chroma, luminance, sketch_regions, to_zero_one
from .sketchify import gaussian_blur


def l1(pred, target):
    """Mean absolute error per image [N], on [0, 1]."""
    return (to_zero_one(pred) - to_zero_one(target)).abs().flatten(1).mean(1)


def psnr(pred, target):
    """Peak signal-to-noise ratio per image [N] in dB, peak 1.0."""
    mse = (to_zero_one(pred) - to_zero_one(target)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def ssim(pred, target, window=11, sigma=1.5):
    """Structural similarity per image [N] (Wang et al. 2004), on [0, 1] per channel, averaged."""
    x, y = to_zero_one(pred).float(), to_zero_one(target).float()

    def blur(t):
        return gaussian_blur(t, sigma, radius=window // 2, valid=True)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


def colorfulness(img):
    """Hasler-Suesstrunk colorfulness M per image [N], RGB on 0..255 (gray images score 0)."""
    r, g, b = (to_zero_one(img) * 255).unbind(1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    mean = (rg.mean(1) ** 2 + yb.mean(1) ** 2).sqrt()
    return std + 0.3 * mean


def chroma_tv(img):
    """Total variation per image [N] of the opponent-chroma channels: mean |vertical difference| +
    mean |horizontal difference|. Luminance edges (the lines) do not count; color changes do."""
    c = chroma(img)  # (N, 2, H, W)
    return (c.diff(dim=2).abs().flatten(1).mean(1) + c.diff(dim=3).abs().flatten(1).mean(1))


def region_spread(img, regions):
    """Per image [N]: the mean absolute deviation of its chroma from each region's median chroma
    (summed over the two channels), averaged over the regions weighted by their area; NaN for an
    image whose sketch encloses no region."""
    c, out = chroma(img.float()), []
    for ci, masks in zip(c, regions):
        dev = [(ci[:, m] - ci[:, m].median(dim=1, keepdim=True).values).abs().sum(0) for m in masks]  # (area,) each
        out.append(torch.cat(dev).mean() if dev else torch.tensor(float("nan")))
    return torch.stack(out)


def outline_ratio(pred, target, sketch):
    """Per image [N]: how dark the prediction keeps the sketch's lines, against the truth. NaN for
    a sketch without ink."""
    ink = (luminance(sketch) < 0.5).float()  # (N, H, W)
    count = ink.flatten(1).sum(1)

    def darkness(img):
        return ((1 - luminance(img)) * ink).flatten(1).sum(1) / count

    return darkness(pred) / darkness(target).clamp_min(1e-6)


def blur_l1(pred, target, sigma=4.0):
    """L1 per image [N] on [0, 1] after a Gaussian blur of both: the colors of regions."""
    blurred = gaussian_blur(to_zero_one(pred), sigma) - gaussian_blur(to_zero_one(target), sigma)
    return blurred.abs().flatten(1).mean(1)


def scores(pred, target, sketch, regions=None):
    """Metrics over a batch of images in [-1, 1], the sketches they were made from beside them:
    dict of floats for the log and the cards. L1, PSNR, SSIM: means over images; colorfulness:
    the ratio of means; the four below the line: medians over images (one flat image's TV near 0
    would otherwise decide a mean of ratios). regions: sketch_regions(sketch), if already known."""
    pred, target, sketch = pred.float(), target.float(), sketch.float()
    regions = sketch_regions(sketch) if regions is None else regions
    return dict(
        L1=l1(pred, target).mean().item(),
        PSNR=psnr(pred, target).mean().item(),
        SSIM=ssim(pred, target).mean().item(),
        colorfulness_ratio=(colorfulness(pred).mean() / colorfulness(target).mean().clamp_min(1e-6)).item(),
        chroma_tv_ratio=(chroma_tv(pred) / chroma_tv(target).clamp_min(1e-6)).median().item(),
        outline_ratio=outline_ratio(pred, target, sketch).nanmedian().item(),
        blur_L1=blur_l1(pred, target).median().item(),
        region_spread_ratio=(region_spread(pred, regions) / region_spread(target, regions).clamp_min(1e-6))
        .nanmedian().item(),
    )


@torch.no_grad()
def predict(G, x, batch_size=8, stochastic=False, hints=None):
    """G's outputs for x [N, 3, 256, 256] in [-1, 1]; eval mode, dropout kept on if stochastic.
    hints: hint maps [N, 4, 256, 256] (condgen.hints), as colorize uses them: spread through the
    sketch's closed regions before G, those regions' colors set after it."""
    from . import hints as H
    from .pix2pix import at_test_time

    was_training = G.training
    at_test_time(G, stochastic)
    device = next(G.parameters()).device
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device)
        if hints is None or H.is_empty(hints[i : i + batch_size]):
            out.append(G(xb).float().cpu())
            continue
        out.append(H.generate(G, xb, hints[i : i + batch_size].to(device)).cpu())
    G.train(was_training)
    return torch.cat(out)


def hint_fidelity(pred, points, window=5):
    """Per image [N]: mean |RGB| on [0, 1] between pred's mean over a window x window square at each
    hint and the hint's color (condgen.hints.sample's points); NaN for an image with no hint."""
    p, r = to_zero_one(pred), window // 2
    out = []
    for img, pts in zip(p, points):
        errs = [(img[:, max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].mean(dim=(1, 2)) - c).abs().mean()
                for y, x, c in pts]
        out.append(torch.stack(errs).mean() if errs else torch.tensor(float("nan")))
    return torch.stack(out)


def region_match(pred, points, regions):
    """Per image [N]: mean |RGB| on [0, 1] between the median color of the closed region of the
    sketch that holds each hint (regions: sketch_regions) and the hint's color; hints on a line or
    in an open area are not counted; NaN for an image with none counted."""
    out = []
    for img, pts, masks in zip(to_zero_one(pred), points, regions):
        errs = [(img[:, m].median(dim=1).values - c).abs().mean() for y, x, c in pts for m in masks if m[y, x]]
        out.append(torch.stack(errs).mean() if errs else torch.tensor(float("nan")))
    return torch.stack(out)


def hint_scores(pred, target, sketch, points, regions=None):
    """scores() of outputs made with hints, and hint fidelity and region match (means over images)."""
    regions = sketch_regions(sketch) if regions is None else regions
    return dict(scores(pred, target, sketch, regions), hint_fidelity=hint_fidelity(pred, points).nanmean().item(),
                region_match=region_match(pred, points, regions).nanmean().item())


def baselines(x, y, regions=None):
    """What trivial colorizers score: the sketch itself, and an all-white image."""
    regions = sketch_regions(x) if regions is None else regions
    return {"sketch as output": scores(x, y, x, regions), "white image": scores(torch.ones_like(y), y, x, regions)}


COLUMNS = [("L1", "L1", ".3f"), ("PSNR", "PSNR", ".2f"), ("SSIM", "SSIM", ".3f"),
           ("colorfulness ratio", "colorfulness_ratio", ".2f"),
           ("blur-L1", "blur_L1", ".3f"), ("chroma-TV ratio", "chroma_tv_ratio", ".2f"),
              ("outline ratio", "outline_ratio", ".2f"), ("region-spread ratio", "region_spread_ratio", ".2f"),
           ("hint fidelity", "hint_fidelity", ".3f"), ("region match", "region_match", ".3f")]


def table(rows):
    """Markdown table of {name: scores}; scores from older logs may lack the newer columns."""
    lines = ["| model | " + " | ".join(c for c, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, s in rows.items():
        cells = [format(s[k], f) if k in s else "" for _, k, f in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def contact_sheet(x, outputs, y, path, cell=128, groups=2):
    """PNG of sketch | each output | truth, one pair per row, the pairs split into `groups` side by
    side; a header names the columns. x, y and outputs' values: [N, 3, H, W] in [-1, 1]."""
    from PIL import Image, ImageDraw

    from .checkpoint import atomic_write

    columns = {"sketch": x, **outputs, "truth": y}
    n, k = len(x), len(columns)
    rows = -(-n // groups)
    header = 16
    sheet = Image.new("RGB", (groups * k * cell + (groups - 1) * 8, header + rows * cell), "white")
    draw = ImageDraw.Draw(sheet)
    for g in range(groups):
        for j, name in enumerate(columns):
            draw.text((g * (k * cell + 8) + j * cell + 3, 2), name[: cell // 6], fill="black")
    for i in range(n):
        g, r = divmod(i, rows)
        for j, t in enumerate(columns.values()):
            img = (to_zero_one(t[i]).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            tile = Image.fromarray(img).resize((cell, cell), Image.BILINEAR)
            sheet.paste(tile, (g * (k * cell + 8) + j * cell, header + r * cell))
    atomic_write(path, lambda tmp: sheet.save(tmp, format="png"))


def short_names(weights):
    """Column headers that tell the models apart: the last folder of each path ('runs/unet32/generator'
    -> 'unet32'), with as many folders before it as it takes to tell two of the same name apart
    ('weights/pix2pix-unet' and 'runs/old/weights/pix2pix-unet' -> 'weights/pix2pix-unet',
    'old/weights/pix2pix-unet'); a column per entry, so no model's column is dropped."""
    paths = []
    for w in weights:
        parts = [p for p in str(w).rstrip("/").split("/") if p]
        paths.append(parts[:-1] if len(parts) > 1 and parts[-1] in ("generator", "discriminator") else parts)
    depth = [1] * len(paths)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(paths, depth)]
        clashes = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(paths[i])]
        if not clashes:
            break
        for i in clashes:
            depth[i] += 1
    # a name that still clashes (the same path given twice) gets its position
    return [n if names.count(n) == 1 else f"{n} #{i + 1}" for i, n in enumerate(names)]


def _sheet_names(names):
    """Column headers: short_names of the models, each with its ', K hints' kept."""
    models = list(dict.fromkeys(n.split(", ")[0] for n in names))
    short = dict(zip(models, short_names(models)))
    return [n if n[0].isdigit() else short[n.split(", ")[0]] + "".join(f", {t}" for t in n.split(", ")[1:])
            for n in names]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows the docstring as written, and every flag's default."""


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m condgen.evaluate pix2pix", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--pairs", required=True, help="folder of side-by-side pairs (sketch left) or with A/ and B/")
    p.add_argument("--weights", nargs="*", default=[],
                   help="generator folders, training run folders or Hub ids to score (none: baselines only)")
    p.add_argument("--stochastic", action="store_true", help="keep dropout on at test time, as the paper did")
    p.add_argument("--seed", type=int, default=0, help="seed for --stochastic dropout")
    p.add_argument("--flat", action="store_true",
                   help="also score each model's outputs after condgen.colorize.flat_colors (post-processing)")
    p.add_argument("--hints", type=int, nargs="+", default=[0], metavar="K",
                   help="score each model with K simulated color hints per pair, for each K given (condgen.hints."
                        "fixed: the training rule, fixed seeds, the hints of a smaller K among those of a larger), "
                        "with hint fidelity and region match; 0: automatic")
    p.add_argument("--sheet", default=None, help="write a contact sheet PNG here: sketch | each model | truth per pair")
    args = p.parse_args(argv)
    if any(k < 0 for k in args.hints):
        p.error(f"--hints must be >= 0, got {args.hints}")

    from . import hints as H
    from .colorize import flat_colors
    from .data import load_pairs, to_tanh_range
    from .hub import CheckpointError
    from .paper import normalize_batch
    from .pix2pix import load_generator

    try:
        x, y = load_pairs(args.pairs)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    x, y = to_tanh_range(x), to_tanh_range(y)
    regions = sketch_regions(x)  # the same for every model
    x_in = normalize_batch(x)  # what G sees, as in colorize: condgen.paper
    flat_regions = sketch_regions(x_in) if args.flat else None  # flattened on the regions of the sketch G saw
    rows, outputs = baselines(x, y, regions), {}
    simulated = {k: H.fixed(y, k) for k in args.hints if k}  # the same hints for every model
    for k, (hint_map, _) in simulated.items():
        outputs[f"{k} hint{'s' * (k > 1)}"] = H.overlay(x, hint_map)  # the sheet shows where they are
    for w in args.weights:
        try:
            G = load_generator(w)
        except (CheckpointError, OSError) as e:
            sys.exit(f"error: {e}")
        for k in args.hints:
            torch.manual_seed(args.seed)
            name = w if k == 0 else f"{w}, {k} hint{'s' * (k > 1)}"
            hint_map, points = simulated.get(k, (None, None))
            outputs[name] = predict(G, x_in, stochastic=args.stochastic, hints=hint_map)
            rows[f"{type(G).__name__} {name}"] = (scores(outputs[name], y, x, regions) if k == 0 else
                                                  hint_scores(outputs[name], y, x, points, regions))
        if args.flat and w in outputs:  # as colorize(flat=True) does it, on the automatic outputs
            outputs[f"{w} flat"] = torch.cat([flat_colors(o[None], xi[None], r)
                                              for o, xi, r in zip(outputs[w], x_in, flat_regions)])
            rows[f"{type(G).__name__} {w}, flat colors"] = scores(outputs[f"{w} flat"], y, x, regions)
    print(f"{len(x)} pairs from {args.pairs}" + (" (stochastic: dropout on)" if args.stochastic else ""))
    print(table(rows))
    if args.sheet:
        contact_sheet(x, dict(zip(_sheet_names(list(outputs)), outputs.values())), y, args.sheet)
        print(f"contact sheet: {args.sheet}")
    return rows


if __name__ == "__main__":
    main()
