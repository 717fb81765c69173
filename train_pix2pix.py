"""Train Pix2Pix (Isola et al. 2017, https://arxiv.org/abs/1611.07004) on sketch -> color pairs.

    python -m condgen.sketchify ../shared/data/pokemon/color data/sketch2pokemon-train --method all
    python train_pix2pix.py --generator unet --data data/sketch2pokemon-train --out runs/pix2pix-unet

One plain loop: D step, then G step, on the paper's objective (Eq. 4)
    G* = arg min_G max_D  L_cGAN(G, D) + lambda_L1 * L_L1(G),
with D conditioned on the sketch, L1 between G(x) and the color image y, lambda_L1 = 100, Adam
2e-4 (0.5, 0.999). Defaults follow the TF tutorial's reference run (128 epochs, batch 4, its
augmentation); the paper trains with batch 1, `--augment paper` and `--lr-decay-epochs`.
Every epoch: a validation grid (sketch | output | truth), val L1/PSNR/SSIM/colorfulness in
log.jsonl, generator/ and discriminator/ (save_pretrained) and state.safetensors for --resume.

Data-parallel on several GPUs, CPU processes or nodes: the same script under torchrun,
    torchrun --standalone --nproc_per_node 4 train_pix2pix.py --generator unet --batch-size 1 ...
with DistributedDataParallel (condgen.distributed). --batch-size is per process: the global batch
is batch-size x world size. Rank 0 validates, logs and writes every file.
"""

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision

from condgen import distributed, hints, run, tracking
from condgen.checkpoint import atomic_write
from condgen.color import chroma, opponent, region_labels, sketch_regions
from condgen.data import PairDataset, load_pairs, rendering_folders, shuffled_batches, to_tanh_range
from condgen.ema import recalibrate_batchnorm, update_ema
from condgen.evaluate_pix2pix import baselines, hint_scores, predict, scores, table
from condgen.hub import push_error
from condgen.paper import normalize_batch
from condgen.pix2pix import BOTTLENECKS, GENERATOR_CLASSES, PATCH_SIZES, Discriminator, add_hint_input, decoder_spec
from condgen.precision import CHOICES, autocast, default_channels_last

# train_step's, in log.jsonl
LOSSES = ["loss_D_real", "loss_D_fake", "loss_G_GAN", "loss_G_L1", "loss_G_chroma", "loss_G_region", "loss_G_hint"]
# --resume continues a run only if these flags are unchanged (another --epochs is fine)
RESUME_KEYS = ["data", "renderings", "subset", "augment", "generator", "ngf", "ndf", "patch", "bottleneck", "ema",
               "batch_size", "lr", "beta1", "lambda_l1", "lambda_chroma", "lambda_region", "l1_only", "hints",
               "lambda_hint", "seed"]

