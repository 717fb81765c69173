"""condgen demo: GAN and cGAN digits (MNIST), Pix2Pix sketch-to-color; one tab each.

    python app.py                                    # http://127.0.0.1:7860, bundled weights
    python app.py --cgan-dir runs/my-cgan            # a training run of your own (its --out)
    CONDGEN_UNET_REPO=user/pix2pix-unet python app.py    # weights from the Hub

This file lays out the page, checks the inputs and serves; condgen computes. Each model is resolved
once (condgen.weights), in a background thread started as soon as the page is served: Hub repo, else
local folder, else the bundled weights/. API (gradio_client): /generate_gan, /interpolate_gan,
/generate_cgan, /generate_cgan_digits, /colorize. Those endpoints take raw values (preprocess=False)
and check them here, so every bad input gets a gr.Error naming the field, not a component's generic one.
"""

import argparse
import os
from pathlib import Path

import gradio as gr

import serving
from serving import int_in_range

# condgen (and torch) is imported in the loading thread (serving.Models), not here: the page is served meanwhile.

HERE = Path(__file__).resolve().parent
NAMES = ["gan", "cgan", "unet", "encoder-decoder"]  # condgen.weights.MODELS, whose import would pull torch in
GENERATORS = {"U-Net": "unet", "Encoder-decoder": "encoder-decoder"}
MAX_COUNT, MAX_STEPS, MAX_COLUMNS, MAX_SEED = 64, 16, 16, 2**32 - 1
INTERPOLATION = (4, 6, 10)  # seed A, seed B, steps shown first: the bundled GAN's 2 turning into an 8, then a 1
EXAMPLES = sorted(str(p) for p in (HERE / "examples").glob("*.png"))
EXAMPLE_HINTS = str(HERE / "examples" / "hints" / "bird.png")  # EXAMPLES[0]'s dots
# the hint palette: colors a sketch's regions often want, the user's own from the picker beside it
PALETTE = ["#f7c62f", "#f08a24", "#d8342c", "#f29bbf", "#8e5bc5", "#3d7fd9", "#43b0c9", "#3f9a4a", "#8b5a2b",
           "#f2d2a9", "#9a9a9a", "#ffffff", "#2b2b2b"]

DESCRIPTION = """# condgen: GAN, cGAN and Pix2Pix
Digits from a GAN ([Goodfellow et al. 2014](https://arxiv.org/abs/1406.2661)) and a conditional GAN
([Mirza & Osindero 2014](https://arxiv.org/abs/1411.1784)) trained on MNIST, and sketch-to-color with
Pix2Pix ([Isola et al. 2017](https://arxiv.org/abs/1611.07004)). Everything runs on CPU."""
SKETCH_INTRO = ("Pix2Pix: draw dark lines on the white canvas (or upload a sketch, on any paper), Colorize. **Your "
                "colors:** on *Color hints*, dab a dot of a color inside a region and that region takes it (below: "
                "an example with 4 dots). Trained on Sketch2Pokemon-style line art. Running: ")
STOCHASTIC = ("Off: the same sketch always gives the same picture. On: dropout stays switched on, the paper's only "
              "source of randomness, so each click gives a slightly different picture; the changes are small (a few "
              "levels out of 255 on average), often too small to see.")
FLAT = ("Off: the generator's picture as it is. On: every region your lines close off takes one color, the median of "
        "what the generator painted there, with its shading kept (as a colorist's flatting pass); lines, background "
        "and regions left open by a gap stay as painted.")
MAP_LEGEND = ("Map: the discriminator's verdict on each 70x70 patch of the picture, given the sketch: green = passes "
              "for real art, red = looks generated. What to expect: on real Pokémon art it is mostly green, on the "
              "generators' pictures mostly red; green marks where one passes.")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, but no '(default: None)' for a flag that is simply not set."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    # weights: Hub repo (REPO or REPO@REVISION) -> local folder -> bundled folder
    for name in NAMES:
        env = "CONDGEN_" + name.upper().replace("-", "_")
        p.add_argument(f"--{name}-repo", default=os.environ.get(f"{env}_REPO"),
                       help=f"Hub repo id[@revision] of the {name} generator (env {env}_REPO)")
        # a local run only when asked for: a one-epoch smoke test in runs/ must not replace the bundled weights
        p.add_argument(f"--{name}-dir", default=os.environ.get(f"{env}_DIR"),
                       help=f"local folder of the {name} generator or its training run (env {env}_DIR); "
                            "without it the bundled weights serve")
    p.add_argument("--weights-dir", default=os.environ.get("CONDGEN_WEIGHTS_DIR", str(HERE / "weights")),
                   help="folder of the bundled weights (env CONDGEN_WEIGHTS_DIR)")
    # serving
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to bind (env GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=os.environ.get("GRADIO_SERVER_PORT", "7860"),
                   help="port to serve on (env GRADIO_SERVER_PORT)")
    p.add_argument("--concurrency", type=int, default=2, help="requests computed at once per endpoint")
    args = p.parse_args(argv)
    if not 1 <= args.port <= 65535:  # gradio would answer with an OverflowError's traceback
        p.error(f"--port must be from 1 to 65535, got {args.port}")
    if args.concurrency < 1:
        p.error(f"--concurrency must be >= 1, got {args.concurrency}")
    return args


