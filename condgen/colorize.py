"""Colorize sketches with a trained Pix2Pix generator; show what the PatchGAN thinks of the result.

    python -m condgen.colorize --weights weights/pix2pix-unet sketch.png more/*.jpg --out runs/colorized

Any size and mode goes in: transparency is composited on white (a drawing app's transparent
canvas is paper, not black), 16-bit, gray, palette and CMYK images become 8-bit RGB; the paper
is made white and the lines black (condgen.paper.normalize_sketch: gray, beige or unevenly lit
paper otherwise comes out yellow or blotched); the sketch is padded to a square with white and
resized to 256x256 as the training pairs were (condgen.data.square_on_white), colorized, and the
result cropped and resized back to the input's size.

Color hints (`--hints hints.png`, condgen.hints): an RGBA image of the sketch's size, alpha > 0
marking hint pixels and their RGB the color wanted there, e.g. a dot of yellow in a body; fully
transparent elsewhere. It is padded and resized with the sketch; each closed region of the sketch
that holds a hint takes its color, G's shading kept, and a generator trained with hints
(`train_pix2pix.py --hints`) carries them into the rest. No hints, or none visible: automatic.

Eval mode by default: BatchNorm uses its running statistics and dropout is off, so the same
sketch always gives the same picture. `--stochastic` keeps dropout on, which is how the paper
injects noise z at test time (Sec. 2.2: "we provide noise only in the form of dropout, applied ...
at both training and test time"); outputs then vary from run to run, though only slightly.
"""

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import hints as H
from .color import LUMA, luminance, sketch_regions, to_zero_one
from .data import on_white, square_on_white, to_tanh_range
from .paper import normalize_sketch, sketch_note

SIZE = 256
MAX_PIXELS = 50_000_000  # a file over this is refused before decoding, as the app does (serving.MAX_PIXELS)
HEAT = np.array([[215, 48, 39], [255, 255, 191], [26, 152, 80]], np.float32)  # fake red, unsure, real green


