"""The weights a served model runs on: resolved once (Hub repo, else a local folder, else the bundled
weights/; condgen.hub.resolve), with the PatchGAN trained beside a pix2pix generator, and said in
plain words for the app's tabs.

Folder layouts, as train_pix2pix.py writes and pushes them: a run holds RUN/generator and
RUN/discriminator and pushes REPO and REPO-discriminator; the bundled weights keep the
discriminator inside the generator's folder (weights/pix2pix-unet/discriminator).
"""

import json
import os
from pathlib import Path
from typing import NamedTuple

import torch

from . import hub


class Loaded(NamedTuple):
    """A served model. Each generator's mode is set once, here, and never flipped per request: G is
    in eval mode (MNIST) or, for pix2pix, in the paper's test-time mode with dropout on (the
    stochastic path); G_eval is pix2pix's deterministic copy, BatchNorm folded in."""

    G: "torch.nn.Module | None"  # None: no weights found, and source says where we looked
    D: "torch.nn.Module | None"  # pix2pix: the PatchGAN trained with G, for the real/fake map
    source: str
    G_eval: "torch.nn.Module | None" = None


def load(cls, repo=None, local=None, bundled=None, pix2pix=False):
    """Loaded for a generator class; repo may be REPO@REVISION. A missing model is no error: its
    Loaded has G None and says why in source."""
    from .pix2pix import at_test_time
    from .precision import inference_generator

    repo, _, revision = (repo or "").partition("@")
    local = hub.model_folder(local) if local else None
    try:
        G, source = hub.resolve(cls, repo_id=repo or None, local_dir=local, bundled=bundled, revision=revision or None)
    except (OSError, ValueError) as e:
        return Loaded(None, None, str(e))
    if not pix2pix:
        return Loaded(G.eval(), None, source)
    D, note = load_discriminator(source, repo, local, bundled)
    # the eval-mode path: BatchNorm folded in, NHWC weights, bf16 where --amp auto picks it
    return Loaded(at_test_time(G, stochastic=True), D, source + note, inference_generator(G))


def load_discriminator(source, repo, local, bundled):
    """The PatchGAN saved with the generator that source names, or None, and a note saying why not."""
    from .pix2pix import Discriminator

    kind = source.split()[0]
    try:
        if kind == "hub":
            return hub.resolve(Discriminator, repo_id=f"{repo}-discriminator")[0], ""
        folder = local if kind == "local" else bundled
        for d in (os.path.join(folder, "discriminator"), os.path.join(folder, "..", "discriminator")):
            if os.path.isfile(os.path.join(d, "config.json")):
                return Discriminator.from_pretrained(d), ""
    except (OSError, ValueError) as e:
        return None, f"; no PatchGAN ({str(e)[:200]})"
    return None, "; no PatchGAN saved beside it, so no real/fake map"


def short(path):
    """A path as the user would type it: relative to the working folder when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


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


def describe(name, loaded, run):
    """In plain words, which weights a tab runs on, e.g. 'the bundled weights (weights/cgan)'. run:
    the training script's default --out for this model, pointed out when it holds weights."""
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
    if kind == "bundled" and os.path.isfile(os.path.join(run, "generator", "config.json")):
        text += f". A training run of yours is in {run}: `python app.py --{name}-dir {run}` serves it"
    return text
