"""condgen demo: GAN and cGAN digits (MNIST), Pix2Pix sketch-to-color; one tab each.

    python app.py                                    # http://127.0.0.1:7860, bundled weights
    python app.py --cgan-dir runs/my-cgan            # a training run of your own (its --out)
    CONDGEN_UNET_REPO=user/pix2pix-unet python app.py    # weights from the Hub

Each model is resolved once, in a background thread started as soon as the page is served: Hub
repo, else local folder, else the bundled weights/ (condgen.hub.resolve). API (gradio_client): /generate_gan, /interpolate_gan, /generate_cgan,
/generate_cgan_digits, /colorize. Those endpoints take raw values (preprocess=False) and check
them here, so every bad input gets a gr.Error naming the field, not a component's generic one.
"""

import argparse
import hashlib
import io
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import gradio as gr
import numpy as np
from PIL import Image, ImageOps

# torch and condgen (which imports torch) are imported where they are used, not here: the models
# load in a background thread while the page is already served (Models below), and importing
# torch is ~2 s of a cold start. Once loaded, a local `import torch` is a dictionary lookup.

BUNDLED = Path(__file__).resolve().parent / "weights"  # as condgen.hub.BUNDLED
# name: (class in condgen, local folder = the training script's --out default, bundled folder, how to train it)
MODELS = {
    "gan": ("GeneratorGAN", "runs/gan", "gan", "python train_mnist.py --model gan"),
    "cgan": ("GeneratorCGAN", "runs/cgan", "cgan", "python train_mnist.py --model cgan"),
    "unet": ("UNetGenerator", "runs/pix2pix-unet", "pix2pix-unet", "python train_pix2pix.py --generator unet"),
    "encoder-decoder": ("EncoderDecoderGenerator", "runs/pix2pix-encoder-decoder", "pix2pix-encoder-decoder",
                        "python train_pix2pix.py --generator encoder-decoder"),
}
GENERATORS = {"U-Net": "unet", "Encoder-decoder": "encoder-decoder"}
MAX_COUNT, MAX_STEPS, MAX_COLUMNS, MAX_SEED = 64, 16, 16, 2**32 - 1
MIN_SIDE, MAX_SIDE = 16, 1024  # sketches: smaller ones are refused, larger ones downscaled
MIN_OUT = 256  # smaller sketches are upscaled to this, the generator's own size
MAX_PIXELS = 50_000_000  # refused before decoding
GRID_PAD = 2
EXAMPLES = sorted(str(p) for p in (Path(__file__).resolve().parent / "examples").glob("*.png"))
# colorize() switches G's dropout on or off, so two requests must not use one G at the same time
LOCKS = {name: threading.Lock() for name in GENERATORS.values()}
OUT = Path(tempfile.gettempdir()) / "condgen-app"  # result PNGs, named by their content
HEAT = np.array([[215, 48, 39], [255, 255, 191], [26, 152, 80]], np.float32)  # fake red, unsure, real green

# gradio 6.31's editor opens on its upload tool, not the brush. On entering the tab, click the brush
# for the user (retrying for a few seconds while the canvas initializes), unless it is already on.
SELECT_BRUSH = """() => { let tries = 0; const timer = setInterval(() => {
    const brush = document.querySelector('#sketch button[aria-label="Brush"]');
    if (brush && !brush.classList.contains('highlight')) brush.click();
    else if (brush || ++tries > 50) clearInterval(timer);
}, 100); }"""

