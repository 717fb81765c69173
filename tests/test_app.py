"""The Gradio app (app.py), launched in-process and called through gradio_client as API users do.

MNIST tabs run on the bundled weights (weights/gan, weights/cgan) and are judged by the project's
own classifier; the sketch tab runs on small pix2pix models this module saves to a temp folder
(passed with --unet-dir / --encoder-decoder-dir), so it tests the app, not the training.
"""

import io
import math
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from conftest import in_process, save_pix2pix
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

import app
import serving
from condgen.classifier import MnistClassifier
from condgen.colorize import heat_overlay
from condgen.hub import BUNDLED
from condgen.sample import GRID_PAD

ENDPOINTS = ["/generate_gan", "/interpolate_gan", "/generate_cgan", "/generate_cgan_digits", "/colorize"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, launch_app):
    return launch_app(save_pix2pix(tmp_path_factory.mktemp("pix2pix")))


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def classifier():
    return MnistClassifier.from_pretrained(BUNDLED / "classifier").eval()


def tiles(path, n, cols):
    """Cut a grid image from the app back into (n, 1, 28, 28) digits in [-1, 1]."""
    im = np.asarray(Image.open(path).convert("L"))
    rows, step = math.ceil(n / cols), 28 + GRID_PAD
    scale = im.shape[1] // (cols * step + GRID_PAD)
    assert im.shape == ((rows * step + GRID_PAD) * scale, (cols * step + GRID_PAD) * scale)
    small = im[::scale, ::scale]  # nearest-neighbour upscaling undone exactly
    cells = (divmod(i, cols) for i in range(n))
    out = [small[GRID_PAD + r * step:][:28, GRID_PAD + c * step:][:, :28] for r, c in cells]
    return torch.from_numpy(np.stack(out)).float().div(127.5).sub(1).unsqueeze(1)


def image_file(tmp_path, name, im):
    path = tmp_path / name
    im.save(path)
    return handle_file(str(path))


