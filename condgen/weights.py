"""The served models: where each one's weights come from (a Source: a Hub repo, else a local folder,
else the bundled weights/), loaded once with the PatchGAN trained beside a pix2pix generator, and
said in plain words for the app's tabs; and a sketch prepared once per request for every generator
and PatchGAN that works on it (condgen.colorize.colorize prepares it again on each call).

Folder layouts, as train_pix2pix.py writes and pushes them: a run holds RUN/generator and
RUN/discriminator and pushes REPO and REPO-discriminator; the bundled weights keep the
discriminator inside the generator's folder (weights/pix2pix-unet/discriminator).
"""

import json
import math
import os
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image

from . import hints as H
from . import hub


class Spec(NamedTuple):
    cls: str  # the generator's class in condgen
    run: str  # the training script's --out default: where a run of the user's own would be
    bundled: str  # its folder in weights/
    train: str  # the command that trains it


MODELS = {
    "gan": Spec("GeneratorGAN", "runs/gan", "gan", "python train_mnist.py --model gan"),
    "cgan": Spec("GeneratorCGAN", "runs/cgan", "cgan", "python train_mnist.py --model cgan"),
    "unet": Spec("UNetGenerator", "runs/pix2pix-unet", "pix2pix-unet", "python train_pix2pix.py --generator unet"),
    "encoder-decoder": Spec("EncoderDecoderGenerator", "runs/pix2pix-encoder-decoder", "pix2pix-encoder-decoder",
                            "python train_pix2pix.py --generator encoder-decoder"),
}
PIX2PIX = ("unet", "encoder-decoder")


class Source(NamedTuple):
    """Where a served model's weights come from: kind "hub" (where: REPO[@REVISION]), "local" or
    "bundled" (where: the folder), or "none" when no weights were found. notes: phrases for the
    user (why an earlier place was passed over, what is missing beside the weights), never parsed."""

    kind: str
    where: str
    notes: tuple = ()


class Loaded(NamedTuple):
    """A served model. Each generator's mode is set once, here, and never flipped per request: G is
    in eval mode (MNIST) or, for pix2pix, in the paper's test-time mode with dropout on (the
    stochastic path); G_eval is pix2pix's deterministic copy, BatchNorm folded in."""

    G: "torch.nn.Module | None"  # None: no weights found, and source.notes say where we looked
    D: "torch.nn.Module | None"  # pix2pix: the PatchGAN trained with G, for the real/fake map
    source: Source
    G_eval: "torch.nn.Module | None" = None


def short(path):
    """A path as the user would type it: relative to the working folder when inside it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def find(cls, repo=None, local=None, bundled=None):
    """(model or None, Source): the Hub repo (REPO[@REVISION]) if one is given, else the local
    folder if one is given, else the bundled one. A local folder that holds a broken model is not
    passed over: the user asked for it, so its error is said."""
    notes = []
    if repo:
        repo_id, _, revision = repo.partition("@")
        try:
            return hub.resolve(cls, repo_id=repo_id, revision=revision or None)[0], Source("hub", repo)
        except (OSError, ValueError) as e:
            notes.append(f"the Hub repo could not be used ({str(e).splitlines()[0][:200]})")
    for kind, folder in (("local", local), ("bundled", bundled)):
        if not folder:
            continue
        folder = str(hub.model_folder(folder))  # a training run's folder: its generator/
        if not os.path.isfile(os.path.join(folder, "config.json")):
            notes.append(f"no saved model in {short(folder)}" if os.path.isdir(folder)
                         else f"no such folder: {short(folder)}")
            continue
        try:
            return cls.from_pretrained(folder), Source(kind, folder, tuple(notes))
        except (OSError, ValueError) as e:
            return None, Source("none", folder, (*notes, str(e).splitlines()[0][:300]))
    return None, Source("none", "", tuple(notes))


def find_discriminator(source, repo):
    """(the PatchGAN saved with the generator from source, or None; a note when there is none)."""
    from .pix2pix import Discriminator

    try:
        if source.kind == "hub":
            return hub.resolve(Discriminator, repo_id=f"{repo.partition('@')[0]}-discriminator")[0], ()
        for d in (os.path.join(source.where, "discriminator"), os.path.join(source.where, "..", "discriminator")):
            if os.path.isfile(os.path.join(d, "config.json")):
                return Discriminator.from_pretrained(d), ()
    except (OSError, ValueError) as e:
        return None, (f"no PatchGAN ({str(e).splitlines()[0][:200]})",)
    return None, ("no PatchGAN saved beside it, so no real/fake map",)


def judging_alone(D):
    """D judging each picture with that picture's own BatchNorm statistics, as it judged its training
    batches (real and generated ones apart, train_pix2pix.py), changed in place. With the running
    averages over both (eval mode) the bundled PatchGANs cannot tell real art from G's: on 24
    held-out Sketch2Pokemon pairs the U-Net's D calls 8% of the truth's patches real and 6% of its
    G's, the encoder-decoder's prefers its G (83% to 71%). Judging alone, real art 100% and 79%
    (medians), G's outputs 1% and 0%."""
    for m in D.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked = False, None, None, None
    return D.eval().requires_grad_(False)


