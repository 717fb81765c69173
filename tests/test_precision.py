"""--amp auto|bf16|none: the decision with the CPU probe faked both ways, and bf16 autocast learning
what fp32 learns (the same seeded steps, both tasks)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import pair_image  # tests/ is on sys.path under pytest

import train_mnist
import train_pix2pix
from condgen import precision
from condgen.data import mnist_tensors, to_tanh_range
from condgen.mnist import DiscriminatorCGAN, GeneratorCGAN
from condgen.pix2pix import Discriminator, UNetGenerator

REPO = Path(__file__).resolve().parent.parent


def fake_cpu(monkeypatch, avx512_bf16, amx):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, torch.bfloat16), (False, True, torch.bfloat16),
                                                         (True, True, torch.bfloat16), (False, False, None)])
def test_auto_follows_the_cpu(monkeypatch, avx512_bf16, amx, expected):
    fake_cpu(monkeypatch, avx512_bf16, amx)
    assert precision.resolve_amp("auto", "cpu") == expected
    line = precision.describe("auto", "cpu")
    assert line.startswith("bf16 autocast (auto: cpu has" if expected else "fp32 (auto: cpu has no AVX512-BF16 or AMX")
    # forced choices ignore the probe
    assert precision.resolve_amp("bf16", "cpu") == torch.bfloat16 and precision.resolve_amp("none", "cpu") is None
    assert precision.describe("none", "cpu") == "fp32 (--amp none)"


def test_a_failing_or_missing_probe_means_fp32(monkeypatch):
    def broken():
        raise RuntimeError("cpuinfo failed")

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", broken, raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)  # a torch without it
    assert precision.cpu_capabilities()["avx512_bf16"] is False and precision.cpu_capabilities()["amx"] is False
    assert precision.resolve_amp("auto", "cpu") is None


def test_other_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert precision.resolve_amp("auto", "cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)  # e.g. a T4
    assert precision.resolve_amp("auto", "cuda") is None
    assert precision.resolve_amp("auto", "mps") is None  # no native check there: fp32
    with pytest.raises(ValueError, match="amp must be one of"):
        precision.resolve_amp("fp16", "cpu")


def test_scripts_default_to_auto_and_record_the_choice(mnist_root, tmp_path, monkeypatch):
    assert train_mnist.parse_args(["--model", "gan"]).amp == "auto"
    assert train_pix2pix.parse_args([]).amp == "auto"
    fake_cpu(monkeypatch, False, False)
    out = tmp_path / "gan"
    train_mnist.main(train_mnist.parse_args(["--model", "gan", "--data-dir", str(mnist_root), "--subset", "128",
                                             "--batch-size", "64",
                                             "--epochs", "1", "--eval-per-class", "0", "--out", str(out)]))
    recorded = json.loads((out / "args.json").read_text())
    isa = precision.cpu_capabilities()["isa"]
    assert recorded["amp"] == "auto" and recorded["precision"] == f"fp32 (auto: cpu has no AVX512-BF16 or AMX ({isa}))"
    assert f"- precision: {recorded['precision']}" in (out / "generator" / "README.md").read_text()


# bf16 must not change what is learned: the same seeded steps in fp32 and under bf16 autocast. The
# noise, dropout masks and batches are the same draws, so the two runs differ only by bf16 rounding
# in the forward passes; measured, the per-step losses agree to ~0.005 (cGAN) and ~1% (pix2pix L1).


def test_bf16_cgan_learns_as_fp32_does(mnist_root):
    x_all, c_all = (t[:1024] for t in mnist_tensors(mnist_root))
    runs = {}
    for amp in (None, torch.bfloat16):
        torch.manual_seed(0)
        G, D = GeneratorCGAN(batchnorm=True), DiscriminatorCGAN()
        opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
        opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
        runs[amp] = torch.stack([train_mnist.train_step(G, D, opt_G, opt_D, x_all[i:i + 64], c_all[i:i + 64], 0.9, amp)
                                 for i in range(0, 1024, 64)])  # 16 steps: [loss_D, loss_G, D(x), D(G(z))] each
        assert all(p.dtype == torch.float32 for p in [*G.parameters(), *D.parameters(),
                                                      # weights, BN stats stay fp32
                                                      *G.buffers()] if p.is_floating_point())
        # Adam moments too
        assert all(v.dtype == torch.float32 for s in opt_D.state.values() for v in s.values() if v.numel() > 1)
    fp32, bf16 = runs[None], runs[torch.bfloat16]
    for h in (fp32, bf16):
        assert h[-4:, 0].mean() < 0.75 * h[0, 0], h[:, 0]  # D learns: loss_D falls by a quarter
        assert (h[-4:, 2] - h[-4:, 3]).mean() > 0.25  # and tells real from fake
    assert (bf16[:, 0] - fp32[:, 0]).abs().max() < 0.05, (fp32[:, 0], bf16[:, 0])  # tolerance: 10x what was measured
    assert (bf16[:, 1] - fp32[:, 1]).abs().max() < 0.1, (fp32[:, 1], bf16[:, 1])


def test_bf16_pix2pix_learns_as_fp32_does():
    pairs = [to_tanh_range(torch.from_numpy(np.array(pair_image(s))).permute(2, 0, 1)) for s in range(2)]
    x, y = (torch.stack([p[:, :, half] for p in pairs])
            for half in (slice(0, 256), slice(256, 512)))
    l1 = {}
    for amp in (None, torch.bfloat16):
        torch.manual_seed(0)
        G, D = UNetGenerator(ngf=8), Discriminator(ndf=8)
        opt_G = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999))
        opt_D = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999))
        steps = [train_pix2pix.train_step(G, D, opt_G, opt_D, x, y, amp=amp) for _ in range(10)]
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for s in steps for v in s.values())
        l1[amp] = torch.stack([s["loss_G_L1"] for s in steps])
        assert all(p.dtype == torch.float32 for p in [*G.parameters(), *G.buffers()] if p.is_floating_point())
    fp32, bf16 = l1[None], l1[torch.bfloat16]
    assert fp32[-1] < 0.9 * fp32[0] and bf16[-1] < 0.9 * bf16[0], (fp32, bf16)  # both lower L1 by 10% in 10 steps
    assert ((bf16 - fp32).abs() / fp32).max() < 0.05, (fp32, bf16)  # within 5%


def test_inference_generator_bf16_only_where_auto_picks_it_and_it_looks_the_same(monkeypatch):
    from condgen.colorize import colorize

    G = UNetGenerator.from_pretrained(REPO / "weights" / "pix2pix-unet").float()
    fake_cpu(monkeypatch, False, False)
    fp32 = precision.inference_generator(G)
    assert next(fp32.parameters()).dtype == torch.float32
    fake_cpu(monkeypatch, True, True)
    bf16 = precision.inference_generator(G)
    assert next(bf16.parameters()).dtype == torch.bfloat16
    a, b = (np.asarray(colorize(g, REPO / "examples" / "fox.png"), dtype=float) for g in (fp32, bf16))
    # measured on the four examples: at most 6/255 on one pixel, 0.15-0.26/255 on average
    assert np.abs(a - b).max() <= 12 and np.abs(a - b).mean() < 0.6, (np.abs(a - b).max(), np.abs(a - b).mean())
