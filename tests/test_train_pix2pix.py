"""train_pix2pix.py as users run it: tiny data, tiny nets, files written, resume resumes exactly;
and the CLIs that read its output (colorize, metrics)."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import pair_image, train_tiny
from PIL import Image
from safetensors.torch import load_file

import train_pix2pix
from condgen import colorize, evaluate
from condgen.data import to_tanh_range
from condgen.pix2pix import Discriminator, EncoderDecoderGenerator, UNetGenerator, load_generator
from train_pix2pix import Objective, train_step

REPO = Path(__file__).resolve().parent.parent


def test_a_few_steps_lower_l1():
    torch.manual_seed(0)
    pairs = [to_tanh_range(torch.from_numpy(np.array(pair_image(s))).permute(2, 0, 1)) for s in range(2)]
    x, y = (torch.stack([p[:, :, half] for p in pairs])
            for half in (slice(0, 256), slice(256, 512)))
    G, D = UNetGenerator(ngf=8), Discriminator(ndf=8)
    opt_G = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999))
    steps = [train_step(G, D, opt_G, opt_D, x, y) for _ in range(10)]
    assert set(steps[0]) == set(train_pix2pix.LOSSES)
    assert all(s["loss_G_region"] == 0 for s in steps)  # --lambda-region 0: the paper's objective, not computed
    # at N(0, 0.02) init D's logits are near 0, so each BCE starts near log 2 (chance); the GAN terms then move
    for k in ("loss_D_real", "loss_D_fake", "loss_G_GAN"):
        assert steps[0][k].item() == pytest.approx(math.log(2), abs=0.15), (k, steps[0][k])
        assert all(torch.isfinite(s[k]) for s in steps) and steps[-1][k] != steps[0][k]
    l1 = [s["loss_G_L1"].item() for s in steps]
    assert l1[-1] < 0.9 * l1[0] and all(b < a for a, b in zip(l1, l1[1:])), l1


def test_l1_only_leaves_the_discriminator_alone():
    torch.manual_seed(0)
    G, D = EncoderDecoderGenerator(ngf=4), Discriminator(ndf=4)
    D_before = {k: v.clone() for k, v in D.state_dict().items()}
    x = y = torch.rand(2, 3, 256, 256) * 2 - 1
    opt_G, opt_D = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    losses = train_step(G, D, opt_G, opt_D, x, y, Objective(l1_only=True))
    assert losses["loss_G_GAN"] == 0 and losses["loss_D_real"] == 0
    assert all(torch.equal(D_before[k], v) for k, v in D.state_dict().items())


def test_script_trains_writes_files_and_resumes_exactly(tiny_data, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    r = train_tiny(tiny_data, full, "--epochs", "2", process=True)  # the script, as a user runs it
    assert r.returncode == 0, r.stderr
    for f in ["generator/config.json", "generator/model.safetensors", "generator/README.md", "generator/samples.png",
              "discriminator/config.json", "discriminator/model.safetensors", "state.safetensors", "args.json",
              "val/epoch_001.png", "val/epoch_002.png"]:
        assert (full / f).is_file(), f
    log = [json.loads(line) for line in (full / "log.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in log] == [1, 2]
    assert set(log[-1]["val"]) == {"L1", "PSNR", "SSIM", "colorfulness_ratio", "blur_L1", "chroma_tv_ratio",
                                   "outline_ratio", "region_spread_ratio"}
    assert "| sketch as output |" in (full / "generator" / "README.md").read_text()
    assert isinstance(load_generator(full / "generator"), UNetGenerator)
    assert Image.open(full / "val" / "epoch_002.png").size[1] > 2 * 256  # two rows of sketch | output | truth

    # interrupted after epoch 1, resumed to 2: the same weights and optimizer state, bit for bit
    assert train_tiny(tiny_data, part, "--epochs", "1").returncode == 0
    r = train_tiny(tiny_data, part, "--epochs", "2", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stdout
    for f in ["generator/model.safetensors", "discriminator/model.safetensors", "state.safetensors"]:
        a, b = load_file(full / f), load_file(part / f)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
    log_part = [json.loads(line) for line in (part / "log.jsonl").read_text().splitlines()]
    assert [h["loss_G_L1"] for h in log_part] == [h["loss_G_L1"] for h in log]

    # the CLIs read what the script wrote
    colorize.main(["--weights", str(full), str(tiny_data / "val" / "100.png"), "--out", str(tmp_path / "color"),
                   "--grid", str(tmp_path / "grid.png")])
    assert Image.open(tmp_path / "color" / "100.png").size == (512, 256)
    assert Image.open(tmp_path / "grid.png").size == (512, 256)  # one row: sketch | output, 256 px each
    rows = evaluate.main(["pix2pix", "--pairs", str(tiny_data / "val"), "--weights", str(full / "generator"), "--flat",
                          "--sheet", str(tmp_path / "sheet.png")])
    assert rows[f"UNetGenerator {full / 'generator'}"]["L1"] == pytest.approx(log[-1]["val"]["L1"], abs=1e-4)
    assert f"UNetGenerator {full / 'generator'}, flat colors" in rows  # --flat: scored after flat_colors too
    assert Image.open(tmp_path / "sheet.png").width == 2 * 4 * 128 + 8  # sketch | model | model flat | truth


def test_l1_only_encoder_decoder_fp16_weights(tiny_data, tmp_path):
    r = train_tiny(tiny_data, tmp_path / "run", "--epochs", "1", "--generator", "encoder-decoder", "--l1-only",
               "--weights-dtype", "fp16", "--augment", "paper", "--val", "none")
    assert r.returncode == 0, r.stderr
    w = load_file(tmp_path / "run" / "generator" / "model.safetensors")
    assert all(v.dtype == torch.float16 for k, v in w.items() if "num_batches" not in k)
    G = load_generator(tmp_path / "run" / "generator")
    assert isinstance(G, EncoderDecoderGenerator) and next(G.parameters()).dtype == torch.float32
    assert "L1 only" in (tmp_path / "run" / "generator" / "README.md").read_text()


def test_script_refuses_bad_input(tiny_data, tmp_path, capsys):
    base = ["--data", str(tiny_data / "train"), "--val", "none", "--ngf", "4", "--ndf", "4", "--batch-size", "2"]
    with pytest.raises(SystemExit, match="error: no pair folder") as e:
        train_pix2pix.main(train_pix2pix.parse_args([*base, "--data", str(tmp_path / "missing"), "--out",
                                                     str(tmp_path / "a")]))
    # the command that makes the pairs, as a user can paste it
    assert f"python -m condgen.sketchify ../shared/data/pokemon/color {tmp_path / 'missing'} --method all" in str(
        e.value.code)
    with pytest.raises(SystemExit, match="fewer than --batch-size"):
        train_pix2pix.main(train_pix2pix.parse_args([*base, "--batch-size", "8", "--out", str(tmp_path / "b")]))
    with pytest.raises(SystemExit, match="cannot resume"):
        train_pix2pix.main(train_pix2pix.parse_args([*base, "--resume", "--out", str(tmp_path / "c")]))
    for bad in (["--epochs", "0"], ["--lr-decay-epochs", "500"], ["--generator", "resnet"], ["--lr", "nan"],
                ["--bottleneck", "2"], ["--bottleneck", "8"], ["--lambda-region", "-1"],
                ["--lambda-chroma", "-1"], ["--lambda-chroma", "nan"], ["--d-scales", "3"], ["--upsample", "resize"]):
        with pytest.raises(SystemExit) as e:
            train_pix2pix.parse_args([*base, *bad])
        err = capsys.readouterr().err  # read every time: each message checked alone, not with the ones before it
        assert e.value.code == 2
        assert bad[0] not in ("--lr", "--lambda-chroma") or f"{bad[0]} must be" in err, (bad, err)
        assert bad != ["--bottleneck", "8"] or "is for --generator encoder-decoder" in err, err  # the U-Net default
        # the variants removed (docs/variants.md) are unknown flags now
        assert bad[0] not in ("--d-scales", "--upsample") or "unrecognized arguments" in err, err


def test_bottleneck_variant_trains_reports_and_guards_resume(tiny_data, tmp_path):
    out = tmp_path / "ed8"
    flags = ["--generator", "encoder-decoder", "--bottleneck", "8", "--val", "none"]
    r = train_tiny(tiny_data, out, "--epochs", "1", *flags)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "generator" / "config.json").read_text())["bottleneck"] == 8
    card = (out / "generator" / "README.md").read_text()
    assert "8x8 code" in card and "dropout none" in card, card
    assert len(load_generator(out / "generator").encoder) == 5
    r = train_tiny(tiny_data, out, "--epochs", "2", "--resume", *flags[:2], "--val", "none")
    assert r.returncode != 0 and "--bottleneck 8" in r.stderr, r.stderr


def test_region_loss_flattens_each_enclosed_region():
    from condgen.color import region_labels
    from train_pix2pix import region_spread_loss

    # a sketch of two rings: two enclosed regions (its paper, touching the border, is none)
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    x = torch.ones(1, 3, 256, 256)
    for cx in (70, 186):
        x[:, :, ((yy - 128) ** 2 + (xx - cx) ** 2).sqrt().sub(50).abs() < 2] = -1
    labels = region_labels(x)
    assert labels.shape == (1, 256, 256) and labels.max() == 2
    assert labels[0, 128, 70] != labels[0, 128, 186] and labels[0, 0, 0] == 0
    # one color per region (any color, even two different ones): no loss
    flat = torch.zeros(1, 3, 256, 256)
    flat[0, 0][labels[0] == 1], flat[0, 1][labels[0] == 2] = 0.5, -0.5
    assert region_spread_loss(flat, labels).item() < 1e-6
    # two hues inside one region: a loss whose gradient flattens it
    y = flat.clone()
    y[0, :, :128][:, labels[0, :128] == 1] = torch.tensor([-0.5, 0.5, 0.0])[:, None]
    y.requires_grad_(True)
    before = region_spread_loss(y, labels)
    before.backward()
    with torch.no_grad():
        after = region_spread_loss(y - 0.1 * y.grad / y.grad.abs().max(), labels)
    assert before.item() > 0.1 and after.item() < before.item()
    assert (y.grad[0][:, labels[0] == 0] == 0).all()  # the lines and the paper are left to L1 and D
    assert region_spread_loss(y, torch.zeros_like(labels)).item() == 0  # no region enclosed: no term

    # in train_step: the term is reported and changes G's update
    torch.manual_seed(0)
    G = UNetGenerator(ngf=4)
    updates = []
    for lam in (0.0, 100.0):
        G_i = copy.deepcopy(G)
        D_i = Discriminator(ndf=4)
        losses = train_step(G_i, D_i, torch.optim.SGD(G_i.parameters(), 0.1), torch.optim.SGD(D_i.parameters(), 0.1),
                            x.repeat(2, 1, 1, 1), flat.repeat(2, 1, 1, 1), Objective(lambda_region=lam))
        updates.append(G_i.out.weight.detach().clone())
        assert (losses["loss_G_region"] > 0) == (lam > 0)
    assert not torch.equal(*updates)


class _Canvas(torch.nn.Module):
    """A 'generator' that paints one learnable image whatever the sketch: its update is the loss's gradient."""

    def __init__(self, img):
        super().__init__()
        self.img = torch.nn.Parameter(img.clone())

    def forward(self, x):
        return self.img.expand(len(x), -1, -1, -1)


