"""Loading and publishing models: Hugging Face Hub first, then a local folder, then bundled weights.

Every model class mixes in `HubMixin` (huggingface_hub's PyTorchModelHubMixin): its constructor
kwargs become config.json and its weights model.safetensors. We tighten the mixin in two ways:
- loading is strict: a missing file, a shape or a key mismatch raises an error naming the file
  (the mixin's default, strict=False, would silently half-load a checkpoint);
- weights load from safetensors only; a Hub repo holding only a pickle is refused.
"""

import os
import time
from pathlib import Path

import safetensors.torch
import torch
from huggingface_hub import HfApi, PyTorchModelHubMixin, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HFValidationError

BUNDLED = Path(__file__).resolve().parent.parent / "weights"
REPO_URL = "https://github.com/condgen/condgen"
# Files a model folder holds; the only ones we download or upload.
MODEL_FILES = ["config.json", "model.safetensors", "README.md", "*.png"]


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or does not match the model class."""


def looks_like_path(name):
    """True for a name that means a local folder, not a Hub id ("user/repo"): absolute, ./ ../ ~,
    a backslash, more than one slash, or a first part that is a local folder (runs/, weights/,
    data/, ...). Such a name is never sent to the Hub: a typo would retry there for many seconds."""
    s = str(name)
    head = s.split("/")[0]
    return (os.path.isabs(s) or s.startswith((".", "~")) or "\\" in s or s.count("/") > 1
            or (s.count("/") == 1 and (os.path.isdir(head) or head in ("runs", "weights", "data"))))


class HubMixin(
    PyTorchModelHubMixin,
    library_name="condgen",
    repo_url=REPO_URL,
    license="mit",
    tags=["condgen", "gan"],
):
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        path = Path(pretrained_model_name_or_path)
        if path.is_dir() and not (path / "config.json").is_file():
            # The mixin would warn and build a default-config model; that hides a wrong folder.
            raise CheckpointError(f"{path}: no config.json, not a saved {cls.__name__}")
        if not path.is_dir() and looks_like_path(pretrained_model_name_or_path):
            raise CheckpointError(f"no such folder: {pretrained_model_name_or_path}")
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except HFValidationError as e:  # e.g. "my weights": neither a folder nor a repo id
            raise CheckpointError(f"no such folder, and not a Hub repo id: {pretrained_model_name_or_path}") from e

    @classmethod
    def _from_pretrained(
        cls, *, model_id, revision, cache_dir, force_download, local_files_only, token,
        map_location="cpu", strict=True, **model_kwargs,
    ):
        try:
            # Strict loading overwrites every tensor, so build on the meta device and skip the
            # random init (slow for a full-size U-Net); storage comes from to_empty() below.
            with torch.device("meta" if strict else map_location):
                model = cls(**model_kwargs)
        except TypeError as e:
            raise CheckpointError(f"{model_id}: config.json does not fit {cls.__name__}: {e}") from e
        if strict:
            model.to_empty(device=map_location)
        if os.path.isdir(model_id):
            model_file = os.path.join(model_id, "model.safetensors")
            if not os.path.isfile(model_file):
                raise CheckpointError(f"{model_file}: missing")
        else:
            try:
                model_file = hf_hub_download(
                    model_id, "model.safetensors", revision=revision, cache_dir=cache_dir,
                    force_download=force_download, token=token, local_files_only=local_files_only,
                )
            except EntryNotFoundError as e:
                raise CheckpointError(f"{model_id}: no model.safetensors (pickles are not loaded)") from e
        try:
            safetensors.torch.load_model(model, model_file, strict=strict, device=map_location)
        except Exception as e:  # safetensors raises RuntimeError/SafetensorError/OSError
            raise CheckpointError(f"{model_file} does not match {cls.__name__}({model_kwargs}): {e}") from e
        return model.eval()


def model_folder(path):
    """path/generator for a training run's folder (the layout the training scripts write), else path."""
    return Path(path) / "generator" if (Path(path) / "generator" / "config.json").is_file() else path


