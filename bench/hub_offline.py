"""How long `python -m condgen.colorize --weights <a Hub id not in the cache>` takes to say why it
cannot load it, without a network: HF_HUB_OFFLINE set; unset with the Hub refusing connections (no
network); unset with a Hub that accepts connections and never answers (a hung proxy, the worst case).
The issue's target: a sentence naming the repo and the reason within 3 s (huggingface_hub alone: ~25 s
of retries). Each figure is the whole command, Python start-up and imports included, so a baseline
row times those imports alone.

    python -m bench.hub_offline
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def hanging_server():
    """A loopback port that accepts connections and never answers; returns its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    conns = []
    threading.Thread(target=lambda: [conns.append(server.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}"


def refused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def timed(command, env):
    """(seconds, last line of stderr) of command run in a fresh Python."""
    t = time.monotonic()
    r = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env, cwd=REPO)
    return time.monotonic() - t, (r.stderr.strip().splitlines() or [""])[-1]


def main():
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    with tempfile.TemporaryDirectory() as tmp:
        base["HF_HUB_CACHE"] = tmp  # an empty cache: the repo is nowhere
        cli = ["-m", "condgen.colorize", "--weights", "nobody/no-such-model", "examples/fox.png", "--out", tmp]
        rows = [
            ("imports only (baseline)", ["-c", "import condgen.colorize, condgen.pix2pix"], {"HF_HUB_OFFLINE": "1"}),
            ("HF_HUB_OFFLINE=1", cli, {"HF_HUB_OFFLINE": "1"}),
            ("no network (connection refused)", cli, {"HF_ENDPOINT": refused_port()}),
            ("Hub accepts, never answers", cli, {"HF_ENDPOINT": hanging_server()}),
        ]
        for name, command, env in rows:
            seconds, said = timed(command, {**base, **env})
            print(f"{name:34s} {seconds:5.1f} s  {said}")


if __name__ == "__main__":
    main()
