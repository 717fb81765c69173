"""Color hints (condgen.hints): how they are drawn from the truth, fed to G, spread through the
sketch's regions and checked; colorize(G, sketch, hints), its CLI and evaluate pix2pix --hints."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from condgen import hints as H
from condgen.color import region_labels, sketch_regions
from condgen.colorize import colorize, to_hints
from condgen.evaluate_pix2pix import hint_fidelity, region_match
from condgen.pix2pix import EncoderDecoderGenerator, UNetGenerator, add_hint_input, load_generator

REPO = Path(__file__).resolve().parent.parent


def rings(size=256, width=3):
    """A sketch [1, 3, H, W] in [-1, 1]: two closed rings on white (two regions), and an open arc."""
    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    d.ellipse([20, 60, 120, 160], outline="black", width=width)
    d.ellipse([136, 60, 236, 160], outline="black", width=width)
    d.arc([60, 170, 200, 250], 200, 340, fill="black", width=width)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1, im


def hint_map(size, dots):
    """A hint map [1, 4, H, W] with square dots: (row, col, RGB on [0, 1], side)."""
    h = H.empty(1, size, size)
    for r, c, rgb, side in dots:
        h[0, :3, r:r + side, c:c + side] = (torch.tensor(rgb) * 2 - 1)[:, None, None]
        h[0, 3, r:r + side, c:c + side] = 1
    return h


@pytest.mark.parametrize("cls", [UNetGenerator, EncoderDecoderGenerator])
def test_a_hint_input_added_to_a_trained_g_changes_nothing_until_trained(cls, tmp_path):
    torch.manual_seed(0)
    G = cls(ngf=8).eval()
    G2 = add_hint_input(G).eval()
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    hints = H.sample(torch.rand(2, 3, 256, 256) * 2 - 1, 5)[0]
    with torch.no_grad():
        assert torch.allclose(G(x), G2(x, hints), atol=1e-5) and torch.allclose(G(x), G2(x), atol=1e-5)
    assert G2.encoder[0][0].in_channels == 3 + H.CHANNELS and not G.hints and G2.hints
    G2.save_pretrained(tmp_path / "g")  # the config says it takes hints, and loads back as such
    assert load_generator(tmp_path / "g").hints
    with pytest.raises(ValueError, match="without a hint input"):
        G(x, hints)  # the paper's 3-channel G: hints reach it through condgen.hints.apply only
    with pytest.raises(ValueError, match=r"expected hints \[N, 4, H, W\]"):
        G2(x, hints[:, :3])


def test_bundled_generators_load_as_the_papers_three_channel_models():
    for folder in ("pix2pix-unet", "pix2pix-encoder-decoder"):
        G = load_generator(REPO / "weights" / folder)
        assert G.encoder[0][0].in_channels in (3, 3 + H.CHANNELS)  # either kind loads; the config says which


def test_simulated_hints_sit_on_the_art_and_hold_its_colour():
    y = -torch.ones(1, 3, 256, 256) * -1  # white paper
    y[0, :, 64:192, 64:192] = torch.tensor([0.8, -0.6, -0.6])[:, None, None]  # a red square of art
    gen = torch.Generator().manual_seed(0)
    hints, points = H.sample(y, 12, gen)
    assert len(points[0]) == 12
    mask = hints[0, 3] > 0
    assert mask[64:192, 64:192].sum() >= 0.9 * mask.sum()  # on the art (a patch at its edge may spill a little)
    for r, c, color in points[0]:
        assert 64 <= r < 192 and 64 <= c < 192
        assert (color - torch.tensor([0.9, 0.2, 0.2])).abs().max() < 0.35  # the truth's mean there
    # training's rule: a geometric count, none for a share of the pairs, at most MAX_HINTS
    counts = [len(p) for p in H.sample(y.expand(400, -1, -1, -1), None, torch.Generator().manual_seed(1))[1]]
    none = sum(c == 0 for c in counts) / len(counts)
    assert 0.15 < none < 0.35 and 4 < np.mean([c for c in counts if c]) < 12 and max(counts) <= H.MAX_HINTS
    # strokes follow one colour: none leaves the red square
    strokes, _ = H.sample(y, 30, torch.Generator().manual_seed(2), strokes=1.0)
    assert strokes[0, 3, :60].sum() == 0 and strokes[0, 3].sum() > 30 * 9


def test_evaluations_hints_are_fixed_and_nested():
    y = torch.rand(3, 3, 256, 256) * 2 - 1
    (m3, p3), (m10, p10) = H.fixed(y, 3), H.fixed(y, 10)
    assert all(len(p) == 3 for p in p3) and all(len(p) == 10 for p in p10) and m10[:, 3].sum() > m3[:, 3].sum()
    for a, b in zip(p3, p10):  # the 3 hints of each image are the first 3 of its 10
        assert all(r1 == r2 and c1 == c2 and torch.equal(k1, k2) for (r1, c1, k1), (r2, c2, k2) in zip(a, b))
    assert torch.equal(H.fixed(y, 3)[0], m3)


def test_spread_fills_each_hinted_region_with_its_hints_colours():
    x, _ = rings()
    labels = region_labels(x, open_areas=True)
    left, right = labels[0, 110, 70].item(), labels[0, 110, 186].item()
    assert left > 0 and right > 0 and left != right and labels[0, 5, 5] < 0  # the paper: an open area
    blue, yellow = (0.2, 0.4, 0.9), (0.95, 0.85, 0.1)
    h = hint_map(256, [(80, 60, blue, 3), (140, 60, yellow, 3)])  # two hints in the left ring
    fed = H.spread(h, labels)
    left_ring = labels[0] == left
    assert (fed[0, 3][left_ring] == 1).all() and (fed[0, 3][labels[0] == right] == 0).all()
    def color(r, c):
        return (fed[0, :3, r, c] + 1) / 2

    assert torch.allclose(color(81, 61), torch.tensor(blue), atol=0.01)  # on a hint: its color
    assert torch.allclose(color(141, 61), torch.tensor(yellow), atol=0.01)
    assert (color(90, 70) - torch.tensor(blue)).abs().max() < 0.1  # near one: mostly its color
    middle = color(111, 61)  # halfway: shaded between them
    assert torch.allclose(middle, (torch.tensor(blue) + torch.tensor(yellow)) / 2, atol=0.02)
    assert torch.equal(fed[0, :, 5, 5], torch.zeros(4))  # the paper gets nothing


def test_apply_gives_a_region_the_hint_colour_with_gs_shading_and_leaves_the_rest():
    x, _ = rings()
    labels = region_labels(x, open_areas=True)
    y = torch.zeros(1, 3, 256, 256)  # gray, with a left-to-right shading ramp
    y += torch.linspace(-0.3, 0.3, 256).view(1, 1, 1, 256)
    yellow = (0.95, 0.85, 0.1)
    out = H.apply(y, hint_map(256, [(110, 70, yellow, 2)]), labels)
    regions = sketch_regions(x)
    points = [[(110, 70, torch.tensor(yellow))]]
    assert region_match(out, points, regions).item() < 0.02 and hint_fidelity(out, points).item() < 0.02
    assert region_match(y, points, regions).item() > 0.2  # G's gray was far from it
    left = H._with_rim(labels[0], labels[0, 110, 70].item())  # the ring and the 1-px rim to its line
    lum = (out[0] + 1).mul(0.5).mul(torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0)
    assert lum[100, 40] < lum[100, 100] - 0.05  # the ramp's shading is kept away from the hint
    assert torch.allclose(out[0][:, ~left], y[0][:, ~left], atol=1e-6)  # the other ring, the lines, the paper: G's


def test_a_hint_in_an_open_area_colours_only_its_surroundings():
    x, _ = rings()
    labels = region_labels(x, open_areas=True)
    y = torch.zeros(1, 3, 256, 256)
    out = H.apply(y, hint_map(256, [(200, 128, (0.9, 0.1, 0.1), 3)]), labels)  # under the open arc
    changed = (out - y).abs().sum(1)[0] > 0.01
    rows, cols = changed.nonzero().T
    assert changed[201, 129] and 0 < changed.sum() < 40**2  # around the hint, not the whole paper
    assert (rows - 201).abs().max() <= 16 and (cols - 129).abs().max() <= 16


def test_colorize_takes_hints_as_rgba_of_the_sketchs_size(tmp_path):
    torch.manual_seed(0)
    G = UNetGenerator(ngf=8).eval()
    _, sketch = rings(320)  # not 256: hints go through the sketch's resizing
    none = colorize(G, sketch)
    hints = Image.new("RGBA", sketch.size, (0, 0, 0, 0))
    assert np.array_equal(np.asarray(colorize(G, sketch, hints=hints)), np.asarray(none))  # transparent: automatic
    ImageDraw.Draw(hints).ellipse([60, 130, 70, 140], fill=(250, 210, 30, 255))  # inside the left ring
    for given in (hints, np.asarray(hints), tmp_path / "h.png", str(tmp_path / "h.png")):
        hints.save(tmp_path / "h.png")
        out = np.asarray(colorize(G, sketch, given, flat=False), dtype=float)
        inside = out[110:160, 50:100].reshape(-1, 3)
        assert np.abs(np.median(inside, axis=0) - [250, 210, 30]).max() < 30, np.median(inside, axis=0)
    big = hints.resize((640, 640), Image.NEAREST)  # a canvas at twice the scale: resized with the sketch
    assert np.abs(np.asarray(colorize(G, sketch, big), float) - out).mean() < 3
    with pytest.raises(ValueError, match="does not fit the sketch's 320x320"):
        colorize(G, sketch, hints.crop((0, 0, 320, 200)))
    with pytest.raises(ValueError, match="no transparency"):
        colorize(G, sketch, hints.convert("RGB"))
    with pytest.raises(ValueError, match="not a readable image"):
        (tmp_path / "bad.png").write_bytes(b"not a png")
        colorize(G, sketch, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="RGBA uint8 array"):
        to_hints(np.zeros((320, 320, 3), np.uint8), (320, 320))


def test_colorize_cli_takes_hints(tmp_path):
    G = UNetGenerator(ngf=8)
    G.save_pretrained(tmp_path / "g")
    _, sketch = rings()
    sketch.save(tmp_path / "s.png")
    hints = Image.new("RGBA", sketch.size, (0, 0, 0, 0))
    ImageDraw.Draw(hints).ellipse([60, 100, 68, 108], fill=(40, 90, 220, 255))
    hints.save(tmp_path / "h.png")
    cmd = [sys.executable, "-m", "condgen.colorize", "--weights", str(tmp_path / "g"), str(tmp_path / "s.png"),
           "--hints", str(tmp_path / "h.png"), "--out", str(tmp_path / "out")]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "s.png").convert("RGB"), float)
    assert np.abs(np.median(out[90:130, 50:90].reshape(-1, 3), axis=0) - [40, 90, 220]).max() < 30
    two = cmd[:5] + [str(tmp_path / "s.png")] + cmd[5:]  # two sketches, one hint image
    r = subprocess.run(two, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--hints belong to one sketch" in r.stderr


def test_hint_metrics_score_what_they_say():
    y = torch.zeros(1, 3, 64, 64)
    y[0, 0] = 1  # a red picture, on [-1, 1]: (1, 0.5, 0.5) on [0, 1]
    points = [[(32, 32, torch.tensor([1.0, 0.5, 0.5]))]]
    assert hint_fidelity(y, points).item() < 1e-6
    assert abs(hint_fidelity(torch.zeros_like(y), points).item() - 0.5 / 3) < 1e-6  # gray: off by 0.5 in red
    assert torch.isnan(hint_fidelity(y, [[]])).all()  # no hint: nothing to score
    masks = [[torch.zeros(64, 64, dtype=torch.bool)]]
    assert torch.isnan(region_match(y, points, masks)).all()  # a hint in no closed region is not counted
    masks[0][0][20:40, 20:40] = True
    assert region_match(y, points, masks).item() < 1e-6


def test_a_dot_on_solid_ink_shows_its_colour_and_lines_stay_dark():
    im = Image.new("RGB", (256, 256), "white")
    d = ImageDraw.Draw(im)
    d.ellipse([40, 40, 120, 120], fill="black")  # solid ink: a filled pupil, dark shading
    d.line([(150, 20), (150, 230)], fill="black", width=3)  # a line
    x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    labels = region_labels(x, open_areas=True)
    y = x.clone()  # G drew the ink black
    red = (0.9, 0.1, 0.1)
    out = H.apply(y, hint_map(256, [(78, 78, red, 5), (120, 149, red, 3)]), labels)
    assert torch.allclose(out[0, :, 80, 80], torch.tensor(red) * 2 - 1, atol=1e-5)  # the dot shows on the fill
    assert (out[0, :, 121, 150] < -0.9).all()  # the line under the other dot stays black
    assert (out[0, :, 60, 60] < -0.9).all()  # the fill beyond the dot too