def load_models(args):
    """condgen.weights.Served: every model; a missing one is reported in its tab, the app starts anyway."""
    from condgen import weights

    key = {name: name.replace("-", "_") for name in NAMES}
    return weights.load_all(args.weights_dir, {n: getattr(args, f"{k}_repo") for n, k in key.items()},
                            {n: getattr(args, f"{k}_dir") for n, k in key.items()})


def create_gan_demo(models, demo):
    @serving.user_errors
    def generate_gan(seed, count):
        seed, count = int_in_range(seed, "seed", 0, MAX_SEED), int_in_range(count, "count", 1, MAX_COUNT)
        return serving.png_file(models.loaded().samples("gan", seed, count))

    @serving.user_errors
    def interpolate_gan(seed_a, seed_b, steps):
        seed_a, seed_b = int_in_range(seed_a, "seed A", 0, MAX_SEED), int_in_range(seed_b, "seed B", 0, MAX_SEED)
        steps = int_in_range(steps, "steps", 2, MAX_STEPS)
        return serving.png_file(models.loaded().interpolation(seed_a, seed_b, steps))

    serving.live_markdown(demo, lambda: "Unconditional GAN: noise in, a digit out, which one it decides. Running: "
                          f"{models.loaded().describe('gan')}.")
    with gr.Row():
        with gr.Column():
            seed = gr.Number(0, label="seed", precision=0, elem_id="gan-seed")
            count = gr.Slider(1, MAX_COUNT, 16, step=1, precision=0, label="number of samples")
            btn = gr.Button("Generate", variant="primary", elem_id="gan-generate")
        out = gr.Image(label="samples", show_label=False, format="png", interactive=False, elem_id="gan-out")
    btn.click(generate_gan, [seed, count], out, api_name="generate_gan", preprocess=False)
    gr.Markdown("**Interpolation** from the first sample of seed A to the first of seed B, through z-space")
    with gr.Row():
        seed_a, seed_b = (gr.Number(s, label=f"seed {ab}", precision=0) for s, ab in zip(INTERPOLATION, "AB"))
        steps = gr.Slider(2, MAX_STEPS, INTERPOLATION[2], step=1, precision=0, label="steps")
        btn_i = gr.Button("Interpolate")
    strip = gr.Image(label="interpolation", show_label=False, format="png", interactive=False, height=200)
    btn_i.click(interpolate_gan, [seed_a, seed_b, steps], strip, api_name="interpolate_gan", preprocess=False)
    serving.first_result(demo, lambda: [generate_gan(0, 16), interpolate_gan(*INTERPOLATION)], [out, strip])


def create_cgan_demo(models, demo):
    @serving.user_errors
    def generate_cgan(digit, count, seed):
        digit, count = int_in_range(digit, "digit", 0, 9), int_in_range(count, "count", 1, MAX_COUNT)
        seed = int_in_range(seed, "seed", 0, MAX_SEED)
        return serving.png_file(models.loaded().samples("cgan", seed, count, digit))

    @serving.user_errors
    def generate_cgan_digits(columns, seed):
        columns, seed = int_in_range(columns, "columns", 1, MAX_COLUMNS), int_in_range(seed, "seed", 0, MAX_SEED)
        return serving.png_file(models.loaded().digit_table(columns, seed))

    serving.live_markdown(demo, lambda: "Conditional GAN: you pick the digit, the noise picks the style. Running: "
                          f"{models.loaded().describe('cgan')}.")
    with gr.Row():
        with gr.Column():
            digit = gr.Radio(list(range(10)), value=7, label="digit")
            count = gr.Slider(1, MAX_COUNT, 16, step=1, precision=0, label="number of samples")
            seed = gr.Number(0, label="seed", precision=0, elem_id="cgan-seed")
            btn = gr.Button("Generate", variant="primary")
            gr.Markdown("**All digits**: a row per digit; each column keeps one z, so the style stays "
                        "while the digit changes.")
            columns = gr.Slider(1, MAX_COLUMNS, 8, step=1, precision=0, label="columns (styles)")
            btn_all = gr.Button("All digits", elem_id="cgan-all")
        out = gr.Image(label="samples", show_label=False, format="png", interactive=False, elem_id="cgan-out")
    btn.click(generate_cgan, [digit, count, seed], out, api_name="generate_cgan", preprocess=False)
    btn_all.click(generate_cgan_digits, [columns, seed], out, api_name="generate_cgan_digits", preprocess=False)
    serving.first_result(demo, lambda: generate_cgan_digits(8, 0), out)


