"""Every performance figure of the project in one run; the last line printed is one JSON object.

    python -m bench.run_all --data-dir data/mnist          # minutes on a 2-core CPU (docs/performance.md)
    python -m bench.run_all --data-dir data/mnist --quick  # smaller, to check the script runs

It first prints the CPU's capabilities (AVX512-BF16, AMX, the vector ISA) and the precision
`--amp auto` picks on it (condgen.precision). Each speed-up is measured side by side in this run:
the straightforward fp32 eager version (what a plain port of the tutorial does) against what the
training scripts and the app do by default on this machine ("ours": bf16 autocast where auto picks
it), with ours in fp32 and ours in bf16 as extra rows:

- pix2pix step (U-Net + PatchGAN, paper size, 256x256, batch 4, data included). Plain: JPEG pairs
  decoded and augmented per step in the loop, D's weights get gradients in the G step too, Adam's
  per-parameter loop, a `.item()` per loss per step. Ours, as train_pix2pix.py runs by default:
  `train_step` (D frozen in the G step, so D's weight gradients are skipped), fused Adam, pairs
  decoded once (in memory) and only augmented per step, losses kept on the device, batches and
  weights in NHWC memory layout (channels_last, by default_channels_last). Also timed: ours in
  NCHW, and at batch 1 (the paper's) NCHW against NHWC in fp32 and in bf16, the measurement
  behind train_pix2pix's --channels-last default.
- U-Net inference, one 256x256 sketch, the bundled compact generator (the app's): eager fp32 vs
  `condgen.pix2pix.fold_batchnorm` (BatchNorm folded into the convolutions, eval mode only) in
  channels_last under inference_mode, in bf16 weights where auto picks bf16
  (condgen.precision.inference_generator); the max absolute difference to fp32 eager is reported.
- MNIST cGAN, one full 60k epoch at batch 128: a per-sample DataLoader and the plain D-then-G step
  vs in-memory batches and `train_mnist.train_step` (real and fake through D in one call, D frozen
  in the G step, fused Adam, no per-step sync). Achieved GFLOP/s (FLOPs counted by torch's
  FlopCounterMode on one step) next to this machine's fp32 matmul peak, measured here.
- Peak resident memory (RSS) of each training script (a few steps at full data size) and of the
  app (started offline, one answer from each endpoint family).
"""

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from bench.plain import plain_mnist_step, plain_pix2pix_step
from condgen.data import PairDataset, mnist_tensors, pair_augmentation, shuffled_batches, to_tanh_range
from condgen.mnist import DiscriminatorCGAN, GeneratorCGAN, one_hot
from condgen.pix2pix import Discriminator, UNetGenerator
from condgen.precision import (
    cpu_capabilities,
    default_channels_last,
    describe,
    inference_generator,
    native_bf16,
    resolve_amp,
)
from train_mnist import train_step as mnist_step
from train_pix2pix import train_step as pix2pix_step

REPO = Path(__file__).resolve().parent.parent
AMP = resolve_amp("auto", "cpu")  # what the training scripts and the app pick on this machine
BF16 = torch.bfloat16
# pix2pix step variants: (plain loop?, amp, NHWC?, batch). "ours" is train_pix2pix.py's default
# path on this machine: --amp auto and --channels-last as default_channels_last decides.
VARIANTS = {
    "fp32 eager (plain)": (True, None, False, 4),
    "ours": (False, AMP, default_channels_last(4, AMP), 4),
    "ours fp32": (False, None, True, 4),
    "ours bf16": (False, BF16, True, 4),
    "ours, contiguous": (False, AMP, False, 4),
    "batch 1 fp32, NCHW": (False, None, False, 1),
    "batch 1 fp32, NHWC": (False, None, True, 1),
    "batch 1 bf16, NCHW": (False, BF16, False, 1),
    "batch 1 bf16, NHWC": (False, BF16, True, 1),
}
TARGETS = {"pix2pix_step_speedup": (">=", 1.9), "unet_infer_ms": ("<=", 25.0), "mnist_cgan_epoch_s": ("<=", 6.5)}