REPO = Path(__file__).resolve().parent
DEFAULT_VAL = REPO.parent / "shared" / "data" / "pokemon" / "sketch2pokemon-val"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows the docstring as written, and every flag's default."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--recipe", metavar="FILE", default=None,
                   help="a recipe file (recipes/*.toml): its flags become the defaults, flags given here override them")
    # data
    p.add_argument("--data", default="data/sketch2pokemon-train",
                   help="training pairs: 512x256 images (sketch left, color right), A/ and B/ folders, or a "
                        "folder of such folders, one rendering of the sketches each (condgen.sketchify --method "
                        "all): one is drawn per image and step")
    p.add_argument("--renderings", default=None, metavar="NAMES",
                   help="comma-separated subfolders of --data to draw the sketches from (default: all); a name "
                        "listed twice is drawn twice as often, e.g. canny,detail,detail,bold")
    p.add_argument("--val", default=str(DEFAULT_VAL), help="validation pairs, same layouts ('none': no validation)")
    p.add_argument("--augment", choices=["tutorial", "paper", "none"], default="tutorial",
                   help="joint augmentation of sketch and color (see condgen.data.pair_augmentation)")
    p.add_argument("--subset", type=int, default=0, help="train on the first N pairs only (0: all); for smoke tests")
    # model
    p.add_argument("--generator", choices=list(GENERATOR_CLASSES), default="unet",
                   help="U-Net (skips) or the paper's encoder-decoder baseline")
    p.add_argument("--ngf", type=int, default=64, help="generator width: filters of its first layer (paper: 64)")
    p.add_argument("--ndf", type=int, default=64, help="discriminator width (paper: 64)")
    p.add_argument("--patch", type=int, choices=PATCH_SIZES, default=70,
                   help="discriminator's receptive field: the paper's 70x70 PatchGAN, or its 1x1 PixelGAN (Sec. 4.4: "
                        "judges each pixel's color, not texture)")
    p.add_argument("--bottleneck", type=int, choices=BOTTLENECKS, default=1,
                   help="encoder-decoder only: the code's size for a 256x256 sketch (paper: 1x1, all eight encoder "
                        "layers; 8: five, an 8x8 code, still no skips: the bundled encoder-decoder)")
    p.add_argument("--hints", action=argparse.BooleanOptionalAction, default=False,
                   help="G takes color hints beside the sketch (not the paper's): at every step hints are simulated "
                        "from the truth (condgen.hints.sample: a geometric number of dots and short strokes, none "
                        "for a quarter of the pairs) and spread through the closed regions that hold them")
    p.add_argument("--lambda-hint", type=float, default=0.0,
                   help="with --hints: weight of an L1 term on the pixels within 2 px of a hint (the 5x5 window of "
                        "the hint-fidelity metric), so that G paints a hint's color where it was put, lines and "
                        "open areas included, which the region passes of condgen.hints do not reach; 0: none")
    # optimization
    p.add_argument("--epochs", type=int, default=128, help="total epochs (with --resume: up to this many)")
    p.add_argument("--batch-size", type=int, default=4,
                   help="pairs per step and process; under torchrun the global batch is batch-size x world "
                        "size (paper: 1)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate for G and D")
    p.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    p.add_argument("--lambda-l1", type=float, default=100.0, help="weight lambda of the L1 term (Eq. 4)")
    p.add_argument("--lambda-chroma", type=float, default=None, metavar="W",
                   help="split the L1 term, not the paper's: lambda_L1 then weighs the L1 of luminance (lines, "
                        "shading) and W the L1 of the two opponent-chroma channels (hue), so that L1 pulls less "
                        "toward the gray mean of the hues a sketch leaves open; none: the paper's L1 over RGB")
    p.add_argument("--lambda-region", type=float, default=0.0,
                   help="weight of a region term, not the paper's: how far G's colors stray from their mean inside "
                        "each region the sketch's lines enclose (the region-spread metric, made a loss), so that G "
                        "paints a region in one color instead of two blended hues; 0: the paper's objective")
    p.add_argument("--lr-decay-epochs", type=int, default=0,
                   help="decay lr linearly to 0 over the last N epochs (paper: 100 of 200)")
    p.add_argument("--l1-only", action=argparse.BooleanOptionalAction, default=False,
                   help="the paper's ablation: L1 loss alone, no discriminator")
    p.add_argument("--ema", type=float, default=0.0,
                   help="publish an exponential moving average of G's weights with this decay, BatchNorm statistics "
                        "re-estimated (0: the raw G, as the paper)")
    p.add_argument("--amp", choices=CHOICES, default="auto",
                   help="bf16 autocast for the forward passes; auto: where the device computes bf16 natively (CUDA, "
                        "a CPU with AVX512-BF16 or AMX), else fp32 (condgen.precision)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="batches and weights in NHWC memory layout (same math); default: on, except at batch 1 in "
                        "fp32, where NCHW is as fast or faster (condgen.precision.default_channels_last, measured by "
                        "bench/run_all.py)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for init, dropout, augmentation and shuffling (under torchrun rank r draws dropout and "
                        "augmentation from seed + r)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto", help="where to train")
    # output / hub
    p.add_argument("--out", default="runs/pix2pix-<generator>", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from <out>/state.safetensors")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="start from the published weights of a run (RUN/generator, e.g. trained elsewhere, or "
                        "a weights folder such as weights/pix2pix-unet; and RUN/discriminator unless --ndf "
                        "differs: then D starts fresh) with fresh Adam moments, instead of the paper's random init")
    p.add_argument("--val-rows", type=int, default=6, help="pairs shown in each epoch's validation grid")
    p.add_argument("--save-every", type=int, default=1,
                   help="write the models and the resume state every N epochs (and after the last)")
    p.add_argument("--weights-dtype", choices=["fp32", "fp16"], default="fp32",
                   help="dtype of the published generator/ and discriminator/ weights (training state stays fp32)")
    p.add_argument("--report-to", choices=tracking.CHOICES, default="none",
                   help="a live dashboard of the losses, validation scores and grids, written under --out (trackio: "
                        "local, offline; open it with the command printed at start)")
    p.add_argument("--push-to-hub", metavar="REPO_ID", default=None,
                   help="upload generator/ to REPO_ID and discriminator/ to REPO_ID-discriminator when done")
    args = run.parse(p, argv)
    args.command = run.command("train_pix2pix.py", p, args)  # for the model card
    for name in ("epochs", "batch_size", "ngf", "ndf", "save_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.subset and args.subset < args.batch_size:
        p.error(f"--subset {args.subset} is smaller than --batch-size {args.batch_size}")
    if args.bottleneck != 1 and args.generator != "encoder-decoder":
        p.error(f"--bottleneck {args.bottleneck} is for --generator encoder-decoder (the U-Net's skips need all "
                "eight layers)")
    if not 0 <= args.ema < 1:
        p.error(f"--ema must be in [0, 1), got {args.ema}")
    if not 0 <= args.lr_decay_epochs <= args.epochs:
        p.error(f"--lr-decay-epochs must be in 0..{args.epochs}, got {args.lr_decay_epochs}")
    inf = float("inf")  # the chained comparisons also refuse nan
    if not (0 < args.lr < inf and 0 <= args.beta1 < 1 and 0 <= args.lambda_l1 < inf and 0 <= args.lambda_region < inf):
        p.error(f"--lr must be a positive number, --beta1 in [0, 1), --lambda-l1 and --lambda-region >= 0, got "
                f"{args.lr}, {args.beta1}, {args.lambda_l1}, {args.lambda_region}")
    if not 0 <= args.lambda_hint < inf or (args.lambda_hint and not args.hints):
        p.error(f"--lambda-hint must be >= 0 and goes with --hints, got {args.lambda_hint}")
    if args.lambda_chroma is not None and not 0 <= args.lambda_chroma < inf:
        p.error(f"--lambda-chroma must be >= 0, got {args.lambda_chroma}")
    args.out = Path(args.out.replace("<generator>", args.generator))
    if args.push_to_hub and (why := push_error(args.push_to_hub, later=args.out / "generator")):  # before training
        p.error(f"--push-to-hub {args.push_to_hub}: {why}")
    return args


class Objective(NamedTuple):
    """G's loss, Eq. 4 and the terms we add: the paper's is Objective() (lambda_L1 100 on RGB, with
    D); l1_only is its ablation without D."""

    lambda_l1: float = 100.0
    lambda_chroma: float | None = None  # None: L1 over RGB; else lambda_l1 on luminance, this on chroma
    lambda_region: float = 0.0
    lambda_hint: float = 0.0
    l1_only: bool = False

    @classmethod
    def of(cls, args):
        return cls(args.lambda_l1, args.lambda_chroma, args.lambda_region, args.lambda_hint, args.l1_only)


PAPER = Objective()


def train_step(G, D, opt_G, opt_D, x, y, objective=PAPER, amp=None, hint_map=None, labels=None, near_hints=None):
    """One D step then one G step on a batch x -> y; returns the losses (detached). hint_map: G's
    hint input (condgen.hints), for a G built with hints; labels: the sketches' closed regions
    (condgen.color.region_labels), if already found; near_hints: [N, 1, H, W] bool, the pixels
    that lambda_hint's L1 term covers."""
    lambda_L1, lambda_chroma, lambda_region, lambda_hint, l1_only = objective
    with autocast(x.device, amp):
        fake = G(x) if hint_map is None else G(x, hint_map)
    loss_D_real = loss_D_fake = loss_G_GAN = loss_G_region = loss_G_hint = torch.zeros((), device=x.device)
    if not l1_only:
        # D step: real pairs (x, y) -> 1, fake pairs (x, G(x)) -> 0; G's output detached. The
        # paper divides D's objective by 2, "which slows down the rate at which D learns relative
        # to G" (Sec. 3.3).
        with autocast(x.device, amp):
            d_real, d_fake = D(x, y), D(x, fake.detach())  # (N, 1, 30, 30) each
        loss_D_real, loss_D_fake = bce(d_real, 1.0), bce(d_fake, 0.0)
        opt_D.zero_grad(set_to_none=True)
        (0.5 * (loss_D_real + loss_D_fake)).backward()
        opt_D.step()

        # G step: fool the updated D (non-saturating: maximize log D(x, G(x))). D's weights get no
        # gradient here, which saves their backward pass. Under DDP through the bare module: a DDP
        # forward would wait in backward for gradients of D's weights that never come.
        D.requires_grad_(False)
        with autocast(x.device, amp):
            d_fake = getattr(D, "module", D)(x, fake)
        loss_G_GAN = bce(d_fake, 1.0)
        D.requires_grad_(True)
    err = fake.float() - y
    loss_G_L1 = err.abs().mean()  # on [-1, 1]: twice the L1 that condgen.evaluate_pix2pix reports
    loss_G_lum, loss_G_chroma = (e.abs().mean() for e in opponent(err))  # logged in every run
    if lambda_chroma is None:  # the paper's L1, over RGB
        loss_rec = lambda_L1 * loss_G_L1
    else:  # --lambda-chroma: the lines and shading keep lambda_L1; the hue, which the sketch leaves open, gets less
        loss_rec = lambda_L1 * loss_G_lum + lambda_chroma * loss_G_chroma
    if lambda_region:
        loss_G_region = region_spread_loss(fake, region_labels(x) if labels is None else labels)
    if near_hints is not None and near_hints.any():
        loss_G_hint = err.abs().mul(near_hints).sum() / (3 * near_hints.sum())  # mean L1 near the hints
    opt_G.zero_grad(set_to_none=True)
    (loss_G_GAN + loss_rec + lambda_region * loss_G_region + lambda_hint * loss_G_hint).backward()
    opt_G.step()
    return {k: v.detach() for k, v in dict(loss_D_real=loss_D_real, loss_D_fake=loss_D_fake, loss_G_GAN=loss_G_GAN,
                                           loss_G_L1=loss_G_L1, loss_G_chroma=loss_G_chroma,
                                           loss_G_region=loss_G_region, loss_G_hint=loss_G_hint).items()}


def region_spread_loss(fake, labels):
    """--lambda-region's term: the mean absolute distance of G's opponent chroma from its mean over
    the pixel's region, over all pixels in a region (the region-spread metric, with the mean for the
    median); 0 for a batch whose sketches enclose none."""
    c = chroma(fake.float())  # (N, 2, H, W) on [0, 1]
    n, k = len(c), int(labels.max()) + 1
    idx = (labels + k * torch.arange(n, device=labels.device).view(n, 1, 1)).flatten()  # (N*H*W,): region id
    cf = c.transpose(0, 1).reshape(2, -1)  # (2, N*H*W)
    sums = torch.zeros(2, n * k, device=c.device).index_add(1, idx, cf)
    counts = torch.zeros(n * k, device=c.device).index_add(0, idx, torch.ones_like(cf[0]))
    dev = (cf - (sums / counts.clamp_min(1))[:, idx]).abs().sum(0)  # (N*H*W,)
    inside = labels.flatten() > 0
    return dev[inside].mean() if inside.any() else dev.sum() * 0


def bce(logits, target):
    """BCE-with-logits of D's map against target (1: real, 0: fake), in fp32."""
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits, target, dtype=torch.float))


