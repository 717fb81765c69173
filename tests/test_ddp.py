"""Data-parallel training: both scripts under torchrun on 2 CPU processes (gloo), tiny data.

DDP must keep the replicas identical (rank 0 prints every rank's parameter digest), give each rank
its own shard of the data (half the steps each) and its own noise stream, write files that load
without DDP, and resume, under torchrun or as one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_main
from PIL import Image
from safetensors.torch import load_file

import train_pix2pix
from condgen.data import shuffled_batches
from condgen.distributed import own_rng_states, shard
from condgen.mnist import GeneratorCGAN
from condgen.pix2pix import UNetGenerator, load_generator

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # offline: conftest


def torchrun(*argv, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *argv]
    r = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def assert_replicas_identical(stdout, world_size=2):
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"ddp_param_digests"')]
    assert len(lines) == 1, stdout  # rank 0 alone prints
    digests = lines[0]["ddp_param_digests"]
    assert len(digests) == world_size and len(set(digests)) == 1, digests


def adam_steps(state_file):
    return int(load_file(state_file)["opt_G/state/0/step"])


def test_shards_are_disjoint_equal_and_cover_each_global_batch():
    for idx in shuffled_batches(20, 3 * 2, torch.Generator().manual_seed(0)):
        parts = [shard(idx, rank, 3) for rank in range(3)]
        assert [len(p) for p in parts] == [2, 2, 2]
        assert torch.equal(torch.cat(parts), idx)  # disjoint, since idx is a permutation's slice
        assert torch.equal(shard(idx, 0, 1), idx)  # one process: the batch as it was


def test_each_rank_resumes_its_own_noise_stream():
    streams = {r: torch.Generator().manual_seed(100 + r).get_state() for r in range(2)}
    rng = {"torch": streams[0], "torch.1": streams[1], "shuffle": torch.Generator().manual_seed(7).get_state()}
    for rank in range(2):
        own = own_rng_states(rng, rank, seed=0)
        assert set(own) == {"torch", "shuffle"} and torch.equal(own["torch"], streams[rank])
        assert torch.equal(own["shuffle"], rng["shuffle"])  # one permutation for all ranks
    # a checkpoint from fewer processes: rank 2 starts a stream of its own rather than copy rank 0's
    assert not torch.equal(own_rng_states(rng, 2, seed=0)["torch"], streams[0])


def test_train_mnist_under_torchrun_writes_loadable_files_and_resumes(mnist_root, tmp_path):
    out = tmp_path / "cgan"
    argv = ["train_mnist.py", "--model", "cgan", "--data-dir", str(mnist_root), "--subset", "256", "--batch-size", "32",
            "--eval-per-class", "0", "--out", str(out)]
    r = torchrun(*argv, "--epochs", "1")
    assert_replicas_identical(r.stdout)
    assert sum(line.startswith('{"epoch"') for line in r.stdout.splitlines()) == 1  # logged once
    assert adam_steps(out / "state.safetensors") == 256 // (32 * 2)  # each rank did half the steps
    assert "batch 32 x 2 processes" in (out / "generator" / "README.md").read_text()
    GeneratorCGAN.from_pretrained(out / "generator")  # strict: no "module." prefixes
    assert "rng/torch.1" in load_file(out / "state.safetensors")  # rank 1's noise stream, for resume

    r = torchrun(*argv, "--epochs", "2", "--resume")
    assert f"resumed {out / 'state.safetensors'} at epoch 1" in r.stdout
    assert_replicas_identical(r.stdout)
    assert adam_steps(out / "state.safetensors") == 2 * 4


@pytest.fixture(scope="module")
def noise_pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise_pairs")
    for split, n in (("train", 4), ("val", 2)):
        (root / split).mkdir()
        for i in range(n):
            ab = np.random.default_rng(i).integers(0, 256, (256, 512, 3), dtype=np.uint8)  # sketch | color
            Image.fromarray(ab).save(root / split / f"{i}.png")
    return root


def test_train_pix2pix_under_torchrun_then_resume_as_one_process(noise_pairs, tmp_path):
    out = tmp_path / "unet"
    argv = ["train_pix2pix.py", "--data", str(noise_pairs / "train"), "--val", str(noise_pairs / "val"),
            "--batch-size", "1", "--ngf", "4", "--ndf", "4", "--val-rows", "2", "--out", str(out)]
    r = torchrun(*argv, "--epochs", "1")
    assert_replicas_identical(r.stdout)
    for f in ["generator/model.safetensors", "generator/README.md", "discriminator/model.safetensors",
              "state.safetensors",
              "args.json", "log.jsonl", "val/epoch_001.png"]:
        assert (out / f).is_file(), f
    assert isinstance(load_generator(out / "generator"), UNetGenerator)
    assert adam_steps(out / "state.safetensors") == 4 // (1 * 2)

    one = [*argv[1:], "--epochs", "2", "--resume"]  # in this process: one process, no torchrun
    r = run_main(train_pix2pix, one)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "resumed" in r.stdout and "ddp_param_digests" not in r.stdout
    assert [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert adam_steps(out / "state.safetensors") == 2 + 4  # one process takes all 4 steps of epoch 2


def test_mnist_extraction_never_shows_a_half_written_file(shared_data, tmp_path, monkeypatch):
    """torchrun's ranks all extract the archives: each file must appear whole or not at all (a rank
    once read another's half-written file: "shape [60000, 28, 28] is invalid for input of size
    2097136"). Every write goes to a temporary name, renamed when complete."""
    import shutil

    from condgen.data import MNIST_FILES, mnist_tensors

    shutil.copytree(shared_data / "mnist" / "MNIST", tmp_path / "MNIST")
    for p in (tmp_path / "MNIST").rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    real, written = Path.write_bytes, []

    def spy(self, data):
        written.append(self.name)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", spy)
    x, labels = mnist_tensors(tmp_path, train=False)
    assert len(written) == len(MNIST_FILES) and not set(written) & set(MNIST_FILES), written
    assert x.shape == (10_000, 1, 28, 28) and all((tmp_path / "MNIST" / "raw" / f).is_file() for f in MNIST_FILES)
