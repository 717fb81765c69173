"""What both training scripts do around their loop: start-up, resume, the per-epoch save, the model
card's common parts and the push. The flags, the D-then-G step and the `for epoch / for batch` loop
stay in train_mnist.py and train_pix2pix.py, where a reader looks for them.
"""

import argparse
import copy
import json
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import torch
from safetensors import SafetensorError
from tqdm import tqdm

from . import distributed
from .checkpoint import atomic_write, check_resume, load_state, move_into, read_info, save_state
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
    if rank == 0:
        check_writable(args.out)
    torch.manual_seed(args.seed + rank)
    return rank, world_size, device, amp


def show_config(args, master):
    """The resolved arguments as strings, saved as args.json and in the state's meta. Rank 0 prints
    where they go and the command, not the 40 values: the plan line says what will run."""
    config = {k: str(v) for k, v in vars(args).items()}
    if master:
        print(f"{args.command}\n(every argument, the recipe's included: {args.out / 'args.json'})")
        print(f"precision: {args.precision}")
    return config


def resume(args, config, keys, G, D, G_ema, optimizers, shuffle, device, rank):
    """With --resume, continue args.out's run: refuse it if a flag in keys changed (another kind of
    run), load G, D and the optimizers, G_ema if the file has one (else the average starts from G),
    and every rank's RNG streams. Then rank 0 writes args.json. Returns (start epoch, history,
    midway): midway is {step, sums, seconds} for a state saved inside an epoch (Stop), else None."""
    state_file, start_epoch, history, midway = args.out / "state.safetensors", 0, [], None
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
        start_epoch, history, midway = meta["epoch"], meta["history"], meta.get("midway")
        if rank == 0:
            at = f"step {midway['step']} of epoch {start_epoch + 1}" if midway else f"epoch {start_epoch}"
            print(f"resumed {state_file} at {at}")
    if rank == 0:  # after the resume check: a refused resume leaves the run's args.json alone
        atomic_write(args.out / "args.json", lambda tmp: Path(tmp).write_text(json.dumps(config, indent=1)))
    return start_epoch, history, midway


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


class Meter:
    """What a run does and how long it takes, on rank 0: the plan before the first step; after
    `warmup` steps the time per step, epoch and for the rest of the run (a warning past a day);
    then a tqdm bar on a terminal, or a progress line every `every` seconds when the output goes to
    a file (where tqdm draws nothing)."""

    def __init__(self, steps_per_epoch, epochs, master, warmup=10, every=60.0):
        self.steps_per_epoch, self.epochs, self.master = steps_per_epoch, epochs, master
        self.warmup, self.every, self.tty = warmup, every, sys.stdout.isatty()
        self.done = 0  # steps this process ran: the ETA leaves out start-up and validation
        self.t0 = self.last = None

    def plan(self, what, dashboard=None):
        if self.master:
            print(f"plan: {what}; {self.steps_per_epoch} steps an epoch", flush=True)
            if dashboard:
                print(f"dashboard: {dashboard}", flush=True)

    def steps(self, batches, epoch, skip=0):
        """(i, batch) of the epoch from step `skip` on (a run resumed inside an epoch)."""
        it = enumerate(batches)
        for _ in range(skip):
            next(it)
        if self.master and self.tty:
            it = tqdm(it, total=self.steps_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{self.epochs}",
                      leave=False)
        self.epoch = epoch
        return it

    def step(self, i, losses=None):
        """Call after step i of the epoch; losses: a callable giving {name: value} (read only when shown)."""
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = self.last = now
            return
        self.done += 1
        if not self.master:
            return
        per_step = (now - self.t0) / self.done
        left = (self.epochs - self.epoch) * self.steps_per_epoch - i - 1  # steps
        if self.done == self.warmup:
            print(f"time: {per_step:.2f} s a step, {_duration(per_step * self.steps_per_epoch)} an epoch, "
                  f"{_duration(per_step * left)} for the rest of the run", flush=True)
            if per_step * left > 86400:
                print(f"warning: that is {per_step * left / 86400:.1f} days on this machine: a GPU, or a smaller "
                      "recipe (recipes/*.toml), or fewer --epochs", flush=True)
        if not self.tty and now - self.last >= self.every:
            self.last = now
            shown = " ".join(f"{k} {v:.3f}" for k, v in (losses() if losses else {}).items())
            print(f"epoch {self.epoch + 1}/{self.epochs} step {i + 1}/{self.steps_per_epoch} {shown} "
                  f"({per_step:.2f} s a step, {_duration(per_step * left)} left)", flush=True)