def val_grid(x, fake, y, rows):
    """Rows of sketch | output | truth."""
    triples = torch.stack([x[:rows], fake[:rows], y[:rows]], dim=1).flatten(0, 1)  # (3 * rows, 3, H, W)
    return torchvision.utils.make_grid(triples, nrow=3, normalize=True, value_range=(-1, 1), padding=4, pad_value=1)


def main(args):
    rank, world_size, device, amp = run.start(args)
    master = rank == 0  # validates, logs, writes files, pushes
    if args.channels_last is None:
        args.channels_last = default_channels_last(args.batch_size, amp)
    config = run.show_config(args, master)
    # NHWC batches and weights: oneDNN's convolutions run faster on CPU in that layout, and with the
    # weights NHWC too they are not reordered at every call. Checkpoints store plain tensors.
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    data, val = load_data(args, device, world_size, master)
    G, D, G_ema, optimizers = build(args, device, layout)
    # Under torchrun train_step gets DDP wrappers, which average the gradients; G and D stay the bare modules that
    # are validated and saved. BatchNorm stays per rank, as in one process (SyncBatchNorm: CUDA, an allreduce a layer).
    G_train, D_train = distributed.wrap(G, device), distributed.wrap(D, device)
    shuffle = torch.Generator().manual_seed(args.seed)  # the same on every rank: one permutation, sharded
    if args.init_from and not args.resume:
        init_from(args, G, D, G_ema, master)
    start_epoch, history, midway = run.resume(args, config, RESUME_KEYS, G, D, G_ema, optimizers, shuffle, device, rank)
    steps_per_epoch = len(data) // (args.batch_size * world_size)
    meter, stop, objective = run.Meter(steps_per_epoch, args.epochs, master), run.Stop(), Objective.of(args)
    tracker = tracking.start(args.report_to if master else "none", args.out, config, args.resume)
    meter.plan(f"{len(data)} pairs, batch {args.batch_size}{f' x {world_size}' if world_size > 1 else ''}, "
               f"epochs {start_epoch + 1}-{args.epochs}, {args.generator} ngf {args.ngf}, {args.precision} on "
               f"{device.type} ({torch.get_num_threads()} threads)",
               tracking.open_command(args.out) if args.report_to != "none" else None)
    for epoch in range(start_epoch, args.epochs):
        lr = run.constant_then_linear_decay(args.lr, epoch, args.epochs, args.lr_decay_epochs)
        run.set_lr(optimizers.values(), lr)
        G.train(), D.train()
        epoch_rng = shuffle.get_state()  # a stop inside the epoch saves it: the resumed run redraws this order
        batches = shuffled_batches(len(data), args.batch_size * world_size, shuffle)  # global batches
        first, sums, t0 = epoch_start(midway, device)  # sums on the device: no per-step sync
        midway = None
        for i, idx in meter.steps(batches, epoch, first):
            x, y, hint_map, labels, near = batch(args, data, distributed.shard(idx, rank, world_size), device, layout)
            losses = train_step(G_train, D_train, *optimizers.values(), x, y, objective, amp, hint_map, labels, near)
            if G_ema is not None:
                update_ema(G_ema, G, args.ema)
            sums += torch.stack([losses[k] for k in LOSSES])
            meter.step(i, lambda losses=losses: shown(losses))
            if i % 10 == 0:
                tracker.log(epoch * steps_per_epoch + i + 1, shown(losses))
            if (world_size == 1 or i % 10 == 0) and distributed.any_rank(stop.asked, device):
                shuffle.set_state(epoch_rng)
                stop_inside_epoch(args, epoch, i + 1, sums, t0, history, config, G, D, G_ema, optimizers,
                                  distributed.all_rng_states(shuffle, device), master, tracker)
        means = distributed.mean_over_ranks(sums) / steps_per_epoch
        history.append(dict(epoch=epoch + 1, lr=lr, **dict(zip(LOSSES, means.tolist())), seconds=time.time() - t0))
        rng = distributed.all_rng_states(shuffle, device)  # every rank's streams, gathered on every rank
        if master:  # the rest of the epoch is rank 0's: validation, log, checkpoint
            end_epoch(args, epoch, history, G, D, G_ema, data, val, layout, optimizers, rng, config, tracker,
                      (epoch + 1) * steps_per_epoch)
    stop.restore(), tracker.finish()
    distributed.finish(G, D)
    if master:
        write_card(args.out, args, history, device, val, world_size)
        repos = [(args.out / "generator", args.push_to_hub),
                 (args.out / "discriminator", f"{args.push_to_hub}-discriminator")]
        run.push(args, repos, f"condgen pix2pix {args.generator}: {len(history)} epochs")
    return G, D, history