DESCRIPTION = """# condgen: GAN, cGAN and Pix2Pix
Digits from a GAN ([Goodfellow et al. 2014](https://arxiv.org/abs/1406.2661)) and a conditional GAN
([Mirza & Osindero 2014](https://arxiv.org/abs/1411.1784)) trained on MNIST, and sketch-to-color with
Pix2Pix ([Isola et al. 2017](https://arxiv.org/abs/1611.07004)). Everything runs on CPU."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # weights: Hub repo (REPO or REPO@REVISION) -> local folder -> bundled folder
    for name, (_, local, _, _) in MODELS.items():
        env = "CONDGEN_" + name.upper().replace("-", "_")
        p.add_argument(f"--{name}-repo", default=os.environ.get(f"{env}_REPO"),
                       help=f"Hub repo id[@revision] of the {name} generator (env {env}_REPO)")
        # a local run only when asked for: a one-epoch smoke test in runs/ must not replace the bundled weights
        p.add_argument(f"--{name}-dir", default=os.environ.get(f"{env}_DIR"),
                       help=f"local folder of the {name} generator or its training run, e.g. {local} (env {env}_DIR); "
                            "without it the bundled weights serve")
    p.add_argument("--weights-dir", default=os.environ.get("CONDGEN_WEIGHTS_DIR", str(BUNDLED)),
                   help="folder of the bundled weights (env CONDGEN_WEIGHTS_DIR)")
    # serving
    p.add_argument("--host", default=None, help="address to bind (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--concurrency", type=int, default=2, help="requests computed at once per endpoint")
    args = p.parse_args(argv)
    if args.concurrency < 1:
        p.error(f"--concurrency must be >= 1, got {args.concurrency}")
    return args


class Loaded(NamedTuple):
    G: "torch.nn.Module | None"  # None: no weights found, and source says where we looked
    D: "torch.nn.Module | None"  # pix2pix: the PatchGAN trained with G, for the real/fake map
    source: str
    G_eval: "torch.nn.Module | None" = None  # pix2pix: G with BatchNorm folded in, for the eval-mode path


def load_discriminator(source, repo, local, bundled):
    """The PatchGAN saved with G, or None, and a note. train_pix2pix.py writes <run>/generator and
    <run>/discriminator and pushes REPO and REPO-discriminator; bundled: <generator>/discriminator."""
    from condgen.hub import resolve
    from condgen.pix2pix import Discriminator

    kind = source.split()[0]
    try:
        if kind == "hub":
            return resolve(Discriminator, repo_id=f"{repo}-discriminator")[0], ""
        folder = local if kind == "local" else bundled
        for d in (os.path.join(folder, "discriminator"), os.path.join(folder, "..", "discriminator")):
            if os.path.isfile(os.path.join(d, "config.json")):
                return Discriminator.from_pretrained(d), ""
    except (OSError, ValueError) as e:
        return None, f"; no PatchGAN ({str(e)[:200]})"
    return None, "; no PatchGAN saved beside it, so no real/fake map"


def load_models(args):
    """{name: Loaded}; a model that is missing is reported in its tab, the app starts anyway."""
    import condgen
    from condgen.hub import resolve
    from condgen.precision import inference_generator

    models = {}
    for name, (cls, _, bundled, _) in MODELS.items():
        cls = getattr(condgen, cls)
        key = name.replace("-", "_")
        repo, _, revision = (getattr(args, f"{key}_repo") or "").partition("@")
        local, bundled = getattr(args, f"{key}_dir"), os.path.join(args.weights_dir, bundled)
        if local and os.path.isfile(os.path.join(local, "generator", "config.json")):  # a training run's folder
            local = os.path.join(local, "generator")
        try:
            G, source = resolve(cls, repo_id=repo or None, local_dir=local, bundled=bundled, revision=revision or None)
        except (OSError, ValueError) as e:
            models[name] = Loaded(None, None, str(e))
            continue
        D, note = load_discriminator(source, repo, local, bundled) if name in GENERATORS.values() else (None, "")
        # the eval-mode path: BatchNorm folded in, NHWC weights, bf16 where auto picks it; bench/run_all.py
        G_eval = inference_generator(G) if name in GENERATORS.values() else None
        models[name] = Loaded(G, D, source + note, G_eval)
    return models


def short(path):
    """A path as the user would type it: relative to the working folder when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def progress(folder):
    """' (epoch 3 of 70)' for a training run's generator folder, from its state.safetensors."""
    import json

    for state in (Path(folder) / "state.safetensors", Path(folder).parent / "state.safetensors"):
        try:
            from safetensors import safe_open

            with safe_open(state, "pt") as f:
                meta = json.loads(f.metadata()["condgen"])["meta"]
            epochs = meta.get("args", {}).get("epochs", "?")
            return f" (epoch {meta['epoch']} of {epochs}{', finished' if str(meta['epoch']) == epochs else ''})"
        except Exception:  # no state, or not ours: say nothing
            continue
    return ""


