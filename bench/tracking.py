"""What --report-to trackio costs a training loop (condgen.tracking), against the step it is logged
from: the loops log their losses every ~10 steps, and a step takes 0.1 s (MNIST on the CPU) to 10 s
(pix2pix at paper size on the CPU); the target is under 2% of a step.

    python -m bench.tracking
    python -m bench.tracking --calls 5000

Into a temporary run folder: start(), then --calls log() calls of pix2pix's five losses, timed one
by one (median, 99th percentile, max), and the same calls with finish() included, which waits for
trackio's writer thread: the cost of a call with the SQLite writing it queued. Then log_epoch() with
a validation-grid PNG (6 rows of sketch | output | truth at 256x256) and "none"'s no-op log(). The
last line printed is one JSON object.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

LOSSES = ("loss_D_real", "loss_D_fake", "loss_G_GAN", "loss_G_L1", "lr")


def timed_calls(tracker, first, calls):
    """Per-call seconds of tracker.log, and the seconds of all of them."""
    times, t0 = [], time.perf_counter()
    for step in range(first, first + 10 * calls, 10):
        metrics = {k: 1.0 / (step + i + 1) for i, k in enumerate(LOSSES)}
        t = time.perf_counter()
        tracker.log(step, metrics)
        times.append(time.perf_counter() - t)
    return times, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=2000, help="timed log() calls")
    p.add_argument("--epochs", type=int, default=5, help="timed log_epoch() calls, each with a grid PNG")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from condgen import tracking

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t = time.perf_counter()
        tracker = tracking.start("trackio", out, {"lr": "0.0002", "batch_size": "4"}, resume=False)
        start_s = time.perf_counter() - t
        assert tracker.run is not None, "trackio did not start"
        timed_calls(tracker, 0, 20)  # warm-up: the writer thread's start, the first INSERTs

        times, loop_s = timed_calls(tracker, 1000, args.calls)
        grid = out / "val" / "grid.png"
        grid.parent.mkdir(parents=True)
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (6 * 256, 3 * 256, 3), np.uint8)).save(grid)
        epoch_times = []
        for e in range(args.epochs):
            t = time.perf_counter()
            tracker.log_epoch(1000 + 10 * args.calls + e, {"val": {"l1": 0.1, "ssim": 0.7}}, grid)
            epoch_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        tracker.finish()
        finish_s = time.perf_counter() - t
        size = sum(f.stat().st_size for f in (out / "trackio").rglob("*") if f.is_file())

        none = tracking.start("none", out, {}, resume=False)
        none_times, _ = timed_calls(none, 0, args.calls)

    median, p99 = statistics.median(times), statistics.quantiles(times, n=100)[98]
    amortized = (loop_s + finish_s) / args.calls  # the writer thread's work (0.5 s batches) included
    per_step = amortized / 10  # logged every 10 steps
    result = {
        "start_s": round(start_s, 3),
        "log_median_us": round(median * 1e6, 1), "log_p99_us": round(p99 * 1e6, 1),
        "log_max_ms": round(max(times) * 1e3, 2), "log_with_writes_us": round(amortized * 1e6, 1),
        "log_epoch_median_ms": round(statistics.median(epoch_times) * 1e3, 2), "finish_s": round(finish_s, 3),
        "none_log_us": round(statistics.median(none_times) * 1e6, 2),
        "share_of_0.1s_step": f"{per_step / 0.1:.4%}", "share_of_10s_step": f"{per_step / 10:.6%}",
        "share_of_0.1s_step_logging_every_step": f"{amortized / 0.1:.4%}",
        "bytes_written": size,
    }
    print(f"start {start_s:.2f} s; log() of {len(LOSSES)} values: median {median * 1e6:.1f} us, "
          f"p99 {p99 * 1e6:.1f} us, max {max(times) * 1e3:.2f} ms; {amortized * 1e6:.1f} us with trackio's writes, "
          f"so every 10 steps {per_step / 0.1:.4%} of a 0.1 s step, {per_step / 10:.6%} of a 10 s step (target < 2%)")
    print(f"log_epoch() with a {6 * 256}x{3 * 256} grid PNG: {statistics.median(epoch_times) * 1e3:.1f} ms; "
          f"finish() {finish_s:.2f} s; 'none' log() {statistics.median(none_times) * 1e6:.2f} us; "
          f"{size / 1e6:.1f} MB written for {args.calls} steps and {args.epochs} grids")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
