"""What both training scripts do around their loop: start-up, resume, the per-epoch save, the model
card's common parts and the push. The flags, the D-then-G step and the `for epoch / for batch` loop
stay in train_mnist.py and train_pix2pix.py, where a reader looks for them.
"""

import argparse
import copy
import json
import platform
import shlex
import sys
import tomllib
from pathlib import Path

import torch
from tqdm import tqdm

from . import distributed
from .checkpoint import atomic_write, check_resume, load_state, save_pretrained_atomic, save_state
from .hub import model_folder, push_run
from .precision import describe, resolve_amp


def parse(parser, argv=None):
    """Parse argv (default: sys.argv[1:]) on top of a recipe: `--recipe FILE` reads a TOML file of
    flag = value lines (recipes/*.toml; a flag spelled as on the command line, without its dashes)
    and makes them the parser's defaults, so that flags given on the command line override it. The
    resolved values, recipe and overrides, are what args.json and the model card record."""
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe")
    known, _ = pre.parse_known_args(argv)
    if known.recipe:
        parser.set_defaults(**recipe_values(parser, known.recipe))
    return parser.parse_args(argv)


def recipe_values(parser, path):
    """{dest: value} of a recipe file, each value checked as its flag would be (type, choices); an
    unknown flag or a bad value is a parser error naming the file."""
    try:
        recipe = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        parser.error(f"--recipe {path}: cannot read it ({e})")
    actions = {a.option_strings[0][2:]: a for a in parser._actions if a.option_strings}
    values = {}
    for flag, value in recipe.items():
        action = actions.get(flag)
        if action is None or flag in ("recipe", "help", "resume"):
            parser.error(f"--recipe {path}: {flag!r} is not a flag of this script")
        if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):  # a switch
            if not isinstance(value, bool):
                parser.error(f"--recipe {path}: {flag} must be true or false, got {value!r}")
        else:
            try:
                value = action.type(str(value)) if action.type else str(value)
            except (TypeError, ValueError):
                parser.error(f"--recipe {path}: {flag} = {value!r} is not a valid value")
            if action.choices is not None and value not in action.choices:
                parser.error(f"--recipe {path}: {flag} must be one of {', '.join(map(str, action.choices))}, "
                             f"got {value!r}")
        action.required = False  # e.g. train_mnist's --model, given by the recipe
        values[action.dest] = value
    return values


def command(script, parser, args):
    """The command line that gives args: --recipe FILE, then each flag whose parsed value is not its
    default (the recipe's, where it sets one). Built from the parsed arguments, not sys.argv, which is
    another program's when main() is called from Python."""
    words = [f"python {script}"] + ([f"--recipe {shlex.quote(args.recipe)}"] if getattr(args, "recipe", None) else [])
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        skip = action.dest in ("help", "recipe", "resume") or value == parser.get_default(action.dest)
        if not action.option_strings or skip:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            words.append(flag if value else f"--no-{flag[2:]}")
        elif action.nargs == 0:  # store_true
            words.append(flag)
        else:
            words.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(words)


def start(args):
    """(rank, world_size, device, amp) of this process. Records the precision --amp picked in args, and
    seeds torch with seed + rank: each rank its own noise, dropout and augmentation (DDP gives them
    rank 0's initial weights)."""
    rank, world_size, device = distributed.setup(args.device)
    amp = resolve_amp(args.amp, device)
    args.precision = describe(args.amp, device)  # what auto picked, in args.json and the model card
    torch.manual_seed(args.seed + rank)
    return rank, world_size, device, amp


def show_config(args, master):
    """The resolved arguments as strings: printed by rank 0, saved as args.json and in the state's meta."""
    config = {k: str(v) for k, v in vars(args).items()}
    if master:
        print(json.dumps(config))
        print(f"precision: {args.precision}")
    return config


def resume(args, config, keys, G, D, G_ema, optimizers, shuffle, device, rank):
    """With --resume, continue args.out's run: refuse it if a flag in keys changed (another kind of
    run), load G, D and the optimizers, G_ema if the file has one (else the average starts from G),
    and every rank's RNG streams. Then rank 0 writes args.json. Returns (start epoch, history)."""
    state_file, start_epoch, history = args.out / "state.safetensors", 0, []
    if args.resume:  # every rank reads the file (multi-node: --out on a shared filesystem)
        try:
            check_resume(state_file, args, keys)
            rng, meta = load_state(state_file, {"G": G, "D": D}, optimizers)
            if G_ema is not None:
                G_ema.load_state_dict(G.state_dict())
                load_state(state_file, {"G_ema": G_ema}, optional=("G_ema",))
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f"error: cannot resume: {e}")
        distributed.set_rng_states(distributed.own_rng_states(rng, rank, args.seed), shuffle, device)
        start_epoch, history = meta["epoch"], meta["history"]
        if rank == 0:
            print(f"resumed {state_file} at epoch {start_epoch}")
    if rank == 0:  # after the resume check: a refused resume leaves the run's args.json alone
        atomic_write(args.out / "args.json", lambda tmp: Path(tmp).write_text(json.dumps(config, indent=1)))
    return start_epoch, history