def load(name, repo=None, local=None, bundled=None):
    """The served model of that name (a MODELS key); repo may be REPO@REVISION. A missing model is
    no error: its Loaded has G None, and its source says where we looked."""
    import condgen

    from .pix2pix import at_test_time
    from .precision import inference_generator

    G, source = find(getattr(condgen, MODELS[name].cls), repo, local, bundled)
    if G is None or name not in PIX2PIX:
        return Loaded(None if G is None else G.eval(), None, source)
    D, note = find_discriminator(source, repo)
    source = source._replace(notes=source.notes + note)
    # the eval-mode path: BatchNorm folded in, NHWC weights, bf16 where --amp auto picks it
    D = None if D is None else judging_alone(D)
    return Loaded(at_test_time(G, stochastic=True), D, source, inference_generator(G))


def load_all(weights_dir, repos=None, dirs=None):
    """Served: every model of MODELS, each from repos[name], else dirs[name], else weights_dir."""
    repos, dirs = repos or {}, dirs or {}
    return Served({name: load(name, repos.get(name), dirs.get(name), os.path.join(weights_dir, spec.bundled))
                   for name, spec in MODELS.items()})


def progress(folder):
    """' (epoch 3 of 70)' for a training run's generator folder, from its state.safetensors."""
    from safetensors import safe_open

    for state in (Path(folder) / "state.safetensors", Path(folder).parent / "state.safetensors"):
        try:
            with safe_open(state, "pt") as f:
                meta = json.loads(f.metadata()["condgen"])["meta"]
            epochs = meta.get("args", {}).get("epochs", "?")
            return f" (epoch {meta['epoch']} of {epochs}{', finished' if str(meta['epoch']) == epochs else ''})"
        except Exception:  # no state, or not ours: say nothing
            continue
    return ""


def describe(name, loaded):
    """In plain words, which weights a tab runs on, e.g. 'the bundled weights (weights/cgan)', and
    a training run of the user's own in the training script's default --out, if one is there."""
    kind, where, notes = loaded.source
    if kind == "none":
        return f"no weights found ({'; '.join(notes)})"
    text = {"hub": f"the Hub repo {where}", "local": f"your training run {short(where)}{progress(where)}",
            "bundled": f"the bundled weights ({short(where)})"}[kind] + "".join(f"; {n}" for n in notes)
    run = MODELS[name].run
    if kind == "bundled" and os.path.isfile(os.path.join(run, "generator", "config.json")):
        text += f". A training run of yours is in {run}: `python app.py --{name}-dir {run}` serves it"
    return text


def variant_note(loaded):
    """' (a variant: ...)' for a generator that is not the paper's architecture, else ''."""
    side = getattr(loaded.G, "bottleneck", 1)  # the encoder-decoder's code size; the paper's is 1
    if side == 1:
        return ""
    note = (f" (a variant: no skips as in the paper, but a code of {side}x{side} where the paper's is 1x1, which "
            "learned only a cream silhouette on our data")
    if not any(isinstance(m, torch.nn.Dropout) for m in loaded.G.modules()):
        note += "; it has no dropout, so 'stochastic' leaves it unchanged"
    return note + ")"


class Sketch(NamedTuple):
    """A sketch as every generator and PatchGAN of one request takes it."""

    size: tuple  # (w, h): the user's, which the outputs take back
    x: torch.Tensor  # (1, 3, 256, 256) in [-1, 1]: paper white, lines black, padded to a square, resized
    box: tuple  # (left, top, right, bottom) of the sketch inside x, to crop the outputs back
    hints: "torch.Tensor | None"  # (1, 4, 256, 256) laid out as x; None: automatic
    labels: "torch.Tensor | None"  # x's regions with its open areas (region_labels), for hints and flat
    note: str  # condgen.paper.sketch_note: why this does not look like a line sketch, or ''


def prepare(image, hints=None, flat=False):
    """A sketch (path, PIL image or array) and its hints (as condgen.colorize.colorize takes them)
    -> Sketch, checked (a ValueError says what is wrong). Its paper is normalized once here; a
    'Both' request did it four times (each colorize and patch_map), ~40 ms each at 512 px."""
    from .color import region_labels
    from .colorize import _hints_to_square, _to_square, check_sketch, to_hints, to_rgb
    from .paper import normalize_sketch, sketch_note

    raw = to_rgb(image)
    rgb = normalize_sketch(raw)
    check_sketch(rgb)
    x, box = _to_square(rgb)
    hint_map = _hints_to_square(to_hints(hints, rgb.size), box) if hints is not None else None
    labels = region_labels(x, open_areas=True) if hint_map is not None or flat else None
    return Sketch(rgb.size, x, box, hint_map, labels, sketch_note(raw))


