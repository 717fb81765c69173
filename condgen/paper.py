"""Sketch normalization: real paper and ink to the white paper and black lines the models were trained on.

The training sketches (condgen.sketchify) are dark lines on pure white. A drawing on gray,
beige or unevenly lit paper (a phone photo of a pencil sketch) is far from that, and Pix2Pix
answers it with confident garbage: at a plain background of 245 the U-Net's output is already
all yellow. So every sketch goes through `normalize_sketch` before the generator:

1. paper: per channel, the bright level of each block of a coarse grid (a high percentile, so
   lines and noise do not count), spread over its neighbours and smoothed: the local paper
   color, which follows a phone photo's uneven light;
2. dividing by it makes the paper white and drops its color cast (beige paper: R, G and B
   scaled by different factors), and the result is read as gray;
3. ink: the typical level of the dark pixels is stretched to black, the paper's grain just
   under white is cut to white; the lines stay where they are.

`sketch_note` says when an input does not look like a line sketch (much color, or much ink):
the models still answer, but a photo or color art is outside what they were trained on.
"""

import numpy as np
from PIL import Image

from .color import LUMA

GRID = 32  # paper blocks along the longer side
PAPER_PERCENTILE = 90  # a block's paper level: most of a block is paper in a line sketch
WHITE = 0.88  # after dividing by the paper: brighter is paper (grain, JPEG noise)
# sketch_note's thresholds. On the 24 real Sketch2Pokemon val sketches: no colored pixels and
# 6-16% not paper; on Pokemon color art: 9-38% colored (or, gray creatures, over 25% not paper).
COLOR_SHARE, INK_SHARE = 0.08, 0.25


def _paper(a):
    """Local paper color [H, W, 3] of an image a [H, W, 3] in [0, 1]."""
    h, w, _ = a.shape
    step = max(1, -(-max(h, w) // GRID))  # block side in pixels
    gh, gw = -(-h // step), -(-w // step)
    padded = np.pad(a, ((0, gh * step - h), (0, gw * step - w), (0, 0)), mode="edge")
    blocks = padded.reshape(gh, step, gw, step, 3).transpose(0, 2, 1, 3, 4).reshape(gh, gw, step * step, 3)
    level = np.percentile(blocks, PAPER_PERCENTILE, axis=2)  # (gh, gw, 3)
    # a block that is mostly ink (a filled eye, dense hatching) takes its neighbours' paper
    p = np.pad(level, ((1, 1), (1, 1), (0, 0)), mode="edge")
    level = np.max([p[i:i + gh, j:j + gw] for i in range(3) for j in range(3)], axis=0)
    level = np.maximum(level, 0.5 * level.max(axis=(0, 1)))  # never divide ink by ink
    p = np.pad(level, ((1, 1), (1, 1), (0, 0)), mode="edge")
    level = np.mean([p[i:i + gh, j:j + gw] for i in range(3) for j in range(3)], axis=0)  # smooth
    # up to full size, bilinear: PIL resizes float images ("F") one channel at a time
    size = (gw * step, gh * step)
    up = [np.asarray(Image.fromarray(level[..., c].astype(np.float32), "F").resize(size, Image.BILINEAR))
          for c in range(3)]
    return np.stack(up, axis=-1)[:h, :w].clip(1e-3, 1)


def _levels(rgb):
    """(gray, chroma), [H, W] each in [0, 1]: the sketch with its paper divided out, and how
    colored each pixel is relative to its paper."""
    a = np.asarray(rgb.convert("RGB"), dtype=np.float32) / 255
    flat = (a / _paper(a)).clip(0, 1)
    gray = flat @ np.array(LUMA, np.float32)
    return gray, flat.max(axis=2) - flat.min(axis=2)


def _ink_level(gray):
    """The level that becomes black: the median of the clearly dark pixels (0 if there are none)."""
    dark = gray[gray < 0.7]
    if dark.size < 0.0005 * gray.size:
        return 0.0
    return float(min(np.median(dark), 0.5))


def normalize_sketch(image):
    """A sketch (PIL image) -> RGB PIL image of the same size: white paper, black lines, no color."""
    gray, _ = _levels(image)
    ink = _ink_level(gray)
    out = ((gray - ink) / (WHITE - ink)).clip(0, 1)
    return Image.fromarray((out * 255).round().astype(np.uint8), "L").convert("RGB")


def sketch_note(image):
    """'' for a line sketch; else a sentence saying why the input does not look like one."""
    gray, chroma = _levels(image)
    color, ink = float((chroma > 0.1).mean()), float((gray < 0.9).mean())
    if color > COLOR_SHARE:
        return (f"This does not look like a line sketch: {color:.0%} of it is in color. The models were "
                "trained on dark lines on white paper, so expect a poor result.")
    if ink > INK_SHARE:
        return (f"This does not look like a line sketch: {ink:.0%} of it is dark or shaded (line sketches: under 20%). "
                "The models were trained on thin dark lines on white paper, so expect a poor result.")
    return ""


def normalize_batch(x):
    """normalize_sketch on a batch of sketches [N, 3, H, W] in [-1, 1] (condgen.evaluate_pix2pix' range)."""
    import torch

    a = ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([np.asarray(normalize_sketch(Image.fromarray(im))) for im in a])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(x.device)