def shown(losses):
    """The losses shown on the progress line and the dashboard (reading them waits for the step)."""
    return {"loss_D": 0.5 * (losses["loss_D_real"] + losses["loss_D_fake"]).item(),
            "loss_G_GAN": losses["loss_G_GAN"].item(), "loss_G_L1": losses["loss_G_L1"].item()}


def epoch_start(midway, device):
    """(first step, loss sums, start time) of an epoch: a fresh one, or where a stopped run left it."""
    if not midway:
        return 0, torch.zeros(len(LOSSES), device=device), time.time()
    # under torchrun the sums are rank 0's: the resumed epoch's logged means are close, not exact
    return midway["step"], torch.tensor(midway["sums"], device=device), time.time() - midway["seconds"]


def batch(args, data, idx, device, layout):
    """A training batch of this rank's pairs idx: sketches x and colors y (N, 3, 256, 256), jittered;
    the sketches' closed regions (for --hints and --lambda-region, else None); with --hints, hints
    drawn from the truth and spread (G's hint input) and the pixels near them (--lambda-hint)."""
    x, y = data.batch(idx, device, layout)
    labels = region_labels(x) if args.hints or args.lambda_region else None  # (N, 256, 256)
    hint_map = near = None
    if args.hints:  # drawn on the pairs' device from torch's CPU generator: resumable
        drawn = hints.sample(y)[0]
        near = F.max_pool2d(drawn[:, 3:], 5, 1, 2) > 0 if args.lambda_hint else None
        hint_map = hints.spread(drawn, labels).contiguous(memory_format=layout)
    return x, y, hint_map, labels, near


