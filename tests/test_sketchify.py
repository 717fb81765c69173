"""Sketchify: color artwork -> Sketch2Pokemon-layout pairs whose sketches resemble the real ones."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from condgen.data import load_pairs
from condgen.sketchify import ink_stats, main, make_pair, thin


def _artwork(size=(256, 256)):
    """A green disk with the 3-px black outline artwork has, and a red square without one, on white."""
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.ellipse((30, 40, 150, 160), fill=(60, 170, 90), outline=(0, 0, 0), width=3)
    d.rectangle((170, 60, 230, 200), fill=(220, 40, 40))
    return img


def _runs(row):
    """Number of ink runs along a row of a grayscale sketch."""
    ink = np.concatenate([[False], row < 128, [False]])
    return int((ink[1:] & ~ink[:-1]).sum())


def test_pair_layout_and_lines_where_the_edges_are():
    pair = make_pair(_artwork())
    assert pair.size == (512, 256) and pair.mode == "RGB"
    a = np.asarray(pair)
    sketch, color = a[:, :256].mean(2), a[:, 256:]
    assert np.abs(color.astype(int) - np.asarray(_artwork()).astype(int)).mean() < 2  # already square: kept
    ink = sketch < 128
    assert 0.005 < ink.mean() < 0.15
    assert not ink[80:120, 70:110].any()  # inside the disk: flat color, no lines
    assert not ink[:25].any() and not ink[215:, :160].any()  # white paper
    assert ink[55:205, 165:175].any() and ink[55:205, 225:235].any()  # the square's borders
    # The disk's black outline has two edges (outside and inside); the sketch draws it once.
    assert _runs(sketch[100, :160]) == 2
    assert 1.0 <= ink_stats(sketch.round().astype(np.uint8))[1] <= 3.0  # about 2 px lines


def test_non_square_and_transparent_input_is_padded_on_white():
    rgba = Image.new("RGBA", (200, 100), (0, 0, 0, 0))  # transparent black canvas
    ImageDraw.Draw(rgba).rectangle((50, 20, 150, 80), fill=(30, 60, 200, 255))
    a = np.asarray(make_pair(rgba))
    color = a[:, 256:]
    assert (color[:50] > 250).all()  # padding above (100 px of 200 -> 64 of 256 rows) and the canvas: white
    assert color[128, 128, 2] > 150 and color[128, 128, 0] < 80  # the blue rectangle in the middle


def test_thinning_gives_one_pixel_center_lines():
    bar = torch.zeros(40, 60)
    bar[15:22, 5:55] = 1  # 7 px thick
    t = thin(bar)
    cols = t[:, 10:50].sum(0)
    assert (cols == 1).all()
    assert (t[:, 10:50].nonzero()[:, 0] == 18).all()  # the middle row


def test_ink_stats_measures_line_width():
    a = np.full((64, 64), 255, np.uint8)
    a[10:13, 5:60] = 0  # horizontal line, 3 px
    a[20:60, 30:33] = 0  # vertical line, 3 px
    frac, width = ink_stats(a)
    assert width == 3 and frac == pytest.approx((3 * 55 + 3 * 40) / 64**2)


def test_sketches_resemble_the_real_ones(shared_data):
    """Sketchify the color halves of the real pairs; compare with the real sketches of the same
    Pokemon: ink fraction and line width near theirs (real: 0.071 and 2.08 px on average)."""
    x, y = load_pairs(shared_data / "pokemon" / "sketch2pokemon-val")
    real = np.array([ink_stats(xi.float().mean(0).round().byte().numpy()) for xi in x[:8]])
    ours = []
    for yi in y[:8]:
        sk = np.asarray(make_pair(Image.fromarray(yi.permute(1, 2, 0).numpy())))[:, :256].mean(2)
        ours.append(ink_stats(sk.round().astype(np.uint8)))
    ours = np.array(ours)
    assert ours[:, 0].mean() == pytest.approx(real[:, 0].mean(), rel=0.35)
    assert ours[:, 1].mean() == pytest.approx(real[:, 1].mean(), abs=0.5)


def test_cli_converts_a_folder(tmp_path):
    src = tmp_path / "color"
    src.mkdir()
    _artwork((180, 120)).save(src / "a.png")
    _artwork().convert("P").save(src / "b.png")
    (src / "notes.txt").write_text("not an image")
    assert main([str(src), str(tmp_path / "pairs")]) == 2
    x, y = load_pairs(tmp_path / "pairs")
    assert x.shape == y.shape == (2, 3, 256, 256)
    (src / "c.jpg").write_bytes(b"garbage")
    with pytest.raises(SystemExit, match="not a readable image"):
        main([str(src), str(tmp_path / "pairs2")])
    with pytest.raises(SystemExit, match="no images"):
        main([str(tmp_path / "missing"), str(tmp_path / "pairs3")])


def test_outline_rendering_inks_the_artworks_own_dark_lines():
    """canny draws the center line of the edge pair an outline gives, beside the outline's darkest
    pixels; outline traces the outline itself, so the art under its ink is darker. Where the art has
    no outline (the red square) both draw Canny's line."""
    from condgen.sketchify import sketch

    art = make_pair(_artwork()).crop((256, 0, 512, 256))
    lum = np.asarray(art.convert("L"), dtype=np.float32) / 255
    ink = {m: np.asarray(sketch(art, m, thickness=2.0)) < 128 for m in ("canny", "outline")}
    dark = {m: 1 - lum[i].mean() for m, i in ink.items()}
    assert dark["outline"] > dark["canny"] + 0.1, dark
    square = np.s_[50:210, 165:236]  # around the outline-free red square
    assert ink["outline"][square].sum() > 0.5 * ink["canny"][square].sum()


