"""train_pix2pix.py stopped and continued as users do it: Ctrl-C or SIGTERM inside an epoch, a
run killed after a save, --resume bit for bit, --init-from, --save-every. (Split from
test_train_pix2pix.py so that pytest-xdist can run the two halves side by side.)"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, run_main, train_tiny
from safetensors.torch import load_file

import train_pix2pix
from condgen import run


def test_renderings_ema_save_every_resume_and_init_from(tiny_data, tmp_path):
    # a folder of rendering folders (condgen.sketchify --method all): the same pairs twice
    renders = tmp_path / "renders"
    for name in ("a", "b"):
        shutil.copytree(tiny_data / "train", renders / name)
    flags = ["--data", str(renders), "--ema", "0.9", "--augment", "paper", "--save-every", "2",
             "--weights-dtype", "fp16"]
    full, part = tmp_path / "full", tmp_path / "part"
    r = train_tiny(tiny_data, full, "--epochs", "3", *flags)
    assert r.returncode == 0, r.stderr
    card = (full / "generator" / "README.md").read_text()
    assert "EMA of G (decay 0.9)" in card and "renderings: a, b" in card
    # killed after the save at epoch 2, resumed to 3: bit for bit the uninterrupted run, G_ema included
    assert train_tiny(tiny_data, part, "--epochs", "2", *flags).returncode == 0
    r = train_tiny(tiny_data, part, "--epochs", "3", "--resume", *flags)
    assert r.returncode == 0, r.stderr
    a, b = load_file(full / "state.safetensors"), load_file(part / "state.safetensors")
    assert any(k.startswith("G_ema/") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # --init-from: G and D start from the run's published weights; a different --ndf starts D fresh
    r = train_tiny(tiny_data, tmp_path / "warm", "--epochs", "1", "--init-from", str(full), *flags)
    assert r.returncode == 0 and "initialized G and D from" in r.stdout, r.stderr
    r = train_tiny(tiny_data, tmp_path / "warm2", "--epochs", "1", "--init-from", str(full), *flags[:-2], "--ndf", "8")
    assert r.returncode == 0 and "D fresh" in r.stdout, r.stderr
    # or from published weights that hold their discriminator inside, as weights/pix2pix-unet does
    shutil.copytree(full / "generator", tmp_path / "published")
    shutil.copytree(full / "discriminator", tmp_path / "published" / "discriminator")
    r = train_tiny(tiny_data, tmp_path / "warm4", "--epochs", "1", "--init-from", str(tmp_path / "published"), *flags)
    assert r.returncode == 0 and "initialized G and D from" in r.stdout, r.stderr
    r = train_tiny(tiny_data, tmp_path / "warm3", "--epochs", "1", "--init-from", str(full), "--ngf", "8")
    assert r.returncode != 0 and "cannot start from" in r.stderr

    # --renderings picks and weights the subfolders; it is part of what --resume must keep
    r = train_tiny(tiny_data, tmp_path / "picked", "--epochs", "1", *flags, "--renderings", "b,b,a")
    assert r.returncode == 0 and "renderings: b, b, a" in (tmp_path / "picked" / "generator" / "README.md").read_text()
    r = train_tiny(tiny_data, tmp_path / "picked", "--epochs", "2", "--resume", *flags)
    assert r.returncode != 0 and "--renderings b,b,a" in r.stderr, r.stderr


class StopAt(run.Stop):
    """run.Stop as if Ctrl-C came during the step that reads it for the `at`-th time (no signal handlers)."""

    def __init__(self, at):
        self.at, self.reads = at, 0

    @property
    def asked(self):
        self.reads += 1
        return self.reads == self.at

    def restore(self):
        pass


def test_a_stop_inside_an_epoch_saves_and_resume_continues_bit_for_bit(tiny_data, tmp_path, monkeypatch, capsys):
    """Ctrl-C (or SIGTERM) at step 3 of epoch 2: a state saved there, one line naming the --resume
    command, and the resumed run ends where the uninterrupted one does: weights, EMA, Adam, losses."""
    flags = ["--data", str(tiny_data / "train"), "--val", str(tiny_data / "val"), "--batch-size", "1", "--ngf", "4",
             "--ndf", "4", "--val-rows", "1", "--epochs", "3", "--ema", "0.9", "--hints", "--lambda-region", "1"]
    train_pix2pix.main(train_pix2pix.parse_args([*flags, "--out", str(tmp_path / "full")]))
    part = tmp_path / "part"
    monkeypatch.setattr(train_pix2pix.run, "Stop", lambda: StopAt(4 + 3))  # 4 steps an epoch
    with pytest.raises(SystemExit) as e:
        train_pix2pix.main(train_pix2pix.parse_args([*flags, "--out", str(part)]))
    message = str(e.value.code)
    assert message.startswith(f"stopped at step 3 of epoch 2, saved in {part}; continue with: python train_pix2pix.py")
    assert message.endswith(" --resume") and "\n" not in message, message
    assert run.saved_epoch(part) == 1  # the published folders stay at the last whole epoch, as the state says
    monkeypatch.undo()
    capsys.readouterr()
    train_pix2pix.main(train_pix2pix.parse_args([*flags, "--out", str(part), "--resume"]))
    assert f"resumed {part / 'state.safetensors'} at step 3 of epoch 2" in capsys.readouterr().out
    for f in ["generator/model.safetensors", "discriminator/model.safetensors", "state.safetensors"]:
        a, b = load_file(tmp_path / "full" / f), load_file(part / f)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
    logs = [[json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()] for out in (tmp_path / "full",
                                                                                                   part)]
    for key in ("loss_G_L1", "loss_D_real", "val"):
        assert [h[key] for h in logs[0]] == [h[key] for h in logs[1]], key


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_exits_with_one_line_and_the_resume_command_works(tiny_data, tmp_path, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "train_pix2pix.py"), "--data", str(tiny_data / "train"), "--val", "none",
           "--batch-size", "1", "--ngf", "4", "--ndf", "4", "--epochs", "1000", "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines = [""]  # the command, precision, loading, loaded ... lines
    while not lines[-1].startswith("plan:"):  # printed once the loop is about to start, the handlers set
        lines.append(p.stdout.readline())
        assert lines[-1], "".join(lines) + p.stderr.read()
    assert "4 pairs, batch 1, epochs 1-1000" in lines[-1] and "4 steps an epoch" in lines[-1], lines[-1]
    time.sleep(2.0)  # a few epochs in
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1 and "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert f"{sig.name}: saving after this step" in stderr and last.startswith("stopped at step "), stderr
    resume = shlex.split(last.split("continue with: ")[1])
    assert resume[:2] == ["python", "train_pix2pix.py"] and resume[-1] == "--resume"
    epoch = int(last.split(" of epoch ")[1].split(",")[0])
    argv = [*resume[2:], "--epochs", str(epoch)]  # that command's flags, run here (the script's imports cost seconds)
    r = run_main(train_pix2pix, argv)
    assert r.returncode == 0 and f"of epoch {epoch}" in r.stdout, r.stdout + r.stderr
    assert run.saved_epoch(out) == epoch