def resume_state(G, D, G_ema):
    """The modules --resume loads back: G, D and G's average, if the run keeps one."""
    return {"G": G, "D": D, **({"G_ema": G_ema} if G_ema is not None else {})}


def stop_inside_epoch(args, epoch, step, sums, t0, history, config, G, D, G_ema, optimizers, rng, master, tracker):
    """Ctrl-C or SIGTERM (run.Stop): save the state inside the epoch (the published folders stay at
    the last whole epoch) and exit with the command that continues the run."""
    if master:
        midway = dict(step=step, sums=sums.tolist(), seconds=time.time() - t0)
        meta = dict(generator=args.generator, epoch=epoch, history=history, args=config, midway=midway)
        run.save(args.out, {}, resume_state(G, D, G_ema), optimizers, rng, meta)
        tracker.finish()
    sys.exit(f"stopped at step {step} of epoch {epoch + 1}, saved in {args.out}; continue with: "
             f"{run.resume_command(args)}")


def end_epoch(args, epoch, history, G, D, G_ema, data, val, layout, optimizers, rng, config, tracker, step):
    """Rank 0 after each epoch: validation (scores and grid), the log, the dashboard, and every
    --save-every epochs the publishable models and the resume state."""
    device = next(G.parameters()).device
    save = (epoch + 1) % args.save_every == 0 or epoch + 1 == args.epochs
    if G_ema is not None and (save or val is not None):
        recalibrate(G_ema, data, epoch, args.batch_size, device, layout)
    G_pub = G_ema if G_ema is not None else G
    grid = None
    if val is not None:
        grid = args.out / "val" / f"epoch_{epoch + 1:03d}.png"
        history[-1]["val"] = validate(G_pub, val, grid, args.val_rows)
        if val.hints is not None:
            fake = predict(G_pub, val.x_in, hints=val.hints[0])
            history[-1]["val_3_hints"] = hint_scores(fake, val.y, val.x, val.hints[1], val.regions)
    run.log_epoch(args.out, history)
    tracker.log_epoch(step, history[-1], grid)
    if save:
        meta = dict(generator=args.generator, epoch=epoch + 1, history=history, args=config)
        run.save(args.out, {"generator": G_pub, "discriminator": D}, resume_state(G, D, G_ema), optimizers, rng, meta,
                 args.weights_dtype)


