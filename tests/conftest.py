"""Shared fixtures. Tests run offline: nothing may reach the Hub or download data."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_NUM_THREADS", "2")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CONDGEN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data beside the checkout (CI puts it there); a missing folder is an error, not a skip."""
    if not (SHARED_DATA / "mnist" / "MNIST" / "raw").is_dir():
        pytest.fail(f"test data not found at {SHARED_DATA}; set CONDGEN_SHARED_DATA to the shared/data folder")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_root(shared_data, tmp_path_factory):
    """A writable copy of the torchvision MNIST root (torchvision extracts next to the archives)."""
    root = tmp_path_factory.mktemp("mnist")
    shutil.copytree(shared_data / "mnist" / "MNIST", root / "MNIST")
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root
