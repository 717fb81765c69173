"""Checkpoints: bit-exact round trips, strict loading, Hub cache pulls offline, fast fallback, push."""

import json
import socket
import threading
import time

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

from condgen import hub
from condgen.checkpoint import atomic_write, load_state, save_pretrained_atomic, save_state
from condgen.hub import CheckpointError, resolve
from condgen.mnist import DiscriminatorCGAN, DiscriminatorGAN, GeneratorCGAN, GeneratorGAN

MODELS = [GeneratorGAN, DiscriminatorGAN, lambda: GeneratorCGAN(batchnorm=True), DiscriminatorCGAN]


@pytest.mark.parametrize("make", MODELS)
def test_save_load_is_bit_exact(make, tmp_path):
    torch.manual_seed(0)
    m = make()
    m.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = type(m).from_pretrained(tmp_path)
    a, b = m.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_round_trip(tmp_path):
    GeneratorCGAN(batchnorm=True).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["batchnorm"] is True
    assert isinstance(GeneratorCGAN.from_pretrained(tmp_path).joint[1], torch.nn.BatchNorm1d)


def test_strict_loading_rejects_mismatched_weights(tmp_path):
    GeneratorCGAN(batchnorm=False).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "batchnorm": True}))  # BN keys now missing
    with pytest.raises(CheckpointError, match="model.safetensors"):
        GeneratorCGAN.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "nz": 64}))  # shape mismatch
    with pytest.raises(CheckpointError, match="model.safetensors"):
        GeneratorCGAN.from_pretrained(tmp_path)