def test_lambda_chroma_splits_l1_into_luminance_and_hue():
    # a gray canvas and a target of another hue but the same luminance: 0.299 r + 0.587 g + 0.114 b of the
    # difference is exactly 0 (the same two products), so the luminance L1 has no gradient at all
    fake, x = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    hue = torch.tensor([0.587, -0.299, 0.0]).view(1, 3, 1, 1) * 0.5
    shade = torch.full((1, 3, 1, 1), 0.2)  # the same in r, g and b: luminance only, no chroma
    for change, lam, moves in ((hue, None, True),  # the paper's RGB L1 sees a change of hue ...
                               (hue, 0.0, False),  # ... which --lambda-chroma 0 leaves to the adversarial term
                               (hue, 10.0, True),
                               (shade, 0.0, True)):  # the luminance keeps lambda_L1
        y = fake + change
        G = _Canvas(fake)
        losses = train_step(G, None, torch.optim.SGD(G.parameters(), 1.0), None, x, y,
                            Objective(lambda_chroma=lam, l1_only=True))
        assert torch.equal(G.img.detach(), fake) != moves, (lam, moves)
        # both logged in every run: L1 over RGB (comparable across runs) and the hue error, none for a shade
        assert losses["loss_G_L1"] > 0.1
        assert (losses["loss_G_chroma"].item() < 1e-6) == (change is shade), losses


