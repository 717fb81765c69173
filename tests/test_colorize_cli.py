"""python -m condgen.colorize as users run it: what it says about inputs the app refuses or warns about."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from condgen import colorize
from condgen.pix2pix import UNetGenerator


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A small random U-Net (ngf 8): the CLI's messages, not its colors, are under test."""
    folder = tmp_path_factory.mktemp("weights") / "unet"
    torch.manual_seed(0)
    UNetGenerator(ngf=8).save_pretrained(folder)
    return folder


def png_header(path, width, height):
    """A PNG that declares width x height but holds one row of pixels: PIL reads the size from its
    header, so the limits are tested without the gigabytes such an image would decode to."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    idat = zlib.compress(b"\0" + b"\xff" * width)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_an_image_over_the_apps_size_limit_is_refused_with_its_size(weights, tmp_path, capsys):
    # 900 MP: PIL itself refuses it as it opens (a DecompressionBombError); 64 MP: over the app's 50
    huge, large = png_header(tmp_path / "huge.png", 30000, 30000), png_header(tmp_path / "large.png", 8000, 8000)
    with pytest.raises(SystemExit, match="^error: 2 of 2 images failed$"):
        colorize.main([str(huge), str(large), "--weights", str(weights), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert f"error: {huge}: image too large (900 megapixels; at most 50): scale it down first" in err
    assert f"error: {large}: image too large (8000x8000, 64 megapixels; at most 50): scale it down first" in err
    assert "bomb" not in err


def test_a_photo_is_colorized_with_the_apps_warning(weights, tmp_path, capsys):
    from condgen.paper import sketch_note

    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"  # smooth color everywhere: what a photo or color art is to sketch_note
    Image.fromarray(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)).resize((300, 200), Image.BICUBIC).save(photo)
    sketch = tmp_path / "sketch.png"
    im = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(im).ellipse((60, 40, 240, 160), outline="black", width=3)
    im.save(sketch)
    colorize.main([str(photo), str(sketch), "--weights", str(weights), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    note = sketch_note(Image.open(photo).convert("RGB"))
    assert note.startswith("This does not look like a line sketch")  # the sentence the app shows
    assert err.splitlines() == [f"warning: {photo}: {note}"]  # the sketch gets none
    assert (tmp_path / "out" / "photo.png").is_file() and (tmp_path / "out" / "sketch.png").is_file()
    assert f"{photo} -> " in out
