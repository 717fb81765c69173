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
import math
import os
from pathlib import Path

import gradio as gr

import serving
from serving import int_in_range

# torch and condgen are imported where they are used, not here: the page is served while torch imports and the
# models load in a background thread (serving.Models). Once loaded, a local `import torch` is a dictionary lookup.

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
EXAMPLES = sorted(str(p) for p in (Path(__file__).resolve().parent / "examples").glob("*.png"))
EXAMPLE_HINTS = str(Path(__file__).resolve().parent / "examples" / "hints" / "bird.png")  # EXAMPLES[0]'s dots
# the hint palette: colors a sketch's regions often want, the user's own from the picker beside it
PALETTE = ["#f7c62f", "#f08a24", "#d8342c", "#f29bbf", "#8e5bc5", "#3d7fd9", "#43b0c9", "#3f9a4a", "#8b5a2b",
           "#f2d2a9", "#9a9a9a", "#ffffff", "#2b2b2b"]

# gradio 6.31's editor opens on its upload tool, not the brush. On entering the tab, click the brush
# for the user (retrying for a few seconds while the canvas initializes), unless it is already on.
SELECT_BRUSH = """(editor) => { let tries = 0; const timer = setInterval(() => {
    const brush = document.querySelector(`#${editor} button[aria-label="Brush"]`);
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


def load_models(args):
    """{name: condgen.weights.Loaded}; a model that is missing is reported in its tab, the app starts anyway."""
    import condgen
    from condgen import weights

    models = {}
    for name, (cls, _, bundled, _) in MODELS.items():
        key = name.replace("-", "_")
        models[name] = weights.load(getattr(condgen, cls), getattr(args, f"{key}_repo"), getattr(args, f"{key}_dir"),
                                    os.path.join(args.weights_dir, bundled), pix2pix=name in GENERATORS.values())
    return models


def describe(name, loaded):
    """In plain words, which weights a tab runs on (condgen.weights.describe)."""
    from condgen import weights

    return weights.describe(name, loaded, MODELS[name][1])


def variant_note(loaded):
    """' (a variant: ...)' for a generator that is not the paper's architecture, else ''."""
    side = getattr(loaded.G, "bottleneck", 1)  # the encoder-decoder's code size; the paper's is 1
    if side == 1:
        return ""
    import torch

    note = (f" (a variant: no skips as in the paper, but a code of {side}x{side} where the paper's is 1x1, which "
            "learned only a cream silhouette on our data")
    if not any(isinstance(m, torch.nn.Dropout) for m in loaded.G.modules()):
        note += "; it has no dropout, so 'stochastic' leaves it unchanged"
    return note + ")"


def served_generator(models, name):
    """The served generator of that name, or a gr.Error saying how to get weights for it."""
    if models[name].G is None:
        raise serving.UserError(f"No weights for the {name} generator ({models[name].source}). Train them with "
                        f"`{MODELS[name][3]}` or point --{name}-dir / --{name}-repo at a saved model.")
    return models[name].G


def grid_file(x, cols):
    """Digits (N, 1, 28, 28) in [-1, 1] -> the path of their grid's PNG."""
    from condgen.sample import grid

    return serving.png_file(grid(x, cols))


def create_gan_demo(models, demo):
    def generate_gan(seed, count):
        import torch

        from condgen.sample import noise

        seed, count = int_in_range(seed, "seed", 0, MAX_SEED), int_in_range(count, "count", 1, MAX_COUNT)
        G = served_generator(models, "gan")
        with torch.inference_mode():
            return grid_file(G(noise(count, G.nz, seed)), cols=math.ceil(math.sqrt(count)))

    def interpolate_gan(seed_a, seed_b, steps):
        import torch

        from condgen.sample import noise, slerp

        seed_a, seed_b = int_in_range(seed_a, "seed A", 0, MAX_SEED), int_in_range(seed_b, "seed B", 0, MAX_SEED)
        steps, G = int_in_range(steps, "steps", 2, MAX_STEPS), served_generator(models, "gan")
        z = slerp(noise(1, G.nz, seed_a)[0], noise(1, G.nz, seed_b)[0], torch.linspace(0, 1, steps))  # A's 1st to B's
        with torch.inference_mode():
            return grid_file(G(z), cols=steps)

    serving.live_markdown(demo,
                  lambda: "Unconditional GAN: noise in, a digit out, which one it decides. Running: "
                  f"{describe('gan', models['gan'])}.")
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
    serving.first_result(demo, lambda: [generate_gan(0, 16), interpolate_gan(0, 1, 10)], [out, strip])