def describe(name, loaded):
    """In plain words, which weights a tab runs on, e.g. 'the bundled weights (weights/cgan)'."""
    if loaded.G is None:
        return f"no weights found ({loaded.source})"
    head, _, why = loaded.source.partition(" (")
    kind, _, where = head.partition(" ")
    text = {"hub": f"the Hub repo {where}",
            "local": f"your training run {short(where)}{progress(where)}",
            "bundled": f"the bundled weights ({short(where)})"}[kind]
    if kind != "hub" and "hub " in why:  # a repo was asked for and could not be had
        text += f"; the Hub repo could not be used ({why.rstrip(')')})"
    missing = [part.split(":")[0][len("local "):] for part in why.split("; ") if part.startswith("local ")]
    if kind == "bundled" and missing:  # a folder was given and is not there: say so, do not hide it
        text += f"; no such folder: {short(missing[0])}"
    run = MODELS[name][1]
    if kind == "bundled" and os.path.isfile(os.path.join(run, "generator", "config.json")):
        text += f". A training run of yours is in {run}: `python app.py --{name}-dir {run}` serves it"
    return text


class Models:
    """The models by name, loaded by a background thread: the page is served while torch imports
    and the weights load, and a request that comes before they are ready waits for them."""

    def __init__(self, args):
        self._args, self._ready, self._models, self._error = args, threading.Event(), {}, None

    def start(self):
        threading.Thread(target=self._load, args=(self._args,), daemon=True, name="load-models").start()

    def _load(self, args):
        try:
            self._models = load_models(args)
        except Exception as e:  # a bug, not a missing model (load_models reports those per model)
            self._error = e
            raise
        finally:
            self._ready.set()

    def __getitem__(self, name):
        self._ready.wait()
        if self._error is not None:
            raise gr.Error(f"Loading the models failed: {type(self._error).__name__}: {self._error}")
        return self._models[name]

    def items(self):
        return [(name, self[name]) for name in MODELS]


def UserError(message):
    """A gr.Error for a user's mistake: shown to the user, not logged with a traceback."""
    return gr.Error(message, print_exception=False)


def need(models, name):
    if models[name].G is None:
        raise UserError(f"No weights for the {name} generator ({models[name].source}). Train them with "
                        f"`{MODELS[name][3]}` or point --{name}-dir / --{name}-repo at a saved model.")
    return models[name].G


def integer(value, name, lo, hi):
    """A raw API value -> int in [lo, hi], or a gr.Error naming the field."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():  # gr.Radio documents digits as "7"
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise UserError(f"{name} must be from {lo} to {hi}, got {value}")
    return value


class ImageInput(gr.Image):
    """/colorize's input: gr.Image to the API page and to gradio_client, but with gradio's own
    validation of the value skipped (its error names no field; read_image checks instead).
    Uploaded files still go through gradio's upload-folder check, and the example is local."""

    data_model = None

    def api_info(self):
        from gradio.data_classes import ImageData

        schema = ImageData.model_json_schema()
        schema["additional_description"] = schema.pop("description", None)
        return schema

    async def async_move_resource_to_block_cache(self, url_or_file_path):
        try:  # a URL is fetched by gradio: say which one failed, and why
            return await super().async_move_resource_to_block_cache(url_or_file_path)
        except Exception as e:
            raise UserError(f"image: could not fetch {str(url_or_file_path)[:200]} ({str(e)[:200] or type(e).__name__})") from e

    def example_payload(self):
        from gradio_client import handle_file

        return handle_file("examples/fox.png")  # as the README's example; the component's own fetches a URL

    def example_value(self):
        return "examples/fox.png"