def to_rgb(image):
    """A path, PIL image or HxW[xC] uint8/uint16 array -> 8-bit RGB PIL image, white under alpha."""
    if isinstance(image, (str, Path)):
        image = _open(image)
    elif isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or image.size == 0:
            raise ValueError(f"expected an image array H x W [x 1|3|4], got shape {image.shape}")
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        elif image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 or uint16 image array, got {image.dtype}")
        image = Image.fromarray(image.squeeze(2) if image.ndim == 3 and image.shape[2] == 1 else image)
    if not isinstance(image, Image.Image):
        raise ValueError(f"expected an image (path, PIL image or array), got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError("the image is empty (0 pixels)")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit or 32-bit gray: PIL's convert("L") clips at 255 instead of scaling the range
        a = np.asarray(image, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if image.mode.startswith("I;16") else (a.min(), max(a.max(), a.min() + 1))
        image = Image.fromarray(((a - lo) / (hi - lo) * 255).clip(0, 255).round().astype(np.uint8))
    return on_white(image)


def check_sketch(rgb):
    """Refuse a blank sketch: a flat image carries nothing for the generator to follow."""
    gray = np.asarray(rgb.convert("L"), dtype=np.float32)
    if gray.max() - gray.min() < 32:  # flat up to faint noise (JPEG artifacts, paper texture)
        raise ValueError("the sketch is blank (one flat color): draw some dark lines on white")


def _to_square(rgb):
    """The generator's input: padded to a square and resized as the training pairs were
    (condgen.data.square_on_white); returns the tensor and the box of rgb inside it, to undo it."""
    square, box = square_on_white(rgb, SIZE)
    x = torch.from_numpy(np.asarray(square).copy()).permute(2, 0, 1)
    return to_tanh_range(x)[None], box  # (1, 3, 256, 256) in [-1, 1]


def _open(path):
    """The image at path, loaded; a clear ValueError naming it if it cannot be read or is over
    MAX_PIXELS (checked from its header, before decoding)."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(_too_large(path, im.width * im.height, f"{im.width}x{im.height}, "))
            im.load()
            return im.copy()
    except FileNotFoundError as e:
        raise ValueError(f"{path}: no such file") from e
    except Image.DecompressionBombError as e:  # over PIL's own limit (179 MP): refused as it opens
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        raise ValueError(_too_large(path, int(pixels[1]) if pixels else 2 * Image.MAX_IMAGE_PIXELS, "")) from e
    except (UnidentifiedImageError, OSError) as e:
        why = ("not an image PIL can read" if isinstance(e, UnidentifiedImageError)
               else str(e).replace(f"'{path}'", "").strip(": "))
        raise ValueError(f"{path}: not a readable image ({why})") from e


def _too_large(path, pixels, size):
    return (f"{path}: image too large ({size}{pixels / 1e6:.0f} megapixels; at most {MAX_PIXELS // 10**6}): "
            "scale it down first (the generator works at 256x256)")


def _at_most(im, side):
    """im, or a copy scaled down to at most side px a side (serving.within_size_limits' MAX_SIDE)."""
    if max(im.size) <= side:
        return im
    im = im.copy()
    im.thumbnail((side, side), Image.LANCZOS)
    return im


def to_hints(hints, size):
    """Color hints (path, PIL image or H x W x 4 uint8 array; alpha > 0 marks a hint, its RGB the
    color) -> RGBA PIL image of size (w, h), the sketch's. One of another size with the sketch's
    aspect ratio (a canvas at another scale) is resized; any other size, or an image without
    transparency, is refused with a sentence."""
    name = "hints"
    if isinstance(hints, (str, Path)):
        name, hints = f"hints {hints}", _open(hints)
    elif isinstance(hints, np.ndarray):
        if hints.ndim != 3 or hints.shape[2] != 4 or hints.dtype != np.uint8:
            raise ValueError(f"{name}: expected an RGBA uint8 array H x W x 4 (alpha > 0 marks a hint), got "
                             f"{hints.dtype} {hints.shape}")
        hints = Image.fromarray(hints, "RGBA")
    if not isinstance(hints, Image.Image):
        raise ValueError(f"{name}: expected an RGBA image (path, PIL image or array), got {type(hints).__name__}")
    if hints.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in hints.info:
        raise ValueError(f"{name}: the image (mode {hints.mode}) has no transparency; hints are an RGBA image, "
                         "transparent except where a color is wanted")
    hints = hints.convert("RGBA")
    if hints.size != size:
        (w, h), (sw, sh) = hints.size, size
        if abs(w * sh - h * sw) > max(w, h, sw, sh):  # aspect ratios differ by more than a pixel's rounding
            raise ValueError(f"{name}: {w}x{h} does not fit the sketch's {sw}x{sh}; draw the hints on an image "
                             "of the sketch's size")
        hints = _resize_rgba(hints, size)
    return hints


def _resize_rgba(rgba, size):
    """Resize an RGBA image with its colors premultiplied by alpha, so that transparent pixels do
    not darken a hint's edge; area-averaged when shrinking."""
    shrink = size[0] < rgba.width
    return rgba.convert("RGBa").resize(size, Image.BOX if shrink else Image.BILINEAR).convert("RGBA")


def _hints_to_square(hints, box):
    """RGBA hints of the sketch's size -> hint map [1, 4, 256, 256] laid out as _to_square lays out
    the sketch (padded to a square, resized), or None if no hint is visible. A pixel is a hint
    where at least an eighth of it was covered: a 1-px dot on a 1024-px sketch survives."""
    side = max(hints.size)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    canvas.paste(hints, (round(box[0] * side / SIZE), round(box[1] * side / SIZE)))
    a = np.asarray(_resize_rgba(canvas, (SIZE, SIZE))).copy()
    a[..., 3] = np.where(a[..., 3] >= 32, 255, 0)
    hint_map = H.from_rgba(a)
    return None if H.is_empty(hint_map) else hint_map


def _to_pil(t):
    """[3, H, W] in [-1, 1] -> RGB PIL image."""
    a = ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(a)


@torch.no_grad()
def colorize(G, image, hints=None, flat=False):
    """Colorize one sketch (path, PIL image or array) -> RGB PIL image of the input's size. G runs in
    the mode it is in, which the caller sets once: eval mode, or condgen.pix2pix.at_test_time with
    stochastic (dropout on); never flipped here, so requests can share a G.

    hints: color hints, an RGBA image (path, PIL image or array) of the sketch's size, alpha > 0
    marking hint pixels and their RGB the color wanted (to_hints); None or all transparent:
    automatic. They go through the sketch's padding and resizing; each closed region of the sketch
    holding one takes its color (condgen.hints.apply), and a G built with hints also takes them as
    input. flat: flat_colors on the output (post-processing, not the model)."""
    rgb = normalize_sketch(to_rgb(image))
    check_sketch(rgb)
    x, box = _to_square(rgb)
    hint_map = _hints_to_square(to_hints(hints, rgb.size), box) if hints is not None else None
    w = next(G.parameters())
    x_in = x.to(w.device, w.dtype)  # w.dtype: bf16 for condgen.precision.inference_generator's copy
    y = (G(x_in) if hint_map is None else H.generate(G, x_in, hint_map.to(w.device))).float().cpu()
    y = _to_pil((flat_colors(y, x) if flat else y)[0])
    left, top, right, bottom = (round(v) for v in box)
    box = (left, top, max(right, left + 1), max(bottom, top + 1))  # a 1-px-thin input keeps 1 px
    return y.crop(box).resize(rgb.size, Image.LANCZOS)


def flat_colors(y, x, regions=None):
    """Flatting, as a colorist does it: every region the sketch x's lines enclose
    (condgen.color.sketch_regions) takes one color, the median of G's colors there, with
    G's shading kept: each pixel keeps its own luminance and takes the region's chroma. The lines,
    the background and regions a gap in a line leaves open keep G's colors. y, x: (1, 3, H, W) in
    [-1, 1]; regions: x's masks (sketch_regions(x)[0]) if already known. Returns y's new values."""

    rgb, lum = to_zero_one(y[0]).clone(), luminance(y)[0]  # (3, H, W), (H, W)
    luma = torch.tensor(LUMA)
    for m in sketch_regions(x)[0] if regions is None else regions:
        median = rgb[:, m].median(dim=1).values  # (3,)
        # a gray shift (the same amount on r, g and b) changes luminance, not the chroma r - g, (r + g)/2 - b
        rgb[:, m] = median[:, None] + (lum[m] - luma @ median)[None]
    return (rgb.clamp(0, 1) * 2 - 1)[None]


@torch.no_grad()
def patch_map(D, sketch, output):
    """The PatchGAN's verdict on (sketch, output): [30, 30] float array of P(real) per 70x70 patch
    ([256, 256], one per pixel, from a PixelGAN: Discriminator(patch=1)).

    Both images are squared and resized as colorize does, so each cell lines up with the same
    region of the 256x256 input (cell (i, j) sees the window starting at 8i - 23, 8j - 23). The
    sketch is normalized as colorize does: D judges the pair G worked on."""
    x, _ = _to_square(normalize_sketch(to_rgb(sketch)))
    y, _ = _to_square(to_rgb(output))
    device = next(D.parameters()).device
    return torch.sigmoid(D(x.to(device), y.to(device)))[0, 0].float().cpu().numpy()


def heat_overlay(p, y, alpha=0.5):
    """patch_map's P(real) [30, 30] as a red-yellow-green heat map blended over the output y.

    colorize() pads the sketch to a square resized to 256; map cell i sees the 70-px window from
    8i - 23, centred at 8i + 12, so each pixel of that square takes its nearest centre's verdict;
    the padding is then cropped off again. A PixelGAN's [256, 256] map is already one per pixel."""
    if p.shape[0] != SIZE:
        idx = np.clip(np.round((np.arange(SIZE) + 0.5 - 12) / 8), 0, p.shape[0] - 1).astype(int)
        p = p[idx][:, idx]
    p = p[:, :, None]  # (256, 256, 1)
    rgb = np.where(p < 0.5, HEAT[0] + (HEAT[1] - HEAT[0]) * 2 * p, HEAT[1] + (HEAT[2] - HEAT[1]) * (2 * p - 1))
    side = max(y.size)
    left, top = (side - y.width) // 2, (side - y.height) // 2
    square = Image.fromarray(rgb.round().astype(np.uint8)).resize((side, side), Image.NEAREST)
    return Image.blend(y, square.crop((left, top, left + y.width, top + y.height)), alpha)


def colorize_and_judge(G, D, sketch, hints=None, flat=False):
    """(G's colorized sketch, D's patch_map as a heat overlay on it, or None without a D); hints and
    flat as colorize, and D judges the picture shown."""
    y = colorize(G, sketch, hints, flat)
    return y, (heat_overlay(patch_map(D, sketch, y), y) if D is not None else None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="sketches to colorize (any size; PNG, JPG, ...)")
    p.add_argument("--weights", required=True,
                   help="generator folder (config.json + model.safetensors), a run folder holding "
                        "generator/, or a Hub id (REPO or REPO@REVISION)")
    p.add_argument("--out", required=True, help="folder for the colorized images (<name>.png)")
    p.add_argument("--stochastic", action="store_true", help="keep dropout on at test time, as the paper did")
    p.add_argument("--seed", type=int, default=0, help="seed for --stochastic")
    p.add_argument("--hints", default=None, metavar="RGBA",
                   help="color hints for the sketch (one sketch only): an RGBA image of its size, transparent except "
                        "where a color is wanted")
    p.add_argument("--flat", action="store_true",
                   help="flat colors: one color per region the lines enclose, G's shading kept (post-processing)")
    p.add_argument("--grid", default=None,
                   help="also write one PNG with a row per image: sketch | output (256 px each)")
    args = p.parse_args(argv)
    if args.hints and len(args.images) > 1:
        p.error(f"--hints belong to one sketch; got {len(args.images)} images")

    from .hub import CheckpointError
    from .pix2pix import at_test_time, load_generator
    from .precision import inference_generator

    try:
        G = load_generator(args.weights)
    except (CheckpointError, OSError) as e:
        sys.exit(f"error: {e}")
    # eval mode: BatchNorm folded, NHWC, bf16 where the CPU computes it natively; or dropout on
    G = at_test_time(G, stochastic=True) if args.stochastic else inference_generator(G)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed, rows = 0, []
    for f in args.images:
        try:
            rgb = to_rgb(f)  # read once: colorized here, and shown beside its output in --grid
            if note := sketch_note(_at_most(rgb, 1024)):  # the app's warning, judged at the app's size
                print(f"warning: {f}: {note}", file=sys.stderr)  # still colorized, but expect a poor result
            y = colorize(G, rgb, hints=args.hints, flat=args.flat)
            y.save(out / f"{Path(f).stem}.png")
            print(f"{f} -> {out / (Path(f).stem + '.png')}")
            rows.append((rgb, y))
        except ValueError as e:  # to_rgb's errors name the file already; colorize's do not
            print(f"error: {e}" if str(e).startswith(f) else f"error: {f}: {e}", file=sys.stderr)
            failed += 1
    if args.grid and rows:
        grid = Image.new("RGB", (2 * SIZE, len(rows) * SIZE), "white")
        for i, pair in enumerate(rows):
            for j, im in enumerate(pair):
                grid.paste(im.resize((SIZE, SIZE), Image.LANCZOS), (j * SIZE, i * SIZE))
        grid.save(args.grid)
        print(f"grid -> {args.grid}")
    if failed:
        sys.exit(f"error: {failed} of {len(args.images)} images failed")


if __name__ == "__main__":
    main()
