"""Turn color artwork into Sketch2Pokemon-style training pairs: a line sketch beside its color image.

    python -m condgen.sketchify ../shared/data/pokemon/color data/sketch2pokemon-train --method all
    python -m condgen.sketchify --compare ../shared/data/pokemon/sketch2pokemon-val data/sketch2pokemon-train

Each output is a 512x256 JPG, sketch on the left, color on the right (the layout of
condgen.data.load_pairs). The color image is composited on white, padded to a square with white
and resized to 256x256. The sketch is a Canny edge map (Canny 1986) of the color image, so that
borders between flat color regions become lines as in a hand-drawn sketch, not only luminance
changes; a closing and Zhang-Suen thinning turn the double edges of the artwork's own outlines
into single center lines, which are drawn about 2 px wide with a per-image ink strength (thickness
jitter: hand-drawn lines vary too). The other method, XDoG (Winnemoeller et al. 2012, "XDoG: An
eXtended difference-of-Gaussians compendium"), fills dark regions with ink, which the real
sketches do not; `--method xdog` keeps it for comparison.
`--method all` writes several renderings of every image, one folder each (OUT/canny, OUT/outline,
OUT/detail, OUT/bold, OUT/wobbly; see RENDERINGS): training draws one of them per image and epoch
(condgen.data.PairDataset), so the model learns lines-to-regions rather than one renderer's quirks.
`--compare REAL OURS` prints ink fraction and line width of two pair folders and writes a
side-by-side PNG. Sketchifying the color halves of the 24 real Sketch2Pokemon pairs gives ink
fraction 0.062 and line width 2.13 px against the real sketches' 0.071 and 2.08 px (XDoG: 0.081,
2.38 px); per image, our ink fraction correlates 0.81 with the real one (XDoG 0.60).
"""

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .color import LUMA
from .data import square_on_white

SIZE = 256

# Renderings of one color image as a sketch. One Canny setting gives one kind of sketch, but users
# bring others: real Sketch2Pokemon sketches have more interior detail lines and wobble off the
# color's outlines (they were drawn by a sketch model, not traced), and browser drawings are uniform
# pen strokes of the main shapes. low/high: Canny's hysteresis thresholds (lower: more lines);
# gain: range of the ink gain on soft ~2-px lines (thickness jitter), or pen: a uniform stroke
# width in px; wobble: amplitude in px of a smooth random displacement of the lines; trace: ink
# the artwork's own dark outlines where it has them (art_lines, dark lines up to trace - 1 px wide),
# Canny lines elsewhere. Canny's center line of an outline sits beside the art's darkest pixels, so
# on canny the art under the ink is only ~0.42 dark (1 - luminance) against ~0.51 for the real
# sketches: a model trained on it learns that ink means dark gray and draws gray lines; on outline
# it is ~0.65 (docs/pix2pix.md).
RENDERINGS = {
    "canny": dict(low=0.03, high=0.08, gain=(1.5, 2.1)),
    "outline": dict(low=0.03, high=0.08, gain=(1.5, 2.1), trace=5),
    "detail": dict(low=0.015, high=0.04, gain=(1.2, 1.7)),
    "bold": dict(low=0.05, high=0.14, pen=3),
    "wobbly": dict(low=0.03, high=0.08, gain=(1.6, 2.3), wobble=2.0),
}
METHODS = [*RENDERINGS, "xdog"]


def gaussian_blur(t, sigma, radius=None, valid=False):
    """Blur [N, C, H, W] with a separable Gaussian (radius 3 sigma unless given): replicate padding
    (no dark frame at the borders), or valid positions only (H - 2 radius rows out, as SSIM's
    window). A row pass, then a column pass, each image channel a group of its own in channels_last
    layout: on the CPU ~15x faster than the same passes over one input channel, to the bit
    (bench/metrics.py); the metrics blur 56 batches an evaluation."""
    r = max(1, int(3 * sigma + 0.5)) if radius is None else radius
    g = torch.exp(-(torch.arange(-r, r + 1, dtype=t.dtype) ** 2) / (2 * sigma**2))
    n, c, h, w = t.shape
    g = (g / g.sum()).to(t).expand(n * c, 2 * r + 1)
    t = t.reshape(1, n * c, h, w)
    t = (t if valid else F.pad(t, (r, r, r, r), mode="replicate")).contiguous(memory_format=torch.channels_last)
    t = F.conv2d(F.conv2d(t, g.view(n * c, 1, 1, -1), groups=n * c), g.view(n * c, 1, -1, 1), groups=n * c)
    return t.reshape(n, c, *t.shape[2:])


def _disk(diameter):
    r = (diameter - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(diameter) - r, torch.arange(diameter) - r, indexing="ij")
    return ((yy**2 + xx**2) <= (r + 0.5) ** 2).float()