def test_wrong_class_and_missing_or_corrupt_files(tmp_path):
    GeneratorGAN().save_pretrained(tmp_path / "gan")
    with pytest.raises(CheckpointError):
        DiscriminatorGAN.from_pretrained(tmp_path / "gan")
    with pytest.raises(CheckpointError, match="config.json"):
        GeneratorGAN.from_pretrained(tmp_path)  # a folder that holds no model
    (tmp_path / "gan" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        GeneratorGAN.from_pretrained(tmp_path / "gan")
    (tmp_path / "gan" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        GeneratorGAN.from_pretrained(tmp_path / "gan")


def _fake_cache(cache, repo_id, model, sha="a" * 40, pickle_only=False, ref="main"):
    """Lay out a Hub cache entry the way huggingface_hub does: refs/<ref> -> snapshots/<sha>/."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / sha
    model.save_pretrained(snap)
    if pickle_only:
        torch.save(model.state_dict(), snap / "pytorch_model.bin")
        (snap / "model.safetensors").unlink()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(sha)
    return snap


def test_hub_pull_from_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(1)
    G = GeneratorCGAN(batchnorm=True)
    _fake_cache(tmp_path / "cache", "someone/cgan", G)
    bundled = tmp_path / "bundled"
    GeneratorCGAN(batchnorm=True).save_pretrained(bundled)
    model, source = resolve(GeneratorCGAN, repo_id="someone/cgan", bundled=bundled)
    assert source.startswith("hub someone/cgan") and "offline" in source.lower()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), G.state_dict().values()))
    # Not in the cache: falls back to the local folder, then the bundled one, and says why.
    model, source = resolve(GeneratorCGAN, repo_id="someone/other", local_dir=tmp_path / "nope", bundled=bundled)
    assert source.startswith(f"bundled {bundled}") and "someone/other" in source and "nope: not found" in source


def test_hub_pickle_only_repo_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    _fake_cache(tmp_path / "cache", "someone/pickled", GeneratorGAN(), pickle_only=True)
    with pytest.raises(CheckpointError, match=r"^someone/pickled: no model\.safetensors \(pickles are not loaded\)$"):
        GeneratorGAN.from_pretrained("someone/pickled")


def test_a_hub_hosted_cgan_or_gan_loads_in_evaluate_and_sample(tmp_path, monkeypatch, capsys):
    """config.json does not say GAN or cGAN, and a Hub id is no folder to read it from: both CLIs
    find the class by loading (condgen.mnist.load_generator), offline from the cache here."""
    from condgen import evaluate, sample

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    _fake_cache(tmp_path / "cache", "someone/condgen-cgan", GeneratorCGAN(batchnorm=True))
    _fake_cache(tmp_path / "cache", "someone/condgen-gan", GeneratorGAN(batchnorm=True))
    seen = []  # the metrics themselves are tests/test_mnist.py's: record which class was loaded
    monkeypatch.setattr("condgen.evaluate_mnist.evaluate", lambda G, *args: seen.append(type(G)) or {})
    for repo in ("someone/condgen-cgan", "someone/condgen-gan"):
        evaluate.main(["mnist", "--weights", repo, "--json"])
    assert seen == [GeneratorCGAN, GeneratorGAN]
    sample.main(["--weights", "someone/condgen-cgan", "--n", "3", "--out", str(tmp_path / "s.png")])
    assert "(30 samples from someone/condgen-cgan)" in capsys.readouterr().out  # 10 rows of 3: a digit table


def test_unreachable_hub_falls_back_within_seconds(tmp_path, monkeypatch):
    # A loopback server that accepts connections and never answers: the worst case for a client.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    conns = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    GeneratorGAN().save_pretrained(tmp_path / "bundled")
    try:
        t = time.monotonic()
        _, source = resolve(GeneratorGAN, repo_id="someone/gan", bundled=tmp_path / "bundled", timeout=1.0)
        elapsed = time.monotonic() - t
    finally:
        stop.set()
        server.close()
    assert source.startswith("bundled") and "unreachable" in source
    assert elapsed < 3.0, f"fallback took {elapsed:.1f}s"


def test_push_uploads_exactly_the_model_files(tmp_path, monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    calls = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", repo_id))

    def upload_folder(self, *, repo_id, folder_path, allow_patterns=None, commit_message=None, **kw):
        files = [p.name for p in sorted(__import__("pathlib").Path(folder_path).iterdir())]
        calls["upload"] = (repo_id, sorted(filter_repo_objects(files, allow_patterns=allow_patterns)), commit_message)

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    folder = tmp_path / "g"
    GeneratorGAN().save_pretrained(folder)
    (folder / "samples.png").write_bytes(b"png")
    (folder / "state.safetensors").write_bytes(b"not for the hub")
    (folder / "eval.json").write_text("{}")
    hub.push(folder, "me/gan", "one commit")
    assert calls["create"] == "me/gan"
    assert calls["upload"] == ("me/gan", ["README.md", "config.json", "model.safetensors", "samples.png"], "one commit")


def test_training_state_round_trip(tmp_path):
    torch.manual_seed(0)
    G = GeneratorCGAN(batchnorm=True)
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    G(torch.randn(4, 100), torch.eye(10)[:4]).mean().backward()
    opt.step()
    rng_state = torch.get_rng_state()
    save_state(tmp_path / "s.safetensors", {"G": G}, {"opt": opt}, {"torch": rng_state}, {"epoch": 3})
    G2 = GeneratorCGAN(batchnorm=True)
    opt2 = torch.optim.Adam(G2.parameters(), lr=1e-3)
    rng, meta = load_state(tmp_path / "s.safetensors", {"G": G2}, {"opt": opt2})
    assert meta == {"epoch": 3} and torch.equal(rng["torch"], rng_state)
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert all(torch.equal(s1["state"][i]["exp_avg_sq"], s2["state"][i]["exp_avg_sq"]) for i in s1["state"])
    # a state for another architecture is rejected with the file named
    with pytest.raises(ValueError, match="s.safetensors"):
        load_state(tmp_path / "s.safetensors", {"G": GeneratorCGAN(batchnorm=False)})
    tensors = load_file(tmp_path / "s.safetensors")
    save_file(tensors, tmp_path / "bare.safetensors")  # no condgen metadata
    with pytest.raises(ValueError, match="not a condgen training state"):
        load_state(tmp_path / "bare.safetensors")


def test_atomic_files_are_readable_by_others(tmp_path):
    """mkstemp creates 0600 files; what we save (weights, cards, state) is meant to be shared."""
    import os
    import stat
    from pathlib import Path

    atomic_write(tmp_path / "card.md", lambda tmp: Path(tmp).write_text("card"))
    save_pretrained_atomic(GeneratorGAN(), tmp_path / "G")
    for f in [tmp_path / "card.md", tmp_path / "G" / "model.safetensors", tmp_path / "G" / "config.json"]:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o644, f


def test_resumed_fused_adam_on_channels_last_weights_steps_as_uninterrupted(tmp_path):
    # The state file holds contiguous tensors; fused Adam pairs a parameter with its moments as flat
    # memory, so load_state must give the moments the parameters' NHWC layout back.
    from condgen.pix2pix import Discriminator

    def make():
        torch.manual_seed(0)
        D = Discriminator(ndf=4).to(memory_format=torch.channels_last)
        return D, torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.5, 0.999), fused=True)

    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)

    def step(D, opt, i):
        opt.zero_grad()
        D(x * i, x).square().mean().backward()
        opt.step()

    D, opt = make()
    for i in (1, 2):
        step(D, opt, i)
    D1, opt1 = make()
    step(D1, opt1, 1)
    save_state(tmp_path / "s.safetensors", {"D": D1}, {"opt": opt1})
    D2, opt2 = make()
    load_state(tmp_path / "s.safetensors", {"D": D2}, {"opt": opt2})
    assert all(st["exp_avg"].stride() == p.stride() for p, st in opt2.state.items())
    step(D2, opt2, 2)
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), D2.state_dict().values()))


@pytest.mark.parametrize("name", ["runs/pix2pix-unett", "./weights/gann", "../elsewhere/cgan", "/tmp/no/such", "~/cgan",
                                  "weights/cgann", "data/x", "a/b/c", "tests/no-such-model"])
def test_a_local_path_that_does_not_exist_is_no_such_folder_at_once(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online: the Hub must still not be asked
    monkeypatch.setattr(hub, "hub_snapshot", lambda *a, **k: pytest.fail(f"asked the Hub for {a}"))
    assert hub.looks_like_path(name)
    with pytest.raises(CheckpointError, match=f"^no such folder: {name}$"):
        GeneratorGAN.from_pretrained(name)


@pytest.mark.parametrize("name", ["user/condgen-cgan", "condgen-cgan"])
def test_hub_ids_are_not_paths(name):
    assert not hub.looks_like_path(name)


def test_evaluate_and_load_generator_say_no_such_folder(capsys):
    from condgen import evaluate
    from condgen.pix2pix import load_generator

    with pytest.raises(SystemExit, match="^error: no such folder: runs/cgann$"):
        evaluate.main(["mnist", "--weights", "runs/cgann"])
    with pytest.raises(CheckpointError, match="^no such folder: runs/pix2pix-unett$"):
        load_generator("runs/pix2pix-unett")
    with pytest.raises(CheckpointError, match="not a Hub repo id: my weights"):
        GeneratorGAN.from_pretrained("my weights")


def test_check_resume_names_the_changed_flag_and_its_saved_value(tmp_path):
    from argparse import Namespace

    from condgen.checkpoint import check_resume

    started = Namespace(subset=512, generator="unet", ngf=16, epochs=2)
    save_state(tmp_path / "state.safetensors", meta={"epoch": 1, "args": {k: str(v) for k, v in vars(started).items()}})
    keys = ["subset", "generator", "ngf"]
    # more epochs: fine
    check_resume(tmp_path / "state.safetensors", Namespace(subset=512, generator="unet", ngf=16, epochs=9), keys)
    check_resume(tmp_path / "missing.safetensors", started, keys)  # load_state reports a missing file
    with pytest.raises(ValueError, match=r"started with --subset 512 \(now 0\): resume with --subset 512, or"):
        check_resume(tmp_path / "state.safetensors", Namespace(subset=0, generator="unet", ngf=16, epochs=2), keys)
    with pytest.raises(ValueError,
                       match=r"--subset 512 \(now 0\), --ngf 16 \(now 64\): resume with --subset 512 --ngf 16,"):
        check_resume(tmp_path / "state.safetensors", Namespace(subset=0, generator="unet", ngf=64, epochs=2), keys)


def test_train_mnist_resume_with_another_subset_is_refused(mnist_root, tmp_path):
    import train_mnist

    def run(*extra):
        flags = ["--model", "gan", "--data-dir", str(mnist_root), "--batch-size", "64", "--eval-per-class", "0"]
        return train_mnist.main(train_mnist.parse_args([*flags, "--out", str(tmp_path), *extra]))

    run("--subset", "256", "--epochs", "1")
    args_json = (tmp_path / "args.json").read_text()
    with pytest.raises(SystemExit, match=r"cannot resume: .* started with --subset 256 \(now 0\)"):
        run("--epochs", "2", "--resume")
    assert (tmp_path / "args.json").read_text() == args_json  # not overwritten
    run("--subset", "256", "--epochs", "2", "--resume")


def test_push_is_checked_before_training_and_a_failed_push_keeps_the_run(tmp_path, monkeypatch, capsys):
    import train_mnist
    import train_pix2pix

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for script in (train_mnist, train_pix2pix):
        with pytest.raises(SystemExit):
            script.parse_args(["--model", "gan", "--push-to-hub",
                               "me/gan"] if script is train_mnist else ["--push-to-hub", "me/p2p"])
        err = capsys.readouterr().err
        # the push command for later names this run's folder, as the user can paste it
        folder = "runs/gan/generator" if script is train_mnist else "runs/pix2pix-unet/generator"
        assert "HF_HUB_OFFLINE is set" in err and f"python -m condgen.push {folder} me/" in err, err
        with pytest.raises(SystemExit):
            script.parse_args((["--model", "gan"] if script is train_mnist else []) + ["--lr", "nan"])
        assert "--lr must be a positive number" in capsys.readouterr().err

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(hub, "push", offline)
    hub.push_run([(tmp_path / "generator", "me/gan")], "msg")
    assert f"push it later with: python -m condgen.push {tmp_path / 'generator'} me/gan" in capsys.readouterr().out


def test_push_error_names_the_command_that_pushes_later(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.push_error("me/gan") == (
        "HF_HUB_OFFLINE is set, so nothing can be pushed: unset it; or train without --push-to-hub and push later "
        "with: python -m condgen.push OUT/generator me/gan (OUT: the run's --out folder)")
    assert hub.push_error("me/gan", later="runs/gan/generator").endswith(
        "push later with: python -m condgen.push runs/gan/generator me/gan")
    assert hub.push_error("me/gan", later=None) == "HF_HUB_OFFLINE is set, so nothing can be pushed: unset it"


def test_the_push_command_runs_without_a_runpy_warning(tmp_path):
    """condgen/__init__ imports condgen.hub, so `python -m condgen.hub` ran a second copy of it and
    runpy warned; condgen.push is a module of its own. The old spelling still works."""
    import os
    import subprocess
    import sys

    GeneratorGAN().save_pretrained(tmp_path / "generator")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    new = subprocess.run([sys.executable, "-m", "condgen.push", str(tmp_path / "generator"), "me/gan"],
                         capture_output=True, text=True, env=env)
    assert new.returncode == 2, new.stderr
    said = "python -m condgen.push: error: HF_HUB_OFFLINE is set, so nothing can be pushed: unset it"
    assert new.stderr.splitlines()[-1] == said
    assert "Warning" not in new.stderr
    old = subprocess.run([sys.executable, "-m", "condgen.hub", "push", str(tmp_path / "generator"), "me/gan"],
                         capture_output=True, text=True, env=env)
    assert old.returncode == 2 and old.stderr.splitlines()[-1] == said


@pytest.mark.parametrize("text, says", [
    ('{"nz": 100,', r"is not valid JSON \(line 2, column 1: Expecting property name enclosed in double quotes\)"),
    ("[1, 2]", "holds an array, not a JSON object of constructor arguments"),
])
def test_a_malformed_config_json_is_named(text, says, tmp_path, capsys):
    from condgen import evaluate
    from condgen.pix2pix import load_generator

    GeneratorGAN().save_pretrained(tmp_path / "gan")
    config = tmp_path / "gan" / "config.json"
    config.write_text(text + "\n")
    with pytest.raises(CheckpointError, match=f"^{config} {says}"):
        GeneratorGAN.from_pretrained(tmp_path / "gan")
    with pytest.raises(CheckpointError, match=f"^{config} {says}"):  # once, not wrapped as "not a ..." per class
        load_generator(tmp_path / "gan")
    with pytest.raises(SystemExit, match=f"^error: {config} {says}"):
        evaluate.main(["mnist", "--weights", str(tmp_path / "gan")])


def test_split_revision():
    assert hub.split_revision("me/cgan@v1") == ("me/cgan", "v1")
    assert hub.split_revision("me/cgan") == ("me/cgan", None)
    assert hub.split_revision("me/cgan@") == ("me/cgan", None)


def test_a_hub_id_at_a_revision_loads_in_every_cli(tmp_path, monkeypatch, capsys):
    """REPO@REVISION, as the app's --*-repo flags take it (condgen.weights), in colorize, evaluate
    and sample (condgen.hub.load_first) and from_pretrained; offline from the cache here."""
    from PIL import Image, ImageDraw

    from condgen import colorize, evaluate, sample
    from condgen.pix2pix import UNetGenerator

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    _fake_cache(tmp_path / "cache", "someone/cgan", GeneratorCGAN(batchnorm=True), sha="b" * 40, ref="v1")
    _fake_cache(tmp_path / "cache", "someone/unet", UNetGenerator(ngf=8), sha="c" * 40, ref="v1")
    G = GeneratorCGAN.from_pretrained("someone/cgan@v1")
    assert isinstance(G.joint[1], torch.nn.BatchNorm1d)
    monkeypatch.setattr("condgen.evaluate_mnist.evaluate", lambda G, *args: {})
    evaluate.main(["mnist", "--weights", "someone/cgan@v1", "--json"])
    sample.main(["--weights", "someone/cgan@v1", "--n", "2", "--out", str(tmp_path / "s.png")])
    sketch = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(sketch).ellipse((10, 10, 50, 50), outline="black", width=2)
    sketch.save(tmp_path / "sketch.png")
    colorize.main([str(tmp_path / "sketch.png"), "--weights", "someone/unet@v1", "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "sketch.png").is_file() and (tmp_path / "s.png").is_file()
    with pytest.raises(SystemExit, match="^error: someone/unet@v2: not in the local Hugging Face cache"):
        colorize.main([str(tmp_path / "sketch.png"), "--weights", "someone/unet@v2", "--out", str(tmp_path / "out")])


def _free_port():
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("offline", [True, False])
def test_a_hub_id_not_in_the_cache_offline_or_without_network_is_named_with_why(offline, tmp_path, monkeypatch):
    """Not huggingface_hub's ~25 s of retries and its message naming neither the repo nor the reason.
    How long it takes: python -m bench.hub_offline (no timed assert here)."""
    from condgen import colorize, evaluate

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    if offline:
        why = "HF_HUB_OFFLINE is set, so the Hub was not asked; unset HF_HUB_OFFLINE to download it"
    else:
        port = _free_port()
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        why = r"the Hub is unreachable: no network \(ConnectError reaching 127\.0\.0\.1 after \d+\.\ds\); connect"
    head = "^error: nobody/no-such-model: not in the local Hugging Face cache, and "
    with pytest.raises(SystemExit, match=head + why):
        colorize.main(["sketch.png", "--weights", "nobody/no-such-model", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match=head + why):
        evaluate.main(["mnist", "--weights", "nobody/no-such-model"])
