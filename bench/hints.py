"""What color hints cost: a training step with and without --hints, and colorize with and without
hints, side by side in one run (the issue's targets: at most ~10% slower and 1.2x).

    python -m bench.hints                       # 1 thread, the bundled U-Net's recipe (ngf 32, ndf 64)
    python -m bench.hints --threads 2 --steps 10

Training: train_pix2pix.train_step on a batch of 4 real-sized pairs (random art on white), with the
region term the bundled U-Net trains with; "--hints" adds what the loop does per step: draw hints
from the truth (condgen.hints.sample), spread them through the sketch's regions, feed G 7 channels.
Colorize: condgen.colorize.colorize on examples/bird.png, the eval-mode copy the app serves, with
and without examples/hints/bird.png (4 dots). Medians over the repeats, interleaved.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=6, help="timed training steps of each kind (after one warm-up)")
    p.add_argument("--calls", type=int, default=10, help="timed colorize calls of each kind")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from condgen import hints
    from condgen.color import region_labels
    from condgen.colorize import colorize
    from condgen.pix2pix import Discriminator, UNetGenerator, add_hint_input, load_generator
    from condgen.precision import inference_generator
    from train_pix2pix import Objective, train_step

    torch.manual_seed(0)
    y = torch.ones(4, 3, 256, 256)
    y[:, :, 48:208, 48:208] = torch.rand(4, 3, 1, 1) * 1.6 - 0.8  # flat art on white
    x = torch.where(F.max_pool2d(y, 3, 1, 1) != F.avg_pool2d(y, 3, 1, 1), -1.0, 1.0)  # its outline as the sketch
    nets = {}
    for kind in ("no hints", "--hints"):
        G = UNetGenerator(ngf=32)
        G = add_hint_input(G) if kind == "--hints" else G
        D = Discriminator(ndf=64)
        opts = [torch.optim.Adam(m.parameters(), 1e-4, betas=(0.5, 0.999)) for m in (G, D)]
        nets[kind] = (G, D, *opts)

    def step(kind):
        G, D, opt_G, opt_D = nets[kind]
        t = time.perf_counter()
        labels = region_labels(x)
        hint_map = hints.spread(hints.sample(y)[0], labels) if kind == "--hints" else None
        train_step(G, D, opt_G, opt_D, x, y, Objective(100.0, 10.0, 50.0), None, hint_map, labels)
        return time.perf_counter() - t

    times = {k: [] for k in nets}
    for i in range(args.steps + 1):
        for kind in nets:
            dt = step(kind)
            if i:  # the first is warm-up
                times[kind].append(dt)
    base = statistics.median(times["no hints"])
    print(f"training step, batch 4, U-Net ngf 32 + PatchGAN ndf 64, fp32, {args.threads} thread(s):")
    for kind, ts in times.items():
        print(f"  {kind:>9}: {statistics.median(ts):.3f} s  ({statistics.median(ts) / base:.2f}x)")

    G = inference_generator(load_generator(REPO / "weights" / "pix2pix-unet"))
    sketch, dots = REPO / "examples" / "bird.png", REPO / "examples" / "hints" / "bird.png"
    calls = {"no hints": [], "4 dots": []}
    for i in range(args.calls + 1):
        for kind in calls:
            t = time.perf_counter()
            colorize(G, sketch, hints=dots if kind == "4 dots" else None)
            if i:
                calls[kind].append(time.perf_counter() - t)
    base = statistics.median(calls["no hints"])
    print("colorize, examples/bird.png, the bundled U-Net's eval copy:")
    for kind, ts in calls.items():
        print(f"  {kind:>9}: {statistics.median(ts) * 1000:.0f} ms  ({statistics.median(ts) / base:.2f}x)")


if __name__ == "__main__":
    main()