def _dilate(mask, diameter):
    """Binary dilation of [1, 1, H, W] by a disk ('same' size output for odd and even disks)."""
    if diameter <= 1:
        return mask
    k = _disk(diameter)[None, None]
    lo, hi = (diameter - 1) // 2, diameter // 2
    return (F.conv2d(F.pad(mask, (lo, hi, lo, hi)), k) > 0).float()


def canny(rgb, sigma=1.0, low=0.03, high=0.08):
    """Binary edges [H, W] of an RGB tensor [3, H, W] in [0, 1]: color gradient (the channel with
    the largest Sobel magnitude), non-maximum suppression to 1-px lines, hysteresis thresholds."""
    x = gaussian_blur(rgb[None], sigma)  # (1, 3, H, W)
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
    k = torch.stack([sobel, sobel.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    g = F.conv2d(F.pad(x.transpose(0, 1), (1, 1, 1, 1), mode="replicate"), k)  # (3, 2, H, W)
    mag = g.pow(2).sum(1).sqrt()  # (3, H, W)
    best = mag.argmax(0, keepdim=True)  # strongest channel per pixel
    mag = mag.gather(0, best)[0]
    gx, gy = g[:, 0].gather(0, best)[0], g[:, 1].gather(0, best)[0]
    # Non-maximum suppression: keep a pixel only where it peaks along the gradient direction.
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    direction = ((angle + 22.5) // 45).long() % 4  # 0: horizontal gradient, 1: 45, 2: vertical, 3: 135
    p = F.pad(mag[None, None], (1, 1, 1, 1))[0, 0]
    h, w = mag.shape
    shifted = {(dy, dx): p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    steps = [(0, 1), (1, 1), (1, 0), (1, -1)]
    keep = torch.zeros_like(mag, dtype=torch.bool)
    for d, (dy, dx) in enumerate(steps):
        # > on one side, >= on the other: a ridge two pixels wide (a plateau) keeps one of them
        peak = (mag > shifted[(dy, dx)]) & (mag >= shifted[(-dy, -dx)])
        keep |= (direction == d) & peak
    thin = mag * keep
    strong, weak = thin >= high, thin >= low
    # Hysteresis: grow strong edges into connected weak ones until nothing changes.
    edges = strong.float()[None, None]
    weak = weak.float()[None, None]
    for _ in range(64):
        grown = F.max_pool2d(edges, 3, 1, 1) * weak
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges[0, 0]


def art_lines(rgb, width=5):
    """Binary [1, 1, H, W]: the artwork's own dark outlines, pixels darker than their surroundings
    by a black-hat filter (grayscale closing over width x width minus the luminance) and dark in
    themselves. Dark regions wider than ~width px (a black ear, a pupil) stay out, as a sketch
    draws their border, not their fill."""
    lum = (rgb * torch.tensor(LUMA).view(3, 1, 1)).sum(0)[None, None]
    pad = (width // 2,) * 4
    closed = -F.max_pool2d(F.pad(-F.max_pool2d(F.pad(lum, pad, mode="replicate"), width, 1), pad, mode="replicate"),
                           width, 1)
    return ((closed - lum > 0.12) & (lum < 0.6)).float()


def _erode(mask, diameter):
    return 1 - _dilate(1 - mask, diameter)


def thin(mask, max_iter=100):
    """Zhang & Suen 1984 thinning of a binary [H, W] mask to 1-px, 8-connected center lines.

    In numpy: dozens of passes of small boolean ops, where torch's per-op threading costs more
    than it saves."""
    h, w = mask.shape
    m = np.pad(mask.cpu().numpy() > 0, 1)
    for _ in range(max_iter):
        changed = False
        for step in (0, 1):
            def at(dy, dx):
                return m[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

            # P2..P9: north, then clockwise
            p = [at(-1, 0), at(-1, 1), at(0, 1), at(1, 1), at(1, 0), at(1, -1), at(0, -1), at(-1, -1)]
            b = sum(q.astype(np.int8) for q in p)  # number of ink neighbors
            a = sum((~p[i] & p[(i + 1) % 8]).astype(np.int8) for i in range(8))  # 0 -> 1 transitions around
            n, e, s, w_ = p[0], p[2], p[4], p[6]
            cond = (~(n & e & s) & ~(e & s & w_)) if step == 0 else (~(n & e & w_) & ~(n & s & w_))
            delete = at(0, 0) & (b >= 2) & (b <= 6) & (a == 1) & cond
            if delete.any():
                m[1 : 1 + h, 1 : 1 + w] &= ~delete
                changed = True
        if not changed:
            break
    return torch.from_numpy(m[1 : 1 + h, 1 : 1 + w].astype(np.float32))


def xdog(rgb, sigma=0.8, k=1.6, p=20.0, eps=0.3, phi=10.0):
    """XDoG line drawing [H, W] in [0, 1] (1 = paper) of an RGB tensor [3, H, W] in [0, 1]."""
    gray = (rgb * torch.tensor(LUMA).view(3, 1, 1)).sum(0)[None, None]
    d = (1 + p) * gaussian_blur(gray, sigma) - p * gaussian_blur(gray, sigma * k)
    out = torch.where(d >= eps, torch.ones_like(d), 1 + torch.tanh(phi * (d - eps)))
    return out[0, 0].clamp(0, 1)


def sketch(color, method="canny", thickness=None, seed=0):
    """Color PIL image (already square) -> grayscale sketch PIL image of the same size.

    method: a name in RENDERINGS, or "xdog". thickness: ink gain on the blurred 1-px center lines,
    1.5 (thin) .. 2.5 (bold); None draws it from the rendering's range with `seed` (thickness
    jitter), which also seeds the wobble.
    """
    rgb = torch.from_numpy(np.asarray(color.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
    threads = torch.get_num_threads()
    # Many tiny ops on one 256x256 image: thread hand-offs cost more than they save (docs/performance.md).
    torch.set_num_threads(1)
    try:
        paper = _paper(rgb, method, thickness, seed)
    finally:
        torch.set_num_threads(threads)
    return Image.fromarray((paper.clamp(0, 1) * 255).round().byte().numpy())  # uint8 [H, W]: mode L


def _paper(rgb, method, thickness, seed):
    if method == "xdog":
        return xdog(rgb)
    if method not in RENDERINGS:
        raise ValueError(f"unknown sketch method {method!r}; expected one of {', '.join(METHODS)}")
    r, rng = RENDERINGS[method], np.random.default_rng(seed)
    edges = canny(rgb, low=r["low"], high=r["high"])[None, None]
    # The artwork's own outlines are 1-3 px wide and give two Canny edges, one on each side: a
    # closing (dilate, then erode) merges the pair and thinning keeps its center line.
    lines = thin(_erode(_dilate(edges, 4), 4)[0, 0])[None, None]  # (1, 1, H, W), 1-px lines
    art = art_lines(rgb, r["trace"]) if r.get("trace") else None
    if art is not None:
        lines = lines * (1 - _dilate(art, 5))  # Canny only where the art draws no line of its own
    if "pen" in r:
        ink = _dilate(lines, r["pen"])  # a uniform hard stroke, as a mouse or pen tool draws
    else:
        gain = thickness or float(rng.uniform(*r["gain"]))
        ink = (gain * gaussian_blur(lines, 0.8)).clamp(0, 1)  # ~2 px wide, soft edges, as ink
    if art is not None:
        ink = torch.maximum(ink, gaussian_blur(art, 0.5))  # the art's lines as they are, anti-aliased
    if r.get("wobble"):
        ink = _wobble(ink, r["wobble"], rng)
    return 1 - ink[0, 0]


def _wobble(ink, amplitude, rng):
    """Displace [1, 1, H, W] by a smooth random field (a 6x6 grid of offsets, bicubic in between):
    lines drift up to ~amplitude px off the color's borders, as in a hand-drawn sketch."""
    h, w = ink.shape[-2:]
    field = torch.from_numpy(rng.normal(0, amplitude / 2, (1, 2, 6, 6)).astype(np.float32))
    field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True)  # (1, 2, H, W) in px
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xx + field[0, 0] * 2 / w, yy + field[0, 1] * 2 / h], dim=-1)[None]  # px -> [-1, 1]
    return F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def make_pair(img, method="canny", seed=0):
    """Color image -> 512x256 RGB pair: sketch left, color right."""
    color, _ = square_on_white(img, SIZE)
    pair = Image.new("RGB", (2 * SIZE, SIZE), "white")
    pair.paste(sketch(color, method, seed=seed).convert("RGB"), (0, 0))
    pair.paste(color, (SIZE, 0))
    return pair


def ink_stats(sketch_gray):
    """(ink fraction, line width) of a grayscale sketch array [H, W] uint8: ink is < 128; the width
    is the median over ink pixels of the shorter of the horizontal and vertical ink runs through it
    (a line's thickness across it, overestimated by up to sqrt(2) on diagonals, for both sets alike)."""
    ink = np.asarray(sketch_gray) < 128
    if not ink.any():
        return 0.0, 0.0
    runs = [_run_lengths(ink), _run_lengths(ink.T).T]
    width = np.minimum(*runs)[ink]
    return float(ink.mean()), float(np.median(width))


def _run_lengths(mask):
    """For each True pixel, the length of the horizontal run of True it belongs to."""
    out = np.zeros(mask.shape, dtype=np.int32)
    for i, row in enumerate(mask):
        padded = np.concatenate([[False], row, [False]])
        change = np.flatnonzero(padded[1:] != padded[:-1])
        for start, end in zip(change[::2], change[1::2]):
            out[i, start:end] = end - start
    return out


def compare(real_dir, ours_dir, out_png=None, n=6):
    """Ink fraction and line width (mean over images) of two pair folders; optional side-by-side PNG
    of n real pairs (top rows) and n of ours (bottom rows)."""
    from .data import load_pairs

    result = {}
    for name, folder in (("real", real_dir), ("ours", ours_dir)):
        x, _ = load_pairs(folder)
        stats = np.array([ink_stats(xi.float().mean(0).round().byte().numpy()) for xi in x])
        result[name] = dict(pairs=len(x), ink_fraction=stats[:, 0].mean(), ink_fraction_sd=stats[:, 0].std(),
                            line_width=stats[:, 1].mean(), line_width_sd=stats[:, 1].std())
    if out_png:
        files = [sorted(Path(d).glob("*.jpg"))[:n] for d in (real_dir, ours_dir)]
        sheet = Image.new("RGB", (2 * SIZE * 2, SIZE * ((n + 1) // 2) * 2), "white")
        for row, group in enumerate(files):
            for i, f in enumerate(group):
                with Image.open(f) as im:
                    at = ((i % 2) * 2 * SIZE, (row * ((n + 1) // 2) + i // 2) * SIZE)
                    sheet.paste(im.convert("RGB").resize((2 * SIZE, SIZE)), at)
        Path(out_png).parent.mkdir(parents=True, exist_ok=True)
        sheet.save(out_png)
    return result


def _convert(job):
    """One image -> one pair file (a worker's task). Returns an error message or None."""
    f, out_file, method, base_seed = job
    try:
        with Image.open(f) as im:
            im.load()
            # per-file seed: the same image always gets the same lines, whatever the order or worker
            seed = int.from_bytes(hashlib.sha256(f"{base_seed}/{f.name}".encode()).digest()[:4], "little")
            pair = make_pair(im, method, seed)
    except OSError as e:
        return f"{f}: not a readable image ({e})"
    pair.save(out_file, quality=95)
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="folder of color images (with --compare: the real pairs)")
    p.add_argument("out", help="output folder for 512x256 pairs (with --compare: our pairs)")
    p.add_argument("--method", choices=[*METHODS, "all"], default="canny",
                   help="line extraction (default canny); all: every rendering in RENDERINGS, one "
                        "subfolder of OUT each")
    p.add_argument("--seed", type=int, default=0, help="seed for the per-image line thickness and wobble (default 0)")
    p.add_argument("--workers", type=int, default=1, help="processes converting in parallel (default 1)")
    p.add_argument("--compare", action="store_true", help="compare two pair folders instead of converting")
    p.add_argument("--sheet", default="runs/sketchify/compare.png", help="side-by-side PNG written by --compare")
    args = p.parse_args(argv)
    if args.compare:
        stats = compare(args.src, args.out, args.sheet)
        for name, s in stats.items():
            print(f"{name}: {s['pairs']} pairs, ink fraction {s['ink_fraction']:.3f} (sd {s['ink_fraction_sd']:.3f}), "
                  f"line width {s['line_width']:.2f} px (sd {s['line_width_sd']:.2f})")
        print(f"side by side: {args.sheet}")
        return stats
    src, out = Path(args.src), Path(args.out)
    images = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    files = sorted(f for f in src.iterdir() if f.suffix.lower() in images) if src.is_dir() else []
    if not files:
        sys.exit(f"error: no images in {src}")
    folders = {m: out / m for m in RENDERINGS} if args.method == "all" else {args.method: out}
    jobs = []
    for method, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        jobs += [(f, folder / f"{f.stem}.jpg", method, args.seed) for f in files]
    start = time.monotonic()
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers) as pool:
            for done, error in enumerate(pool.map(_convert, jobs, chunksize=16), 1):
                _progress(error, done, len(jobs), start)
    else:
        for done, job in enumerate(jobs, 1):
            _progress(_convert(job), done, len(jobs), start)
    where = ("each of " if len(folders) > 1 else "") + ", ".join(str(f) for f in folders.values())
    print(f"wrote {len(files)} pairs to {where}: {len(jobs)} images in {_minutes(time.monotonic() - start)}")
    return len(files)


def _progress(error, done, total, start):
    """Stop at a failed image; else a line every 5% of the images: plain lines, not a bar redrawn
    with carriage returns, so that a log file reads as well as a terminal (--method all: minutes)."""
    if error:
        sys.exit(f"error: {error}")
    step = -(-total // 20)
    if done % step == 0 and done < total:
        elapsed = time.monotonic() - start
        print(f"sketchify: {done}/{total} images ({done / total:.0%}) in {_minutes(elapsed)}, "
              f"about {_minutes(elapsed * (total - done) / done)} left", flush=True)


def _minutes(seconds):
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


if __name__ == "__main__":
    main()