def build(args, device, layout):
    """G and D on the device, G_ema (a running average of G's weights, condgen.ema: the adversarial
    term keeps G's colors moving; None without --ema) and the two Adam optimizers."""
    G, D = (m.to(device, memory_format=layout) for m in build_models(args))
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if args.ema else None
    fused = device.type in ("cpu", "cuda")  # Adam in one kernel over all parameters, not a loop per tensor
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=args.lr, betas=(args.beta1, 0.999), fused=fused)
                  for name, m in (("opt_G", G), ("opt_D", D))}
    return G, D, G_ema, optimizers


def build_models(args):
    """(G, D) for the architecture flags, on the CPU."""
    extra = {"bottleneck": args.bottleneck} if args.generator == "encoder-decoder" else {}
    return (GENERATOR_CLASSES[args.generator](ngf=args.ngf, hints=args.hints, **extra),
            Discriminator(ndf=args.ndf, patch=args.patch))


class Validation(NamedTuple):
    """The validation pairs in [-1, 1], what is found once for them (not every epoch): the sketches
    as G sees them in the app and in condgen.evaluate (condgen.paper.normalize_batch), the regions
    the sketches' lines enclose, and with --hints 3 simulated hints per pair, condgen.evaluate's."""

    x: torch.Tensor
    x_in: torch.Tensor
    y: torch.Tensor
    regions: list
    hints: tuple | None


