"""Seconds per Pix2Pix training step and inference latency, 256x256, both generators.

    python -m bench.pix2pix                        # paper size (ngf=ndf=64), a few minutes on a CPU
    python -m bench.pix2pix --ngf 16 --repeats 2   # the compact bundled size, quicker

A training step is train_pix2pix.train_step (D step + G step, Adam) on random pairs. Modes:
fp32 eager; bf16 autocast; channels_last (fp32, NHWC memory layout for models and inputs, which
oneDNN/cuDNN convolutions often prefer). Speed-ups are fp32 eager's time over the mode's, both
measured in the same run (same machine, same load), so they compare while the absolute seconds
depend on what else runs.
"""

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from condgen.distributed import pick_device
from condgen.pix2pix import GENERATOR_CLASSES, Discriminator
from train_pix2pix import train_step

MODES = ["fp32 eager", "bf16 autocast", "channels_last"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, warmup, repeats, device):
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def setup(generator, mode, batch_size, args, device):
    torch.manual_seed(0)
    G, D = GENERATOR_CLASSES[generator](ngf=args.ngf).to(device), Discriminator(ndf=args.ndf).to(device)
    x, y = torch.randn(2, batch_size, 3, 256, 256, device=device).tanh()
    if mode == "channels_last":
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
    return G, D, x, y


def bench_train(generator, mode, batch_size, args, device):
    G, D, x, y = setup(generator, mode, batch_size, args, device)
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    amp = torch.bfloat16 if mode == "bf16 autocast" else None
    return timed(lambda: train_step(G, D, opt_G, opt_D, x, y, amp=amp), args.warmup, args.repeats, device)


@torch.no_grad()
def bench_infer(generator, mode, args, device):
    G, _, x, _ = setup(generator, mode, 1, args, device)
    G.eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16 autocast" else nullcontext()

    def run():
        with autocast:
            G(x)

    return timed(run, args.warmup, args.repeats * 3, device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ngf", type=int, default=64, help="generator width (64: the paper's)")
    p.add_argument("--ndf", type=int, default=None, help="discriminator width (default: --ngf)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4], help="training batch sizes")
    p.add_argument("--generators", nargs="+", choices=list(GENERATOR_CLASSES), default=list(GENERATOR_CLASSES),
                   help="generators to time")
    p.add_argument("--modes", nargs="+", choices=MODES, default=MODES, help="modes to time")
    p.add_argument("--repeats", type=int, default=2, help="timed repetitions (median reported; inference: 3x)")
    p.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto", help="where to run")
    args = p.parse_args(argv)
    args.ndf = args.ndf or args.ngf
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, ngf={args.ngf}, "
          f"ndf={args.ndf}, 256x256")

    rows = ["| generator | batch | mode | s / train step | speed-up vs fp32 eager | inference (batch 1) | speed-up |",
            "|---|---|---|---|---|---|---|"]
    for generator in args.generators:
        infer = {m: bench_infer(generator, m, args, device) for m in args.modes}
        for bs in args.batch_sizes:
            train = {m: bench_train(generator, m, bs, args, device) for m in args.modes}
            for m in args.modes:
                # speed-ups: > 1 is faster than fp32 eager
                ratio = f"{train['fp32 eager'] / train[m]:.2f}x" if "fp32 eager" in train else "-"
                iratio = f"{infer['fp32 eager'] / infer[m]:.2f}x" if "fp32 eager" in infer else "-"
                rows.append(f"| {generator} | {bs} | {m} | {train[m]:.3f} | {ratio} | "
                            f"{infer[m] * 1000:.0f} ms | {iratio} |")
                print(rows[-1], flush=True)
    print("\n".join(rows))
    return rows


if __name__ == "__main__":
    main()
