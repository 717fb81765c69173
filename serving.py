"""What app.py needs from gradio beyond its layout: checking raw API values, reading uploads within
limits (one size rule for the API and the browser's canvas), what the browser tells of an upload,
result files that concurrent requests can share, the /colorize input component, refusing paths on
the server, and models loaded in the background while the page is served. Imports no torch: the
page is served before torch is imported.
"""

import functools
import hashlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
from PIL import Image, ImageOps

MIN_SIDE, MAX_SIDE = 16, 1024  # sketches: smaller ones are refused, larger ones downscaled
MIN_OUT = 256  # smaller sketches are upscaled to this, the generator's own size
# longer than wide by more than this, a sketch would be under MIN_SIDE px thin in the generator's 256x256 square
MAX_ASPECT = MIN_OUT // MIN_SIDE
CANVAS = 512  # the sketch canvas' side: the browser fits an upload into it (app.py, fixed_canvas)
MAX_PIXELS = 50_000_000  # refused before decoding
OUT = Path(tempfile.gettempdir()) / "condgen-app"  # result PNGs, named by their content


def UserError(message):
    """A gr.Error for a user's mistake: shown to the user, not logged with a traceback."""
    return gr.Error(message, print_exception=False)


def sentence(e):
    """An exception's message as a sentence: condgen's errors start lower-case, without a full stop."""
    text = str(e)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def user_errors(fn):
    """fn with condgen's ValueErrors (no weights, a blank sketch, ...) shown to the user as sentences."""
    @functools.wraps(fn)
    def answer(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            raise UserError(sentence(e)) from e

    return answer


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


def generators_chosen(chosen, stochastic, flat, generators):
    """/colorize's raw generator choice (a label of generators, or "Both") and its two checkboxes
    -> the names of the generators to run, or a gr.Error naming the field."""
    if chosen not in [*generators, "Both"]:
        raise UserError(f"generator must be one of {[*generators, 'Both']}, got {chosen!r}")
    for name, value in (("stochastic", stochastic), ("flat", flat)):
        if not isinstance(value, bool):
            raise UserError(f"{name} must be true or false, got {value!r}")
    return [name for label, name in generators.items() if chosen in (label, "Both")]


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


def check_size(w, h, whose=""):
    """The one size rule, for an image sent to the API and one uploaded to the canvas alike (whose
    size the browser tells, WATCH_UPLOADS): at least MIN_SIDE px a side, and at least MIN_SIDE px
    thin once fitted into the generator's 256x256 square. whose: ' (name)', for the message."""
    if max(w, h) > MAX_ASPECT * min(w, h):
        thin = f"{MIN_OUT * min(w, h) / max(w, h):.0f} px {'tall' if w > h else 'wide'}"
        raise UserError(f"Image too long and thin: {w}x{h}{whose}; the generator sees a sketch in a {MIN_OUT}x"
                        f"{MIN_OUT} square, where this one would be {thin}. Crop it to at most {MAX_ASPECT}:1.")
    if min(w, h) < MIN_SIDE:
        raise UserError(f"Image too small: {w}x{h}{whose}; a sketch needs at least {MIN_SIDE} px a side.")


def within_size_limits(im):
    """check_size, then at_generator_size."""
    check_size(*im.size)
    return at_generator_size(im)


def at_generator_size(im):
    """Bring a sketch over MAX_SIDE down to it, one under MIN_OUT up."""
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    elif max(im.size) < MIN_OUT:  # the generator works at 256 px anyway: a 20 px sketch comes back at 256
        scale = MIN_OUT / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    return im


def hint_layer(editor, size):
    """The hints drawn on the app's hint canvas (gr.ImageEditor value): its layer, RGBA, or None if
    nothing is drawn. Its background, the sketch shown under the hints, is not part of it."""
    layers = (editor or {}).get("layers") or []
    layer = layers[0] if layers else None
    if layer is None or layer.mode != "RGBA" or layer.getchannel("A").getbbox() is None:
        return None
    return layer if layer.size == size else layer.resize(size, Image.NEAREST)


# gradio 6.31's editor opens on its upload tool, not the brush. On entering its tab, click the brush
# for the user (retrying for a few seconds while the canvas initializes), unless it is already on.
SELECT_BRUSH = """(editor) => { let tries = 0; const timer = setInterval(() => {
    const brush = document.querySelector(`#${editor} button[aria-label="Brush"]`);
    if (brush && !brush.classList.contains('highlight')) brush.click();
    else if (brush || ++tries > 50) clearInterval(timer);
}, 100); }"""
# The sketch canvas fits an upload into CANVAS px in the browser, and a file it cannot decode only
# reaches the console. So the browser tells the server what the user's own file was, its name and
# size or why it could not be read, as JSON in the hidden #upload textbox; clicking an example, which
# loads no file, clears it.
WATCH_UPLOADS = """() => {
    const tell = (info) => {
        const box = document.querySelector('#upload textarea, #upload input');
        box.value = info ? JSON.stringify(info) : '';
        box.dispatchEvent(new Event('input', {bubbles: true}));
    };
    const read = (file) => createImageBitmap(file).then(
        (im) => tell({name: file.name, width: im.width, height: im.height}),
        (e) => tell({name: file.name, error: e.message || String(e)}));
    document.addEventListener('change', (e) => {
        if (e.target.matches('#sketch input[type=file]') && e.target.files.length) read(e.target.files[0]);
    }, true);
    document.addEventListener('drop', (e) => {
        if (e.target.closest?.('#sketch') && e.dataTransfer.files.length) read(e.dataTransfer.files[0]);
    }, true);
    document.addEventListener('pointerdown', (e) => { if (e.target.closest?.('#examples')) tell(null); }, true);
}"""


def check_upload(text, size=True):
    """What the browser told of the last upload (WATCH_UPLOADS) -> {"name", "width", "height"}, or {}
    when it told nothing; a file it could not decode, or (size) one check_size refuses, is a UserError."""
    try:
        info = json.loads(text) if text else {}
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        return {}
    name = str(info.get("name", "the upload"))[:100]
    if "error" in info:
        why = str(info["error"])[:200].rstrip(".")
        raise UserError(f"Could not read {name}: {why[:1].lower()}{why[1:]}; it is not an image, or the file is "
                        "damaged. Upload a PNG, JPEG or WebP file.")
    w, h = info.get("width"), info.get("height")
    if not (isinstance(w, int) and isinstance(h, int)):
        return {}
    if size:
        check_size(w, h, f" ({name})")
    return {"name": name, "width": w, "height": h}


def drawn(editor):
    """What a canvas (gr.ImageEditor value) shows, RGBA, or None if nothing. Its composite, or its
    background while the browser has sent none: a value the server set (the first example)."""
    editor = editor or {}
    for image in (editor.get("composite"), editor.get("background")):
        if image is not None and image.getchannel("A").getbbox() is not None:
            return image
    return None


def canvas_sketch(editor, hint_editor, upload):
    """The two canvases' values (gr.ImageEditor) -> (RGBA sketch at the generator's size, its RGBA
    hints or None, at the canvas' scale: condgen.colorize.to_hints resizes them). An upload (the
    canvas' background) is cut out of the empty bands fixed_canvas fits it between, strokes drawn
    beside it included, and the hints with it, so the output keeps the upload's aspect ratio;
    check_size judges the user's own file, as the browser told of it (check_upload)."""
    image, background = drawn(editor), (editor or {}).get("background")
    if image is None:
        check_upload(upload, size=False)  # an upload the browser could not show says why
        raise UserError("No sketch: pick the brush and draw on the canvas, or upload an image.")
    hints = hint_layer(hint_editor, image.size)
    if background is not None and background.getchannel("A").getbbox() is not None:
        box = image.getchannel("A").getbbox()
        image, hints = image.crop(box), None if hints is None else hints.crop(box)
        info = check_upload(upload, size=False)
        if fits(info, *image.size):
            check_size(info["width"], info["height"], f" ({info['name']})")
        else:  # not that file: an example, or a pasted image
            check_size(*image.size, f", as fitted to the {CANVAS} px canvas")
    return at_generator_size(image), hints


def fits(info, w, h):
    """True when the upload check_upload told of has the shape of w x h, up to a pixel's rounding."""
    return bool(info) and abs(info["width"] * h - info["height"] * w) <= max(info["width"], info["height"], w, h)


def hints_canvas(editor, hint_editor):
    """On entering Color hints: its canvas shows the sketch under the user's hints (a layer of their
    own); the sketch is kept too (a gr.State) for Clear hints, which then sends nothing from the browser."""
    composite = drawn(editor)
    if composite is None:
        return None, None
    background = Image.alpha_composite(Image.new("RGBA", composite.size, "white"), composite.convert("RGBA"))
    layer = hint_layer(hint_editor, composite.size)
    return {"background": background, "layers": [layer] if layer else [], "composite": None}, background


def example_canvas(sketch, hints):
    """An example (path) and its hints (path or None) -> (the sketch canvas' value, the hints as a
    layer of the canvas' size or None, the sketch with its hints drawn over it: RGB). At the canvas'
    size: the editor fits a background into its canvas, not a layer."""
    with Image.open(sketch) as im:
        rgba = ImageOps.contain(im.convert("RGBA"), (CANVAS, CANVAS), Image.LANCZOS)
    asked, layer = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba), None
    if hints is not None:
        with Image.open(hints) as h:
            layer = h.convert("RGBA").resize(rgba.size, Image.NEAREST)
        asked.alpha_composite(layer)
    return {"background": rgba, "layers": [], "composite": None}, layer, asked.convert("RGB")


def strip(images, height=256, gap=8):
    """Images (PIL, or paths as png_file returns them) side by side at one height, on white."""
    images = [Image.open(im) if isinstance(im, str) else im for im in images]
    images = [im.resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in images]
    out = Image.new("RGB", (sum(im.width for im in images) + gap * (len(images) - 1), height), "white")
    x = 0
    for im in images:
        out.paste(im.convert("RGB"), (x, 0))
        x += im.width + gap
    return out


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

    def loaded(self):
        """The models (condgen.weights.Served), once they are loaded."""
        self._ready.wait()
        if self._error is not None:
            raise gr.Error(f"Loading the models failed: {type(self._error).__name__}: {self._error}")
        return self._models

    def __getitem__(self, name):
        return self.loaded()[name]

    def items(self):
        return self.loaded().items()


def launch(demo, host, port, **kwargs):
    """demo.launch without blocking; a port in use is one line naming app.py's --port (gradio's
    error names launch(server_port=...)), not a traceback."""
    import socket

    try:
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, **kwargs)
    except OSError:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                sys.exit(f"error: port {port} on {host} is in use (another app.py?); serve on another with --port N")
        raise
