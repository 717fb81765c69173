"""The metrics that see what a person sees (issue 14), each on a synthetic case with a known answer."""

import torch
from PIL import Image

from condgen.color import sketch_regions
from condgen.evaluate_pix2pix import (
    blur_l1,
    chroma_tv,
    contact_sheet,
    l1,
    outline_ratio,
    region_spread,
    scores,
    short_names,
)


def _art():
    """A flat-color 'artwork' in [-1, 1]: white paper, a red disc and a blue square, black outlines;
    and its sketch: the outlines alone, black on white."""
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    img = torch.ones(3, 128, 128)
    disc = (yy - 40) ** 2 + (xx - 40) ** 2 < 25**2
    square = (yy > 70) & (yy < 115) & (xx > 60) & (xx < 110)
    img[:, disc] = torch.tensor([1.0, -1.0, -1.0])[:, None]
    img[:, square] = torch.tensor([-1.0, -1.0, 1.0])[:, None]
    ring = ((yy - 40) ** 2 + (xx - 40) ** 2 - 25**2).abs() < 60
    frame = square & ~((yy > 72) & (yy < 113) & (xx > 62) & (xx < 108))
    lines = ring | frame
    img[:, lines] = -1.0
    sketch = torch.ones(3, 128, 128)
    sketch[:, lines] = -1.0
    return img[None], sketch[None], lines


def test_chroma_tv_counts_color_changes_not_lines():
    art, sketch, _ = _art()
    assert chroma_tv(sketch).item() == 0  # black lines on white: no chroma at all
    assert chroma_tv(art).item() > 0
    torch.manual_seed(0)
    speckled = (art + 0.3 * torch.randn_like(art)).clamp(-1, 1)  # rainbow noise inside every region
    assert chroma_tv(speckled).item() > 3 * chroma_tv(art).item()
    s = scores(speckled, art, sketch)
    assert s["chroma_tv_ratio"] > 3
    assert scores(art, art, sketch)["chroma_tv_ratio"] == 1
    # L1 and colorfulness do not see it the same way: they are what the issue found wanting
    assert s["L1"] < 0.15


def test_outline_ratio_drops_when_lines_are_painted_over():
    art, sketch, lines = _art()
    assert outline_ratio(art, art, sketch).item() == 1
    erased = art.clone()
    erased[:, :, lines] = 1.0  # lines painted white
    assert outline_ratio(erased, art, sketch).item() < 0.05
    half = art.clone()
    half[:, :, lines] = 0.0  # gray lines: half as dark as black ones
    assert abs(outline_ratio(half, art, sketch).item() - 0.5) < 0.01
    # a sketch without ink has no outline to keep
    assert torch.isnan(outline_ratio(art, art, torch.ones_like(sketch))).all()


def test_blur_l1_sees_region_colors_not_detail():
    gray = torch.zeros(1, 3, 128, 128)
    checker = (torch.arange(128)[:, None] + torch.arange(128)[None, :]) % 2 * 2 - 1.0  # +-1, 1-px
    detail = gray + 0.5 * checker  # fine texture changed, every region's mean color kept
    recolored = gray.clone()
    recolored[:, 0, 32:96, 32:96] = 0.5  # one region's color changed
    assert blur_l1(detail, gray).item() < 0.05 * l1(detail, gray).item()
    assert blur_l1(recolored, gray).item() > 0.7 * l1(recolored, gray).item()


