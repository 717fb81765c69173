"""condgen.paper: a sketch on gray, beige or unevenly lit paper reads as the same sketch on white."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from condgen.colorize import _to_pil, _to_square, colorize
from condgen.hub import BUNDLED
from condgen.paper import normalize_batch, normalize_sketch, sketch_note
from condgen.pix2pix import load_generator


def drawing(size=(384, 320)):
    """Black lines on white: a creature-like outline with an eye filled in."""
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    w, h = size
    d.ellipse([w * 0.2, h * 0.25, w * 0.75, h * 0.85], outline="black", width=3)
    d.ellipse([w * 0.35, h * 0.1, w * 0.6, h * 0.35], outline="black", width=3)
    d.ellipse([w * 0.42, h * 0.18, w * 0.47, h * 0.24], fill="black")
    d.line([(w * (0.1 + 0.08 * k), h * (0.6 + 0.08 * (-1) ** k)) for k in range(10)], fill="black", width=3)
    return im


def on_paper(sketch, paper, ink, shade=0.0, noise=0.0):
    """The sketch's lines in `ink` on `paper` (RGB), darker to the right by `shade`, with grain."""
    m = np.asarray(sketch.convert("L"), np.float32)[..., None] / 255  # 1: paper, 0: ink
    light = 1 - shade * np.linspace(0, 1, m.shape[1])[None, :, None]
    a = (m * np.float32(paper) + (1 - m) * np.float32(ink)) * light
    a = a + np.random.default_rng(0).normal(0, noise, a.shape)
    return Image.fromarray(a.clip(0, 255).round().astype(np.uint8))


PAPERS = {
    "gray 235": ((235, 235, 235), (30, 30, 30), 0, 0),
    "beige": ((245, 232, 200), (70, 55, 40), 0, 3),
    "beige, shaded like a phone photo": ((240, 225, 190), (90, 80, 70), 0.3, 4),
    "pencil on off-white": ((238, 236, 228), (130, 130, 130), 0, 2),
}


def as_array(im):
    return np.asarray(im, np.float32)


@pytest.mark.parametrize("paper", PAPERS)
def test_same_sketch_on_other_paper_normalizes_to_the_same_image(paper):
    white = drawing()
    ref, other = normalize_sketch(white), on_paper(white, *PAPERS[paper])
    assert np.abs(as_array(ref) - as_array(white)).mean() < 1  # a clean sketch stays as it is
    assert np.abs(as_array(other) - as_array(white)).mean() > 15  # the raw inputs really differ
    assert np.abs(as_array(normalize_sketch(other)) - as_array(ref)).mean() < 2.5
    assert sketch_note(other) == ""


def test_bundled_unet_colors_the_sketch_the_same_on_gray_and_beige_paper():
    G = load_generator(BUNDLED / "pix2pix-unet")
    white = drawing()
    ref = as_array(colorize(G, white))
    for paper in ("gray 235", "beige"):
        other = on_paper(white, *PAPERS[paper])
        with torch.no_grad():  # what the generator made of it before normalization
            raw = as_array(_to_pil(G(_to_square(other)[0])[0]).resize(white.size))
        ours = as_array(colorize(G, other))
        assert np.abs(ours - ref).mean() < 3, paper
        assert np.abs(raw - ref).mean() > 4 * np.abs(ours - ref).mean(), paper


def test_color_art_and_photos_are_flagged_but_sketches_are_not():
    rng = np.random.default_rng(0)
    art = drawing()
    ImageDraw.Draw(art).ellipse([80, 90, 280, 270], fill=(230, 120, 40))  # a colored-in body
    photo = Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    dark = Image.fromarray(np.full((240, 320, 3), 40, np.uint8))
    ImageDraw.Draw(dark).rectangle([0, 0, 100, 240], fill="white")  # mostly ink
    assert "color" in sketch_note(art) and "color" in sketch_note(photo)
    assert "dark" in sketch_note(dark)
    assert sketch_note(drawing()) == "" and sketch_note(Image.open(BUNDLED.parent / "examples" / "fox.png")) == ""


def test_normalize_batch_matches_the_image_function():
    im = on_paper(drawing((256, 256)), *PAPERS["beige"])
    x = torch.from_numpy(as_array(im)).permute(2, 0, 1)[None].div(127.5).sub(1)
    out = normalize_batch(torch.cat([x, x]))
    assert out.shape == (2, 3, 256, 256)
    assert torch.equal(out[0], out[1])
    assert np.array_equal(((out[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy(),
                          np.asarray(normalize_sketch(im)))
