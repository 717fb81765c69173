"""Color, luminance and regions of images in the generators' range [-1, 1]: what the training loss,
flat colors, color hints and the metrics all measure, in one place. Imports nothing else from
condgen, so any of those modules can use it.

- Luminance: Rec. 601 luma, 0.299 r + 0.587 g + 0.114 b.
- Opponent chroma: r - g and (r + g)/2 - b, the two color axes left when luminance is taken out
  (as in Hasler & Suesstrunk's colorfulness). Linear, so they also split a difference of images.
- Regions: the areas a sketch's lines enclose, found on its ink (lum < 0.5).
"""

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

LUMA = (0.299, 0.587, 0.114)  # Rec. 601 luma weights of R, G, B


def to_zero_one(t):
    return (t.float() + 1) / 2  # [-1, 1] -> [0, 1]


def opponent(img):
    """Luminance (Rec. 601 luma) [N, H, W] and the opponent-chroma channels r - g and (r + g)/2 - b
    [N, 2, H, W] of RGB [N, 3, H, W]: linear, so also of a difference of images; the three carry all
    of RGB."""
    r, g, b = img.float().unbind(1)
    return LUMA[0] * r + LUMA[1] * g + LUMA[2] * b, torch.stack([r - g, 0.5 * (r + g) - b], dim=1)


def luminance(img):
    """Rec. 601 luma [N, H, W] on [0, 1] of RGB images in [-1, 1]."""
    return opponent(to_zero_one(img))[0]


def chroma(img):
    """The opponent-chroma channels r - g and (r + g)/2 - b [N, 2, H, W] on [0, 1]: color without
    luminance."""
    return opponent(to_zero_one(img))[1]


def region_labels(sketch, min_area=0.005, open_areas=False):
    """The regions a sketch's lines enclose: labels [N, H, W] (int64), 1..K for an image's K regions,
    0 elsewhere. Ink is lum < 0.5, thickened by 1 px so that a 1-px gap in a line does not merge two
    regions (and no region leaks across a diagonal line); a region is a connected area of the rest
    (8-neighbours) that does not touch the border (the background) and covers at least min_area of
    the image. open_areas: the rest of the paper too, each connected area labeled -1, -2, ... (hints
    spread into them, a little way: condgen.hints.apply). No gradient: it only reads the sketch.
    Connected components by scipy.ndimage.label,
    on the CPU: ~4 ms for a 256x256 sketch, where label propagation in torch took ~0.8 s."""
    ink = F.max_pool2d((luminance(sketch.detach()) < 0.5).float()[:, None], 3, 1, 1)[:, 0] > 0  # (N, H, W)
    n, h, w = ink.shape
    out = np.zeros((n, h, w), np.int64)
    for i, free in enumerate((~ink).cpu().numpy()):
        lab, k = ndimage.label(free, structure=np.ones((3, 3)))  # 8-neighbours
        keep = np.bincount(lab.ravel(), minlength=k + 1) >= min_area * h * w
        keep[0] = False
        keep[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = False  # touches the border
        ids = np.cumsum(keep) * keep  # kept labels -> 1..K in order, the rest -> 0
        if open_areas:
            ids = np.where(keep, ids, -np.arange(k + 1))  # the rest of the paper: -1, -2, ...; ink stays 0
        out[i] = ids[lab]
    return torch.from_numpy(out).to(sketch.device)


def sketch_regions(sketch, min_area=0.005):
    """region_labels as a list of [H, W] bool masks per image, one per region."""
    return [[lab == k for k in range(1, int(lab.max()) + 1)] for lab in region_labels(sketch, min_area)]