def test_region_spread_sees_two_hues_in_one_region():
    art, sketch, _ = _art()
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    shaded = art.clone()
    disc = ((yy - 40) ** 2 + (xx - 40) ** 2 < 23**2)
    shaded[0, 1, disc] += 0.3 * (yy[disc] - 40) / 23  # some shading inside the disc, as art has
    regions = sketch_regions(sketch)[0]
    # the disc's and the square's insides; the paper around them touches the border: background
    assert len(regions) == 2 and not any(m[0, 0] for m in regions)
    assert any(m[40, 40] for m in regions) and any(m[92, 85] for m in regions)
    gapped = sketch.clone()
    gapped[:, :, 40, 8:22] = 1.0  # a 1-px break through the ring's line: still its own region
    assert len(sketch_regions(gapped)[0]) == 2
    gapped[:, :, 39:42, 8:22] = 1.0  # a 3-px one: the disc's inside is background now
    assert len(sketch_regions(gapped)[0]) == 1
    assert sketch_regions(torch.ones_like(sketch)) == [[]]  # no ink, no region

    two_hues = shaded.clone()
    left = disc & (xx < 40)
    two_hues[0][:, left] = torch.tensor([1.0, 0.2, -1.0])[:, None]  # half the red disc painted orange
    s = scores(two_hues, shaded, sketch)
    assert scores(shaded, shaded, sketch)["region_spread_ratio"] == 1
    assert s["region_spread_ratio"] > 3, s
    assert s["chroma_tv_ratio"] < 1.5, s  # one smooth seam: chroma-TV barely sees it
    flat = shaded.clone()
    flat[0][:, disc] = torch.tensor([1.0, -1.0, -1.0])[:, None]  # one color, no shading: flatter than the art
    assert scores(flat, shaded, sketch)["region_spread_ratio"] < 1
    assert torch.isnan(region_spread(shaded, [[]])).all()


def test_contact_sheet_has_a_column_per_model(tmp_path):
    art, sketch, _ = _art()
    x = torch.nn.functional.interpolate(sketch, size=256).repeat(3, 1, 1, 1)
    y = torch.nn.functional.interpolate(art, size=256).repeat(3, 1, 1, 1)
    contact_sheet(x, {"a": y, "b": -y}, y, tmp_path / "sheet.png", cell=64, groups=2)
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size == (2 * 4 * 64 + 8, 16 + 2 * 64)  # 2 groups of sketch|a|b|truth, 2 rows of 3 pairs


def test_sheet_columns_tell_models_of_the_same_folder_name_apart():
    names = short_names(["weights/pix2pix-unet", "runs/old/weights/pix2pix-unet", "runs/unet32/generator", "runs/ed",
                         "x/ed"])
    assert names == ["weights/pix2pix-unet", "old/weights/pix2pix-unet", "unet32", "runs/ed", "x/ed"]
    assert short_names(["a/generator", "a"]) == ["a #1", "a #2"]  # the same folder twice: still two columns


def test_flat_colors_gives_each_enclosed_region_one_chroma_and_keeps_the_shading():
    from condgen.color import chroma, luminance
    from condgen.colorize import flat_colors

    art, sketch, lines = _art()
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    disc = (yy - 40) ** 2 + (xx - 40) ** 2 < 23**2
    y = art.clone()  # mid-tone colors: lightened or darkened, they stay inside the RGB cube
    y[0][:, disc] = torch.tensor([0.3, -0.3, -0.3])[:, None]
    y[0][:, disc & (xx < 40)] = torch.tensor([0.2, 0.0, -0.4])[:, None]  # half the disc another hue
    y[0][:, disc] -= 0.15 * ((yy[disc] - 40) / 23)[None]  # and shaded top to bottom
    flat = flat_colors(y, sketch)
    regions = sketch_regions(sketch)[0]
    inside = next(m for m in regions if m[40, 40])  # the disc's region: a little inside its ring
    c, c_before = chroma(flat)[0][:, inside], chroma(y)[0][:, inside]
    assert (c - c[:, :1]).abs().max() < 1e-5 < 0.1 < (c_before - c_before[:, :1]).abs().max()  # one chroma now
    assert torch.allclose(luminance(flat)[0][inside], luminance(y)[0][inside], atol=1e-5)  # its shading kept
    outside = ~(regions[0] | regions[1])  # lines, paper: as G drew them
    assert torch.allclose(flat[0][:, outside], y[0][:, outside], atol=1e-6)
    assert region_spread(flat, [regions]).item() < 1e-5 < 0.01 < region_spread(y, [regions]).item()