def load_first(classes, path, what):
    """The first of classes whose saved model path is: a folder, a training run's folder (holding
    generator/) or a Hub id. config.json holds the constructor kwargs only, not the class; strict
    loading refuses the wrong class (other layers, other widths), so each is tried in turn."""
    if looks_like_path(path) and not Path(path).is_dir():
        raise CheckpointError(f"no such folder: {path}")  # once, not once per class
    path, errors = model_folder(path), []
    for cls in classes:
        try:
            return cls.from_pretrained(path)
        except CheckpointError as e:
            errors.append(str(e).splitlines()[0][:300])
    raise CheckpointError(f"{path}: not a {what} ({'; '.join(dict.fromkeys(errors))})")


def _hub_offline():
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def resolve(cls, repo_id=None, local_dir=None, bundled=None, revision=None, timeout=1.0):
    """Load cls from the Hub, else local_dir, else the bundled folder; return (model, source).

    source says which one was used and why the earlier ones were not, e.g.
    "bundled weights/cgan (hub user/cgan: offline; local runs/cgan: not found)".
    The Hub is asked once with a short timeout (huggingface_hub on its own retries for many seconds when
    the network is down); offline or unreachable, a copy already in the HF cache is used.
    """
    why = []
    if repo_id:
        try:
            folder = _hub_snapshot(repo_id, revision, timeout, why)
            model = cls.from_pretrained(folder)
            return model, f"hub {repo_id}@{Path(folder).name[:7]}" + (f" ({'; '.join(why)})" if why else "")
        except Exception as e:  # any failure here means: fall back, and say why
            why.append(f"hub {repo_id}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    for kind, d in (("local", local_dir), ("bundled", bundled)):
        if not d:
            continue
        d = Path(d)
        if (d / "config.json").is_file():
            model = cls.from_pretrained(d)
            return model, f"{kind} {d}" + (f" ({'; '.join(why)})" if why else "")
        why.append(f"{kind} {d}: not found")
    raise CheckpointError(f"no weights for {cls.__name__}: " + "; ".join(why))


def _hub_snapshot(repo_id, revision, timeout, why):
    """Folder of repo_id's model files: fresh from the Hub if it answers in time, else the cache."""
    if not _hub_offline():
        try:
            t = time.monotonic()
            info = HfApi().model_info(repo_id, revision=revision, timeout=timeout)
            return snapshot_download(
                repo_id, revision=info.sha, allow_patterns=MODEL_FILES, etag_timeout=timeout
            )
        except Exception as e:
            why.append(f"hub unreachable after {time.monotonic() - t:.1f}s ({type(e).__name__}), using cache")
    else:
        why.append("HF_HUB_OFFLINE set, using cache")
    return snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES, local_files_only=True)


def push_error(repo_id, timeout=5.0):
    """Why pushing to repo_id would fail now (offline, no token, Hub unreachable), or None.
    The training scripts ask before training, not after hours of it."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, get_token

    if _hub_offline():
        return ("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it, or train without --push-to-hub "
                "and push later")
    if not get_token():
        return "not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as e:
        return f"cannot reach {url.hostname} ({type(e).__name__}: {e}); train without --push-to-hub and push later"
    return None


def push_run(folders, message):
    """push() each (folder, repo_id); a failure does not lose the run: say how to push it later."""
    for folder, repo_id in folders:
        try:
            push(folder, repo_id, message)
            print(f"pushed {folder} to {repo_id}")
        except Exception as e:
            print(f"error: pushing {folder} to {repo_id} failed ({type(e).__name__}: {str(e)[:300]}); the run is "
                  f"saved, push it later with: python -m condgen.hub push {folder} {repo_id}")


def push(folder, repo_id, message, private=False, token=None):
    """Upload a model folder (config, safetensors, model card, sample images) in one commit."""
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    return api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), allow_patterns=MODEL_FILES, commit_message=message
    )


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(
        description="Push a saved model folder to the Hub (what --push-to-hub does after training).")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("push", help="upload FOLDER (config.json, model.safetensors, README.md, *.png) to REPO_ID")
    up.add_argument("folder", help="a model folder, e.g. runs/cgan/generator")
    up.add_argument("repo_id", help="user/name on the Hub")
    up.add_argument("--message", default="condgen: upload", help="commit message")
    args = p.parse_args(argv)
    if not (Path(args.folder) / "config.json").is_file():
        p.error(f"no such model folder (config.json + model.safetensors): {args.folder}")
    if why := push_error(args.repo_id):
        p.error(why)
    push(args.folder, args.repo_id, args.message)
    print(f"pushed {args.folder} to {args.repo_id}")


if __name__ == "__main__":
    main()