def test_renderings_differ_and_all_writes_one_folder_each(tmp_path):
    from condgen.sketchify import RENDERINGS, sketch

    art = make_pair(_artwork()).crop((256, 0, 512, 256))
    inks = {m: (np.asarray(sketch(art, m, seed=1)) < 128) for m in RENDERINGS}
    assert all(ink.mean() > 0.005 for ink in inks.values())  # every rendering draws lines
    same_width = {m: (np.asarray(sketch(art, m, thickness=2.0)) < 128).sum() for m in ("canny", "detail")}
    assert same_width["detail"] >= same_width["canny"]  # lower thresholds: at least as many lines
    assert not np.array_equal(inks["wobbly"], inks["canny"])  # displaced lines
    bold = np.asarray(sketch(art, "bold", seed=1))
    assert set(np.unique(bold)) <= {0, 255}  # a uniform hard pen stroke, no soft edges
    src = tmp_path / "color"
    src.mkdir()
    _artwork().save(src / "a.png")
    main([str(src), str(tmp_path / "pairs"), "--method", "all"])
    assert sorted(p.name for p in (tmp_path / "pairs").iterdir()) == sorted(RENDERINGS)
    x, y = load_pairs(tmp_path / "pairs" / "bold")
    assert x.shape == (1, 3, 256, 256)


def test_all_methods_print_progress_lines_and_a_summary(tmp_path, capsys):
    """--method all runs for minutes on the real art: a plain line every 5% of the images (readable
    in a log file, no carriage-return bar), then the counts and the time."""
    import re

    src = tmp_path / "color"
    src.mkdir()
    for i in range(4):
        _artwork().rotate(90 * i).save(src / f"{i}.png")
    assert main([str(src), str(tmp_path / "pairs"), "--method", "all"]) == 4
    lines = capsys.readouterr().out.splitlines()
    assert "\r" not in "".join(lines)
    assert [int(re.match(r"sketchify: (\d+)/20 images \(\d+%\) in \d+:\d\d, about \d+:\d\d left$", line)[1])
            for line in lines[:-1]] == list(range(1, 20))  # 20 images: one line each, the last one excepted
    assert re.fullmatch(r"wrote 4 pairs to each of .*/canny, .*/wobbly: 20 images in \d+:\d\d", lines[-1])
    # 722 images x 5 renderings, as on the real art: a line every 181 images, 19 in all
    from condgen.sketchify import _progress

    for done in range(1, 3611):
        _progress(None, done, 3610, start=0)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [f"{181 * k}/3610" for k in range(1, 20)]