def paint(G, sketch, flat=False):
    """G's picture of a prepared sketch, as condgen.colorize.colorize paints it (hints spread through
    the sketch's regions and applied after G; flat colors), RGB PIL image of the sketch's size."""
    from .colorize import _to_pil, flat_colors

    w = next(G.parameters())
    x = sketch.x.to(w.device, w.dtype)  # w.dtype: bf16 for condgen.precision.inference_generator's copy
    if sketch.hints is None:
        y = G(x).float().cpu()
    else:  # condgen.hints.generate, on the regions found once
        spread = H.spread(sketch.hints, sketch.labels).to(w.device, w.dtype) if G.hints else None
        y = H.apply(G(x, spread).float().cpu(), sketch.hints, sketch.labels)
    if flat:
        labels = sketch.labels[0]
        y = flat_colors(y, sketch.x, [labels == k for k in range(1, int(labels.max()) + 1)])
    left, top, right, bottom = (round(v) for v in sketch.box)
    box = (left, top, max(right, left + 1), max(bottom, top + 1))  # a 1-px-thin input keeps 1 px
    return _to_pil(y[0]).crop(box).resize(sketch.size, Image.LANCZOS)


def judge(D, sketch, y):
    """D's P(real) for each patch of the picture y shown for the sketch: [30, 30] (a PixelGAN's
    [256, 256]), as condgen.colorize.patch_map, the sketch not normalized again."""
    from .colorize import _to_square, to_rgb

    w = next(D.parameters())
    y_square, _ = _to_square(to_rgb(y))
    return torch.sigmoid(D(sketch.x.to(w.device), y_square.to(w.device)))[0, 0].float().cpu().numpy()


class Served(dict):
    """The served models by name (Loaded); colorize answers the sketch tab."""

    def describe(self, name):
        """describe and variant_note of the model name."""
        return describe(name, self[name]) + variant_note(self[name])

    def about(self):
        """The About tab: each model's weights, where they could come from instead, how to train them."""
        rows = "\n".join(f"| {name} | {self.describe(name)} | `{spec.train}` |" for name, spec in MODELS.items())
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

    def generator(self, name):
        """The served generator of that name, or a ValueError saying where we looked and how to get one."""
        if self[name].G is None:
            raise ValueError(f"No weights for the {name} generator ({'; '.join(self[name].source.notes)}). Train "
                             f"them with `{MODELS[name].train}` or point --{name}-dir / --{name}-repo at a saved "
                             "model.")
        return self[name].G

    @torch.inference_mode()
    def samples(self, name, seed, count, digit=None):
        """count samples of seed's noise as a grid (PIL): the GAN's, or the cGAN's of that digit."""
        from .sample import digit_table, grid, noise

        G = self.generator(name)
        z = noise(count, G.nz, seed)
        x = G(z) if digit is None else digit_table(G, z, [digit])  # a table of one row: count styles of one digit
        return grid(x, cols=math.ceil(math.sqrt(count)))

    @torch.inference_mode()
    def interpolation(self, seed_a, seed_b, steps):
        """The GAN's first sample of seed_a turning into seed_b's, through z-space (slerp): a strip of steps."""
        from .sample import grid, noise, slerp

        G = self.generator("gan")
        return grid(G(slerp(noise(1, G.nz, seed_a)[0], noise(1, G.nz, seed_b)[0], torch.linspace(0, 1, steps))),
                    cols=steps)

    @torch.inference_mode()
    def digit_table(self, columns, seed):
        """The cGAN's every digit, a row each, in columns styles (seed's noise) that each row shares."""
        from .sample import digit_table, grid, noise

        G = self.generator("cgan")
        return grid(digit_table(G, noise(columns, G.nz, seed)), cols=columns)

    @torch.inference_mode()
    def colorize(self, image, names, stochastic=False, flat=False, hints=None):
        """(sketch_note, [(picture, D's map over it or None) for each pix2pix generator in names]), the
        sketch prepared once for all. stochastic: the raw G, dropout on; else its folded eval copy."""
        from .colorize import heat_overlay

        for name in names:
            self.generator(name)  # all there, or none is computed
        sketch = prepare(image, hints, flat)
        out = []
        for name in names:
            G, D, _, G_eval = self[name]
            y = paint(G if stochastic else G_eval, sketch, flat)
            out.append((y, None if D is None else heat_overlay(judge(D, sketch, y), y)))
        return sketch.note, out