def create_cgan_demo(models, demo):
    def generate_cgan(digit, count, seed):
        import torch

        from condgen.sample import digit_table, noise

        digit, count = int_in_range(digit, "digit", 0, 9), int_in_range(count, "count", 1, MAX_COUNT)
        seed, G = int_in_range(seed, "seed", 0, MAX_SEED), served_generator(models, "cgan")
        with torch.inference_mode():  # a table of one row: count styles of one digit
            return grid_file(digit_table(G, noise(count, G.nz, seed), [digit]), cols=math.ceil(math.sqrt(count)))

    def generate_cgan_digits(columns, seed):
        import torch

        from condgen.sample import digit_table, noise

        columns, seed = int_in_range(columns, "columns", 1, MAX_COLUMNS), int_in_range(seed, "seed", 0, MAX_SEED)
        G = served_generator(models, "cgan")
        with torch.inference_mode():
            return grid_file(digit_table(G, noise(columns, G.nz, seed)), cols=columns)

    serving.live_markdown(demo,
                  lambda: "Conditional GAN: you pick the digit, the noise picks the style. Running: "
                  f"{describe('cgan', models['cgan'])}.")
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


def create_sketch_demo(models, demo):
    def colorize_each(image, chosen, stochastic, flat=False, hints=None):
        """An RGB sketch -> [U-Net output, its PatchGAN map, encoder-decoder output, its map]; hints:
        an RGBA image of the sketch's size or None (condgen.colorize.colorize); flat:
        condgen.colorize.flat_colors on each output (the maps judge what is shown)."""
        import torch

        from condgen.colorize import colorize_and_judge
        from condgen.paper import sketch_note

        if chosen not in [*GENERATORS, "Both"]:
            raise serving.UserError(f"generator must be one of {[*GENERATORS, 'Both']}, got {chosen!r}")
        if not isinstance(stochastic, bool):
            raise serving.UserError(f"stochastic must be true or false, got {stochastic!r}")
        if not isinstance(flat, bool):
            raise serving.UserError(f"flat must be true or false, got {flat!r}")
        note = sketch_note(image)
        if note:  # still answer, but say that this is not what the models know
            gr.Warning(note, duration=20)
        names = [n for label, n in GENERATORS.items() if chosen in (label, "Both")]
        nets, outputs = {n: served_generator(models, n) for n in names}, []
        for name in GENERATORS.values():
            images = (None, None)
            if name in nets:
                try:  # stochastic: the raw G, dropout on (set at load); else the folded eval copy
                    with torch.inference_mode():
                        images = colorize_and_judge(nets[name] if stochastic else models[name].G_eval, models[name].D,
                                                    image, hints, flat)
                except ValueError as e:  # colorize's own checks, e.g. a blank sketch
                    raise serving.UserError(f"{str(e)[:1].upper()}{str(e)[1:]}.") from e
            outputs += [None if v is None else serving.png_file(v) for v in images]
        return outputs

    def colorize_upload(image, generator, stochastic, flat=False, hints=None):
        from condgen.colorize import to_rgb

        sketch = to_rgb(serving.within_size_limits(serving.read_image(image)))
        if hints is not None:  # any size with the sketch's aspect ratio: condgen.colorize.to_hints resizes it
            hints = serving.read_hints(hints, sketch.size)
        return colorize_each(sketch, generator, stochastic, flat, hints)

    def colorize_sketch(editor, hint_editor, generator, stochastic, flat):
        from condgen.colorize import to_rgb

        editor = editor or {}
        image, background = editor.get("composite"), editor.get("background")
        if image is None or image.getchannel("A").getbbox() is None:  # nothing drawn, or the canvas cleared away
            raise serving.UserError("No sketch: pick the brush and draw on the canvas, or upload an image.")
        hints = serving.hint_layer(hint_editor, image.size)  # RGBA of the canvas' size, or None
        # fixed_canvas fits an upload into the 512 px canvas, centred: cut the empty bands off again
        # (strokes drawn on them included), so the output keeps the upload's aspect ratio; the hints likewise
        if background is not None and background.getchannel("A").getbbox() is not None:
            box = image.getchannel("A").getbbox()
            image, hints = image.crop(box), hints.crop(box) if hints is not None else None
        sketch = to_rgb(serving.within_size_limits(image))
        return colorize_each(sketch, generator, stochastic, flat, hints)

    def show_sketch_under_hints(editor, hint_editor):
        """The hints canvas shows the sketch under the user's hints (a layer of their own); the
        sketch is kept (gr.State) for Clear hints, which then sends nothing from the browser."""
        from condgen.data import on_white

        composite = (editor or {}).get("composite")
        if composite is None:
            return None, None
        background = on_white(composite).convert("RGBA")
        layer = serving.hint_layer(hint_editor, composite.size)
        return {"background": background, "layers": [layer] if layer else [], "composite": None}, background

    def intro():
        sources = "; ".join(f"{label}: {describe(n, models[n])}{variant_note(models[n])}"
                            for label, n in GENERATORS.items())
        first = Path(EXAMPLES[0]).name if EXAMPLES else "nothing"
        return ("Pix2Pix: draw dark lines on the white canvas (or upload a sketch, on any paper), pick a generator, "
                "Colorize. **Your colors:** on *Color hints*, dab a dot or a short stroke of a color inside a "
                "region and that region takes it; no hints, the generator picks. "
                f"Shown first: {first}, an example, automatic and with 4 color dots, by the U-Net. "
                f"Trained on Sketch2Pokemon-style line art. Running: {sources}.")

    serving.live_markdown(demo, intro)
    with gr.Row():
        with gr.Column():
            # No initial background: with one, gradio 6.31's editor ignores the examples. Empty canvas pixels are
            # transparent (RGBA: colorize_sketch finds an upload's box by its alpha), and to_rgb puts them on
            # white. fixed_canvas: an upload is fitted into the 512 px canvas in the browser, so a 3000 px photo
            # is not sent whole (20 MB limit: 413).
            with gr.Tabs():
                with gr.Tab("Lines", id="lines") as lines_tab:
                    sketch = gr.ImageEditor(
                        None, label="sketch", type="pil",
                        image_mode="RGBA", sources=("upload", "clipboard"), canvas_size=(512, 512),
                        fixed_canvas=True, height=640, layers=False, transforms=(),
                        brush=gr.Brush(default_size=3, colors=["#000000"], color_mode="fixed"),
                        eraser=gr.Eraser(default_size=12), elem_id="sketch",
                    )
                # Hints on a canvas of their own, with the sketch as its background: a hint never
                # becomes a line, and clearing them leaves the lines
                with gr.Tab("Color hints", id="hints") as hints_tab:
                    hint_editor = gr.ImageEditor(
                        None, label="color hints: dab a color inside a region", type="pil", image_mode="RGBA",
                        sources=(), canvas_size=(512, 512), fixed_canvas=True, height=640, layers=False,
                        transforms=(), brush=gr.Brush(default_size=8, colors=PALETTE, color_mode="defaults"),
                        eraser=gr.Eraser(default_size=16), elem_id="hints", format="png",
                    )
                    clear_hints = gr.Button("Clear hints", size="sm")
            generator = gr.Radio([*GENERATORS, "Both"], value="U-Net", label="generator")
            stochastic = gr.Checkbox(
                False, label="stochastic (as in the paper)",
                info="Off: the same sketch always gives the same picture. On: dropout stays switched on, the paper's "
                     "only source of randomness, so each click gives a slightly different picture; the changes are "
                     "small (a few levels out of 255 on average), often too small to see.")
            flat = gr.Checkbox(
                False, label="flat colors (post-processing)",
                info="Off: the generator's picture as it is. On: every region your lines close off takes one color, "
                     "the median of what the generator painted there, with its shading kept (as a colorist's "
                     "flatting pass); lines, background and regions left open by a gap stay as painted.")
            btn = gr.Button("Colorize", variant="primary")
            image = serving.ImageInput(visible=False, type="filepath", image_mode=None, label="image")  # /colorize's
            hints = serving.HintsInput(visible=False, type="filepath", image_mode=None, label="hints")
        with gr.Column():
            # the output at about the canvas' size, its PatchGAN map smaller beside it
            with gr.Row() as row_unet:
                y_unet = gr.Image(label="U-Net", format="png", interactive=False, elem_id="out-unet", height=420,
                                  scale=2)
                m_unet = gr.Image(label="U-Net map", format="png", interactive=False, elem_id="map-unet", height=420,
                                  scale=1)
            with gr.Row(visible=False) as row_ed:
                y_ed = gr.Image(label="encoder-decoder", format="png", interactive=False, elem_id="out-encdec",
                                height=420, scale=2)
                m_ed = gr.Image(label="enc-dec map", format="png", interactive=False, elem_id="map-encdec", height=420,
                                scale=1)
            gr.Markdown("Map: the discriminator's verdict on each 70x70 patch of the output (PatchGAN; a PixelGAN "
                        "judges each pixel's color), seen "
                        "together with the sketch: green = looks real, red = looks fake.")
    outputs = [y_unet, m_unet, y_ed, m_ed]
    generator.change(lambda g: (gr.Row(visible=g != "Encoder-decoder"), gr.Row(visible=g != "U-Net")),
                     generator, [row_unet, row_ed], queue=False, api_visibility="private")
    btn.click(colorize_sketch, [sketch, hint_editor, generator, stochastic, flat], outputs,
              api_visibility="undocumented")
    gr.on([], colorize_upload, [image, generator, stochastic, flat, hints], outputs, api_name="colorize",
          preprocess=False)
    # no queue: cheap (no torch), and the page waits on one plain request
    shown_sketch = gr.State(None)
    hints_tab.select(show_sketch_under_hints, [sketch, hint_editor], [hint_editor, shown_sketch], queue=False,
                     api_visibility="private")
    hints_tab.select(None, js="() => (" + SELECT_BRUSH + ")('hints')")
    lines_tab.select(None, js="() => (" + SELECT_BRUSH + ")('sketch')")
    clear_hints.click(lambda bg: bg and {"background": bg, "layers": [], "composite": None}, shown_sketch,
                      hint_editor, queue=False, api_visibility="private")
    gr.Examples(EXAMPLES, [sketch], label="Example sketches: click one to load it into the canvas", elem_id="examples")

    def example():  # the first example, colorized by the U-Net with its hints, and beside it without
        from PIL import Image

        from condgen.colorize import colorize, to_rgb

        hints = EXAMPLE_HINTS if Path(EXAMPLE_HINTS).is_file() else None
        results = colorize_each(to_rgb(EXAMPLES[0]), "U-Net", False, hints=hints)  # a gr.Error without a U-Net
        automatic = colorize(models["unet"].G_eval, EXAMPLES[0])
        shown = [serving.with_hints(EXAMPLES[0], hints), automatic, Image.open(results[0])]
        return [*results, serving.png_file(serving.strip(shown))]

    with gr.Row():
        comparison = gr.Image(label="example: sketch with its hints | automatic | with the hints", format="png",
                              interactive=False, elem_id="example-hints", height=220)
    if EXAMPLES:
        serving.first_result(demo, example, [*outputs, comparison])


