"""Train the GAN or the conditional GAN on MNIST: one plain loop, D step then G step.

    python train_mnist.py --model cgan --epochs 30 --data-dir data/mnist --out runs/cgan
    torchrun --standalone --nproc_per_node 4 train_mnist.py --model cgan --batch-size 32 ...

Under torchrun each process trains on its own shard of every batch with DistributedDataParallel
(condgen.distributed); --batch-size is per process, so the global batch is batch-size x world size.

Recipe (what was tried: docs/mnist.md): Adam 2e-4, beta1 0.5 (Radford et al.
2015) instead of the tutorial's Adam 1e-4; one-sided label smoothing, real targets 0.9 (Salimans
et al. 2016, https://arxiv.org/abs/1606.03498); the non-saturating generator loss of the GAN paper.
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from condgen import distributed, run, tracking
from condgen.checkpoint import atomic_write
from condgen.data import mnist_tensors, shuffled_batches
from condgen.ema import recalibrate_batchnorm, update_ema
from condgen.hub import push_error
from condgen.mnist import DiscriminatorCGAN, DiscriminatorGAN, GeneratorCGAN, GeneratorGAN
from condgen.precision import CHOICES, autocast
from condgen.sample import noise_batches, training_grid

# --resume continues a run only if these flags are unchanged (another --epochs is fine)
RESUME_KEYS = ["model", "subset", "g_batchnorm", "g_widths", "d_minibatch_std", "d_dropout", "batch_size", "lr",
               "beta1", "real_label", "ema", "seed", "init_from"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", metavar="FILE", default=None,
                   help="a recipe file (recipes/*.toml): its flags become the defaults, flags given here override them")
    # data / model
    p.add_argument("--model", choices=["gan", "cgan"], required=True,
                   help="unconditional GAN or label-conditioned cGAN")
    p.add_argument("--data-dir", default="data/mnist", help="torchvision MNIST root (holds MNIST/raw), writable")
    p.add_argument("--subset", type=int, default=0,
                   help="train on the first N images only (0: all 60k); for smoke tests")
    p.add_argument("--g-batchnorm", action=argparse.BooleanOptionalAction, default=True,
                   help="BatchNorm after each hidden Linear of G (DCGAN); --no-g-batchnorm is the tutorial's G")
    p.add_argument("--d-minibatch-std", type=int, default=0, metavar="GROUP",
                   help="D sees the minibatch standard deviation over groups of GROUP samples (Karras et al. 2018) "
                        "before its last layer, against mode collapse (0: the tutorial's D, the cGAN paper's Maxout D)")
    p.add_argument("--d-dropout", type=float, default=0.5,
                   help="cgan: dropout rate of the Maxout D's hidden layers (the cGAN paper's 0.5)")
    p.add_argument("--g-widths", default=None,
                   help="G's hidden widths, comma-separated (default: the tutorial's, gan 128,256,512 and cgan "
                        "256,256,512 for the z path, c path and joint layer; the cGAN paper's is 200,1000,1200)")
    # optimization
    p.add_argument("--epochs", type=int, default=70, help="total epochs (with --resume: up to this many)")
    p.add_argument("--batch-size", type=int, default=128,
                   help="images per step and process (under torchrun the global batch is batch-size x world size)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate for G and D")
    p.add_argument("--lr-decay-epochs", type=int, default=0,
                   help="decay lr linearly to 0 over the last N epochs (as train_pix2pix; 0: constant)")
    p.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    p.add_argument("--real-label", type=float, default=0.9, help="target for real images (1.0: no smoothing)")
    p.add_argument("--ema", type=float, default=0.999,
                   help="publish an exponential moving average of G's weights with this decay (0: the raw G)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for init, noise and shuffling (under torchrun rank r draws its noise from seed + r)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to train")
    p.add_argument("--amp", choices=CHOICES, default="auto",
                   help="bf16 autocast for the forward passes; auto: where the device computes bf16 natively (CUDA, "
                        "a CPU with AVX512-BF16 or AMX), else fp32 (condgen.precision)")
    # output / hub
    p.add_argument("--out", default="runs/<model>", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from <out>/state.safetensors")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="start G (and its EMA) from RUN/generator and D from RUN/discriminator, with fresh Adam "
                        "moments, e.g. to add an lr decay to a finished run; the architecture flags must match")
    p.add_argument("--eval-per-class", type=int, default=1000,
                   help="samples per digit for the model card's evaluation (0: skip)")
    p.add_argument("--report-to", choices=tracking.CHOICES, default="none",
                   help="a live dashboard of the losses and sample grids, written under --out (trackio: local, "
                        "offline; open it with the command printed at start)")
    p.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="upload the generator folder when done")
    args = run.parse(p, argv)
    args.command = run.command("train_mnist.py", p, args)  # for the model card
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    if not 0 <= args.lr_decay_epochs <= args.epochs:
        p.error(f"--lr-decay-epochs must be in 0..{args.epochs}, got {args.lr_decay_epochs}")
    if args.batch_size < 1 or (args.subset and args.subset < args.batch_size):
        p.error(f"--batch-size must be >= 1 and no larger than --subset (got {args.batch_size}, subset {args.subset})")
    if args.d_minibatch_std < 0 or (args.d_minibatch_std and args.batch_size % args.d_minibatch_std):
        p.error(f"--d-minibatch-std needs a --batch-size that is a multiple of it (got {args.d_minibatch_std}, "
                f"batch {args.batch_size})")
    if not 0 <= args.d_dropout < 1:
        p.error(f"--d-dropout must be in [0, 1), got {args.d_dropout}")
    if not 0.0 < args.real_label <= 1.0:
        p.error(f"--real-label must be in (0, 1], got {args.real_label}")
    if not (0 < args.lr < float("inf") and 0 <= args.beta1 < 1):  # also refuses nan
        p.error(f"--lr must be a positive number and --beta1 in [0, 1), got {args.lr} and {args.beta1}")
    args.out = Path(args.out.replace("<model>", args.model))
    if args.push_to_hub and (why := push_error(args.push_to_hub, later=args.out / "generator")):  # before training
        p.error(f"--push-to-hub {args.push_to_hub}: {why}")
    try:  # kept as typed (args.json, the --resume guard); parsed where the models are built
        widths = tuple(int(w) for w in args.g_widths.split(",")) if args.g_widths else None
    except ValueError:
        p.error(f"--g-widths must be comma-separated integers, got {args.g_widths!r}")
    if widths and (min(widths) < 1 or (args.model == "cgan" and len(widths) != 3)):
        p.error(f"--g-widths: {'three' if args.model == 'cgan' else 'positive'} widths expected, got {args.g_widths}")
    return args


def train_step(G, D, opt_G, opt_D, x, c, real_label=0.9, amp=None):
    """One D step then one G step on real images x [N, 1, 28, 28] with labels c [N] (None: the
    unconditional GAN). G and D may be DDP wrappers. amp: torch.bfloat16 runs the forward passes
    under autocast (losses, BatchNorm statistics and Adam stay fp32), None in fp32. Returns
    [loss_D, loss_G, D(x), D(G(z))], detached and left on the device: reading them would make the
    host wait for every step."""
    n = len(x)
    D_bare = getattr(D, "module", D)
    cond = (F.one_hot(c, 10).float(),) if c is not None else ()
    z = torch.randn(n, getattr(G, "module", G).nz, device=x.device)
    with autocast(x.device, amp):
        fake = G(z, *cond)

    # D step: maximize log D(x|c) + log(1 - D(G(z|c)|c)); G's output detached. Real and fake go
    # through D in one call: D has no BatchNorm, so each logit is what two calls would give, and
    # each layer runs one matmul on 2N rows instead of two on N.
    with autocast(x.device, amp):
        logits = D(torch.cat([x, fake.detach()]), *(torch.cat([t, t]) for t in cond)).float()
    d_real, d_fake = logits[:n], logits[n:]
    loss_D = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_label))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()

    # G step: the non-saturating loss, maximize log D(G(z|c)|c), with the freshly updated D. D is
    # frozen, so backward skips its weight gradients (they would be thrown away), and it is called
    # bare: under DDP a wrapped call would wait for those gradients.
    D_bare.requires_grad_(False)
    with autocast(x.device, amp):
        d_gen = D_bare(fake, *cond).float()
    D_bare.requires_grad_(True)
    loss_G = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
    opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    opt_G.step()
    return torch.stack([loss_D, loss_G, d_real.sigmoid().mean(), d_fake.sigmoid().mean()]).detach()


def main(args):
    rank, world_size, device, amp = run.start(args)
    master = rank == 0  # logs, samples, checkpoints, pushes
    config = run.show_config(args, master)
    x_all, c_all = load_data(args, device, world_size)
    conditional, n = args.model == "cgan", len(x_all)
    G, D, G_ema, optimizers = build(args, device)
    # Under torchrun the training forwards go through DDP wrappers, which average the gradients;
    # G and D stay the bare modules that are saved, sampled and averaged. G keeps plain BatchNorm:
    # each rank normalizes over its own batch-size images, as one process would (SyncBatchNorm
    # would need CUDA and an allreduce per layer).
    G_train, D_train = distributed.wrap(G, device), distributed.wrap(D, device)
    G_ema.load_state_dict(G.state_dict())  # after the wrap, which gave every rank rank 0's weights
    shuffle = torch.Generator().manual_seed(args.seed)  # the same on every rank: one permutation, sharded
    z_fixed = torch.randn(100, G.nz, generator=torch.Generator().manual_seed(1234)).to(device)
    if args.init_from and not args.resume:
        run.init_from(args.init_from, G, D, G_ema, master)
    start_epoch, history, _ = run.resume(args, config, RESUME_KEYS, G, D, G_ema, optimizers, shuffle, device, rank)
    steps_per_epoch = n // (args.batch_size * world_size)
    meter, stop = run.Meter(steps_per_epoch, args.epochs, master), run.Stop()
    tracker = tracking.start(args.report_to if master else "none", args.out, config, args.resume)
    meter.plan(f"{n} images, batch {args.batch_size}{f' x {world_size}' if world_size > 1 else ''}, epochs "
               f"{start_epoch + 1}-{args.epochs}, {args.model}, {args.precision} on {device.type}",
               tracking.open_command(args.out) if args.report_to != "none" else None)
    # what is published if no epoch is left to run (--resume of a finished run): G_ema was saved
    # with the statistics recalibrate_batchnorm gave it
    G_pub = G_ema if args.ema else G
    for epoch in range(start_epoch, args.epochs):
        t0, lr = time.time(), run.constant_then_linear_decay(args.lr, epoch, args.epochs, args.lr_decay_epochs)
        run.set_lr(optimizers.values(), lr)
        sums = torch.zeros(4, device=device)  # loss_D, loss_G, D(x), D(G(z)); summed on device, no per-step sync
        for i, idx in meter.steps(shuffled_batches(n, args.batch_size * world_size, shuffle), epoch):
            idx = distributed.shard(idx, rank, world_size)  # this rank's batch-size images
            stats = train_step(G_train, D_train, *optimizers.values(), x_all[idx],
                               c_all[idx] if conditional else None, args.real_label, amp)
            if args.ema:
                update_ema(G_ema, G, args.ema)
            sums += stats
            meter.step(i, lambda stats=stats: {"loss_D": stats[0].item(), "loss_G": stats[1].item()})
            if i % 50 == 0:  # the only host sync of the loop
                tracker.log(epoch * steps_per_epoch + i + 1, {"loss_D": stats[0].item(), "loss_G": stats[1].item()})
            # an MNIST epoch takes seconds: a stop exits at once, the last epoch's save kept
            if (world_size == 1 or i % 50 == 0) and distributed.any_rank(stop.asked, device):
                sys.exit(f"stopped in epoch {epoch + 1}; {args.out} keeps epoch {epoch}: continue with "
                         f"{run.resume_command(args)}")
        means = (distributed.mean_over_ranks(sums) / steps_per_epoch).tolist()
        history.append(dict(epoch=epoch + 1, lr=lr, loss_D=means[0], loss_G=means[1], D_x=means[2], D_G_z=means[3],
                            seconds=time.time() - t0))
        rng = distributed.all_rng_states(shuffle, device)  # every rank's streams, gathered on every rank
        if master:  # the rest of the epoch is rank 0's: log, samples, checkpoint
            G_pub = end_epoch(args, epoch, history, G, D, G_ema, z_fixed, optimizers, rng, config, tracker,
                              (epoch + 1) * steps_per_epoch)
    stop.restore(), tracker.finish()
    distributed.finish(G, D)
    if master:
        torchvision.utils.save_image(training_grid(G_pub, z_fixed, conditional),
                                     args.out / "generator" / "samples.png")
        write_card(args.out / "generator", args, history, device, world_size)
        run.push(args, [(args.out / "generator", args.push_to_hub)], f"condgen {args.model}: {len(history)} epochs")
    return G_pub, history


def build(args, device):
    """G and D on the device, G_ema (a running average of G's weights, condgen.ema: the published
    generator) and the two Adam optimizers."""
    G, D = (m.to(device) for m in build_models(args))
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    fused = device.type in ("cpu", "cuda")  # Adam in one kernel over all parameters, not a loop per tensor
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=args.lr, betas=(args.beta1, 0.999), fused=fused)
                  for name, m in (("opt_G", G), ("opt_D", D))}
    return G, D, G_ema, optimizers


def end_epoch(args, epoch, history, G, D, G_ema, z_fixed, optimizers, rng, config, tracker, step):
    """Rank 0 after each epoch: the log, a sample grid, the dashboard, then the publishable
    generator and the resume state. Returns the published generator."""
    conditional = args.model == "cgan"
    run.log_epoch(args.out, history)
    G_pub = recalibrate_batchnorm(G_ema, noise_batches(G_ema, conditional, z_fixed.device)) if args.ema else G
    grid, path = training_grid(G_pub, z_fixed, conditional), args.out / "samples" / f"epoch_{epoch + 1:03d}.png"
    atomic_write(path, lambda tmp: torchvision.utils.save_image(grid, tmp, format="png"))
    tracker.log_epoch(step, history[-1], path)
    meta = dict(model=args.model, epoch=epoch + 1, history=history, args=config)
    run.save(args.out, {"generator": G_pub, "discriminator": D}, {"G": G, "D": D, "G_ema": G_ema}, optimizers, rng,
             meta)
    return G_pub


def load_data(args, device, world_size):
    """MNIST's images and labels (the first --subset), on device; at least one global batch."""
    try:
        x_all, c_all = mnist_tensors(args.data_dir)
    except (OSError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    if args.subset:
        x_all, c_all = x_all[: args.subset], c_all[: args.subset]
    if len(x_all) < args.batch_size * world_size:
        sys.exit(f"error: {len(x_all)} images are fewer than one global batch "
                 f"({args.batch_size} x {world_size} processes)")
    return x_all.to(device), c_all.to(device)


def build_models(args):
    """(G, D) for --model, on the CPU."""
    widths = {"widths": tuple(int(w) for w in args.g_widths.split(","))} if args.g_widths else {}
    if args.model == "cgan":
        D = DiscriminatorCGAN(minibatch_std=args.d_minibatch_std, dropout=args.d_dropout)
        return GeneratorCGAN(batchnorm=args.g_batchnorm, **widths), D
    return GeneratorGAN(batchnorm=args.g_batchnorm, **widths), DiscriminatorGAN(minibatch_std=args.d_minibatch_std)


def write_card(folder, args, history, device, world_size=1):
    """Model card with the command, epochs, wall time and machine; evaluation appended if available."""
    from condgen.evaluate_mnist import evaluate_card  # late import: evaluation needs the classifier weights

    if args.eval_per_class > 0:  # the evaluation takes a while on a CPU: say so rather than fall silent
        print(f"evaluating {folder} for its model card: 10 x {args.eval_per_class} samples against the MNIST test set "
              "(--eval-per-class 0 skips)", flush=True)
    body = evaluate_card(folder, args.model, args.data_dir, args.eval_per_class)
    cgan, last = args.model == "cgan", history[-1]
    cls = "GeneratorCGAN" if cgan else "GeneratorGAN"
    what = ("Label-conditioned GAN (Mirza & Osindero 2014) with the paper's Maxout discriminator" if cgan
            else "Unconditional MLP GAN (Goodfellow et al. 2014)")
    batch = f", batch {args.batch_size} x {world_size} processes" if world_size > 1 else ""
    training = [f"epochs: {len(history)}{batch}, {run.machine(history, device)}", f"precision: {args.precision}",
                f"final epoch: loss_D {last['loss_D']:.3f}, loss_G {last['loss_G']:.3f}, D(x) {last['D_x']:.2f}, "
                f"D(G(z)) {last['D_G_z']:.2f}"]
    front = [f"tags: [condgen, mnist, {'gan, cgan' if cgan else 'gan'}]", "datasets: [mnist]"]
    heading = f"""# condgen {args.model.upper()} on MNIST

{what}, trained with [condgen](https://github.com/condgen/condgen).

![samples](samples.png)"""
    sections = f"""## Evaluation
{body}

## Use
```python
from condgen import {cls}
G = {cls}.from_pretrained("<this folder or repo id>")
```
"""
    run.write_card(folder, args, front, heading, training, sections)


if __name__ == "__main__":
    try:
        main(parse_args())
    except KeyboardInterrupt:  # before the loop (loading the data) or a second Ctrl-C: nothing new to save
        sys.exit("interrupted; the last save (if any) is kept")
