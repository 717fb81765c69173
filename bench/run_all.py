"""Every performance figure of the project in one run; the last line printed is one JSON object.

    python bench/run_all.py --data-dir data/mnist          # ~5 min on a 2-core CPU
    python bench/run_all.py --data-dir data/mnist --quick  # smaller, to check the script runs

Each speed-up is measured side by side in this run: the straightforward fp32 eager version (what
a plain port of the tutorial does) against what the training scripts and the app do, same math:

- pix2pix step (U-Net + PatchGAN, paper size, 256x256, batch 4, data included). Plain: JPEG pairs
  decoded and augmented per step in the loop, D's weights get gradients in the G step too, Adam's
  per-parameter loop, a `.item()` per loss per step. Ours, as train_pix2pix.py runs by default:
  `train_step` (D frozen in the G step, so D's weight gradients are skipped), fused Adam, pairs
  decoded once (in memory) and only augmented per step, losses kept on the device, batches and
  weights in NHWC memory layout (channels_last). Also timed: ours in the default layout, and ours
  + bf16 autocast.
- U-Net inference, one 256x256 sketch, the bundled compact generator (the app's): eager fp32 vs
  `condgen.pix2pix.fold_batchnorm` (BatchNorm folded into the convolutions, eval mode only) in
  channels_last under inference_mode; the max absolute difference to fp32 eager is reported.
- MNIST cGAN, one full 60k epoch at batch 128: a per-sample DataLoader and the plain D-then-G step
  vs in-memory batches and `train_mnist.train_step` (real and fake through D in one call, D frozen
  in the G step, fused Adam, no per-step sync). Achieved GFLOP/s (FLOPs counted by torch's
  FlopCounterMode on one step) next to this machine's fp32 matmul peak, measured here.
- Peak resident memory (RSS) of each training script (a few steps at full data size) and of the
  app (started offline, one answer from each endpoint family).
"""

import argparse
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
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from condgen.data import PairDataset, mnist_tensors, pair_augmentation, shuffled_batches, to_unit  # noqa: E402
from condgen.mnist import DiscriminatorCGAN, GeneratorCGAN, one_hot  # noqa: E402
from condgen.pix2pix import Discriminator, UNetGenerator, fold_batchnorm  # noqa: E402
from train_mnist import train_step as mnist_step  # noqa: E402
from train_pix2pix import train_step as pix2pix_step  # noqa: E402

VARIANTS = ["fp32 eager (plain)", "ours", "ours, contiguous", "ours + bf16 autocast"]
TARGETS = {"pix2pix_step_speedup": (">=", 1.6), "unet_infer_ms": ("<=", 40.0), "mnist_cgan_epoch_s": ("<=", 7.5)}


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
        out[name] = 2 * n**3 / medians_in_turns({name: lambda: a @ b}, 5)[name] / 1e9
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
        return to_unit(x.as_subclass(torch.Tensor)), to_unit(y.as_subclass(torch.Tensor))


def plain_pix2pix_step(G, D, opt_G, opt_D, x, y):
    fake = G(x)
    d_real, d_fake = D(x, y), D(x, fake.detach())
    loss_D = 0.5 * (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                    + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    opt_D.zero_grad()
    loss_D.backward()
    opt_D.step()
    d_fake = D(x, fake)
    loss_G = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)) + 100 * (fake - y).abs().mean()
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    return loss_D.item(), loss_G.item()


def pix2pix_variants(folder, args):
    """Seconds per step (median) for each variant, all starting from the same weights."""
    plain_loader = torch.utils.data.DataLoader(JpegPairs(folder), batch_size=4, shuffle=True, drop_last=True)
    memory = PairDataset(folder, augment="paper")
    fast_loader = torch.utils.data.DataLoader(memory, batch_size=4, shuffle=True, drop_last=True)
    steps = {name: pix2pix_step_fn(name, plain_loader if name == "fp32 eager (plain)" else fast_loader, args) for name in VARIANTS}
    results = medians_in_turns(steps, args.repeats)
    for name, t in results.items():
        print(f"  pix2pix {name:20s} {t:.3f} s/step", flush=True)
    return results


