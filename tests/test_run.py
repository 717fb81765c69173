"""condgen.run, the parts both training scripts share: the plan and ETA lines, a save that fails
(disk full) and an --out that cannot be written."""

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from condgen import run
from condgen.mnist import DiscriminatorGAN, GeneratorGAN


def test_meter_prints_the_plan_the_eta_a_warning_past_a_day_and_progress_lines_in_a_log(monkeypatch, capsys):
    clock = iter(range(0, 10**6, 1000))  # every step takes 1000 s: 100 steps an epoch are ~28 h
    monkeypatch.setattr(run, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    meter = run.Meter(steps_per_epoch=100, epochs=3, master=True, warmup=3, every=2500)
    meter.plan("4 pairs, batch 1", "TRACKIO_DIR=x trackio show")
    for i, _ in meter.steps(range(100), epoch=0, skip=90):  # resumed at step 90 of epoch 1
        meter.step(i, lambda: {"loss_D": 0.5})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "plan: 4 pairs, batch 1; 100 steps an epoch" and out[1] == "dashboard: TRACKIO_DIR=x trackio show"
    # the first step is the clock's start; after 3 more: 1000 s a step, 206 steps left (6 of epoch 1, epochs 2-3)
    assert out[2] == "time: 1000.00 s a step, 27.8 h an epoch, 57.2 h for the rest of the run", out
    assert out[3].startswith("warning: that is 2.4 days on this machine")
    # stdout is not a terminal here (a log file): a progress line every `every` seconds, with the losses
    progress = [line for line in out if line.startswith("epoch 1/3 step")]
    assert len(progress) == 3 and "loss_D 0.500" in progress[0] and progress[-1].endswith("left)")


def test_meter_is_silent_on_other_ranks(capsys):
    meter = run.Meter(steps_per_epoch=4, epochs=1, master=False, warmup=1, every=0)
    meter.plan("x")
    for i, _ in meter.steps(range(4), epoch=0):
        meter.step(i)
    assert capsys.readouterr().out == ""


def _models():
    torch.manual_seed(0)
    G, D = GeneratorGAN(widths=(8, 8)), DiscriminatorGAN()
    return G, D, {"opt_G": torch.optim.Adam(G.parameters()), "opt_D": torch.optim.Adam(D.parameters())}


def test_a_save_that_fails_moves_nothing_and_says_what_was_kept(tmp_path, monkeypatch):
    G, D, opts = _models()
    run.save(tmp_path, {"generator": G, "discriminator": D}, {"G": G, "D": D}, opts, {}, {"epoch": 1})
    before = {f: (tmp_path / f).read_bytes() for f in ("generator/model.safetensors",
                                                       "discriminator/model.safetensors", "state.safetensors")}
    with torch.no_grad():
        for p in [*G.parameters(), *D.parameters()]:
            p.add_(1.0)  # epoch 2's weights

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run, "save_state", full)  # the state is written last: the models were staged already
    with pytest.raises(SystemExit) as e:
        run.save(tmp_path, {"generator": G, "discriminator": D}, {"G": G, "D": D}, opts, {}, {"epoch": 2})
    message = str(e.value.code)
    assert "cannot save epoch 2" in message and "No space left" in message, message
    assert f"{tmp_path} keeps the state of epoch 1" in message and "--resume" in message, message
    # the published folders and the state still agree: all at epoch 1, no staging folder left behind
    assert {f: (tmp_path / f).read_bytes() for f in before} == before
    assert not (tmp_path / ".saving").exists() and run.saved_epoch(tmp_path) == 1
    assert json.loads((tmp_path / "generator" / "config.json").read_text())


def test_a_save_writes_the_models_and_then_the_state(tmp_path):
    G, D, opts = _models()
    run.save(tmp_path, {"generator": G}, {"G": G, "D": D}, opts, {}, {"epoch": 3}, dtype="fp16")
    assert all(v.dtype == torch.float16 for v in load_file(tmp_path / "generator" / "model.safetensors").values()
               if v.is_floating_point())
    assert next(G.parameters()).dtype == torch.float32  # the fp16 copy is the file's, not the model's
    assert run.saved_epoch(tmp_path) == 3 and run.saved_epoch(tmp_path / "none") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator", "state.safetensors"]


def test_an_out_folder_that_cannot_be_written_is_a_sentence(tmp_path):
    (tmp_path / "a file").write_text("")
    with pytest.raises(SystemExit) as e:
        run.check_writable(tmp_path / "a file" / "run")
    assert str(e.value.code).startswith(f"error: cannot write to --out {tmp_path / 'a file' / 'run'} (")
    assert "pick another --out" in str(e.value.code)
    run.check_writable(tmp_path / "new" / "run")  # made when missing
    assert (tmp_path / "new" / "run").is_dir()