def load_data(args, device, world_size, master=True):
    """The training pairs (on the GPU when training there) and the Validation (None with --val none,
    and on ranks other than 0)."""
    t0 = time.time()
    if master:
        print(f"loading the training pairs from {args.data} ...", flush=True)
    try:
        data = PairDataset(args.data, augment=args.augment, subset=args.subset, renderings=args.renderings)
    except (OSError, ValueError) as e:
        make = (f"; make them from color art with: python -m condgen.sketchify ../shared/data/pokemon/color "
                f"{args.data} --method all" if not Path(args.data).exists() else "")
        sys.exit(f"error: {e}{make}")
    val = None
    try:
        if args.val != "none" and master:
            x, y = (to_tanh_range(t) for t in load_pairs(args.val))
            val = Validation(x, normalize_batch(x), y, sketch_regions(x), hints.fixed(y, 3) if args.hints else None)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e} (--val none trains without validation)")
    if master:
        print(f"loaded {len(data)} pairs{f' and {len(val.x)} validation pairs' if val else ''} in "
              f"{time.time() - t0:.0f} s", flush=True)
    if device.type == "cuda":
        data.to(device)  # uint8 pairs on the GPU: batches are cut and jittered there, no host copies
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions
    if len(data) < args.batch_size * world_size:
        sys.exit(f"error: {args.data} holds {len(data)} pairs, fewer than --batch-size {args.batch_size}"
                 + (f" x {world_size} processes" if world_size > 1 else ""))
    return data, val


def init_from(args, G, D, G_ema, master):
    """--init-from RUN (condgen.run.init_from). D starts fresh when --ndf or --patch differs from the
    run's."""
    def load_D(saved, D):
        if (saved.net[0][0].out_channels, saved.patch) != (D.net[0][0].out_channels, D.patch):
            return f"D fresh: --ndf {args.ndf} or --patch {args.patch} differs from the saved one"
        D.load_state_dict(saved.state_dict())
        return ""

    def adapt_G(saved, G):  # a G saved without a hint input, trained on with --hints: zero weights for the hints
        return add_hint_input(saved) if G.hints and not saved.hints else saved

    run.init_from(args.init_from, G, D, G_ema, master, load_D, adapt_G)