def _duration(seconds):
    return (f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400
            else f"{seconds / 3600:.1f} h")


class Stop:
    """Ctrl-C and SIGTERM ask the loop to stop after the step it is in: it saves a resumable state
    and exits with the --resume command, no traceback. A second Ctrl-C stops at once (the last
    save stays)."""

    def __init__(self):
        self.asked = False
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._ask)

    def _ask(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        print(f"\n{signal.Signals(signum).name}: saving after this step (Ctrl-C again to quit without saving)",
              file=sys.stderr, flush=True)

    def restore(self):
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)


def threading_main():
    import threading

    return threading.current_thread() is threading.main_thread()


def resume_command(args):
    """The command that continues args.out's run: the run's own command (which names --out where it
    is not the recipe's or the default) and --resume."""
    return f"{args.command} --resume"


def log_epoch(out, history):
    """Print the epoch's record, rounded, and rewrite out/log.jsonl with every epoch's."""
    print(json.dumps(_rounded(history[-1])))
    atomic_write(out / "log.jsonl", lambda tmp: Path(tmp).write_text("".join(json.dumps(h) + "\n" for h in history)))


def _rounded(d):
    """Four significant digits: a decaying lr of 4e-5 must not print as 0.0."""
    return {k: _rounded(v) if isinstance(v, dict) else float(f"{v:.4g}") if isinstance(v, float) else v
            for k, v in d.items()}


def save(out, published, state, optimizers, rng, meta, dtype="fp32"):
    """Write the publishable models (published: {folder name: model}) and the resume state into one
    staging folder, then move each file into place, the state last. A save that fails (disk full,
    a read-only folder) moves nothing: the published folders and the state stay at the same, last
    complete save. A run killed between the moves resumes from the state, which is the older one."""
    staged = Path(out) / ".saving"
    try:
        shutil.rmtree(staged, ignore_errors=True)
        for name, model in published.items():
            # fp16 halves the files (the bundled weights); a copy, so training continues in fp32
            (copy.deepcopy(model).half() if dtype == "fp16" else model).save_pretrained(staged / name)
        save_state(staged / "state" / "state.safetensors", state, optimizers, rng, meta)
    except (OSError, SafetensorError) as e:
        shutil.rmtree(staged, ignore_errors=True)
        kept = saved_epoch(out)
        kept = f"{out} keeps the state of epoch {kept}" if kept is not None else "nothing was saved yet"
        sys.exit(f"error: cannot save epoch {meta['epoch']} in {out} ({e}); {kept}. Free space (or pick another "
                 "--out) and rerun the same command with --resume")
    for name in published:
        move_into(staged / name, Path(out) / name)
    move_into(staged / "state", out)  # last
    shutil.rmtree(staged, ignore_errors=True)


def saved_epoch(out):
    """The epoch of out/state.safetensors, or None when there is none (or it is unreadable)."""
    try:
        return read_info(Path(out) / "state.safetensors")["meta"]["epoch"]
    except (ValueError, KeyError):  # no state, or not ours
        return None


def check_writable(out):
    """Exit with a sentence, before any work, when --out cannot be created or written."""
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        sys.exit(f"error: cannot write to --out {out} ({e.strerror or e}); pick another --out")


def write_card(folder, args, front, heading, training, sections):
    """folder/README.md: front matter (library, license, then the lines in front), heading, a
    Training list (the command, then the script's own lines) and the further sections."""
    lines = "\n".join(f"- {line}" for line in [f"command: `{args.command}`", *training])
    front = "\n".join(["library_name: condgen", "license: mit", *front])
    text = f"---\n{front}\n---\n{heading}\n\n## Training\n{lines}\n\n{sections}"
    atomic_write(folder / "README.md", lambda tmp: Path(tmp).write_text(text))


def machine(history, device):
    """'wall time 36.3 min on cpu (AMD EPYC, 2 cores, 1 thread; torch 2.14.1)' for the model card:
    speeds differ 1.8x between two EPYCs, so the card names what it ran on."""
    wall = sum(h["seconds"] for h in history)
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        threads = torch.get_num_threads()
        where = f"{cpu_name()}, {os.cpu_count()} cores, {threads} thread{'s' if threads > 1 else ''}"
    return f"wall time {wall / 60:.1f} min on {device.type} ({where}; torch {torch.__version__})"


def cpu_name():
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def push(args, folders, message):
    """--push-to-hub: upload each (folder, repo id); a failed push keeps the run and says how to retry."""
    if args.push_to_hub:
        push_run(folders, message)
