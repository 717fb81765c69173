"""A live training dashboard: `--report-to trackio` writes the losses every few steps and, each
epoch, the validation metrics and grid under the run's folder (OUT/trackio/), and
`open_command(OUT)` is the shell command that shows them. The diffusers examples' `--report_to`,
with one backend: trackio (https://huggingface.co/docs/trackio), local-first, from Hugging Face.

Why trackio and not TensorBoard (torch.utils.tensorboard), as checked with our pins (torch 2.14.1,
gradio 6.31.0, huggingface_hub 2.4.0):
- both install from PyPI beside our pins. trackio 0.43.0 adds 6 packages, 7.9 MB of wheels, 30 MB
  installed: uvicorn's [standard] extras; the rest it needs (huggingface_hub, gradio_client,
  starlette, uvicorn, httpx, orjson, pillow) gradio already brought. tensorboard 2.21.0 adds 7:
  20 MB of wheels, 58 MB installed (grpcio 19 MB, its Rust data server 20 MB, protobuf, absl).
- offline: both. trackio's dashboard (`trackio show`) serves its bundled frontend (in Chromium, no
  request left 127.0.0.1); its one call out in local mode is the Hub's whoami, for the username in
  the run's config, made only when you are logged in, and skipped under HF_HUB_OFFLINE=1.
- the run's folder: TensorBoard takes a log_dir per writer. trackio reads TRACKIO_DIR once, when it
  is imported, so a process has one tracked folder: start() sets it, and a second folder in the same
  process gets the warning below (the training scripts are one run a process).
- --resume: trackio's init(resume="allow") continues the latest run of that name in the same
  database (TensorBoard: a new event file in the same folder, with purge_step). Steps that the
  interrupted process logged after its last checkpoint come again; we skip each metric at the steps
  the run already has (TensorBoard's purge_step would drop the old ones instead).
- cost: trackio's log() queues the values and a thread writes them to SQLite every 0.5 s. With 2
  losses 11 us a call against TensorBoard's 20 us (two add_scalar); 0.3-0.7 s to import against
  2-3 s. bench/tracking.py: 12 us a call of 5 values, 50-90 us with the writer thread's work, so
  logged every 10 steps under 0.01% of a 0.1 s step (2-core CPU, busy).
- the validation grid: trackio.Image takes the PNG's path (and copies it under the folder);
  TensorBoard's add_image wants an array.
trackio is the lighter install, on the stack we have (the Hub's client, starlette, uvicorn; its 0.43
dashboard is its own bundled app, no longer a gradio one), and cheaper a call; its cost is the
process-wide folder. It is young (0.x, a release every few weeks), so it is pinned exactly.

Tracking never stops training: a backend that fails (not installed, a disk error, a bug) prints one
warning line and the tracker does nothing from then on. With DDP, only rank 0 should track.
"""

import contextlib
import io
import json
import os
import shlex
import sqlite3
import sys
from pathlib import Path

CHOICES = ("none", "trackio")
PROJECT = "condgen"  # trackio's database is OUT/trackio/condgen.db; the run is named after OUT


def start(report_to, out_dir, config, resume):
    """The tracker of this run: report_to "none" gives one that does nothing; "trackio" logs under
    out_dir/trackio, into the same run as before when resume is true."""
    if report_to == "none":
        return Tracker()
    if report_to != "trackio":
        raise ValueError(f"report_to must be one of {', '.join(CHOICES)}, got {report_to!r}")
    try:
        return _start_trackio(Path(out_dir), config, resume)
    except Exception as e:  # whatever the backend raises, training goes on without it
        _warn(e)
        return Tracker()


def open_command(out_dir):
    """The shell command that opens out_dir's dashboard (trackio finds its data through TRACKIO_DIR)."""
    return f"TRACKIO_DIR={shlex.quote(str(Path(out_dir) / 'trackio'))} trackio show --project {PROJECT}"


class Tracker:
    """Logs to a trackio run; with run None (report_to none, or a failed backend) it does nothing."""

    def __init__(self, run=None, seen=None):
        self.run = run
        self.seen = seen or {}  # resumed: {metric: last step the run has}, until the steps pass them

    def log(self, step, metrics):
        """Scalars at a training step, e.g. {"loss_D": 0.7, "loss_G": 2.1}."""
        if self.run is None:
            return
        try:
            if self.seen:
                metrics = self._unseen(step, metrics)
            if metrics:
                self.run.log(metrics, step=step)
        except Exception as e:
            self._fail(e)

    def log_epoch(self, step, metrics, image_path=None):
        """An epoch's metrics, nested dicts flattened ({"val": {"l1": x}} -> "val/l1"), and its
        validation grid (a PNG file) as the image "samples"."""
        if self.run is None:
            return
        try:
            metrics = flatten(metrics)
            if image_path is not None:
                import trackio

                metrics["samples"] = trackio.Image(str(image_path), caption=f"step {step}")
        except Exception as e:
            self._fail(e)
            return
        self.log(step, metrics)

    def finish(self):
        """Write what is queued and close the run; the tracker does nothing afterwards."""
        if self.run is None:
            return
        self.run = None
        try:
            import trackio

            with _quiet():
                trackio.finish()  # and forgets the run, which its exit handler would finish again
        except Exception as e:
            _warn(e)

    def _unseen(self, step, metrics):
        """The metrics that the resumed run has no value of at this step or later."""
        if step > max(self.seen.values()):
            self.seen = {}  # past every step of the interrupted process: nothing more to check
            return metrics
        return {k: v for k, v in metrics.items() if step > self.seen.get(k, -1)}

    def _fail(self, e):
        self.run = None
        _warn(e)


def flatten(metrics, prefix=""):
    """{"val": {"l1": 0.1}, "epoch": 3} -> {"val/l1": 0.1, "epoch": 3}: trackio charts scalars by key."""
    flat = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}/"))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _start_trackio(out, config, resume):
    folder = (out / "trackio").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TRACKIO_DIR"] = str(folder)  # read once, by trackio's first import
    with _quiet():
        import trackio
    if trackio.utils.TRACKIO_DIR.resolve() != folder:
        raise RuntimeError(f"trackio already writes to {trackio.utils.TRACKIO_DIR} in this process "
                           f"(it reads TRACKIO_DIR once, at import)")
    # keys starting with "_" are trackio's own (it raises on them); no sampling thread for CPU or
    # GPU stats competing with the loop for our cores
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    with _quiet():
        run = trackio.init(project=PROJECT, name=out.resolve().name, config=config,
                           resume="allow" if resume else "never", auto_log_cpu=False, auto_log_gpu=False,
                           embed=False)
    return Tracker(run, _last_steps(folder / f"{PROJECT}.db", run.id) if resume else {})


def _last_steps(db, run_id):
    """{metric: last step} of a run, read from trackio's documented SQLite schema (a metrics table of
    run_id, step and a JSON object of the values: huggingface.co/docs/trackio/storage_schema)."""
    if not db.exists():
        return {}
    seen = {}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        for step, values in con.execute("SELECT step, metrics FROM metrics WHERE run_id = ?", (run_id,)):
            for k in json.loads(values):
                seen[k] = max(step, seen.get(k, -1))
    return seen


@contextlib.contextmanager
def _quiet():
    """trackio prints a dashboard hint without TRACKIO_DIR, which would open an empty dashboard: the
    scripts print open_command instead."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _warn(e):
    message = f"{type(e).__name__}: {e}".replace("\n", " ")
    print(f"warning: --report-to trackio disabled, training goes on without the dashboard ({message})",
          file=sys.stderr)