def test_lambda_region_is_in_the_card_and_part_of_the_run(tiny_data, tmp_path):
    out = tmp_path / "region"
    r = train_tiny(tiny_data, out, "--epochs", "1", "--val", "none", "--lambda-region", "10", "--lambda-chroma", "5")
    assert r.returncode == 0, r.stderr
    card = (out / "generator" / "README.md").read_text()
    assert "lambda_region 10.0" in card and "lambda_chroma 5.0 (lambda_L1 on luminance)" in card, card
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert "loss_G_region" in log[-1] and "loss_G_chroma" in log[-1]
    r = train_tiny(tiny_data, out, "--epochs", "2", "--val", "none", "--resume")
    assert r.returncode != 0 and "--lambda-region 10.0" in r.stderr and "--lambda-chroma 5.0" in r.stderr, r.stderr


def test_hints_training_writes_a_hint_generator_and_scores_it(tiny_data, tmp_path):
    """--hints: G takes the hint map, hints are simulated at every step, val logs the 3-hint scores;
    --resume holds the run to it; --lambda-hint without --hints is refused."""
    out = tmp_path / "run"
    r = train_tiny(tiny_data, out, "--epochs", "1", "--hints", "--lambda-hint", "10")
    assert r.returncode == 0, r.stderr
    assert load_generator(out / "generator").hints
    log = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert log["loss_G_hint"] > 0 and {"hint_fidelity", "region_match", "L1"} <= set(log["val_3_hints"])
    r = train_tiny(tiny_data, out, "--epochs", "2", "--resume")
    assert r.returncode != 0 and "--hints" in r.stderr, r.stderr
    r = train_tiny(tiny_data, tmp_path / "bad", "--epochs", "1", "--lambda-hint", "5")
    assert r.returncode != 0 and "--lambda-hint" in r.stderr and "goes with --hints" in r.stderr, r.stderr
    # a G saved without hints starts a --hints run with its hint weights at zero: the same function
    r = train_tiny(tiny_data, tmp_path / "from", "--epochs", "1", "--val", "none")
    assert r.returncode == 0, r.stderr
    r = train_tiny(tiny_data, tmp_path / "widened", "--epochs", "1", "--val", "none", "--hints", "--init-from",
               str(tmp_path / "from"))
    assert r.returncode == 0 and "initialized G and D" in r.stdout, r.stderr


def test_the_runs_validation_is_what_condgen_evaluate_scores(tiny_data, tmp_path):
    """log.jsonl's val and val_3_hints are condgen.evaluate's rows for the published generator (the
    sketches normalized as in the app, fp32, its hints): one set of numbers for a model, in its run
    folder and on its card. Before, raw sketches under bf16 autocast read chroma-TV 2.52 for 2.48."""
    from condgen import evaluate

    out = tmp_path / "run"
    r = train_tiny(tiny_data, out, "--epochs", "1", "--hints", "--amp", "bf16")
    assert r.returncode == 0, r.stderr
    logged = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    g = out / "generator"
    rows = evaluate.main(["pix2pix", "--pairs", str(tiny_data / "val"), "--weights", str(g), "--hints", "0", "3"])
    for key, row in (("val", f"UNetGenerator {g}"), ("val_3_hints", f"UNetGenerator {g}, 3 hints")):
        assert logged[key].keys() <= rows[row].keys(), (logged[key], rows[row])
        for name, value in logged[key].items():  # the log keeps 4 significant digits
            assert rows[row][name] == pytest.approx(value, rel=1e-3, abs=1e-4), (key, name, value, rows[row][name])