def pix2pix_step_fn(name, loader, args):
    """One training step of variant `name`, as a function of nothing."""
    torch.manual_seed(0)
    G, D = UNetGenerator(ngf=args.ngf), Discriminator(ndf=args.ngf)
    nhwc = name in ("ours", "ours + bf16 autocast")  # what train_pix2pix.py does by default (--channels-last)
    if nhwc:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = name != "fp32 eager (plain)"
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused or None, foreach=None if fused else False)
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused or None, foreach=None if fused else False)
    batches = iter(_forever(loader))
    amp = torch.bfloat16 if name == "ours + bf16 autocast" else None

    def step():
        x, y = next(batches)
        if name == "fp32 eager (plain)":
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
    fast = fold_batchnorm(G).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = G(x)

    def eager_fn():
        with torch.no_grad():
            G(x)

    def ours_fn():
        with torch.inference_mode():
            fast(x_cl)

    with torch.inference_mode():
        diff = (fast(x_cl) - ref).abs().max().item()
    times = medians_in_turns({"eager": eager_fn, "ours": ours_fn}, args.repeats * 10, warmup=3)
    eager, ours = times["eager"], times["ours"]
    return dict(source=str(bundled) if have else "random ngf=16", eager_ms=eager * 1e3, ours_ms=ours * 1e3, max_abs_diff=diff)


# ---- MNIST cGAN epoch ----

def plain_mnist_step(G, D, opt_G, opt_D, x, c):
    z = torch.randn(len(x), G.nz)
    fake = G(z, c)
    loss_D = (F.binary_cross_entropy_with_logits(D(x, c), torch.full((len(x),), 0.9))
              + F.binary_cross_entropy_with_logits(D(fake.detach(), c), torch.zeros(len(x))))
    opt_D.zero_grad()
    loss_D.backward()
    opt_D.step()
    loss_G = F.binary_cross_entropy_with_logits(D(fake, c), torch.ones(len(x)))
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    return loss_D.item(), loss_G.item()


