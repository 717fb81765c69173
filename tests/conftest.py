"""Shared fixtures and the test environment, set here once. Tests run offline: nothing may reach
the Hub or download data."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Under pytest-xdist (the README's -n auto) each worker takes its share of the cores: two workers of two
# threads each on a 2-core machine fight over them. Set in a worker only: the controller loads this file
# too, and what it set would reach the workers as if a user had set it (so it was, until 2026-12).
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // int(os.environ.get(
        "PYTEST_XDIST_WORKER_COUNT", "1")))))

import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CONDGEN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data beside the checkout (CI puts it there); a missing folder is an error, not a skip."""
    if not (SHARED_DATA / "mnist" / "MNIST" / "raw").is_dir():
        pytest.fail(f"test data not found at {SHARED_DATA}; set CONDGEN_SHARED_DATA to the shared/data folder")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_root(shared_data, tmp_path_factory):
    """A writable copy of the torchvision MNIST root (torchvision extracts next to the archives)."""
    root = tmp_path_factory.mktemp("mnist")
    shutil.copytree(shared_data / "mnist" / "MNIST", root / "MNIST")
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def start_app(flags):
    """Launch app.main on a free loopback port without blocking; returns (demo, url)."""
    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.main([*flags, "--host", "127.0.0.1", "--port", str(port)], prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def launch_app():
    """launch_app(flags) -> the URL of the app started with flags; every app it started is closed
    after the test module."""
    demos = []

    def launch(flags):
        demo, url = start_app(flags)
        demos.append(demo)
        return url

    yield launch
    for demo in demos:
        demo.close()


def save_pix2pix(root):
    """Small random pix2pix generators (ngf=8) with their PatchGANs; returns the app's CLI flags:
    sketch tab on these, MNIST tabs on the bundled weights. The U-Net is saved in the layout
    train_pix2pix.py writes (<run>/generator, <run>/discriminator), the encoder-decoder in the
    bundled one (<generator>/discriminator)."""
    import torch

    from condgen.pix2pix import Discriminator, EncoderDecoderGenerator, UNetGenerator

    torch.manual_seed(0)
    for name, cls, g, d in (("unet", UNetGenerator, "generator", "discriminator"),
                            ("encoder-decoder", EncoderDecoderGenerator, "", "discriminator")):
        G = cls(ngf=8)
        with torch.no_grad():  # 10x the N(0, 0.02) init: outputs span the colors and dropout shows in them
            for m in G.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                    m.weight.mul_(10)
        G.save_pretrained(root / name / g)
        Discriminator(ndf=8).save_pretrained(root / name / d)
    return ["--unet-dir", str(root / "unet"), "--encoder-decoder-dir", str(root / "encoder-decoder"),
            "--gan-dir", str(root / "none"), "--cgan-dir", str(root / "none")]


def pair_image(seed):
    """A 512x256 pair: outline sketch of random shapes left, the filled shapes right."""
    rng = np.random.default_rng(seed)
    sketch, color = Image.new("RGB", (256, 256), "white"), Image.new("RGB", (256, 256), "white")
    for _ in range(3):
        x0, y0 = rng.integers(10, 150, 2)
        box = (int(x0), int(y0), int(x0 + rng.integers(30, 100)), int(y0 + rng.integers(30, 100)))
        ImageDraw.Draw(color).ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        ImageDraw.Draw(sketch).ellipse(box, outline=(0, 0, 0), width=2)
    pair = Image.new("RGB", (512, 256))
    pair.paste(sketch, (0, 0))
    pair.paste(color, (256, 0))
    return pair


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Four training and two validation pairs of pair_image, for train_pix2pix.py runs of seconds."""
    root = tmp_path_factory.mktemp("pairs")
    for split, seeds in (("train", range(4)), ("val", range(100, 102))):
        (root / split).mkdir()
        for s in seeds:
            pair_image(s).save(root / split / f"{s:03d}.png")
    return root


def train_tiny(tiny_data, out, *extra, process=False):
    """train_pix2pix.py on tiny_data with tiny nets; a CompletedProcess (exit code, stdout, stderr).
    In this process by default (its main() on the parsed flags, as `python train_pix2pix.py` calls
    it: a run of seconds, not the ~4 s of imports a new process costs), or process=True: the
    script in a process of its own, exactly as a user runs it."""
    argv = ["--data", str(tiny_data / "train"), "--val", str(tiny_data / "val"), "--batch-size", "2", "--ngf", "4",
            "--ndf", "4", "--val-rows", "2", "--out", str(out), *extra]
    if process:
        import torch

        # as many threads as a run in this process: a sum over other threads can differ in its last bit
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # offline: set above
        return subprocess.run([sys.executable, str(REPO / "train_pix2pix.py"), *argv], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    import train_pix2pix

    return run_main(train_pix2pix, argv)


def run_main(script, argv):
    """`python <script>.py argv` in this process: script.main(script.parse_args(argv)), as in_process."""
    return in_process(lambda: script.main(script.parse_args(argv)), argv)


def in_process(call, argv):
    """call() as a script's `if __name__ == "__main__"` runs it, as a CompletedProcess: what it printed,
    and the exit code a process would end with (sys.exit("message"): 1 and the message on stderr).
    The signal handlers a run installs (condgen.run.Stop) are put back as they were."""
    import contextlib
    import io
    import signal

    out, err, handlers = io.StringIO(), io.StringIO(), {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            call()
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:  # sys.exit("message")
            code = 1
            print(e.code, file=err)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
