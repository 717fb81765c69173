"""What the pix2pix metrics cost: the Gaussian blur behind SSIM, blur-L1 and the sketches, as it was
computed before (conv2d over one input channel) against condgen.sketchify.gaussian_blur (each
channel a group of its own, channels_last), side by side in one run; then the scores of a 24-pair
batch as condgen.evaluate computes them.

    python -m bench.metrics                  # 1 thread
    python -m bench.metrics --threads 2

Both blurs on the same batch: 24 images x 3 channels at 256x256, SSIM's window (sigma 1.5, valid)
and blur-L1's (sigma 4, replicate padding). Medians over the repeats, interleaved.
"""

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F


def conv_blur(t, sigma, radius, valid):
    """The conv2d version: a row pass, then a column pass, one input channel."""
    g = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    n, c, h, w = t.shape
    t = t.reshape(n * c, 1, h, w)
    if not valid:
        t = F.pad(t, (radius,) * 4, mode="replicate")
    t = F.conv2d(F.conv2d(t, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    return t.view(n, c, *t.shape[2:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from condgen.evaluate_pix2pix import scores
    from condgen.precision import cpu_capabilities
    from condgen.sketchify import gaussian_blur

    print(f"{platform.processor() or platform.machine()}, {cpu_capabilities()}, {torch.get_num_threads()} thread(s)")
    torch.manual_seed(0)
    t = torch.rand(24, 3, 256, 256)
    for sigma, radius, valid, what in ((1.5, 5, True, "SSIM window"), (4.0, 12, False, "blur-L1")):
        diff = (conv_blur(t, sigma, radius, valid) - gaussian_blur(t, sigma, radius, valid)).abs().max().item()
        times = {"conv2d": [], "grouped": []}
        for _ in range(args.repeats):
            for name, f in (("conv2d", conv_blur), ("grouped", gaussian_blur)):
                start = time.perf_counter()
                f(t, sigma, radius, valid)
                times[name].append(time.perf_counter() - start)
        conv, grouped = (statistics.median(v) * 1000 for v in times.values())
        print(f"{what} (sigma {sigma}): conv2d {conv:.1f} ms, grouped channels_last {grouped:.1f} ms, "
              f"{conv / grouped:.1f}x; max difference {diff:.1e}")
    pred, target = torch.rand(24, 3, 256, 256) * 2 - 1, torch.rand(24, 3, 256, 256) * 2 - 1
    sketch = torch.where(torch.rand(24, 3, 256, 256) < 0.1, -1.0, 1.0)
    start = time.perf_counter()
    scores(pred, target, sketch)
    print(f"scores() of 24 pairs: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
