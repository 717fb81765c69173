"""condgen.tracking: what --report_to trackio writes under the run's folder, read back from trackio's
SQLite file (its documented schema), a resume that continues the same curves, "none" writing
nothing, and a backend that fails turning into one warning line."""

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from condgen import tracking

REPO = Path(__file__).resolve().parent.parent

# One tracked run a process, as in training: trackio reads TRACKIO_DIR once, at import. The process
# logs loss_D = step / 1000 and loss_G = its marker every 10 steps of [first, last], then the epoch.
TRAIN = """
import sys
from condgen import tracking
out, resume, first, last, marker, grid = sys.argv[1:]
first, last, marker = int(first), int(last), float(marker)
tracker = tracking.start("trackio", out, {"lr": "0.0002", "generator": "unet"}, resume == "1")
for step in range(first, last + 1, 10):
    tracker.log(step, {"loss_D": step / 1000, "loss_G": marker})
tracker.log_epoch(last, {"val": {"l1": last / 10000, "hints": {"l1": 0.5}}, "epoch": marker}, grid)
tracker.finish()
"""


def train(out, first, last, marker, resume=False):
    grid = out.parent / f"grid{marker}.png"
    Image.new("RGB", (48, 32), (200, 30, 30)).save(grid)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("TRACKIO_DIR", None)
    r = subprocess.run([sys.executable, "-c", TRAIN, str(out), "1" if resume else "0", str(first), str(last),
                        str(marker), str(grid)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    return r


def read(out):
    """[(run_id, step, {metric: value})] in the order written, and the runs' configs."""
    with sqlite3.connect(out / "trackio" / f"{tracking.PROJECT}.db") as con:
        rows = [(run_id, step, json.loads(m)) for run_id, step, m in
                con.execute("SELECT run_id, step, metrics FROM metrics ORDER BY id")]
        configs = [json.loads(c) for (c,) in con.execute("SELECT config FROM configs")]
    return rows, configs


def series(rows, key):
    return [(step, m[key]) for _, step, m in rows if key in m]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracking") / "pix2pix-unet"
    train(out, 0, 100, 1.0)
    return out


def test_logs_under_the_run_folder(logged):
    rows, configs = read(logged)
    assert series(rows, "loss_D") == [(s, s / 1000) for s in range(0, 101, 10)]
    assert series(rows, "loss_G") == [(s, 1.0) for s in range(0, 101, 10)]
    assert series(rows, "val/l1") == [(100, 0.01)] and series(rows, "val/hints/l1") == [(100, 0.5)]
    assert series(rows, "epoch") == [(100, 1.0)]
    assert len({run_id for run_id, _, _ in rows}) == 1
    assert configs[0]["lr"] == "0.0002" and configs[0]["generator"] == "unet"
    # the grid is copied under the run's folder, and the row points at the copy
    (_, image), = series(rows, "samples")
    pngs = list((logged / "trackio").rglob("*.png"))
    assert len(pngs) == 1 and pngs[0].name in json.dumps(image)
    assert Image.open(pngs[0]).size == (48, 32)


def test_open_command_points_at_the_data(logged):
    words = shlex.split(tracking.open_command(logged))
    assert words[0] == f"TRACKIO_DIR={logged / 'trackio'}" and words[1:3] == ["trackio", "show"]
    assert (logged / "trackio" / f"{words[-1]}.db").is_file()


def test_resume_continues_the_same_run(tmp_path):
    """The first process logs to step 150 but its last checkpoint was at 100: the resumed process
    logs again from 100; the run keeps one value per step, the first one, and goes on to 250."""
    out = tmp_path / "run"
    train(out, 0, 150, 1.0)
    train(out, 100, 250, 2.0, resume=True)
    rows, _ = read(out)
    assert len({run_id for run_id, _, _ in rows}) == 1
    assert series(rows, "loss_G") == [(s, 1.0 if s <= 150 else 2.0) for s in range(0, 251, 10)]
    assert series(rows, "loss_D") == [(s, s / 1000) for s in range(0, 251, 10)]
    assert series(rows, "val/l1") == [(150, 0.015), (250, 0.025)]
    assert len(list((out / "trackio").rglob("*.png"))) == 2


def test_none_writes_nothing(tmp_path, capsys):
    tracker = tracking.start("none", tmp_path / "run", {"lr": "0.0002"}, resume=False)
    tracker.log(0, {"loss_D": 0.5})
    tracker.log_epoch(0, {"val": {"l1": 0.1}}, tmp_path / "missing.png")
    tracker.finish()
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr() == ("", "")


def test_missing_backend_is_one_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TRACKIO_DIR", raising=False)  # start() sets it: restored after the test
    monkeypatch.setitem(sys.modules, "trackio", None)  # `import trackio` raises ModuleNotFoundError
    tracker = tracking.start("trackio", tmp_path / "run", {}, resume=False)
    tracker.log(0, {"loss_D": 0.5})
    tracker.log_epoch(0, {"val": {"l1": 0.1}}, None)
    tracker.finish()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning:") and "ModuleNotFoundError" in err


def test_unwritable_folder_is_one_warning(tmp_path, capsys):
    (tmp_path / "run").write_text("a file where the run folder should be")
    tracker = tracking.start("trackio", tmp_path / "run", {}, resume=False)
    tracker.log(0, {"loss_D": 0.5})
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning:") and tracker.run is None


def test_failing_log_warns_once_then_does_nothing(capsys):
    class Broken:
        calls = 0

        def log(self, metrics, step=None):
            Broken.calls += 1
            raise OSError(28, "No space left on device")

    tracker = tracking.Tracker(Broken())
    for step in range(3):
        tracker.log(step, {"loss_D": 0.5})
    tracker.finish()
    err = capsys.readouterr().err
    assert Broken.calls == 1 and err.count("\n") == 1 and "No space left" in err


def test_flatten():
    assert tracking.flatten({"val": {"l1": 1, "hints": {"l1": 2}}, "epoch": 3}) == \
        {"val/l1": 1, "val/hints/l1": 2, "epoch": 3}
