"""The demo's start time and per-endpoint latency under concurrent clients.

    python -m bench.app                          # starts `python app.py` offline on a free port
    python -m bench.app --clients 8 --requests 10 -- --unet-dir runs/pix2pix-unet
    python -m bench.app --url http://127.0.0.1:7860/   # an app that is already running

Cold start: from spawning `python app.py` (HF_HUB_OFFLINE=1) to the first 200 on "/" (a served
page) and to the first answer from /generate_gan through gradio_client. Latency: each of
--clients threads holds its own Client and calls every endpoint --requests times, all at once,
so the numbers include queueing behind the app's concurrency limit, as users would see it.
Memory: the started app's resident set (VmRSS) after each endpoint and its peak (VmHWM), from
/proc (Linux); an app given with --url is not measured.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from gradio_client import Client, handle_file

REPO = Path(__file__).resolve().parent.parent
SKETCH = str(REPO / "examples" / "puffball.png")
BIRD, BIRD_HINTS = str(REPO / "examples" / "bird.png"), str(REPO / "examples" / "hints" / "bird.png")
CALLS = {  # name: (api_name, args)
    "generate_gan x16": ("/generate_gan", (0, 16)),
    "interpolate_gan x10": ("/interpolate_gan", (0, 1, 10)),
    "generate_cgan x16": ("/generate_cgan", (7, 16, 0)),
    "generate_cgan_digits 10x8": ("/generate_cgan_digits", (8, 0)),
    "colorize U-Net": ("/colorize", (SKETCH, "U-Net", False)),
    "colorize Both": ("/colorize", (SKETCH, "Both", False)),
    # color hints: the bird with and without its 4 dots, side by side in one run (target: at most 1.2x)
    "colorize U-Net bird": ("/colorize", (BIRD, "U-Net", False, False)),
    "colorize U-Net bird, 4 hints": ("/colorize", (BIRD, "U-Net", False, False, BIRD_HINTS)),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--url", default=None, help="bench this running app instead of starting one")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients")
    p.add_argument("--requests", type=int, default=5, help="calls per client per endpoint")
    p.add_argument("--only", nargs="*", default=None, help=f"endpoints to time, of: {list(CALLS)}")
    p.add_argument("app_args", nargs="*", help="passed on to app.py (after --)")
    return p.parse_args()


def cold_start(app_args):
    """Spawn app.py; return (process, url, seconds to a served page, seconds to a first answer)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *app_args],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while True:
        if proc.poll() is not None:
            sys.exit(f"app.py exited with {proc.returncode}:\n{proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    page = time.perf_counter() - t0
    Client(url, verbose=False).predict(0, 1, api_name="/generate_gan")
    return proc, url, page, time.perf_counter() - t0


def call(client, api, args):
    args = [handle_file(a) if isinstance(a, str) and a.endswith(".png") else a for a in args]
    t = time.perf_counter()
    client.predict(*args, api_name=api)
    return time.perf_counter() - t


def latencies(url, api, args, clients, requests):
    """Every client calls api `requests` times, all clients at once; returns all latencies."""
    pool = [Client(url, verbose=False) for _ in range(clients)]
    call(pool[0], api, args)  # warm-up: first-call costs are cold start, not latency
    times, errors = [], []
    barrier = threading.Barrier(clients)

    def worker(client):
        barrier.wait()
        for _ in range(requests):
            try:
                times.append(call(client, api, args))
            except Exception as e:  # report, do not hide: a failing endpoint is a result
                errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(c,)) for c in pool]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, errors


def memory(pid):
    """(resident MB now, peak resident MB) of process pid, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        kb = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "VmHWM")))
    return tuple(int(kb[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))


def p95(xs):
    return statistics.quantiles(xs, n=20, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def main():
    args = parse_args()
    proc = None
    if args.url:
        url = args.url
    else:
        proc, url, page, answer = cold_start(args.app_args)
        print(f"cold start (offline): served page {page:.2f} s, first /generate_gan answer {answer:.2f} s")
    try:
        print(f"{args.clients} concurrent clients x {args.requests} requests each, seconds per request")
        if proc:
            print(f"app resident after start-up: {memory(proc.pid)[0]:.0f} MB")
        print(f"{'endpoint':28s} {'median':>7s} {'p95':>7s} {'n':>4s} {'RSS MB':>7s} {'peak':>6s}")
        for name in args.only or CALLS:
            times, errors = latencies(url, *CALLS[name], args.clients, args.requests)
            rss = "{:7.0f} {:6.0f}".format(*memory(proc.pid)) if proc else ""
            if times:
                print(f"{name:28s} {statistics.median(times):7.3f} {p95(times):7.3f} {len(times):4d} {rss}")
            for e in sorted(set(errors)):
                print(f"{name:28s} ERROR x{errors.count(e)}: {e[:200]}")
    finally:
        if proc:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