def sketch_canvases():
    """The Lines canvas and, on a tab of its own, the Color hints canvas, with the sketch as its
    background: a hint never becomes a line, and clearing them leaves the lines."""
    # No initial value: with one, gradio 6.31's editor ignores the examples (the first result fills the
    # canvases instead). Empty canvas pixels are transparent (RGBA: serving.canvas_sketch finds an upload's
    # box by its alpha), and condgen puts them on white. fixed_canvas: an upload is fitted into the 512 px
    # canvas in the browser, so a 3000 px photo is not sent whole (20 MB limit: 413).
    canvas = dict(type="pil", image_mode="RGBA", canvas_size=(serving.CANVAS,) * 2, fixed_canvas=True, height=640,
                  layers=False, transforms=(), format="png")  # not gradio's webp, lossy: lines would blur
    with gr.Tabs():
        with gr.Tab("Lines", id="lines") as lines_tab:
            sketch = gr.ImageEditor(None, label="sketch", sources=("upload", "clipboard"), elem_id="sketch",
                                    brush=gr.Brush(default_size=3, colors=["#000000"], color_mode="fixed"),
                                    eraser=gr.Eraser(default_size=12), **canvas)
        with gr.Tab("Color hints", id="hints") as hints_tab:
            hint_editor = gr.ImageEditor(None, label="color hints: dab a color inside a region", sources=(),
                                         brush=gr.Brush(default_size=8, colors=PALETTE, color_mode="defaults"),
                                         eraser=gr.Eraser(default_size=16), elem_id="hints", **canvas)
            clear_hints = gr.Button("Clear hints", size="sm")
    lines_tab.select(None, js="() => (" + serving.SELECT_BRUSH + ")('sketch')")
    hints_tab.select(None, js="() => (" + serving.SELECT_BRUSH + ")('hints')")
    return sketch, hint_editor, hints_tab, clear_hints


def sketch_outputs():
    """Each generator's picture at about the canvas' size, its PatchGAN map smaller beside it, a row
    each; the encoder-decoder's row shown when it is chosen."""
    rows, outputs = [], []
    for label, key, visible in (("U-Net", "unet", True), ("encoder-decoder", "encdec", False)):
        with gr.Row(visible=visible) as row:
            outputs += [gr.Image(label=label, format="png", interactive=False, elem_id=f"out-{key}", height=420,
                                 scale=2),
                        gr.Image(label=f"{label} map", format="png", interactive=False, elem_id=f"map-{key}",
                                 height=420, scale=1)]
        rows.append(row)
    gr.Markdown(MAP_LEGEND)
    return rows, outputs


