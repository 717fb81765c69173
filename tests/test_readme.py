"""The README's commands as a first-time user meets them on a fresh clone."""

import re
import shutil
from pathlib import Path

import pytest
from conftest import in_process

from condgen.data import mnist_tensors

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_every_copy_into_a_folder_makes_the_folder_first():
    # a fresh clone has no data/: `cp -r ../shared/data/mnist data/mnist` fails there
    for line in README.splitlines():
        m = re.search(r"cp -r \S+ (\S+)/\S+", line)
        if m:
            assert f"mkdir -p {m.group(1)} &&" in line, line


def test_no_flag_that_does_not_exist_is_suggested():
    readme = re.sub(r"\\\n\s*", " ", README)  # a command continued with a backslash is one command
    import train_mnist
    import train_pix2pix
    from condgen import colorize, evaluate

    # each command's --help, printed by its own parser here (a process each would cost ~4 s of imports)
    commands = {"train_mnist.py": lambda: train_mnist.parse_args(["--help"]),
                "train_pix2pix.py": lambda: train_pix2pix.parse_args(["--help"]),
                "-m condgen.colorize": lambda: colorize.main(["--help"]),
                "-m condgen.evaluate pix2pix": lambda: evaluate.main(["pix2pix", "--help"])}
    for name, call in commands.items():
        out = in_process(call, [name, "--help"]).stdout
        flags = set(re.findall(r"--[a-z][a-z0-9-]+", out))
        assert flags, (name, out)
        for cmd in re.findall(rf"python {re.escape(name)} [^\n`]*", readme):
            for flag in re.findall(r"--[a-z][a-z0-9-]+", cmd.split(" # ")[0]):
                assert flag in flags, (name, flag, cmd)
    with pytest.raises(FileNotFoundError) as e:
        mnist_tensors(REPO / "no-such-data" / "mnist")
    assert "--download" not in str(e.value) and f"mkdir -p {REPO / 'no-such-data'} && cp -r" in str(e.value)


def test_a_corrupt_mnist_archive_is_named_and_nothing_is_downloaded(shared_data, tmp_path, monkeypatch):
    import torchvision

    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(shared_data / "mnist" / "MNIST" / "raw", raw, ignore=shutil.ignore_patterns("*-ubyte"))
    gz = raw / "train-images-idx3-ubyte.gz"
    gz.chmod(0o644)
    gz.write_bytes(gz.read_bytes()[:100_000])  # cut short, as by an interrupted copy
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", lambda self: pytest.fail("tried to download MNIST"))
    with pytest.raises(RuntimeError, match="train-images-idx3-ubyte.gz is corrupt"):
        mnist_tensors(tmp_path)