def mnist_epochs(args):
    """Seconds for one epoch each way; FLOPs of one of our steps."""
    import torchvision

    n = args.subset or 60000
    results = {}
    for name in ["plain", "ours"]:
        torch.manual_seed(0)
        G, D = GeneratorCGAN(batchnorm=True), DiscriminatorCGAN()
        fused = name == "ours"
        opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused or None, foreach=None if fused else False)
        opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused or None, foreach=None if fused else False)
        # Reading the files is once per run for both, so outside the timer; the per-sample
        # conversion of the DataLoader is per epoch, so inside.
        if name == "plain":
            tf = torchvision.transforms.Compose([torchvision.transforms.ToTensor(), torchvision.transforms.Normalize([0.5], [0.5])])
            ds = torch.utils.data.Subset(torchvision.datasets.MNIST(args.data_dir, train=True, transform=tf), range(n))
            t = time.perf_counter()
            for x, c in torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True, drop_last=True):
                plain_mnist_step(G, D, opt_G, opt_D, x, one_hot(c))
        else:
            x_all, c_all = mnist_tensors(args.data_dir)
            x_all, c_all = x_all[:n], c_all[:n]
            t = time.perf_counter()
            for idx in shuffled_batches(n, 128, torch.Generator().manual_seed(0)):
                stats = mnist_step(G, D, opt_G, opt_D, x_all[idx], c_all[idx], 0.9)
            stats.tolist()  # the one host sync of the epoch
        results[name] = time.perf_counter() - t
        print(f"  mnist cGAN {name:6s} {results[name]:.2f} s/epoch ({n} images)", flush=True)
        if name == "ours":
            with FlopCounterMode(display=False) as counter:
                mnist_step(G, D, opt_G, opt_D, x_all[:128], c_all[:128], 0.9)
            results["gflops"] = counter.get_total_flops() * (n // 128) / results[name] / 1e9
    return results


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
        proc = subprocess.run([cmd[0], "-c", probe, *cmd[1:]], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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
    p.add_argument("--pix2pix-data", default="data/sketch2pokemon-train", help="pairs for the pix2pix memory figure (synthetic if absent)")
    p.add_argument("--ngf", type=int, default=64, help="pix2pix width for the training step (64: the paper's)")
    p.add_argument("--repeats", type=int, default=9, help="timed pix2pix steps per variant, taken in turns (median); inference: 10x")
    p.add_argument("--subset", type=int, default=0, help="MNIST images per epoch (0: all 60k)")
    p.add_argument("--quick", action="store_true", help="ngf 16, 2 repeats, 6400 MNIST images: checks the script, not the machine")
    args = p.parse_args()
    if args.quick:
        args.ngf, args.repeats, args.subset = 16, 2, 6400
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(machine, flush=True)

    peak = matmul_peak()
    print(f"  matmul 2048^2: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_pairs(Path(tmp))
        steps = pix2pix_variants(tmp, args)
        infer = unet_inference(args)
        print(f"  U-Net inference ({infer['source']}): eager {infer['eager_ms']:.1f} ms, ours {infer['ours_ms']:.1f} ms, "
              f"max |diff| {infer['max_abs_diff']:.2e}", flush=True)
        mnist = mnist_epochs(args)
        rss = memory(args, tmp)
    base = steps["fp32 eager (plain)"]

    print("\n| figure | plain fp32 eager | ours | ratio |\n|---|---|---|---|")
    for name in VARIANTS[1:]:
        print(f"| pix2pix step, U-Net ngf={args.ngf} + PatchGAN, batch 4 ({name}) | {base:.2f} s | {steps[name]:.2f} s | {base / steps[name]:.2f}x |")
    print(f"| U-Net inference, 1 sketch | {infer['eager_ms']:.1f} ms | {infer['ours_ms']:.1f} ms | {infer['eager_ms'] / infer['ours_ms']:.2f}x |")
    print(f"| MNIST cGAN epoch ({args.subset or 60000} images) | {mnist['plain']:.2f} s | {mnist['ours']:.2f} s | {mnist['plain'] / mnist['ours']:.2f}x |")
    print(f"| cGAN GFLOP/s vs fp32 matmul peak | | {mnist['gflops']:.0f} | {mnist['gflops'] / peak['fp32']:.0%} of {peak['fp32']:.0f} |")
    for k, v in rss.items():
        print(f"| peak RSS {k} | | {v:.0f} MB | |")

    figures = {
        "pix2pix_step_speedup": round(base / steps["ours"], 3),
        "pix2pix_step_s": {k: round(v, 3) for k, v in steps.items()},
        "unet_infer_ms": round(infer["ours_ms"], 2), "unet_infer_eager_ms": round(infer["eager_ms"], 2),
        "unet_infer_max_abs_diff": infer["max_abs_diff"],
        "mnist_cgan_epoch_s": round(mnist["ours"], 2), "mnist_cgan_plain_epoch_s": round(mnist["plain"], 2),
        "mnist_cgan_gflops": round(mnist["gflops"], 1), "matmul_peak_gflops": round(peak["fp32"], 1),
        "matmul_bf16_gflops": round(peak["bf16"], 1), "peak_rss_mb": {k: round(v) for k, v in rss.items()},
        "quick": args.quick, "machine": machine,
    }
    # --quick times smaller problems than the targets are about: no verdict then
    figures["targets_met"] = None if args.quick else {k: (figures[k] >= v if op == ">=" else figures[k] <= v) for k, (op, v) in TARGETS.items()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