def create_about(models, demo):
    def about():
        rows = "\n".join(f"| {name} | {describe(name, m)} | `{MODELS[name][3]}` |" for name, m in models.items())
        return f"""## Weights
| model | loaded from | train your own |
| --- | --- | --- |
{rows}

Each model comes from a Hub repo if one is set (`--cgan-repo user/repo[@revision]`, `CONDGEN_CGAN_REPO`),
else from a local folder if one is given (`--cgan-dir runs/cgan`, `CONDGEN_CGAN_DIR`: a training run is
never picked up on its own, so a smoke test does not replace the bundled weights), else from the bundled
`weights/`. Pix2Pix first needs training pairs:
`python -m condgen.sketchify ../shared/data/pokemon/color data/sketch2pokemon-train`.
The endpoints and a `gradio_client` example are under "Use via API" at the bottom of the page."""

    serving.live_markdown(demo, about)


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
            with gr.Tab("About"):
                create_about(models, demo)
        sketch_tab.select(None, js="() => (" + SELECT_BRUSH + ")('sketch')")
    return demo.queue(default_concurrency_limit=concurrency, max_size=64)


def main(argv=None, **launch_kwargs):
    args = parse_args(argv)
    models = serving.Models(lambda: load_models(args))
    demo = build_demo(models, args.concurrency)
    block = not launch_kwargs.pop("prevent_thread_lock", False)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size="20mb", prevent_thread_lock=True,
                **launch_kwargs)
    models.start()  # only now: the loading thread would hold the GIL while the page is being set up
    if block:
        demo.block_thread()
    return demo


if __name__ == "__main__":
    main()