def recalibrate(G_ema, data, epoch, batch_size, device, layout):
    """BatchNorm statistics that belong to the averaged weights, from fresh training batches (with
    the RNG streams forked: the training draws stay what an uninterrupted run draws)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        batches = shuffled_batches(len(data), batch_size, torch.Generator().manual_seed(epoch))
        recalibrate_batchnorm(G_ema, (data.batch(idx, device, layout)[:1] for idx in batches),
                              count=100 // batch_size + 1)


def validate(G, val, path, rows):
    """Scores on the validation pairs in eval mode (running BatchNorm statistics, no dropout: what
    colorize does), and their grid of sketch | output | truth rows at path. In fp32 on normalized
    sketches, as condgen.evaluate scores the published model: the run's numbers are its card's."""
    fake = predict(G, val.x_in)
    grid = val_grid(val.x, fake, val.y, rows)
    atomic_write(path, lambda tmp: torchvision.utils.save_image(grid, tmp, format="png"))
    return scores(fake, val.y, val.x, val.regions)


def write_card(out, args, history, device, val, world_size=1):
    """Model card: command, epochs, wall time, val metrics beside the baselines; a sample grid."""
    rows = {}
    if val is not None:
        rows = {f"this model ({args.generator}{', L1 only' if args.l1_only else ''})": history[-1]["val"],
                **baselines(val.x, val.y)}
        last = out / "val" / f"epoch_{len(history):03d}.png"
        if last.is_file():
            (out / "generator" / "samples.png").write_bytes(last.read_bytes())
    cls, last = GENERATOR_CLASSES[args.generator].__name__, history[-1]
    published = f"EMA of G (decay {args.ema}) published" if args.ema else "the raw G published"
    names = args.renderings.split(",") if args.renderings else [f.name for f in rendering_folders(args.data)]
    renderings = ", ".join(names)
    processes = f" x {world_size} processes" if world_size > 1 else ""
    d = "70x70 PatchGAN" if args.patch == 70 else "1x1 PixelGAN"
    chroma_l1 = "" if args.lambda_chroma is None else f"lambda_chroma {args.lambda_chroma} (lambda_L1 on luminance), "
    code = f"{args.bottleneck}x{args.bottleneck} code, " if args.generator == "encoder-decoder" else ""
    # the paper's three CD layers decode the 1x1, 2x2 and 4x4 maps: a bottleneck of 8 cuts them all
    cut = args.generator == "encoder-decoder" and not any(cd for _, cd in decoder_spec(64, args.bottleneck))
    dropout = "none (its CD layers are among those cut)" if cut else "0.5"
    training = [f"recipe: ngf {args.ngf}, {code}{d} ndf {args.ndf}, dropout {dropout}, {published}, "
                f"lambda_L1 {args.lambda_l1}, "
                f"{chroma_l1}"
                f"{f'lambda_region {args.lambda_region}, ' if args.lambda_region else ''}"
                f"lr {args.lr} "
                f"({args.lr_decay_epochs} epochs of linear decay), "
                f"sketch renderings: {renderings}",
                f"epochs: {len(history)}, batch {args.batch_size}{processes}, augmentation `{args.augment}`, "
                f"{run.machine(history, device)}",
                f"precision: {args.precision}",
                *(["color hints (`--hints`, condgen.hints): G takes 3 + 4 input channels, the sketch and a hint map "
                   "(3 colors, zero where none, and a mask), the hints spread through the closed regions of the "
                   "sketch that hold them; at every step hints are simulated from the truth: none for a quarter "
                   "of the pairs, else a geometric number (p 1/8, mean 8) of square dots of 1-9 px holding the "
                   "truth's mean color there, placed on the art, 30% of them short strokes along one color"
                   + (f"; an L1 term of weight {args.lambda_hint} on the pixels within 2 px of a hint"
                      if args.lambda_hint else "")] if args.hints else []),
                f"final epoch: loss_G_L1 {last['loss_G_L1']:.3f}, loss_G_GAN {last['loss_G_GAN']:.3f}, "
                f"loss_D_real {last['loss_D_real']:.3f}, loss_D_fake {last['loss_D_fake']:.3f}"]
    heading = f"""# condgen Pix2Pix {args.generator} (ngf={args.ngf}{", L1 only" if args.l1_only else ""})

Sketch -> color generator (Isola et al. 2017, https://arxiv.org/abs/1611.07004), trained with
[condgen](https://github.com/condgen/condgen) on {len(history)} epochs of `{args.data}`.

{"![validation: sketch | output | truth](samples.png)" if rows else ""}"""
    sections = f"""## Evaluation on `{args.val}` (eval mode; L1/SSIM on [0, 1])
{table(rows) if rows else "no validation set"}

## Use
```python
from condgen.pix2pix import {cls}
from condgen.colorize import colorize
G = {cls}.from_pretrained("<this folder or repo id>")
colorize(G, "sketch.png").save("color.png")
colorize(G, "sketch.png", hints="hints.png").save("hinted.png")  # RGBA of the sketch's size: your colors
```
"""
    run.write_card(out / "generator", args, ["tags: [condgen, pix2pix, image-to-image, sketch-to-color]"], heading,
                   training, sections)


if __name__ == "__main__":
    try:
        main(parse_args())
    except KeyboardInterrupt:  # before the loop (loading the data) or a second Ctrl-C: nothing new to save
        sys.exit("interrupted; the last save (if any) is kept")