def drawing(size=(320, 240)):
    """An RGB line drawing: a circle, a zigzag and a stroke."""
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    w, h = size
    d.ellipse([w * 0.2, h * 0.2, w * 0.6, h * 0.8], outline="black", width=max(2, w // 100))
    zigzag = [(w * (0.1 + 0.08 * k), h * (0.5 + 0.1 * (-1) ** k)) for k in range(10)]
    d.line(zigzag, fill="black", width=max(2, w // 100))
    d.line([(w * 0.7, h * 0.2), (w * 0.9, h * 0.6)], fill="black", width=max(2, w // 100))
    return im


def png_claiming_size(w, h):
    """A valid 16x16 PNG whose header claims w x h: PIL reads the size without decoding."""
    raw = Image.new("L", (16, 16), 255)
    buf = io.BytesIO()
    raw.save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data[12:29]  # b"IHDR" + 13 bytes; its CRC follows
    ihdr[4:12] = struct.pack(">II", w, h)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)



def test_stable_api_names(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(ENDPOINTS) <= set(named)


def test_bundled_weights_are_found():
    from condgen.weights import MODELS, short

    assert app.NAMES == list(MODELS)  # app.py names them without importing condgen (torch)
    # local folders that do not exist: resolution must fall through to weights/
    flags = sum([[f"--{name}-dir", "/nonexistent"] for name in app.NAMES], [])
    models = app.load_models(app.parse_args(flags))
    for name, spec in MODELS.items():
        kind, where, notes = models[name].source
        assert (kind, where) == ("bundled", str(BUNDLED / spec.bundled)), models[name].source
        assert notes == ("no such folder: /nonexistent",), notes
        said = models.describe(name)
        assert said.startswith(f"the bundled weights ({short(BUNDLED / spec.bundled)}); no such folder: /nonex"), said
    for name in app.GENERATORS.values():  # the bundled pix2pix weights load, with their PatchGAN
        assert models[name].G is not None and models[name].D is not None and models[name].G_eval is not None


def test_where_weights_come_from_is_a_record_not_a_sentence(tmp_path):
    """A folder whose name reads like the old sentence ('bundled X (hub ...; local ...)') is said as it is."""
    import shutil

    from condgen.weights import load_all

    odd = tmp_path / "my (hub user; local runs) weights"
    shutil.copytree(BUNDLED / "cgan", odd / "cgan")
    models = load_all(str(odd), dirs={"cgan": str(tmp_path / "typo (1)")})
    assert models["cgan"].source.kind == "bundled" and models["cgan"].source.where == str(odd / "cgan")
    said = models.describe("cgan")  # and maybe: a training run of yours is in runs/cgan
    assert said.startswith(f"the bundled weights ({odd / 'cgan'}); no such folder: {tmp_path / 'typo (1)'}"), said


def test_a_both_request_prepares_the_sketch_once(tmp_path, monkeypatch):
    """Both generators and both PatchGANs work on one normalized, squared sketch and one set of
    regions: the paper normalization (~40 ms at 512 px) ran four times a request, plus the note's."""
    import condgen.color
    import condgen.paper

    models = app.load_models(app.parse_args(save_pix2pix(tmp_path)))
    calls = {"normalize_sketch": 0, "sketch_note": 0, "region_labels": 0}

    def counting(name, f):
        def counted(*args, **kwargs):
            calls[name] += 1
            return f(*args, **kwargs)
        return counted

    for module, name in ((condgen.paper, "normalize_sketch"), (condgen.paper, "sketch_note"),
                         (condgen.color, "region_labels")):
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    hints = Image.new("RGBA", (320, 240), (0, 0, 0, 0))
    ImageDraw.Draw(hints).ellipse([100, 60, 110, 70], fill=(40, 90, 220, 255))
    note, results = models.colorize(drawing(), ["unet", "encoder-decoder"], flat=True, hints=hints)
    assert len(results) == 2 and all(y.size == (320, 240) and m.size == (320, 240) for y, m in results)
    assert calls == {"normalize_sketch": 1, "sketch_note": 1, "region_labels": 1}, calls


def test_the_patchgan_map_is_green_on_real_art_and_red_on_the_generators(shared_data):
    """The map the app shows, on held-out Sketch2Pokemon pairs (sketch left, truth right): the served
    PatchGAN passes most patches of the truth and few of the U-Net's picture. With BatchNorm's
    running averages (eval mode), it called 8% of the truth real, as good as 'all fake'."""
    from condgen.weights import judge, load, paint, prepare

    unet = load("unet", bundled=str(BUNDLED / "pix2pix-unet"))
    real, fake = [], []
    for f in sorted((shared_data / "pokemon" / "sketch2pokemon-val").glob("*.jpg"))[:8]:
        pair = Image.open(f).convert("RGB")
        sketch = prepare(pair.crop((0, 0, 256, 256)))
        with torch.inference_mode():
            real.append((judge(unet.D, sketch, pair.crop((256, 0, 512, 256))) > 0.5).mean())
            fake.append((judge(unet.D, sketch, paint(unet.G_eval, sketch)) > 0.5).mean())
    assert np.median(real) > 0.6 and np.median(fake) < 0.3, (real, fake)
    assert sum(r > f for r, f in zip(real, fake)) >= 6, (real, fake)


def test_generate_gan_grid_is_seeded(client):
    a = tiles(client.predict(3, 16, api_name="/generate_gan"), 16, 4)
    b = tiles(client.predict(3, 16, api_name="/generate_gan"), 16, 4)
    c = tiles(client.predict(4, 16, api_name="/generate_gan"), 16, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.std() > 0.3  # digits, not a flat image
    one = tiles(client.predict(3, 1, api_name="/generate_gan"), 1, 1)
    # sample i of a seed does not depend on the count (up to float rounding across batch sizes)
    assert torch.allclose(one[0], a[0], atol=4 / 255)
    tiles(client.predict(5, 64, api_name="/generate_gan"), 64, 8)


def test_interpolation_ends_at_each_seeds_first_sample(client):
    strip = tiles(client.predict(3, 8, 6, api_name="/interpolate_gan"), 6, 6)
    assert torch.allclose(strip[0], tiles(client.predict(3, 1, api_name="/generate_gan"), 1, 1)[0], atol=4 / 255)
    assert torch.allclose(strip[-1], tiles(client.predict(8, 1, api_name="/generate_gan"), 1, 1)[0], atol=4 / 255)
    assert (strip[1] - strip[0]).abs().max() > 0.1 and (strip[-1] - strip[0]).abs().max() > 0.5


def test_the_default_interpolation_shows_a_change(client, classifier):
    """The strip shown on opening the GAN tab turns one digit into others (seeds 0 to 1 gave ten 9s)."""
    seed_a, seed_b, steps = app.INTERPOLATION
    strip = tiles(client.predict(seed_a, seed_b, steps, api_name="/interpolate_gan"), steps, steps)
    with torch.no_grad():
        read = classifier(strip).argmax(1).tolist()
    assert len(set(read)) >= 3 and read[0] != read[-1], read


def test_cgan_digits_read_as_asked(client, classifier):
    x = torch.cat([tiles(client.predict(d, 16, 0, api_name="/generate_cgan"), 16, 4) for d in range(10)])
    asked = torch.arange(10).repeat_interleave(16)
    with torch.no_grad():
        read = classifier(x).argmax(1)
    per_digit = [(read[asked == d] == d).float().mean().item() for d in range(10)]
    # chance is 0.1, and a label wired wrong scores about that; condgen.evaluate measures quality
    assert (read == asked).float().mean() >= 0.7, per_digit
    assert min(per_digit) >= 0.4, per_digit


def test_cgan_all_digits_rows_are_digits(client, classifier):
    x = tiles(client.predict(6, 1, api_name="/generate_cgan_digits"), 60, 6)
    with torch.no_grad():
        read = classifier(x).argmax(1).view(10, 6)
    assert (read == torch.arange(10)[:, None]).float().mean() >= 0.7, read


def test_digit_given_as_string_like_the_api_docs_say(client):
    # gr.Radio documents its values as strings ('0'..'9'); both forms must work
    assert torch.equal(tiles(client.predict("7", 4, 1, api_name="/generate_cgan"), 4, 2),
                       tiles(client.predict(7, 4, 1, api_name="/generate_cgan"), 4, 2))



@pytest.mark.parametrize("generator", ["U-Net", "Encoder-decoder", "Both"])
def test_colorize_keeps_aspect_and_draws_the_patchgan_map(client, tmp_path, generator):
    out = client.predict(image_file(tmp_path, "s.png", drawing()), generator, False, api_name="/colorize")
    shown = {"U-Net": [0, 1], "Encoder-decoder": [2, 3], "Both": [0, 1, 2, 3]}[generator]
    for i, path in enumerate(out):
        assert (path is not None) == (i in shown), (i, out)
        if path is not None:
            im = Image.open(path)
            assert im.mode == "RGB" and abs(im.width / im.height - 320 / 240) < 0.02, im.size


def test_colorize_stochastic_varies_deterministic_does_not(client, tmp_path):
    f = image_file(tmp_path, "s.png", drawing((256, 256)))
    runs = [np.asarray(Image.open(client.predict(f, "U-Net", s, api_name="/colorize")[0]))
            for s in (False, False, True)]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_colorize_with_hints_paints_the_hinted_region_their_color(client, tmp_path):
    """/colorize's hints: an RGBA image, transparent but for a blue dot inside the ellipse's upper
    region; at twice the sketch's size it is resized with it. Without hints: as before."""
    sketch = drawing((256, 256))
    hints = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    ImageDraw.Draw(hints).ellipse([196, 160, 212, 176], fill=(40, 90, 220, 255))  # (102, 84) at 256 px
    f, h = image_file(tmp_path, "s.png", sketch), image_file(tmp_path, "h.png", hints)
    auto, hinted = (np.asarray(Image.open(client.predict(f, "U-Net", False, False, *extra, api_name="/colorize")[0]),
                               np.float32) for extra in ((), (h,)))
    yy, xx = np.mgrid[:256, :256]
    top = (((yy - 128) / 80) ** 2 + ((xx - 102) / 42) ** 2 < 0.6) & (yy < 88)  # above the zigzag
    assert np.abs(np.median(hinted[top], axis=0) - [40, 90, 220]).max() < 30, np.median(hinted[top], axis=0)
    assert np.abs(np.median(auto[top], axis=0) - [40, 90, 220]).max() > 60  # the hint made it blue
    assert np.abs(hinted[~top] - auto[~top]).mean() < 6  # and little else changed
    none = image_file(tmp_path, "none.png", Image.new("RGBA", (256, 256), (0, 0, 0, 0)))  # nothing visible
    assert np.array_equal(np.asarray(Image.open(client.predict(f, "U-Net", False, False, none,
                                                               api_name="/colorize")[0]), np.float32), auto)


def test_colorize_flat_paints_each_closed_region_one_color(client, tmp_path):
    f = image_file(tmp_path, "s.png", drawing((256, 256)))
    raw, flat = (np.asarray(Image.open(client.predict(f, "U-Net", False, fl, api_name="/colorize")[0]), np.float32)
                 for fl in (False, True))
    yy, xx = np.mgrid[:256, :256]
    inside = ((yy - 128) / 80) ** 2 + ((xx - 102) / 42) ** 2 < 0.6  # well inside drawing()'s ellipse
    inside &= np.abs(yy - 128) > 40  # above and below the zigzag, which splits it in two regions
    top = inside & (yy < 128)

    def spread(a):  # r - g's mean distance from its median over the ellipse's upper region
        c = a[top][:, 0] - a[top][:, 1]
        return np.abs(c - np.median(c)).mean()

    assert spread(flat) < 0.3 * spread(raw) and spread(flat) < 2, (spread(flat), spread(raw))  # on 0..255


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "I;16", "1", "L"])
def test_colorize_any_image_mode(client, tmp_path, mode):
    im = drawing((256, 192))
    if mode == "I;16":  # a 16-bit grayscale PNG
        im = Image.fromarray(np.asarray(im.convert("L"), dtype=np.uint16) * 257)
        assert im.mode == "I;16"
    elif mode in ("RGBA", "LA"):  # lines on a transparent background: transparent must read as white
        alpha = 255 - np.asarray(im.convert("L"))
        im = Image.fromarray(np.dstack([np.zeros_like(alpha)] * (3 if mode == "RGBA" else 1) + [alpha]), mode)
    else:
        im = im.convert(mode)
    out = client.predict(image_file(tmp_path, "s.jpg" if mode == "CMYK" else "s.png", im), "U-Net", False,
                         api_name="/colorize")
    assert Image.open(out[0]).size[0] / Image.open(out[0]).size[1] == pytest.approx(256 / 192, abs=0.02)


def test_colorize_downscales_large_images(client, tmp_path):
    out = client.predict(image_file(tmp_path, "big.png", drawing((3000, 2000))), "U-Net", False, api_name="/colorize")
    w, h = Image.open(out[0]).size
    assert max(w, h) <= serving.MAX_SIDE and w / h == pytest.approx(1.5, abs=0.02)



def bad_files(tmp_path):
    from gradio_client import handle_file as remote  # a FileData naming a URL: the server fetches it

    files = {"corrupt": tmp_path / "corrupt.png", "huge": tmp_path / "huge.png",
             "truncated": tmp_path / "truncated.png"}
    files["corrupt"].write_bytes(os.urandom(2000))
    files["huge"].write_bytes(png_claiming_size(12_000, 9_000))
    drawing().save(tmp_path / "full.png")
    files["truncated"].write_bytes((tmp_path / "full.png").read_bytes()[:400])
    Image.new("RGB", (1, 1), "black").save(tmp_path / "tiny.png")
    Image.new("RGB", (300, 200), "white").save(tmp_path / "blank.png")
    Image.new("RGBA", (200, 200), (0, 0, 0, 0)).save(tmp_path / "square.png")  # drawing() is 4:3
    drawing((4000, 100)).save(files.setdefault("panorama", tmp_path / "panorama.png"))
    drawing((8, 8)).save(files.setdefault("8x8", tmp_path / "8x8.png"))
    return {k: handle_file(str(v)) for k, v in files.items()} | {
        "tiny": handle_file(str(tmp_path / "tiny.png")), "blank": handle_file(str(tmp_path / "blank.png")),
        "ok": handle_file(str(tmp_path / "full.png")), "unreachable url": remote("http://127.0.0.1:9/sketch.png"),
        "square hints": handle_file(str(tmp_path / "square.png")),
    }


BAD = [
    ("/generate_gan", (0, 0), "count must be from 1 to 64"),
    ("/generate_gan", (0, 65), "count must be from 1 to 64"),
    ("/generate_gan", (0, 2.5), "count must be an integer"),
    ("/generate_gan", (-1, 4), "seed must be from 0"),
    ("/generate_gan", ("abc", 4), "seed must be an integer"),
    ("/generate_gan", (None, 4), "seed must be an integer"),
    ("/interpolate_gan", (0, 1, 1), "steps must be from 2 to 16"),
    ("/interpolate_gan", (0, 2**40, 8), "seed B must be from 0"),
    ("/generate_cgan", (10, 4, 0), "digit must be from 0 to 9"),
    ("/generate_cgan", (-1, 4, 0), "digit must be from 0 to 9"),
    ("/generate_cgan", (3.5, 4, 0), "digit must be an integer"),
    ("/generate_cgan", ("seven", 4, 0), "digit must be an integer"),
    ("/generate_cgan", (None, 4, 0), "digit must be an integer"),
    ("/generate_cgan", (7, 100, 0), "count must be from 1 to 64"),
    ("/generate_cgan_digits", (0, 0), "columns must be from 1 to 16"),
    ("/colorize", (None, "U-Net", False), "No image"),
    ("/colorize", ("corrupt", "U-Net", False), "Could not read the image"),
    ("/colorize", ("truncated", "U-Net", False), "Could not read the image"),
    ("/colorize", ("huge", "U-Net", False), "Image too large: 12000x9000"),
    ("/colorize", ("tiny", "U-Net", False), "Image too small: 1x1"),
    ("/colorize", ("8x8", "U-Net", False), "Image too small: 8x8"),  # as in the browser, whose canvas upscales it
    ("/colorize", ("panorama", "U-Net", False), "Image too long and thin: 4000x100"),
    ("/colorize", ("blank", "Both", False), "blank"),
    ("/colorize", ("ok", "Pix2Pix", False), "generator must be one of"),
    ("/colorize", ("ok", "U-Net", "yes"), "stochastic must be true or false"),
    ("/colorize", ("ok", "U-Net", False, "yes"), "flat must be true or false"),
    ("/colorize", ("ok", "U-Net", False, False, "corrupt"), "hints: could not read the image"),
    ("/colorize", ("ok", "U-Net", False, False, "ok"), "hints: the image (mode RGB) has no transparency"),
    ("/colorize", ("ok", "U-Net", False, False, "square hints"), "hints: 200x200 does not fit the sketch's"),
    ("/colorize", ("ok", "U-Net", False, False, 12), "hints must be an uploaded image file"),
    # values that are not an uploaded file: gradio's own validation would answer without naming the field
    ("/colorize", ("plain text", "U-Net", False), "image must be an uploaded image file"),
    ("/colorize", (12, "U-Net", False), "image must be an uploaded image file"),
    ("/colorize", ("http://127.0.0.1:9/sketch.png", "U-Net", False), "image must be an uploaded image file"),
    ("/colorize", ("unreachable url", "U-Net", False), "image: could not fetch http://127.0.0.1:9/sketch.png"),
]


def test_bad_inputs_get_clear_errors_and_the_server_keeps_serving(client, tmp_path):
    files = bad_files(tmp_path)
    for api, args, message in BAD:
        args = [files.get(a, a) if isinstance(a, str) else a for a in args]
        with pytest.raises(Exception) as e:
            client.predict(*args, api_name=api)
        assert message.lower() in str(e.value).lower(), (api, args, str(e.value))
    assert client.predict(3, 1, api_name="/generate_gan")  # still up
    assert client.predict(files["ok"], "U-Net", False, api_name="/colorize")[0]


def test_identical_concurrent_requests_all_get_their_image(server):
    # Same seed, same PNG: with PIL images returned, gradio 6.31's cache write raced here and
    # clients failed (see app.png); 8 x 4 big grids made that happen in every run
    def worker(results):
        client = Client(server, verbose=False)
        for _ in range(4):
            try:
                results.append(Image.open(client.predict(0, 64, api_name="/generate_gan")).size)
            except Exception as e:
                results.append(repr(e))

    results = []
    threads = [threading.Thread(target=worker, args=(results,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and isinstance(results[0], tuple), results


def test_server_side_path_gets_a_message_not_a_null_error(server):
    import httpx

    for path in ("/etc/passwd", "app.py"):
        payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "U-Net", False, False, None]}
        r = httpx.post(server + "gradio_api/call/colorize", json=payload)
        answer = httpx.get(server + f"gradio_api/call/colorize/{r.json()['event_id']}", timeout=60).text
        assert "event: error" in answer and "is not a file uploaded to this server" in answer, answer


def test_expected_user_errors_leave_no_traceback_in_the_log(tmp_path):
    code = f"""
import sys; sys.path.insert(0, 'tests')
from conftest import start_app, save_pix2pix
from test_app import bad_files, BAD
from pathlib import Path
from gradio_client import Client
demo, url = start_app(save_pix2pix(Path({str(tmp_path)!r})))
client, files = Client(url, verbose=False), bad_files(Path({str(tmp_path)!r}))
for api, args, _ in BAD:
    try:
        client.predict(*[files.get(a, a) if isinstance(a, str) else a for a in args], api_name=api)
    except Exception:
        pass
demo.close()
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(app.__file__).parent, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]


def test_small_uploads_come_back_at_the_generators_size(client, tmp_path):
    out = client.predict(image_file(tmp_path, "s.png", drawing((20, 16))), "U-Net", False, api_name="/colorize")
    assert Image.open(out[0]).size == (256, 205)


def test_api_page_names_the_image_and_types_counts_as_integers(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    params = {p["parameter_name"]: p for p in api["/colorize"]["parameters"]}
    assert "image" in params and "hints" in params and params["hints"]["parameter_has_default"], params
    assert "bird.png" in str(params["hints"].get("example_input")), params["hints"]
    assert "http" not in str(params["image"].get("example_input")), params["image"]
    counts = {p["parameter_name"]: p["type"]["type"] for p in api["/generate_gan"]["parameters"]}
    assert list(counts.values()) == ["integer", "integer"], counts  # seed, count


def test_local_runs_serve_only_when_asked_for(tmp_path, monkeypatch):
    # a finished one-epoch run in runs/cgan (here: a copy of the bundled weights) must not be picked up
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(BUNDLED / "cgan", tmp_path / "runs" / "cgan" / "generator")
    models = app.load_models(app.parse_args(["--weights-dir", str(BUNDLED)]))
    assert models["cgan"].source.kind == "bundled", models["cgan"].source
    said = models.describe("cgan")
    assert said.startswith("the bundled weights (") and "python app.py --cgan-dir runs/cgan" in said, said
    models = app.load_models(app.parse_args(["--weights-dir", str(BUNDLED), "--cgan-dir", "runs/cgan"]))
    assert models.describe("cgan").startswith("your training run runs/cgan/generator")


def test_upload_over_the_size_limit_is_refused(client, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(21 * 2**20))
    with pytest.raises(Exception, match="(?i)too large|exceeds|413"):
        client.predict(handle_file(str(big)), "U-Net", False, api_name="/colorize")


def test_missing_pix2pix_weights_are_explained(tmp_path, launch_app):
    flags = ["--weights-dir", str(tmp_path / "nothing")]
    flags += sum([[f"--{n}-dir", str(tmp_path / f"no-{n}")] for n in app.NAMES], [])
    client = Client(launch_app(flags), verbose=False)  # starts anyway: the other tabs work without pix2pix weights
    f = image_file(tmp_path, "s.png", drawing())
    with pytest.raises(Exception, match="No weights for the unet generator") as e:
        client.predict(f, "U-Net", False, api_name="/colorize")
    assert str(tmp_path / "no-unet") in str(e.value) and "train_pix2pix.py" in str(e.value)
    with pytest.raises(Exception, match="No weights for the gan generator"):
        client.predict(1, 4, api_name="/generate_gan")


def test_heat_overlay_puts_verdicts_where_the_patches_are():
    p = np.zeros((30, 30), np.float32)
    p[:, 15:] = 1  # D: left half fake, right half real
    out = np.asarray(heat_overlay(p, Image.new("RGB", (200, 100), (128, 128, 128))), dtype=int)
    assert out.shape == (100, 200, 3)
    left, right = out[50, 20], out[50, 180]
    assert left[0] > left[1] + 40 and right[1] > right[0] + 40, (left, right)
    # a PixelGAN's map: one verdict per pixel of the 256x256 square (here the 200x100 output's middle band)
    p = np.zeros((256, 256), np.float32)
    p[:, 128:] = 1
    out = np.asarray(heat_overlay(p, Image.new("RGB", (200, 100), (128, 128, 128))), dtype=int)
    left, right = out[50, 95], out[50, 105]
    assert left[0] > left[1] + 40 and right[1] > right[0] + 40, (left, right)


def test_the_page_does_not_wait_for_torch():
    """Cold start: app.py builds and serves the page before torch is imported (the models load in
    a background thread afterwards), so importing app must not pull torch or torchvision in."""
    code = "import sys, app; bad = {'torch', 'torchvision'} & set(sys.modules); assert not bad, bad"
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(app.__file__).parent, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_local_folder_given_but_missing_is_said_in_the_tab(tmp_path):
    models = app.load_models(app.parse_args(["--cgan-dir", str(tmp_path / "typo")]))
    said = models.describe("cgan")
    assert said.startswith("the bundled weights") and f"no such folder: {tmp_path / 'typo'}" in said, said


def test_the_sketch_tab_names_an_encoder_decoder_that_is_not_the_papers():
    from condgen.pix2pix import EncoderDecoderGenerator, UNetGenerator
    from condgen.weights import Loaded, Source, variant_note

    bundled = Source("bundled", "x")
    note = variant_note(Loaded(EncoderDecoderGenerator(ngf=4, bottleneck=8), None, bundled))
    assert "code of 8x8" in note and "paper's is 1x1" in note and "no dropout" in note, note
    with_dropout = EncoderDecoderGenerator(ngf=4, bottleneck=8)
    with_dropout.extra = torch.nn.Dropout()
    assert "no dropout" not in variant_note(Loaded(with_dropout, None, bundled))
    for G in (EncoderDecoderGenerator(ngf=4), UNetGenerator(ngf=4), None):
        assert variant_note(Loaded(G, None, bundled)) == ""


def run_app(*flags, timeout=120):
    """app.py as a user starts it: (exit code, stdout + stderr)."""
    r = subprocess.run([sys.executable, "app.py", *flags], cwd=Path(app.__file__).parent, capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def parsed(*flags):
    """app.py's command line as its parser answers it (exit code, stdout + stderr), in this process:
    the same parser a user's `python app.py ...` meets, without a new process's seconds of imports."""
    r = in_process(lambda: app.parse_args(list(flags)), flags)
    return r.returncode, r.stdout + r.stderr


def test_help_says_each_default_once():
    code, out = parsed("--help")
    assert code == 0 and "(default: None)" not in out, out
    for flag in ("--host", "--port"):
        entry = out.split(f"  {flag} ")[1].split("\n  --")[0]
        assert entry.count("default") == 1, entry


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_a_bad_port_is_one_line_not_a_traceback(port):
    code, out = parsed("--port", port)
    assert code == 2 and "Traceback" not in out and "--port" in out.splitlines()[-1], out


def test_a_port_in_use_names_the_flag_not_gradios_launch():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, out = run_app("--host", "127.0.0.1", "--port", str(port))
    assert code == 1 and "Traceback" not in out and "server_port" not in out, out
    assert out.strip().splitlines()[-1] == (f"error: port {port} on 127.0.0.1 is in use (another app.py?); serve on "
                                            "another with --port N"), out


def fitted_upload(w, h):
    """The sketch canvas' value for an upload of w x h, as the browser fits it into the 512 px canvas
    (fixed_canvas): the picture centred between transparent bands."""
    scale = serving.CANVAS / max(w, h)
    fw, fh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGBA", (serving.CANVAS,) * 2, (0, 0, 0, 0))
    canvas.paste(drawing((fw, fh)).convert("RGBA"), ((serving.CANVAS - fw) // 2, (serving.CANVAS - fh) // 2))
    return {"background": canvas, "layers": [], "composite": canvas}


@pytest.mark.parametrize("size, told, message", [
    ((4000, 100), '{"name": "panorama.png", "width": 4000, "height": 100}',
     "Image too long and thin: 4000x100 (panorama.png)"),
    ((8, 8), '{"name": "tiny.png", "width": 8, "height": 8}', "Image too small: 8x8 (tiny.png)"),
    ((4000, 100), '', "Image too long and thin: 512x13, as fitted to the 512 px canvas"),  # a pasted image
    ((4000, 100), '{"name": "old.png", "width": 8, "height": 8}', "512x13, as fitted"),  # not that file
    ((8, 8), '{"name": "notes.txt", "error": "The source image could not be decoded."}',
     "Could not read notes.txt: the source image could not be decoded; it is not an image"),
])
def test_an_upload_to_the_canvas_is_judged_by_the_users_own_file(size, told, message):
    """The canvas holds an upload fitted into 512 px; the size rule and its message are those of the
    file the browser read (serving.WATCH_UPLOADS), as the API's are (test_bad_inputs_...)."""
    with pytest.raises(gr.Error) as e:
        serving.canvas_sketch(fitted_upload(*size), None, told)
    assert message in e.value.message, e.value.message
    with pytest.raises(gr.Error) as e:  # nothing on the canvas: the failed upload is the reason, if there was one
        serving.canvas_sketch({"background": None, "layers": [], "composite": None}, None, told)
    assert e.value.message.startswith(message if "Could not" in message else "No sketch"), e.value.message


def test_an_upload_the_rule_takes_is_cut_out_of_the_canvas():
    sketch, hints = serving.canvas_sketch(fitted_upload(640, 480), None,
                                          '{"name": "s.png", "width": 640, "height": 480}')
    assert sketch.size == (512, 384) and hints is None