def create_sketch_demo(models, demo):
    @serving.user_errors
    def colorize_each(image, chosen, stochastic, flat=False, hints=None):
        """A sketch (PIL) -> [U-Net output, its PatchGAN map, encoder-decoder output, its map]; hints:
        an RGBA image of the sketch's size or None; flat: one color per closed region (the maps
        judge what is shown). condgen.weights.Served.colorize prepares the sketch once for all."""
        names = serving.generators_chosen(chosen, stochastic, flat, GENERATORS)
        note, results = models.loaded().colorize(image, names, stochastic, flat, hints)
        if note:  # still answered, but say that this is not what the models know
            gr.Warning(note, duration=20)
        shown = dict(zip(names, results))
        return [None if v is None else serving.png_file(v) for n in GENERATORS.values()
                for v in shown.get(n, (None, None))]

    def colorize_upload(image, generator, stochastic, flat=False, hints=None):
        sketch = serving.within_size_limits(serving.read_image(image))
        if hints is not None:  # any size with the sketch's aspect ratio: condgen.colorize.to_hints resizes it
            hints = serving.read_hints(hints, sketch.size)
        return colorize_each(sketch, generator, stochastic, flat, hints)

    def colorize_canvas(editor, hint_editor, upload, generator, stochastic, flat):
        sketch, hints = serving.canvas_sketch(editor, hint_editor, upload)
        return colorize_each(sketch, generator, stochastic, flat, hints)

    def example():
        """The U-Net's automatic picture of the first example, which the canvas shows; below, the
        example with its hints | automatic | with the hints."""
        hints = EXAMPLE_HINTS if Path(EXAMPLE_HINTS).is_file() else None
        canvas, layer, asked = serving.example_canvas(EXAMPLES[0], hints)
        results = colorize_each(canvas["background"], "U-Net", False)  # a gr.Error without a U-Net: nothing shown
        hinted = colorize_each(canvas["background"], "U-Net", False, hints=layer)[0] if hints else results[0]
        return [*results, serving.png_file(serving.strip([asked, results[0], hinted]))]

    serving.live_markdown(demo, lambda: SKETCH_INTRO + "; ".join(f"{label}: {models.loaded().describe(n)}"
                                                                 for label, n in GENERATORS.items()) + ".")
    with gr.Row():
        with gr.Column():
            sketch, hint_editor, hints_tab, clear_hints = sketch_canvases()
            upload = gr.Textbox("", visible="hidden", elem_id="upload")  # the browser's word on an upload
            generator = gr.Radio([*GENERATORS, "Both"], value="U-Net", label="generator")
            stochastic = gr.Checkbox(False, label="stochastic (as in the paper)", info=STOCHASTIC)
            flat = gr.Checkbox(False, label="flat colors (post-processing)", info=FLAT)
            btn = gr.Button("Colorize", variant="primary")
            image = serving.ImageInput(visible=False, type="filepath", image_mode=None, label="image")  # /colorize's
            hints = serving.HintsInput(visible=False, type="filepath", image_mode=None, label="hints")
        with gr.Column():
            rows, outputs = sketch_outputs()
    gr.Examples(EXAMPLES, [sketch], label="Example sketches: click one to load it into the canvas", elem_id="examples")
    comparison = gr.Image(label="example: sketch with its hints | automatic | with the hints", format="png",
                          interactive=False, elem_id="example-hints", height=220)
    btn.click(colorize_canvas, [sketch, hint_editor, upload, generator, stochastic, flat], outputs,
              api_visibility="undocumented")
    gr.on([], colorize_upload, [image, generator, stochastic, flat, hints], outputs, api_name="colorize",
          preprocess=False)
    # queued, though cheap: gradio 6.31 shows no error from an event without the queue
    upload.change(serving.check_upload, upload, None, api_visibility="private", show_progress="hidden")
    demo.load(None, js=serving.WATCH_UPLOADS)
    # no queue for these: cheap (no torch), and the page waits on one plain request
    generator.change(lambda g: (gr.Row(visible=g != "Encoder-decoder"), gr.Row(visible=g != "U-Net")),
                     generator, rows, queue=False, api_visibility="private")
    shown_sketch = gr.State(None)
    hints_tab.select(serving.hints_canvas, [sketch, hint_editor], [hint_editor, shown_sketch], queue=False,
                     api_visibility="private")
    clear_hints.click(lambda bg: bg and {"background": bg, "layers": [], "composite": None}, shown_sketch,
                      hint_editor, queue=False, api_visibility="private")
    if EXAMPLES:  # the example's sketch at once (a stroke drawn meanwhile would be lost), its picture when ready
        demo.load(lambda: serving.example_canvas(EXAMPLES[0], None)[0], None, sketch, queue=False,
                  api_visibility="private")
        serving.first_result(demo, example, [*outputs, comparison])


def build_demo(models, concurrency=2):
    serving.refuse_server_paths()
    with gr.Blocks(title="condgen", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Tabs():
            with gr.Tab("GAN"):
                create_gan_demo(models, demo)
            with gr.Tab("cGAN"):
                create_cgan_demo(models, demo)
            with gr.Tab("Sketch to color") as sketch_tab:
                create_sketch_demo(models, demo)
            with gr.Tab("About"):  # the weights each tab runs on, and the others it could
                serving.live_markdown(demo, lambda: models.loaded().about())
        sketch_tab.select(None, js="() => (" + serving.SELECT_BRUSH + ")('sketch')")
    return demo.queue(default_concurrency_limit=concurrency, max_size=64)


def main(argv=None, **launch_kwargs):
    args = parse_args(argv)
    models = serving.Models(lambda: load_models(args))
    demo = build_demo(models, args.concurrency)
    block = not launch_kwargs.pop("prevent_thread_lock", False)
    serving.launch(demo, args.host, args.port, max_file_size="20mb", **launch_kwargs)
    models.start()  # only now: the loading thread would hold the GIL while the page is being set up
    if block:
        demo.block_thread()
    return demo


if __name__ == "__main__":
    main()