def refuse_server_paths():
    """A request naming a file on the server that no one uploaded is refused by gradio with an
    InvalidPathError, which the client sees as {"error": null} and the log as a traceback. Keep
    gradio's check (gradio.processing_utils._check_allowed, gradio pinned) and say what it means."""
    from gradio import processing_utils
    from gradio.exceptions import InvalidPathError

    check = processing_utils._check_allowed
    if getattr(check, "condgen", False):
        return

    def check_allowed(path, check_in_upload_folder):
        try:
            check(path, check_in_upload_folder)
        except InvalidPathError as e:
            if not check_in_upload_folder:  # our own output: a bug, keep gradio's error
                raise
            raise UserError(f"image: {str(path)[:200]} is not a file uploaded to this server; send the image itself "
                            "(gradio_client: handle_file('sketch.png'))") from e

    check_allowed.condgen = True
    processing_utils._check_allowed = check_allowed


def read_image(payload):
    """An uploaded file (gradio's FileData dict) -> PIL image of any mode, at most MAX_SIDE a side."""
    if payload is None:
        raise UserError("No image: upload a sketch (dark lines on white).")
    if not (isinstance(payload, dict) and isinstance(payload.get("path"), str)):
        # a bare string is never opened: it could name any file on the server
        raise UserError(f"image must be an uploaded image file (gradio_client: handle_file('sketch.png')), got {str(payload)[:80]!r}")
    try:
        with Image.open(payload["path"]) as im:
            if im.width * im.height > MAX_PIXELS:
                raise UserError(f"Image too large: {im.width}x{im.height}, at most {MAX_PIXELS // 10**6} megapixels.")
            im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced size right away
            im = ImageOps.exif_transpose(im)
            im.load()
    except gr.Error:
        raise
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... on broken files
        raise UserError(f"Could not read the image ({type(e).__name__}); upload a PNG, JPEG or WebP file.") from e
    return im


def sized(im):
    if min(im.size) < MIN_SIDE:
        raise UserError(f"Image too small: {im.width}x{im.height}; a sketch needs at least {MIN_SIDE} px a side.")
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    elif max(im.size) < MIN_OUT:  # the generator works at 256 px anyway: a 20 px sketch comes back at 256
        scale = MIN_OUT / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    return im


def png(im):
    """Save a result as a PNG named by its content hash, atomically, and return the path.

    gradio 6.31 writes a returned PIL image to its cache with a plain write_bytes, at a path named by
    the content: two requests with the same result (the same seed) then truncate the file while
    the other is being downloaded, and that client fails (bench/app.py, 4 clients). A file path
    goes through gradio's atomic copy instead."""
    buf = io.BytesIO()
    im.save(buf, "PNG")
    path = OUT / f"{hashlib.sha256(buf.getvalue()).hexdigest()[:32]}.png"
    try:
        os.utime(path)  # in use again: keep it from the clean-up below
    except FileNotFoundError:
        OUT.mkdir(exist_ok=True)
        for old in OUT.glob("*.png"):  # results older than an hour have long been served
            if time.time() - old.stat().st_mtime > 3600:
                old.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=OUT, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)
    return str(path)


def noise(n, nz, seed):
    """z of samples 0..n-1 of a seed. Draws MAX_COUNT rows always: torch's CPU randn fills a
    tensor differently by its size, and sample i of a seed should not depend on the count."""
    import torch

    return torch.randn(max(n, MAX_COUNT), nz, generator=torch.Generator().manual_seed(seed))[:n]


