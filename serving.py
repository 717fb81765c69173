"""What app.py needs from gradio beyond its layout: checking raw API values, reading uploads within
limits, result files that concurrent requests can share, the /colorize input component, refusing
paths on the server, and models loaded in the background while the page is served. Imports no torch:
the page is served before torch is imported.
"""

import hashlib
import io
import os
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
from PIL import Image, ImageOps

MIN_SIDE, MAX_SIDE = 16, 1024  # sketches: smaller ones are refused, larger ones downscaled
MIN_OUT = 256  # smaller sketches are upscaled to this, the generator's own size
MAX_PIXELS = 50_000_000  # refused before decoding
OUT = Path(tempfile.gettempdir()) / "condgen-app"  # result PNGs, named by their content


def UserError(message):
    """A gr.Error for a user's mistake: shown to the user, not logged with a traceback."""
    return gr.Error(message, print_exception=False)


def int_in_range(value, name, lo, hi):
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
            why = str(e)[:200] or type(e).__name__
            raise UserError(f"image: could not fetch {str(url_or_file_path)[:200]} ({why})") from e

    def example_payload(self):
        from gradio_client import handle_file

        return handle_file("examples/fox.png")  # as the README's example; the component's own fetches a URL

    def example_value(self):
        return "examples/fox.png"


class HintsInput(ImageInput):
    """/colorize's optional hints: an RGBA image of the sketch's size, transparent but where a color
    is wanted (condgen.colorize.to_hints); its example fits the image's (both 256x256)."""

    def example_payload(self):
        from gradio_client import handle_file

        return handle_file("examples/hints/bird.png")

    def example_value(self):
        return "examples/hints/bird.png"


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


def read_image(payload, field="image", example="sketch.png"):
    """An uploaded file (gradio's FileData dict) -> PIL image of any mode, at most MAX_SIDE a side.
    field, example: the input's name and an example file, for the error when it is not a file."""
    if payload is None:
        raise UserError("No image: upload a sketch (dark lines on white).")
    if not (isinstance(payload, dict) and isinstance(payload.get("path"), str)):
        # a bare string is never opened: it could name any file on the server
        raise UserError(f"{field} must be an uploaded image file (gradio_client: handle_file('{example}')), got "
                        f"{str(payload)[:80]!r}")
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


def read_hints(payload, size):
    """/colorize's hints: an uploaded RGBA file -> RGBA PIL image of size (the sketch's, after
    within_size_limits); one of another size with the sketch's aspect ratio is resized. Anything
    else is refused with a sentence starting "hints:"."""
    from condgen.colorize import to_hints

    try:
        im = read_image(payload, "hints", "hints.png")
    except gr.Error as e:
        if e.message.startswith("hints "):  # not an uploaded file: it names the field already
            raise
        raise UserError(f"hints: {e.message[:1].lower()}{e.message[1:]}") from e
    try:
        return to_hints(im, size)
    except ValueError as e:
        raise UserError(f"{e}.") from e


def hint_layer(editor, size):
    """The hints drawn on the app's hint canvas (gr.ImageEditor value): its layer, RGBA, or None if
    nothing is drawn. Its background, the sketch shown under the hints, is not part of it."""
    layers = (editor or {}).get("layers") or []
    layer = layers[0] if layers else None
    if layer is None or layer.mode != "RGBA" or layer.getchannel("A").getbbox() is None:
        return None
    return layer if layer.size == size else layer.resize(size, Image.NEAREST)


def with_hints(sketch, hints):
    """A sketch (path) with its hints (path or None) drawn over it, RGB, for showing what was asked."""
    with Image.open(sketch) as im:
        out = im.convert("RGBA")
    if hints is not None:
        with Image.open(hints) as h:
            out.alpha_composite(h.convert("RGBA").resize(out.size))
    return out.convert("RGB")


def strip(images, height=256, gap=8):
    """Images side by side at one height, on white."""
    images = [im.resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in images]
    out = Image.new("RGB", (sum(im.width for im in images) + gap * (len(images) - 1), height), "white")
    x = 0
    for im in images:
        out.paste(im.convert("RGB"), (x, 0))
        x += im.width + gap
    return out


def within_size_limits(im):
    """Refuse a sketch under MIN_SIDE a side; bring one over MAX_SIDE down to it, one under MIN_OUT up."""
    if min(im.size) < MIN_SIDE:
        raise UserError(f"Image too small: {im.width}x{im.height}; a sketch needs at least {MIN_SIDE} px a side.")
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    elif max(im.size) < MIN_OUT:  # the generator works at 256 px anyway: a 20 px sketch comes back at 256
        scale = MIN_OUT / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    return im


def png_file(im):
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
        # a rename, not condgen.checkpoint.atomic_write: a result need not survive a crash (no fsync)
        fd, tmp = tempfile.mkstemp(dir=OUT, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)
    return str(path)


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


class Models:
    """The models by name, loaded by a background thread: the page is served while torch imports
    and the weights load, and a request that comes before they are ready waits for them."""

    def __init__(self, load):
        self._load_all, self._ready, self._models, self._error = load, threading.Event(), {}, None

    def start(self):
        threading.Thread(target=self._load, daemon=True, name="load-models").start()

    def _load(self):
        try:
            self._models = self._load_all()
        except Exception as e:  # a bug, not a missing model (condgen.weights.load reports those per model)
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
        self._ready.wait()
        return [(name, self[name]) for name in self._models]
