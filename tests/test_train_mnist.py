"""train_mnist.py as users run it: real MNIST (a subset), files written, resume resumes, bad input fails."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_main
from safetensors.torch import load_file

import train_mnist
from condgen.checkpoint import load_state
from condgen.mnist import DiscriminatorCGAN, GeneratorCGAN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(mnist_root, out, *extra):
    args = train_mnist.parse_args(
        ["--data-dir", str(mnist_root), "--subset", "512", "--batch-size", "64", "--eval-per-class", "0", "--out",
         str(out), *extra]
    )
    return train_mnist.main(args)


def test_a_few_steps_move_d_real_and_fake_apart(mnist_root, tmp_path):
    _, history = run(mnist_root, tmp_path / "gan", "--model", "gan", "--epochs", "2")
    first, last = history[0], history[-1]
    assert last["D_x"] - last["D_G_z"] > 0.2, history  # D tells real from fake after 16 steps
    assert last["loss_D"] < first["loss_D"]


def test_files_written_and_loadable(mnist_root, tmp_path):
    G, _ = run(mnist_root, tmp_path / "cgan", "--model", "cgan", "--epochs", "1")
    out = tmp_path / "cgan"
    for f in ["generator/config.json", "generator/model.safetensors", "generator/README.md", "generator/samples.png",
              "discriminator/model.safetensors", "samples/epoch_001.png", "state.safetensors", "args.json",
              "log.jsonl"]:
        assert (out / f).is_file(), f
    loaded = GeneratorCGAN.from_pretrained(out / "generator")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), G.state_dict().values()))
    card = (out / "generator" / "README.md").read_text()
    assert "epochs: 1," in card
    # main() called from Python: the command comes from the parsed arguments, not from pytest's sys.argv
    assert f"command: `python train_mnist.py --model cgan --data-dir {mnist_root} --subset 512 --epochs 1 " in card


def test_resume_gives_the_same_state_as_an_uninterrupted_run(mnist_root, tmp_path):
    run(mnist_root, tmp_path / "straight", "--model", "cgan", "--epochs", "2")
    run(mnist_root, tmp_path / "resumed", "--model", "cgan", "--epochs", "1")
    run(mnist_root, tmp_path / "resumed", "--model", "cgan", "--epochs", "2", "--resume")
    a = load_file(tmp_path / "straight" / "state.safetensors")
    b = load_file(tmp_path / "resumed" / "state.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different  # weights, Adam moments and RNG streams all identical

    # resuming a finished run trains nothing and publishes the same generator again
    published = load_file(tmp_path / "resumed" / "generator" / "model.safetensors")
    G_pub, history = run(mnist_root, tmp_path / "resumed", "--model", "cgan", "--epochs", "2", "--resume")
    assert len(history) == 2
    again = load_file(tmp_path / "resumed" / "generator" / "model.safetensors")
    assert all(torch.equal(published[k], again[k]) for k in published)


def test_killed_run_resumes_from_its_last_epoch(mnist_root, tmp_path):
    out = tmp_path / "killed"
    base = [sys.executable, "train_mnist.py", "--model", "gan", "--data-dir", str(mnist_root), "--subset", "512",
            "--batch-size", "64", "--eval-per-class", "0", "--out", str(out)]
    proc = subprocess.Popen(base + ["--epochs", "1000"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "samples" / "epoch_003.png").exists():
            time.sleep(0.2)
        assert (out / "samples" / "epoch_003.png").exists(), "training did not get going"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _, meta = load_state(out / "state.safetensors")
    done = meta["epoch"]
    assert done >= 2
    argv = [*base[2:], "--epochs", str(done + 1), "--resume"]  # continued here: a new process costs ~5 s of imports
    r = run_main(train_mnist, argv)
    assert r.returncode == 0, r.stderr
    assert f"resumed {out / 'state.safetensors'} at epoch {done}" in r.stdout
    _, meta = load_state(out / "state.safetensors")
    assert meta["epoch"] == done + 1 and len(meta["history"]) == done + 1


@pytest.mark.parametrize("argv,message", [
    (["--model", "vae"], "invalid choice: 'vae'"),
    (["--model", "gan", "--epochs", "0"], "--epochs must be >= 1"),
    (["--model", "gan", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["--model", "cgan", "--d-dropout", "1"], "--d-dropout must be in [0, 1)"),
])
def test_bad_cli_input_is_a_clear_error(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        train_mnist.parse_args(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_unreadable_data_dir_exits_nonzero_naming_it(tmp_path):
    argv = ["--model", "cgan", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]
    r = run_main(train_mnist, argv)
    assert r.returncode != 0 and "no MNIST under" in r.stderr and "nowhere" in r.stderr


def test_resume_without_state_or_of_another_model_fails(mnist_root, tmp_path):
    with pytest.raises(SystemExit, match="cannot resume: no training state"):
        run(mnist_root, tmp_path / "none", "--model", "gan", "--epochs", "1", "--resume")
    run(mnist_root, tmp_path / "g", "--model", "gan", "--epochs", "1")
    with pytest.raises(SystemExit, match="cannot resume"):
        run(mnist_root, tmp_path / "g", "--model", "cgan", "--epochs", "2", "--resume")


@pytest.mark.parametrize("conditional", [True, False])
def test_train_step_is_the_plain_d_then_g_step(conditional):
    """train_step batches real and fake through D in one call and freezes D in the G step: the
    same math as the plain step with two D calls (bench.plain; dropout off, so both draw the same
    network). D's gradients after the whole step are the D step's alone: frozen, D took none from
    the G step's backward."""
    import copy

    import torch.nn.functional as F

    from bench.plain import plain_mnist_step
    from condgen.mnist import DiscriminatorCGAN, DiscriminatorGAN, GeneratorGAN

    torch.manual_seed(0)
    G = GeneratorCGAN(batchnorm=True) if conditional else GeneratorGAN(batchnorm=True)
    D = DiscriminatorCGAN(dropout=0.0) if conditional else DiscriminatorGAN()
    G2, D2, G3, D3 = copy.deepcopy(G), copy.deepcopy(D), copy.deepcopy(G), copy.deepcopy(D)
    # SGD, not Adam: Adam's first step is ~lr * sign(grad), which blows rounding noise on tiny
    # gradients up to whole steps; SGD's step is the gradient itself.
    opt = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (G, D, G2, D2)]
    x, c = torch.rand(32, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (32,))
    cond = (F.one_hot(c, 10).float(),) if conditional else ()

    torch.manual_seed(1)
    stats = train_mnist.train_step(G, D, opt[0], opt[1], x, c if conditional else None, 0.9)
    torch.manual_seed(1)  # the plain step: the same z, D called on real and fake separately
    plain = plain_mnist_step(G2, D2, opt[2], opt[3], x, *cond, real_label=0.9)

    torch.testing.assert_close(stats[:2], torch.tensor(plain))
    for a, b in zip([*G.parameters(), *D.parameters()], [*G2.parameters(), *D2.parameters()]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # the D step's gradient alone, from the weights before the step
    torch.manual_seed(1)
    fake = G3(torch.randn(32, G3.nz), *cond).detach()
    loss_D = (F.binary_cross_entropy_with_logits(D3(x, *cond), torch.full((32,), 0.9))
              + F.binary_cross_entropy_with_logits(D3(fake, *cond), torch.zeros(32)))
    loss_D.backward()
    for p, p_D_step in zip(D.parameters(), D3.parameters()):
        torch.testing.assert_close(p.grad, p_D_step.grad, atol=1e-6, rtol=1e-4)
    assert all(p.requires_grad for p in D.parameters())  # unfrozen again


@pytest.mark.parametrize("script, argv", [
    ("train_mnist", ["--model", "gan", "--no-g-batchnorm", "--g-widths", "64,64", "--lr", "1e-3", "--resume"]),
    ("train_pix2pix", ["--generator", "encoder-decoder", "--l1-only", "--no-channels-last", "--ngf", "8"]),
    ("train_pix2pix", ["--recipe", "recipes/pix2pix-encoder-decoder.toml", "--epochs", "20", "--ndf", "16"]),
    ("train_mnist", ["--recipe", "recipes/cgan.toml", "--no-g-batchnorm"]),
])
def test_the_cards_command_parses_back_to_the_same_arguments(script, argv, tmp_path):
    """condgen.run.command rebuilds the command line from the parsed arguments (not sys.argv)."""
    import importlib
    import shlex

    module = importlib.import_module(script)
    args = module.parse_args([*argv, "--out", str(tmp_path / "a run")])
    words = shlex.split(args.command)
    assert words[:2] == ["python", f"{script}.py"]
    # a recipe's flags stay in its file: the command names the file and the flags given beside it
    if "--recipe" in argv:  # both recipes set --lr-decay-epochs
        assert words[2:4] == argv[:2] and "--lr-decay-epochs" not in words
    # --resume is how a run went on, not what it is: the card's command starts it from scratch
    assert vars(module.parse_args(words[2:])) == {**vars(args), "resume": False}


def test_init_from_starts_from_a_run_and_lr_decays_to_zero(mnist_root, tmp_path, capsys):
    G_first, _ = run(mnist_root, tmp_path / "first", "--model", "cgan", "--epochs", "1", "--ema", "0")
    # the last 4 epochs decay linearly towards 0: 4/5, 3/5, 2/5, 1/5 of --lr
    G, history = run(mnist_root, tmp_path / "decay", "--model", "cgan", "--epochs", "4", "--lr-decay-epochs", "4",
                     "--init-from", str(tmp_path / "first"), "--ema", "0")
    assert [round(h["lr"] / 2e-4, 6) for h in history] == [0.8, 0.6, 0.4, 0.2]
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"epoch"')]
    assert [p["lr"] for p in printed[-4:]] == [1.6e-4, 1.2e-4, 8e-5, 4e-5]  # significant digits, not 0.0001 / 0.0
    # started from the first run's weights: one more epoch at a small lr stays near them, unlike a fresh init
    fresh = GeneratorCGAN(batchnorm=True)
    near = sum((a - b).abs().mean() for a, b in zip(G.parameters(), G_first.parameters()))
    far = sum((a - b).abs().mean() for a, b in zip(fresh.parameters(), G_first.parameters()))
    assert near < 0.5 * far
    with pytest.raises(SystemExit, match="cannot start from"):
        run(mnist_root, tmp_path / "bad", "--model", "gan", "--epochs", "1", "--init-from", str(tmp_path / "first"))


def test_resume_with_other_g_widths_says_which_flag_changed(mnist_root, tmp_path):
    """Like every flag that makes another kind of run: one sentence, not a 20-line size-mismatch dump."""
    run(mnist_root, tmp_path / "w", "--model", "cgan", "--epochs", "1", "--g-widths", "16,16,32", "--d-dropout", "0.2")
    assert DiscriminatorCGAN.from_pretrained(tmp_path / "w" / "discriminator").drop.p == 0.2
    with pytest.raises(SystemExit) as e:
        run(mnist_root, tmp_path / "w", "--model", "cgan", "--epochs", "2", "--g-widths", "16,16,64", "--d-dropout",
            "0.2", "--resume")
    message = str(e.value.code)
    assert "--g-widths 16,16,32 (now 16,16,64)" in message and "size mismatch" not in message, message