def grid(x, cols):
    """(N, 1, 28, 28) in [-1, 1] -> PNG of a grid with GRID_PAD gaps, upscaled (nearest) to ~1000 px wide."""
    n, _, h, w = x.shape
    step = (h + GRID_PAD, w + GRID_PAD)
    out = np.full((math.ceil(n / cols) * step[0] + GRID_PAD, cols * step[1] + GRID_PAD), 60, np.uint8)
    for i, tile in enumerate(((x.clamp(-1, 1) + 1) * 127.5).round().byte()[:, 0].numpy()):
        r, c = divmod(i, cols)
        out[GRID_PAD + r * step[0]:][:h, GRID_PAD + c * step[1]:][:, :w] = tile
    scale = max(1, min(8, 1024 // out.shape[1]))
    return png(Image.fromarray(out).resize((out.shape[1] * scale, out.shape[0] * scale), Image.NEAREST))


def slerp(a, b, t):
    """Spherical interpolation (White 2016, https://arxiv.org/abs/1609.04468): a straight line
    between two Gaussian z passes through short z that the generator never saw in training."""
    import torch

    omega = torch.arccos((a / a.norm() * b / b.norm()).sum().clamp(-1, 1))
    t = t[:, None]  # (steps, 1)
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def heat_overlay(p, y, alpha=0.5):
    """The PatchGAN's P(real) [30, 30] as a red-yellow-green heat map blended over the output y.

    colorize() pads the sketch to a square resized to 256; map cell i sees the 70-px window from
    8i - 23, centred at 8i + 12, so each pixel of that square takes its nearest centre's verdict;
    the padding is then cropped off again."""
    idx = np.clip(np.round((np.arange(256) + 0.5 - 12) / 8), 0, p.shape[0] - 1).astype(int)
    p = p[idx][:, idx, None]  # (256, 256, 1)
    rgb = np.where(p < 0.5, HEAT[0] + (HEAT[1] - HEAT[0]) * 2 * p, HEAT[1] + (HEAT[2] - HEAT[1]) * (2 * p - 1))
    side = max(y.size)
    left, top = (side - y.width) // 2, (side - y.height) // 2
    square = Image.fromarray(rgb.round().astype(np.uint8)).resize((side, side), Image.NEAREST)
    return Image.blend(y, square.crop((left, top, left + y.width, top + y.height)), alpha)


def first_result(demo, fn, outputs):
    """Fill outputs with fn() when a page loads, so a tab does not open empty; a tab whose model
    is missing stays empty (its text says so) rather than greeting the user with an error."""
    def quiet():
        try:
            return fn()
        except gr.Error:
            return [None] * len(outputs) if isinstance(outputs, list) else None

    demo.load(quiet, None, outputs, api_visibility="private")


def live_markdown(demo, fn):
    """Markdown that fn fills in when a page loads (fn may wait for the models). Not gr.Markdown(fn):
    gradio calls such a function once while building the page, before the models are loaded."""
    md = gr.Markdown("*loading the weights...*")
    demo.load(fn, None, md, api_visibility="private")
    return md


def create_gan_demo(models, demo):
    def generate_gan(seed, count):
        import torch

        seed, count = integer(seed, "seed", 0, MAX_SEED), integer(count, "count", 1, MAX_COUNT)
        G = need(models, "gan")
        with torch.inference_mode():
            return grid(G(noise(count, G.nz, seed)), cols=math.ceil(math.sqrt(count)))

    def interpolate_gan(seed_a, seed_b, steps):
        import torch

        seed_a, seed_b = integer(seed_a, "seed A", 0, MAX_SEED), integer(seed_b, "seed B", 0, MAX_SEED)
        steps, G = integer(steps, "steps", 2, MAX_STEPS), need(models, "gan")
        # from the first sample of seed A's grid to the first of seed B's
        z = slerp(noise(1, G.nz, seed_a)[0], noise(1, G.nz, seed_b)[0], torch.linspace(0, 1, steps))
        with torch.inference_mode():
            return grid(G(z), cols=steps)

    live_markdown(demo, lambda: f"Unconditional GAN: noise in, a digit out, which one it decides. Running: {describe('gan', models['gan'])}.")
    with gr.Row():
        with gr.Column():
            seed = gr.Number(0, label="seed", precision=0, elem_id="gan-seed")
            count = gr.Slider(1, MAX_COUNT, 16, step=1, precision=0, label="number of samples")
            btn = gr.Button("Generate", variant="primary", elem_id="gan-generate")
        out = gr.Image(label="samples", show_label=False, format="png", interactive=False, elem_id="gan-out")
    btn.click(generate_gan, [seed, count], out, api_name="generate_gan", preprocess=False)
    gr.Markdown("**Interpolation** from the first sample of seed A to the first of seed B, through z-space")
    with gr.Row():
        seed_a, seed_b = gr.Number(0, label="seed A", precision=0), gr.Number(1, label="seed B", precision=0)
        steps = gr.Slider(2, MAX_STEPS, 10, step=1, precision=0, label="steps")
        btn_i = gr.Button("Interpolate")
    strip = gr.Image(label="interpolation", show_label=False, format="png", interactive=False, height=200)
    btn_i.click(interpolate_gan, [seed_a, seed_b, steps], strip, api_name="interpolate_gan", preprocess=False)
    first_result(demo, lambda: [generate_gan(0, 16), interpolate_gan(0, 1, 10)], [out, strip])


def create_cgan_demo(models, demo):
    def generate_cgan(digit, count, seed):
        import torch

        from condgen.mnist import one_hot

        digit, count = integer(digit, "digit", 0, 9), integer(count, "count", 1, MAX_COUNT)
        seed, G = integer(seed, "seed", 0, MAX_SEED), need(models, "cgan")
        with torch.inference_mode():
            return grid(G(noise(count, G.nz, seed), one_hot([digit] * count)), cols=math.ceil(math.sqrt(count)))

    def generate_cgan_digits(columns, seed):
        import torch

        from condgen.mnist import one_hot

        columns, seed = integer(columns, "columns", 1, MAX_COLUMNS), integer(seed, "seed", 0, MAX_SEED)
        G = need(models, "cgan")
        z = noise(columns, G.nz, seed).repeat(10, 1)  # (10 * columns, nz): every row reuses the same z
        c = one_hot(torch.arange(10).repeat_interleave(columns))  # row r asks for digit r
        with torch.inference_mode():
            return grid(G(z, c), cols=columns)

    live_markdown(demo, lambda: f"Conditional GAN: you pick the digit, the noise picks the style. Running: {describe('cgan', models['cgan'])}.")
    with gr.Row():
        with gr.Column():
            digit = gr.Radio(list(range(10)), value=7, label="digit")
            count = gr.Slider(1, MAX_COUNT, 16, step=1, precision=0, label="number of samples")
            seed = gr.Number(0, label="seed", precision=0, elem_id="cgan-seed")
            btn = gr.Button("Generate", variant="primary")
            gr.Markdown("**All digits**: a row per digit; each column keeps one z, so the style stays while the digit changes.")
            columns = gr.Slider(1, MAX_COLUMNS, 8, step=1, precision=0, label="columns (styles)")
            btn_all = gr.Button("All digits", elem_id="cgan-all")
        out = gr.Image(label="samples", show_label=False, format="png", interactive=False, elem_id="cgan-out")
    btn.click(generate_cgan, [digit, count, seed], out, api_name="generate_cgan", preprocess=False)
    btn_all.click(generate_cgan_digits, [columns, seed], out, api_name="generate_cgan_digits", preprocess=False)
    first_result(demo, lambda: generate_cgan_digits(8, 0), out)


def create_sketch_demo(models, demo):
    def run(image, generator, stochastic):
        """An RGB sketch -> [U-Net output, its PatchGAN map, encoder-decoder output, its map]."""
        import torch

        from condgen.colorize import colorize, patch_map
        from condgen.paper import sketch_note

        if generator not in [*GENERATORS, "Both"]:
            raise UserError(f"generator must be one of {[*GENERATORS, 'Both']}, got {generator!r}")
        if not isinstance(stochastic, bool):
            raise UserError(f"stochastic must be true or false, got {stochastic!r}")
        note = sketch_note(image)
        if note:  # still answer, but say that this is not what the models know
            gr.Warning(note, duration=20)
        names = [n for label, n in GENERATORS.items() if generator in (label, "Both")]
        nets, outputs = {n: need(models, n) for n in names}, []
        for name in GENERATORS.values():
            y = m = None
            if name in nets:
                try:
                    with LOCKS[name], torch.inference_mode():
                        # stochastic keeps dropout on in the raw G; eval mode runs the folded copy
                        y = colorize(nets[name] if stochastic else models[name].G_eval, image, stochastic=stochastic)
                        m = heat_overlay(patch_map(models[name].D, image, y), y) if models[name].D is not None else None
                except ValueError as e:  # colorize's own checks, e.g. a blank sketch
                    raise UserError(f"{str(e)[:1].upper()}{str(e)[1:]}.") from e
            outputs += [None if v is None else png(v) for v in (y, m)]
        return outputs

    def colorize_upload(image, generator, stochastic):
        from condgen.colorize import to_rgb

        return run(to_rgb(sized(read_image(image))), generator, stochastic)

    def colorize_sketch(editor, generator, stochastic):
        from condgen.colorize import to_rgb

        editor = editor or {}
        image, background = editor.get("composite"), editor.get("background")
        if image is None or image.getchannel("A").getbbox() is None:  # nothing drawn, or the canvas cleared away
            raise UserError("No sketch: pick the brush and draw on the canvas, or upload an image.")
        # fixed_canvas fits an upload into the 512 px canvas, centred: cut the empty bands off again
        # (strokes drawn on them included), so the output keeps the upload's aspect ratio
        if background is not None and background.getchannel("A").getbbox() is not None:
            image = image.crop(image.getchannel("A").getbbox())
        return run(to_rgb(sized(image)), generator, stochastic)

    def intro():
        sources = "; ".join(f"{label}: {describe(n, models[n])}" for label, n in GENERATORS.items())
        return ("Pix2Pix: draw dark lines on the white canvas (or upload a sketch, on any paper), pick a generator, Colorize "
                f"(shown first: {Path(EXAMPLES[0]).name if EXAMPLES else 'nothing'}, an example, colorized by the U-Net). "
                f"Trained on Sketch2Pokemon-style line art. Running: {sources}.")

    live_markdown(demo, intro)
    with gr.Row():
        with gr.Column():
            # No initial background: with one, gradio 6.31's editor ignores the examples. Empty
            # canvas pixels are transparent (RGBA: colorize_sketch finds an upload's box by its
            # alpha), and to_rgb puts them on white. fixed_canvas: an upload is fitted into the
            # 512 px canvas in the browser, so a 3000 px photo is not sent whole (20 MB limit: 413).
            sketch = gr.ImageEditor(
                None, label="sketch", type="pil",
                image_mode="RGBA", sources=("upload", "clipboard"), canvas_size=(512, 512), fixed_canvas=True, height=640,
                layers=False, transforms=(), brush=gr.Brush(default_size=3, colors=["#000000"], color_mode="fixed"),
                eraser=gr.Eraser(default_size=12), elem_id="sketch",
            )
            generator = gr.Radio([*GENERATORS, "Both"], value="U-Net", label="generator")
            stochastic = gr.Checkbox(
                False, label="stochastic (as in the paper)",
                info="Off: the same sketch always gives the same picture. On: dropout stays switched on, the paper's "
                     "only source of randomness, so each click gives a slightly different picture; the changes are "
                     "small (a few levels out of 255 on average), often too small to see.")
            btn = gr.Button("Colorize", variant="primary")
            image = ImageInput(visible=False, type="filepath", image_mode=None, label="image")  # the input of /colorize
        with gr.Column():
            # the output at about the canvas' size, its PatchGAN map smaller beside it
            with gr.Row() as row_unet:
                y_unet = gr.Image(label="U-Net", format="png", interactive=False, elem_id="out-unet", height=420, scale=2)
                m_unet = gr.Image(label="U-Net map", format="png", interactive=False, elem_id="map-unet", height=420, scale=1)
            with gr.Row(visible=False) as row_ed:
                y_ed = gr.Image(label="encoder-decoder", format="png", interactive=False, elem_id="out-encdec", height=420, scale=2)
                m_ed = gr.Image(label="enc-dec map", format="png", interactive=False, elem_id="map-encdec", height=420, scale=1)
            gr.Markdown("PatchGAN map: the discriminator's verdict on each 70x70 patch of the output, seen "
                        "together with the sketch: green = looks real, red = looks fake.")
    outputs = [y_unet, m_unet, y_ed, m_ed]
    generator.change(lambda g: (gr.Row(visible=g != "Encoder-decoder"), gr.Row(visible=g != "U-Net")),
                     generator, [row_unet, row_ed], queue=False, api_visibility="private")
    btn.click(colorize_sketch, [sketch, generator, stochastic], outputs, api_visibility="undocumented")
    gr.on([], colorize_upload, [image, generator, stochastic], outputs, api_name="colorize", preprocess=False)
    gr.Examples(EXAMPLES, [sketch], label="Example sketches: click one to load it into the canvas", elem_id="examples")

    def example():  # the first example, colorized by the U-Net
        from condgen.colorize import to_rgb

        return run(to_rgb(EXAMPLES[0]), "U-Net", False)

    if EXAMPLES:
        first_result(demo, example, outputs)


def create_about(models, demo):
    def about():
        rows = "\n".join(f"| {name} | {describe(name, m)} | `{MODELS[name][3]}` |" for name, m in models.items())
        return f"""## Weights
| model | loaded from | train your own |
| --- | --- | --- |
{rows}

Each model comes from a Hub repo if one is set (`--cgan-repo user/repo[@revision]`, `CONDGEN_CGAN_REPO`),
else from a local folder if one is given (`--cgan-dir runs/cgan`, `CONDGEN_CGAN_DIR`: a training run is
never picked up on its own, so a smoke test does not replace the bundled weights), else from the bundled `weights/`. Pix2Pix first needs training pairs:
`python -m condgen.sketchify ../shared/data/pokemon/color data/sketch2pokemon-train`.
The endpoints and a `gradio_client` example are under "Use via API" at the bottom of the page."""

    live_markdown(demo, about)


def build_demo(models, concurrency=2):
    refuse_server_paths()
    with gr.Blocks(title="condgen", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Tabs():
            with gr.Tab("GAN"):
                create_gan_demo(models, demo)
            with gr.Tab("cGAN"):
                create_cgan_demo(models, demo)
            with gr.Tab("Sketch to color") as sketch_tab:
                create_sketch_demo(models, demo)
            with gr.Tab("About"):
                create_about(models, demo)
        sketch_tab.select(None, js=SELECT_BRUSH)
    return demo.queue(default_concurrency_limit=concurrency, max_size=64)


def main(argv=None, **launch_kwargs):
    args = parse_args(argv)
    models = Models(args)
    demo = build_demo(models, args.concurrency)
    block = not launch_kwargs.pop("prevent_thread_lock", False)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size="20mb", prevent_thread_lock=True, **launch_kwargs)
    models.start()  # only now: the loading thread would hold the GIL while the page is being set up
    if block:
        demo.block_thread()
    return demo


if __name__ == "__main__":
    main()
