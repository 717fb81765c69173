"""Draw the Sketch-to-color tab's example sketches: black line art on white, made by code (free to ship).

    python examples/make_examples.py      # writes examples/*.png and examples/hints/*.png

examples/hints/NAME.png holds color hints for the sketch NAME.png (condgen.hints): an RGBA image of
its size, transparent but for a few dots of the colors wanted, as a user dabs them in the app.

Sketch2Pokemon's sketches are ~2-3 px black outlines of one creature filling a 256x256 frame; these
imitate that style with original creatures. Lines are drawn at 4x and downsampled, so their
anti-aliased edges look like the dataset's rather than jagged 1-bit strokes.
"""

import math
from pathlib import Path

from PIL import Image, ImageDraw

S = 4  # supersampling factor
LINE = 3 * S  # stroke width at 4x: ~3 px after downsampling


def canvas(w, h):
    im = Image.new("L", (w * S, h * S), 255)
    return im, ImageDraw.Draw(im)


def ellipse(d, cx, cy, rx, ry, fill=None):
    d.ellipse([(cx - rx) * S, (cy - ry) * S, (cx + rx) * S, (cy + ry) * S], outline=0, width=LINE, fill=fill)


def arc(d, cx, cy, rx, ry, start, end):
    d.arc([(cx - rx) * S, (cy - ry) * S, (cx + rx) * S, (cy + ry) * S], start, end, fill=0, width=LINE)


def curve(d, *pts, n=40):
    """A cubic Bezier through four control points (x, y), drawn as a polyline."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = pts
    line = []
    for i in range(n + 1):
        t = i / n
        a, b, c, e = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t**3
        line.append(((a * x0 + b * x1 + c * x2 + e * x3) * S, (a * y0 + b * y1 + c * y2 + e * y3) * S))
    d.line(line, fill=0, width=LINE, joint="curve")


def polyline(d, *pts):
    d.line([(x * S, y * S) for x, y in pts], fill=0, width=LINE, joint="curve")


def eye(d, cx, cy, r):
    ellipse(d, cx, cy, r, r * 1.2)
    ellipse(d, cx + r * 0.2, cy + r * 0.2, r * 0.55, r * 0.65, fill=0)
    ellipse(d, cx - r * 0.1, cy - r * 0.25, r * 0.2, r * 0.2, fill=255)  # highlight


def puffball():
    """A round creature with pointed ears, big eyes and a forehead curl."""
    im, d = canvas(256, 256)
    ellipse(d, 128, 140, 92, 86)
    polyline(d, (62, 88), (44, 30), (98, 62))  # ears
    polyline(d, (158, 62), (212, 30), (194, 88))
    curve(d, (110, 62), (100, 90), (140, 96), (136, 74))  # curl
    eye(d, 96, 138, 18)
    eye(d, 160, 138, 18)
    arc(d, 128, 170, 14, 10, 20, 160)  # smile
    ellipse(d, 86, 228, 22, 10)  # feet
    ellipse(d, 170, 228, 22, 10)
    return im


def bird():
    """A small bird with a crest, a folded wing and tail feathers."""
    im, d = canvas(256, 256)
    ellipse(d, 120, 150, 62, 50)  # body
    ellipse(d, 92, 86, 36, 34)  # head
    polyline(d, (58, 84), (30, 94), (60, 98))  # beak
    eye(d, 86, 80, 8)
    for dx in (0, 12, 24):  # crest
        curve(d, (90 + dx, 54), (86 + dx, 36), (100 + dx, 28), (108 + dx, 30))
    curve(d, (112, 130), (150, 118), (178, 150), (150, 182))  # wing
    curve(d, (124, 146), (146, 140), (160, 158), (146, 174))
    for dy in (-10, 0, 10):  # tail
        polyline(d, (178, 160 + dy), (232, 150 + 2 * dy))
    polyline(d, (104, 198), (98, 232), (84, 238))  # legs
    polyline(d, (134, 198), (140, 232), (152, 238))
    return im


def fox():
    """A fox-like creature sitting, with a big curled tail."""
    im, d = canvas(256, 256)
    ellipse(d, 100, 88, 44, 38)  # head
    polyline(d, (66, 66), (52, 18), (88, 52))  # ears
    polyline(d, (112, 52), (140, 16), (136, 68))
    polyline(d, (60, 26), (80, 50))  # inner ear lines
    polyline(d, (136, 24), (124, 54))
    eye(d, 84, 86, 7)
    eye(d, 116, 86, 7)
    ellipse(d, 100, 104, 5, 4, fill=0)  # nose
    curve(d, (70, 120), (50, 170), (60, 226), (98, 232))  # body
    curve(d, (128, 118), (150, 170), (146, 224), (112, 232))
    polyline(d, (84, 232), (84, 206))  # front legs
    polyline(d, (114, 232), (114, 206))
    curve(d, (146, 210), (230, 220), (240, 120), (196, 110))  # tail
    curve(d, (150, 196), (210, 196), (214, 140), (196, 110))
    polyline(d, (70, 128), (100, 150), (130, 126))  # chest fur
    return im


def turtle():
    """A wide turtle: domed shell with a hexagon pattern, head and stubby legs (a 4:3 sketch)."""
    im, d = canvas(320, 240)
    arc(d, 160, 150, 110, 90, 180, 360)  # shell dome
    polyline(d, (50, 150), (270, 150))
    for cx in (110, 160, 210):  # hexagons
        pts = [(cx + 22 * math.cos(a), 118 + 22 * math.sin(a)) for a in [k * math.pi / 3 for k in range(7)]]
        polyline(d, *pts)
    ellipse(d, 292, 132, 24, 22)  # head
    eye(d, 298, 126, 6)
    arc(d, 300, 140, 10, 6, 20, 140)
    for x in (80, 124, 196, 240):  # legs
        polyline(d, (x - 12, 150), (x - 14, 196), (x + 14, 196), (x + 12, 150))
    polyline(d, (50, 146), (22, 160), (52, 156))  # tail
    return im


# color dots for a sketch: (x, y, RGB), each a dot of radius 4 px inside a region the lines close
HINTS = {
    "bird": [(106, 70, (215, 55, 45)), (100, 110, (70, 130, 220)), (110, 180, (70, 130, 220)),
             (48, 91, (250, 175, 40))],  # a red head, a blue body, a yellow beak
    "puffball": [(128, 205, (245, 205, 60)), (68, 62, (160, 90, 40)), (186, 62, (160, 90, 40))],  # yellow, brown ears
}


def hints(size, dots):
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    for x, y, rgb in dots:
        d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(*rgb, 255))
    return im


def main():
    out = Path(__file__).resolve().parent
    for name, draw in [("puffball", puffball), ("bird", bird), ("fox", fox), ("turtle", turtle)]:
        im = draw()
        im = im.resize((im.width // S, im.height // S), Image.LANCZOS).convert("RGB")
        im.save(out / f"{name}.png", optimize=True)
        print(f"wrote {out / name}.png {im.size}")
        if name in HINTS:
            (out / "hints").mkdir(exist_ok=True)
            hints(im.size, HINTS[name]).save(out / "hints" / f"{name}.png", optimize=True)
            print(f"wrote {out / 'hints' / name}.png")


if __name__ == "__main__":
    main()