def constant_then_linear_decay(lr, epoch, epochs, decay_epochs):
    """The learning rate of epoch (from 0): lr for the first epochs - decay_epochs epochs, then a
    linear decay toward 0 over the last decay_epochs (pix2pix, Isola et al. 2017, Sec. 6.2)."""
    decay_start = epochs - decay_epochs
    if epoch < decay_start:
        return lr
    return lr * (1 - (epoch - decay_start + 1) / (decay_epochs + 1))


def set_lr(optimizers, lr):
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr


def init_from(run_dir, G, D, G_ema, master, load_D=None, adapt_G=None):
    """--init-from RUN: G (and G_ema) from RUN/generator and D from RUN/discriminator, with fresh Adam
    moments; RUN may also be published weights with their discriminator inside (weights/pix2pix-unet).
    Strict loads: the architecture flags must match the run's; load_D(saved D, D) -> note loads D
    another way instead (pix2pix: fresh for another --ndf, the finest scale only for more --d-scales)
    and says how, "" when it loaded all of it. adapt_G(saved G, G) -> the saved G made to fit G
    (pix2pix: a hint input added to a G saved without one)."""
    try:
        saved = type(G).from_pretrained(model_folder(run_dir))
        G.load_state_dict((adapt_G(saved, G) if adapt_G is not None else saved).state_dict())
        D_saved = type(D).from_pretrained(Path(run_dir) / "discriminator")
        if load_D is not None:
            note = load_D(D_saved, D)
        else:
            D.load_state_dict(D_saved.state_dict())
            note = ""
    except (OSError, ValueError, RuntimeError) as e:  # ValueError: condgen.hub.CheckpointError
        sys.exit(f"error: cannot start from {run_dir}: {e}")
    if G_ema is not None:
        G_ema.load_state_dict(G.state_dict())
    if master:
        print(f"initialized G and D from {run_dir}" if not note else f"initialized G from {run_dir}; {note}")


def progress(batches, total, epoch, epochs, master):
    """The epoch's tqdm bar: rank 0's as tqdm decides (none when the output is not a terminal), no
    other rank's."""
    return tqdm(batches, total=total, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=None if master else True)


def log_epoch(out, history):
    """Print the epoch's record, rounded, and rewrite out/log.jsonl with every epoch's."""
    print(json.dumps(_rounded(history[-1])))
    atomic_write(out / "log.jsonl", lambda tmp: Path(tmp).write_text("".join(json.dumps(h) + "\n" for h in history)))


def _rounded(d):
    """Four significant digits: a decaying lr of 4e-5 must not print as 0.0."""
    return {k: _rounded(v) if isinstance(v, dict) else float(f"{v:.4g}") if isinstance(v, float) else v
            for k, v in d.items()}


def save(out, published, state, optimizers, rng, meta, dtype="fp32"):
    """The save order: the publishable models (published: {folder name: model}), then the resume
    state, written last, so a run killed mid-save resumes from the previous complete save."""
    for name, model in published.items():
        # fp16 halves the files (the bundled weights); a copy, so training continues in fp32
        save_pretrained_atomic(copy.deepcopy(model).half() if dtype == "fp16" else model, out / name)
    save_state(out / "state.safetensors", state, optimizers, rng, meta)


def write_card(folder, args, front, heading, training, sections):
    """folder/README.md: front matter (library, license, then the lines in front), heading, a
    Training list (the command, then the script's own lines) and the further sections."""
    lines = "\n".join(f"- {line}" for line in [f"command: `{args.command}`", *training])
    front = "\n".join(["library_name: condgen", "license: mit", *front])
    text = f"---\n{front}\n---\n{heading}\n\n## Training\n{lines}\n\n{sections}"
    atomic_write(folder / "README.md", lambda tmp: Path(tmp).write_text(text))


def machine(history, device):
    """'wall time 12.3 min on cpu (x86_64, torch 2.x, 2 threads)' for the model card."""
    wall = sum(h["seconds"] for h in history)
    return (f"wall time {wall / 60:.1f} min on {device.type} ({platform.processor() or platform.machine()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads)")


def push(args, folders, message):
    """--push-to-hub: upload each (folder, repo id); a failed push keeps the run and says how to retry."""
    if args.push_to_hub:
        push_run(folders, message)