def medians_in_turns(fns, repeats, warmup=1):
    """Median seconds of each function, the functions taking turns (one call each per round): this
    machine's speed drifts by 10-20% over a minute, and timing each in its own block would pass the
    drift off as a speed-up."""
    for fn in fns.values():
        for _ in range(warmup):  # oneDNN picks and caches its kernels on first use
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_peak(n=2048):
    """fp32 GFLOP/s of one large square matmul (the best this CPU does), and bf16's for the record."""
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        out[name] = 2 * n**3 / medians_in_turns({name: lambda a=a, b=b: a @ b}, 5)[name] / 1e9
    return out


# ---- pix2pix training step ----

def synthetic_pairs(folder, count=32, seed=0):
    """Side-by-side 512x256 JPEG pairs (random strokes | their colored version): the bench needs no
    dataset, and JPEG decoding costs what it costs on the real one."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        sketch = np.full((256, 256, 3), 255, np.uint8)
        color = np.full((256, 256, 3), 255, np.uint8)
        for _ in range(12):
            r, c, h, w = rng.integers(0, 200, 4)
            color[r:r + h // 3 + 8, c:c + w // 3 + 8] = rng.integers(0, 255, 3)
            sketch[r:r + h // 3 + 8, c:c + 2] = 0
        Image.fromarray(np.concatenate([sketch, color], 1)).save(folder / f"{i:03d}.jpg", quality=90)


class JpegPairs(torch.utils.data.Dataset):
    """The plain way: open, decode, split and augment each pair when it is asked for."""

    def __init__(self, folder):
        self.files = sorted(Path(folder).glob("*.jpg"))
        self.transform = pair_augmentation("paper")  # the same joint augmentation as ours

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from torchvision import tv_tensors

        ab = torch.from_numpy(np.asarray(Image.open(self.files[i]).convert("RGB")).copy()).permute(2, 0, 1)
        x, y = self.transform(tv_tensors.Image(ab[:, :, :256]), tv_tensors.Image(ab[:, :, 256:]))
        return to_tanh_range(x.as_subclass(torch.Tensor)), to_tanh_range(y.as_subclass(torch.Tensor))


def pix2pix_variants(folder, args):
    """Seconds per step (median) for each variant, all starting from the same weights. Variants
    that are the same configuration on this machine (e.g. "ours" and "ours bf16" where auto picks
    bf16) are timed once."""
    memory = PairDataset(folder, augment="paper")
    loaders = {(True, 4): torch.utils.data.DataLoader(JpegPairs(folder), batch_size=4, shuffle=True, drop_last=True)}
    for bs in (1, 4):
        loaders[False, bs] = torch.utils.data.DataLoader(memory, batch_size=bs, shuffle=True, drop_last=True)
    configs = dict.fromkeys(VARIANTS.values())  # unique, in order
    steps = {cfg: pix2pix_step_fn(cfg, loaders[cfg[0], cfg[3]], args) for cfg in configs}
    times = medians_in_turns(steps, args.repeats)
    results = {name: times[cfg] for name, cfg in VARIANTS.items()}
    for name, t in results.items():
        print(f"  pix2pix {name:20s} {t:.3f} s/step", flush=True)
    return results


def pix2pix_step_fn(cfg, loader, args):
    """One training step of configuration cfg = (plain, amp, nhwc, batch), as a function of nothing."""
    plain, amp, nhwc, _ = cfg
    torch.manual_seed(0)
    G, D = UNetGenerator(ngf=args.ngf), Discriminator(ndf=args.ngf)
    if nhwc:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = not plain
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused or None,
                             foreach=None if fused else False)
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused or None,
                             foreach=None if fused else False)
    batches = iter(_forever(loader))

    def step():
        x, y = next(batches)
        if plain:
            return plain_pix2pix_step(G, D, opt_G, opt_D, x, y)
        if nhwc:
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        return pix2pix_step(G, D, opt_G, opt_D, x, y, 100.0, False, amp)

    return step


def _forever(loader):
    while True:
        yield from loader


# ---- U-Net inference ----

def unet_inference(args):
    bundled = REPO / "weights" / "pix2pix-unet"
    have = (bundled / "config.json").is_file()
    G = (UNetGenerator.from_pretrained(bundled) if have else UNetGenerator(ngf=16)).float().eval()
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fast32 = inference_generator(G, choice="none")  # folded, NHWC, fp32
    fast = inference_generator(G)  # what the app and colorize run: bf16 weights where auto picks bf16
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = G(x)

    def eager_fn():
        with torch.no_grad():
            G(x)

    def ours_fp32_fn():
        with torch.inference_mode():
            return fast32(x_cl)

    def ours_fn():
        with torch.inference_mode():
            return fast(x_cl.to(next(fast.parameters()).dtype)).float()

    fns = {"eager": eager_fn, "ours": ours_fn}
    if AMP:
        fns["ours fp32"] = ours_fp32_fn
    diff = (ours_fn() - ref).abs().max().item()
    diff32 = (ours_fp32_fn() - ref).abs().max().item()
    t = {k: v * 1e3 for k, v in medians_in_turns(fns, args.repeats * 10, warmup=3).items()}
    return dict(source=str(bundled) if have else "random ngf=16", eager_ms=t["eager"], ours_ms=t["ours"],
                ours_fp32_ms=t.get("ours fp32", t["ours"]),
                max_abs_diff=diff, max_abs_diff_fp32=diff32)


# ---- MNIST cGAN epoch ----

def mnist_epochs(args):
    """Seconds for one epoch each way, the variants taking turns (a chunk of steps each per round:
    a whole epoch per variant would read the machine's drift as a speed-up); FLOPs of one of our steps."""
    import torchvision

    n = args.subset or 60000
    # Read (and on a fresh copy of the root, extract: torchvision's MNIST(download=False) below
    # finds only the .gz archives otherwise) before anything is timed.
    x_all, c_all = mnist_tensors(args.data_dir)
    x_all, c_all = x_all[:n], c_all[:n]
    epochs = {}
    for name in ["plain", "ours"] + (["ours fp32"] if AMP else []):
        torch.manual_seed(0)
        G, D = GeneratorCGAN(batchnorm=True), DiscriminatorCGAN()
        fused = name != "plain"
        opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused or None,
                                 foreach=None if fused else False)
        opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused or None,
                                 foreach=None if fused else False)
        # Reading the files is once per run for both, so outside the timer; the per-sample
        # conversion of the DataLoader is per epoch, so inside (the loader is iterated lazily).
        if name == "plain":
            tf = torchvision.transforms.Compose([torchvision.transforms.ToTensor(),
                                                 torchvision.transforms.Normalize([0.5], [0.5])])
            ds = torch.utils.data.Subset(torchvision.datasets.MNIST(args.data_dir, train=True, transform=tf), range(n))
            loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True, drop_last=True)
            batches = ((x, one_hot(c)) for x, c in loader)
            steps = _calls(functools.partial(plain_mnist_step, G, D, opt_G, opt_D), batches)
        else:
            step = functools.partial(mnist_step, G, D, opt_G, opt_D, real_label=0.9,
                                     amp=AMP if name == "ours" else None)
            order = shuffled_batches(n, 128, torch.Generator().manual_seed(0))
            steps = _calls(step, ((x_all[idx], c_all[idx]) for idx in order))
        epochs[name] = (steps, G, D, opt_G, opt_D)
    results = dict.fromkeys(epochs, 0.0)
    left = {name: steps for name, (steps, *_) in epochs.items()}
    while left:
        for name in list(left):
            t, done, stats = time.perf_counter(), 0, None
            for step in left[name]:  # the next 25 steps of this variant's epoch
                stats, done = step(), done + 1
                if done == 25:
                    break
            if torch.is_tensor(stats):
                stats.tolist()  # ours: a host sync per chunk, so the chunk's work is all counted
            results[name] += time.perf_counter() - t
            if done < 25:
                del left[name]
    for name in epochs:
        print(f"  mnist cGAN {name:9s} {results[name]:.2f} s/epoch ({n} images)", flush=True)
    _, G, D, opt_G, opt_D = epochs["ours"]
    with FlopCounterMode(display=False) as counter:
        mnist_step(G, D, opt_G, opt_D, x_all[:128], c_all[:128], 0.9, AMP)
    results["gflops"] = counter.get_total_flops() * (n // 128) / results["ours"] / 1e9
    return results


def _calls(fn, batches):
    """A call of fn(*batch) per batch; next() fetches the batch, so the timed loop counts it too."""
    for batch in batches:
        yield lambda batch=batch: fn(*batch)


# ---- peak memory ----

def peak_rss_mb(cmd, env=None):
    """Peak RSS of a training script, read from /proc/self/status (VmHWM) inside the child as it
    exits. Not the kernel's ru_maxrss from wait4: subprocess starts children with vfork, and exec
    records the parent's high-water mark as the child's, so it reports this bench's memory. The
    scripts load their whole dataset before --subset slices it, so two steps show what a full run holds."""
    with tempfile.NamedTemporaryFile(suffix=".status") as status:
        probe = ("import atexit, runpy, sys; sys.argv = sys.argv[1:]; "
                 f"atexit.register(lambda: open({status.name!r}, 'w').write(open('/proc/self/status').read())); "
                 "runpy.run_path(sys.argv[0], run_name='__main__')")
        proc = subprocess.run([cmd[0], "-c", probe, *cmd[1:]], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
        return _vmhwm_mb(Path(status.name).read_text())


def _vmhwm_mb(status):
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


def app_rss_mb():
    """Start app.py offline, get one answer from each endpoint family, read its VmHWM."""
    import socket

    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(0.1)
        client.predict(0, 16, api_name="/generate_gan")
        client.predict(7, 16, 0, api_name="/generate_cgan")
        if (REPO / "weights" / "pix2pix-unet" / "config.json").is_file():
            client.predict(handle_file(str(REPO / "examples" / "puffball.png")), "Both", False, api_name="/colorize")
        return _vmhwm_mb(Path(f"/proc/{proc.pid}/status").read_text())
    finally:
        proc.terminate()
        proc.wait()


def memory(args, pairs):
    env = os.environ | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    py = sys.executable
    with tempfile.TemporaryDirectory() as out:
        mnist = peak_rss_mb([py, "train_mnist.py", "--model", "cgan", "--data-dir", args.data_dir, "--epochs", "1",
                             "--subset", "1024", "--eval-per-class", "0", "--out", f"{out}/cgan"], env)
        data = args.pix2pix_data if Path(args.pix2pix_data).is_dir() else str(pairs)
        pix = peak_rss_mb([py, "train_pix2pix.py", "--data", data, "--val", "none", "--subset", "8", "--epochs", "1",
                           "--ngf", str(args.ngf), "--ndf", str(args.ngf), "--out", f"{out}/pix"], env)
    return {"train_mnist cgan": mnist, f"train_pix2pix ngf={args.ngf} ({Path(data).name})": pix, "app": app_rss_mb()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default="data/mnist", help="torchvision MNIST root (writable)")
    p.add_argument("--pix2pix-data", default="data/sketch2pokemon-train",
                   help="pairs for the pix2pix memory figure (synthetic if absent)")
    p.add_argument("--ngf", type=int, default=64, help="pix2pix width for the training step (64: the paper's)")
    p.add_argument("--repeats", type=int, default=9,
                   help="timed pix2pix steps per variant, taken in turns (median); inference: 10x")
    p.add_argument("--subset", type=int, default=0, help="MNIST images per epoch (0: all 60k)")
    p.add_argument("--quick", action="store_true",
                   help="ngf 16, 2 repeats, 6400 MNIST images: checks the script, not the machine")
    args = p.parse_args()
    if args.quick:
        args.ngf, args.repeats, args.subset = 16, 2, 6400
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads")
    print(machine, flush=True)
    caps = cpu_capabilities()
    print(f"  CPU: AVX512-BF16 {'yes' if caps['avx512_bf16'] else 'no'}, AMX {'yes' if caps['amx'] else 'no'}, "
          f"vector ISA {caps['isa']} (AVX-512 or AVX2); --amp auto picks: {describe('auto', 'cpu')}", flush=True)

    peak = matmul_peak()
    print(f"  matmul 2048^2: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_pairs(Path(tmp))
        steps = pix2pix_variants(tmp, args)
        infer = unet_inference(args)
        print(f"  U-Net inference ({infer['source']}): eager {infer['eager_ms']:.1f} ms, "
              f"ours {infer['ours_ms']:.1f} ms (max |diff| {infer['max_abs_diff']:.2e}), "
              f"ours in fp32 {infer['ours_fp32_ms']:.1f} ms (max |diff| {infer['max_abs_diff_fp32']:.2e})", flush=True)
        mnist = mnist_epochs(args)
        rss = memory(args, tmp)
    base = steps["fp32 eager (plain)"]

    precision = "bf16" if AMP else "fp32"
    print(f"\n\"ours\" is the default path: {describe('auto', 'cpu')}\n")
    print("| figure | plain fp32 eager | ours | ratio |\n|---|---|---|---|")
    for name, (plain, _, _, bs) in VARIANTS.items():
        if bs == 4 and not plain:
            print(f"| pix2pix step, U-Net ngf={args.ngf} + PatchGAN, batch 4 ({name}) | {base:.2f} s | "
                  f"{steps[name]:.2f} s | {base / steps[name]:.2f}x |")
    for p32 in ("fp32", "bf16"):
        nchw, nhwc = steps[f"batch 1 {p32}, NCHW"], steps[f"batch 1 {p32}, NHWC"]
        print(f"| pix2pix step, batch 1, {p32}: NCHW vs NHWC | | {nchw:.3f} / {nhwc:.3f} s | NHWC {nchw / nhwc:.2f}x |")
    print(f"| U-Net inference, 1 sketch (ours, {precision}) | {infer['eager_ms']:.1f} ms | {infer['ours_ms']:.1f} ms "
          f"| {infer['eager_ms'] / infer['ours_ms']:.2f}x |")
    if AMP:
        print(f"| U-Net inference, 1 sketch (ours fp32) | {infer['eager_ms']:.1f} ms | {infer['ours_fp32_ms']:.1f} ms "
              f"| {infer['eager_ms'] / infer['ours_fp32_ms']:.2f}x |")
    print(f"| MNIST cGAN epoch ({args.subset or 60000} images, ours, {precision}) | {mnist['plain']:.2f} s | "
          f"{mnist['ours']:.2f} s | {mnist['plain'] / mnist['ours']:.2f}x |")
    if AMP:
        print(f"| MNIST cGAN epoch (ours fp32) | {mnist['plain']:.2f} s | {mnist['ours fp32']:.2f} s | "
              f"{mnist['plain'] / mnist['ours fp32']:.2f}x |")
    print(f"| cGAN GFLOP/s vs fp32 matmul peak | | {mnist['gflops']:.0f} | {mnist['gflops'] / peak['fp32']:.0%} of "
          f"{peak['fp32']:.0f} |")
    for k, v in rss.items():
        print(f"| peak RSS {k} | | {v:.0f} MB | |")

    figures = {
        "precision": describe("auto", "cpu"), "cpu_bf16": native_bf16("cpu"), "cpu": caps,
        "pix2pix_step_speedup": round(base / steps["ours"], 3),
        "pix2pix_step_speedup_fp32": round(base / steps["ours fp32"],
                                           3), "pix2pix_step_speedup_bf16": round(base / steps["ours bf16"], 3),
        "pix2pix_step_s": {k: round(v, 3) for k, v in steps.items()},
        "unet_infer_ms": round(infer["ours_ms"], 2), "unet_infer_eager_ms": round(infer["eager_ms"], 2),
        "unet_infer_fp32_ms": round(infer["ours_fp32_ms"], 2),
        "unet_infer_max_abs_diff": infer["max_abs_diff"], "unet_infer_fp32_max_abs_diff": infer["max_abs_diff_fp32"],
        "mnist_cgan_epoch_s": round(mnist["ours"], 2), "mnist_cgan_plain_epoch_s": round(mnist["plain"], 2),
        "mnist_cgan_fp32_epoch_s": round(mnist.get("ours fp32", mnist["ours"]), 2),
        "mnist_cgan_gflops": round(mnist["gflops"], 1), "matmul_peak_gflops": round(peak["fp32"], 1),
        "matmul_bf16_gflops": round(peak["bf16"], 1), "peak_rss_mb": {k: round(v) for k, v in rss.items()},
        "quick": args.quick, "machine": machine,
    }
    # --quick times smaller problems than the targets are about: no verdict then
    figures["targets_met"] = None if args.quick else {k: (figures[k] >= v if op == ">=" else figures[k] <= v) for k,
                                                      (op, v) in TARGETS.items()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
