"""Color hints: the user's say in the colors.

A sketch fixes the lines, not the hue: Pikachu may come out salmon. Practical colorizers take color
dots or short strokes on the line art (PaintsChainer, Style2Paints; Zhang et al. 2017, "Real-Time
User-Guided Image Colorization with Learned Deep Priors", https://arxiv.org/abs/1705.02999, with
clicked points). Not in the pix2pix paper; the stock U-Net takes such hints as extra input
channels with nothing else changed, which is what we do.

A hint map is [N, 4, H, W]: the hint colors in [-1, 1] (3 channels, zero where there is none) and a
mask (1 channel, 1 where a hint is). Users draw it as an RGBA image, alpha > 0 marking hint pixels
(`from_rgba`). A generator built with `hints=True` takes 3 + 4 input channels (condgen.pix2pix).

How a hint reaches its region, in two steps (`spread` and `apply`, on the regions of
condgen.color.region_labels), because a network fed only the
dots learns to paint the dot, not the region around it (a 22-minute pilot: hint fidelity 0.24 ->
0.17, region match unchanged at 0.23):
- `spread`, before G: each closed region of the sketch (the regions its lines enclose,
  condgen.color.region_labels) that holds hints is filled in the hint map with their
  colors (one hint: its color; several: blended by inverse squared distance); G learns to shade
  and line a color it is given, which it learns fast.
- `apply`, after G: in each such region the output takes that color, with G's shading kept (each
  pixel's luminance offset from the region's median luminance), as a colorist's flatting pass does
  for the regions a client marked. A hint in an open area (a gap in a line) colors its
  surroundings; the rest is G's, which a G trained with hints carries further.

Training simulates hints from the truth (`sample`), as Zhang et al.: a geometric number of points
(p = 1/8, ~7 on average), a share of pairs with none (the automatic mode), square patches of 1-9 px
holding the truth's mean color there, on the art (not the white background); and, since app users
drag, some short strokes along a run of one color. `condgen.evaluate pix2pix --hints K` draws K
with the same rule, from a fixed seed.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .color import LUMA, region_labels

CHANNELS = 4  # hint colors (3) + mask (1)
P_COUNT = 1 / 8  # geometric number of hints, as Zhang et al.
NO_HINTS = 0.25  # share of training pairs with none: the automatic mode stays trained
STROKES = 0.3  # share of hints that are short strokes instead of square dots
MAX_HINTS = 32
WHITE = 0.92  # the art: pixels with a channel below this on [0, 1] (the paper is white)


def empty(n, h, w, device=None):
    """A hint map with no hints: [n, 4, h, w] zeros."""
    return torch.zeros(n, CHANNELS, h, w, device=device)


def from_rgba(rgba):
    """An RGBA uint8 array [H, W, 4] (alpha > 0: a hint, its RGB the color) -> [1, 4, H, W]."""
    t = torch.as_tensor(rgba).permute(2, 0, 1).float()
    mask = (t[3:] > 0).float()
    return torch.cat([(t[:3] / 127.5 - 1) * mask, mask])[None]


def is_empty(hints):
    return hints is None or not bool(hints[:, 3].any())


def _dot(y01, art, size, gen):
    """A square patch of side size on an art pixel: (rows, cols) slices and the truth's mean there."""
    h, w = art.shape
    where = art.nonzero()
    r, c = where[torch.randint(len(where), (1,), generator=gen)].squeeze(0).tolist()
    r0, c0 = max(0, r - size // 2), max(0, c - size // 2)
    box = (slice(r0, min(h, r0 + size)), slice(c0, min(w, c0 + size)))
    return box, y01[:, box[0], box[1]].mean(dim=(1, 2)), (r, c)


def _stroke(y01, art, gen, tol=0.1, width=3):
    """A short drag along one color: from an art pixel, a straight line of 8-40 px in a random
    direction, stopped where the truth's color strays by more than tol (mean |RGB|) from the start's.
    Returns a [H, W] bool mask, its color (the truth's at the start) and the start."""
    h, w = art.shape
    (box, color, (r, c)) = _dot(y01, art, 3, gen)
    angle = torch.rand((), generator=gen).item() * 2 * math.pi
    length = int(torch.randint(8, 41, (), generator=gen))
    mask = torch.zeros(h, w, dtype=torch.bool, device=y01.device)
    for t in range(length):
        rr, cc = round(r + t * math.sin(angle)), round(c + t * math.cos(angle))
        if not (0 <= rr < h and 0 <= cc < w) or (y01[:, rr, cc] - color).abs().mean() > tol:
            break
        mask[max(0, rr - width // 2):rr + width // 2 + 1, max(0, cc - width // 2):cc + width // 2 + 1] = True
    return mask, color, (r, c)


def sample(y, count=None, generator=None, strokes=STROKES):
    """Simulated hints from the truths y [N, 3, H, W] in [-1, 1]: (hint map [N, 4, H, W], points),
    points[i] a list of (row, col, color [3] on [0, 1]) per hint of image i (for the metrics).

    count None: training's rule, none for NO_HINTS of the images, else a geometric number (p 1/8,
    at most MAX_HINTS); an int: exactly that many per image (evaluation). Random numbers come from
    generator (torch's default CPU generator if None), so a resumed run draws what it would have."""
    y01 = (y.detach().float() + 1) / 2
    n, _, h, w = y.shape
    hints, points = empty(n, h, w, y.device), []
    for i in range(n):
        art = (y01[i] < WHITE).any(0)
        k = count
        if k is None:
            k = 0 if torch.rand((), generator=generator) < NO_HINTS else min(
                MAX_HINTS, int(torch.empty(()).geometric_(P_COUNT, generator=generator)))  # 1, 2, ...: mean 8
        points.append([])
        if not art.any():
            continue
        for _ in range(k):
            if torch.rand((), generator=generator) < strokes:
                mask, color, at = _stroke(y01[i], art, generator)
                hints[i, :3, mask] = color[:, None] * 2 - 1
                hints[i, 3, mask] = 1
            else:
                size = int(torch.randint(1, 10, (), generator=generator))
                box, color, at = _dot(y01[i], art, size, generator)
                hints[i, :3, box[0], box[1]] = (color * 2 - 1)[:, None, None]
                hints[i, 3, box[0], box[1]] = 1
            points[i].append((*at, color.cpu()))
    return hints, points


def _blend_fill(hints_i, region, hinted):
    """Each pixel of region [H, W] takes a blend of the colors of the hinted pixels in it (hinted:
    a mask inside region), weighted by inverse squared distance (Shepard's interpolation; distances
    under 1 px count as 1): one hint fills the region with its color, two shade from one into the
    other. Power 2 was chosen on training pairs, not on val: at 10 hints it beat the nearest hint's
    color (L1 0.0735 vs 0.0751; docs/hints.md). Returns [3, P] colors for region's P pixels."""
    src = hinted.nonzero().float()  # (Q, 2)
    colors = hints_i[:3, hinted]  # (3, Q)
    if len(src) > 256:  # a long stroke: its pixels are near each other, a subset weighs it as well
        keep = torch.linspace(0, len(src) - 1, 256, device=src.device).round().long()
        src, colors = src[keep], colors[:, keep]
    w = torch.cdist(region.nonzero().float(), src).clamp_min(1.0).pow(-2)  # (P, Q)
    return (colors @ w.T) / w.sum(1)[None]


def _window(sl, margin, shape):
    """The slices of a box (ndimage.find_objects) grown by margin px, within shape."""
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(sl, shape))


def _with_rim(labels_i, k):
    """Area k of labels [H, W] and the 1-px rim between it and the ink that region_labels took
    from it (its ink is thickened by 1 px): a region's fill reaches its lines, no halo of G's
    color is left between them."""
    area = labels_i == k
    grown = F.max_pool2d(area[None, None].float(), 3, 1, 1)[0, 0] > 0
    return area | (grown & (labels_i == 0))


def _areas(labels_i, mask, snap=3, share=50):
    """The area (label) each hint pixel colors, [H, W] (numpy). A hint pixel on a line (label 0)
    counts for the nearest area within snap px. Each connected hint (a dot, a stroke) goes to the
    area holding most of it, and to any other holding at least `share` of its pixels (a stroke drawn
    across a line): a dot dabbed over the outline of a small region is meant for that region, not
    for the paper around it. 0 elsewhere, and for a hint with no area that near."""
    lab, m = labels_i.cpu().numpy(), mask.cpu().numpy()
    blobs, _ = ndimage.label(m, structure=np.ones((3, 3)))
    out = np.zeros_like(lab)
    for b, box in enumerate(ndimage.find_objects(blobs), start=1):
        win = _window(box, snap, lab.shape)  # the nearest area within snap px lies in it
        d, (r, c) = ndimage.distance_transform_edt(lab[win] == 0, return_indices=True)
        near, inside = np.where(d <= snap, lab[win][r, c], 0), blobs[win] == b
        values, counts = np.unique(near[inside], return_counts=True)
        counts[values == 0] = 0
        if counts.max() == 0:
            continue
        chosen = (counts == counts.max()) | (counts >= share)
        own = near[inside]
        out[win][inside] = np.where(np.isin(own, values[chosen]), own, values[counts.argmax()])
    return out


def spread(hints, labels, areas=None):
    """The hint map G is fed: each closed region of the sketch (labels [N, H, W], 1..K; 0 for lines,
    below 0 for open areas; condgen.color.region_labels) that holds a hint is filled
    with its hints' colors (_blend_fill), mask 1; the hints themselves stay where they are. areas: _areas
    of each image, if already found."""
    out = hints.clone()
    for i in range(len(hints)):
        mask = hints[i, 3] > 0
        if not mask.any():
            continue
        area = torch.from_numpy(_areas(labels[i], mask) if areas is None else areas[i]).to(hints.device)
        for k in area[mask].unique().tolist():
            if k <= 0:
                continue
            region = _with_rim(labels[i], k)
            out[i, :3, region] = _blend_fill(hints[i], region, area == k)
            out[i, 3, region] = 1
    return out


def apply(y, hints, labels, reach=16, exact=8):
    """After G: each closed region holding a hint takes the color spread gives it, with G's
    shading kept (each pixel's luminance offset from the region's median luminance, added to r, g
    and b alike). A hint in an open area (labels < 0: region_labels(..., open_areas=True); a gap in a
    line, the paper, a region too small to count) colors only its surroundings, reach px around it
    within its area, fading out over the last half: G's picture is kept beyond. Near a hint G's
    shading fades out, so that the hint's own color shows where it was put (exactly at the hint,
    fully shaded from exact px on). A dot on solid ink (a dark area of the sketch, not a line)
    shows its color there. The rest of y [N, 3, H, W] in [-1, 1] is G's. Returns a new tensor."""

    luma = torch.tensor(LUMA, device=y.device).view(1, 3, 1, 1)
    y01 = (y.float() + 1) / 2
    lum = (y01 * luma).sum(1)  # (N, H, W)
    areas = [_areas(labels[i], hints[i, 3] > 0) for i in range(len(y))]
    filled = spread(hints, labels, areas)
    out = y01.clone()
    for i in range(len(y)):
        mask = (hints[i, 3] > 0).cpu().numpy()
        if not mask.any():
            continue
        keep_shade = np.ones(mask.shape, np.float32)  # 0 on a hint (its color as given), 1 from exact px on
        win = _window(ndimage.find_objects(mask.astype(np.int32))[0], exact, mask.shape)
        keep_shade[win] = np.minimum(ndimage.distance_transform_edt(~mask[win]) / exact, 1)
        keep_shade = torch.from_numpy(keep_shade).to(y.device)
        area = torch.from_numpy(areas[i]).to(y.device)
        for k in area[area > 0].unique().tolist():
            region = _with_rim(labels[i], k)
            shade = (lum[i, region] - lum[i, region].median()) * keep_shade[region]
            out[i, :, region] = (filled[i, :3, region] + 1) / 2 + shade[None]
        # open areas: each hint there (a connected blob of its pixels) colors its surroundings
        for k in np.unique(areas[i][areas[i] < 0]).tolist():
            blobs, _ = ndimage.label(areas[i] == k, structure=np.ones((3, 3)))
            for b, box in enumerate(ndimage.find_objects(blobs), start=1):
                win = _window(box, reach, mask.shape)
                d = torch.from_numpy(ndimage.distance_transform_edt(blobs[win] != b)).float().to(y.device)
                w = ((reach - d) / (reach / 2)).clamp(0, 1) * _with_rim(labels[i][win], k)  # 0 from reach on
                near, blob = w > 0, torch.from_numpy(blobs[win] == b).to(y.device)
                color = (hints[i, :3][:, win[0], win[1]][:, blob].mean(1) + 1) / 2
                shade = (lum[i][win][near] - lum[i][win][near].median()) * keep_shade[win][near]
                o = out[i][:, win[0], win[1]]  # a view: written through
                o[:, near] = (1 - w[near]) * o[:, near] + w[near] * (color[:, None] + shade[None])
        # a hint dabbed on solid ink (dark shading the sketch fills in, not a line: a 7x7 square fits in
        # it) takes the hint's color where the dot is; lines stay as G drew them
        solid = ndimage.binary_opening(labels[i].cpu().numpy() == 0, structure=np.ones((7, 7)))
        dot = torch.from_numpy(mask & solid).to(y.device)
        out[i][:, dot] = (hints[i, :3, dot] + 1) / 2
    return out.clamp(0, 1) * 2 - 1


def generate(G, x, hints):
    """G's pictures of sketches x [N, 3, H, W] with hint maps [N, 4, H, W], as colorize and the
    evaluation make them: the sketch's regions found, the hints spread through them for a G built
    with hints (a 3-channel G takes none), G run, the hinted regions colored after it. Returns
    [N, 3, H, W] in [-1, 1], float, on x's device."""

    labels = region_labels(x, open_areas=True)
    y = G(x, spread(hints, labels).to(x.dtype) if G.hints else None)
    return apply(y.float(), hints, labels)


def fixed(y, count, seed=0):
    """sample(y, count) with a generator seeded per image (seed, i): evaluation's hints, the same in
    every run, and the first k hints of an image the same for every count >= k."""
    maps, points = [], []
    for i in range(len(y)):
        m, p = sample(y[i : i + 1], count, torch.Generator().manual_seed(seed * 100_003 + i))
        maps.append(m)
        points += p
    return torch.cat(maps), points


def overlay(x, hints):
    """Sketches x [N, 3, H, W] in [-1, 1] with the hints painted over them, for contact sheets: each
    hint grown by 2 px and ringed in black, so that a 1-px dot shows in a thumbnail."""
    import torch.nn.functional as F

    mask = hints[:, 3:] > 0
    colors = F.max_pool2d(torch.where(mask, hints[:, :3] + 2, 0), 5, 1, 2)  # + 2: any color beats "none"
    grown = F.max_pool2d(mask.float(), 5, 1, 2) > 0
    ring = (F.max_pool2d(mask.float(), 9, 1, 4) > 0) & ~grown
    return torch.where(grown, colors - 2, torch.where(ring, -1.0, x.float()))
