"""Loading and publishing models: Hugging Face Hub first, then a local folder, then bundled weights.

Every model class mixes in `HubMixin` (huggingface_hub's PyTorchModelHubMixin): its constructor
kwargs become config.json and its weights model.safetensors. We tighten the mixin in two ways:
- loading is strict: a missing file, a shape or a key mismatch raises an error naming the file
  (the mixin's default, strict=False, would silently half-load a checkpoint);
- weights load from safetensors only; a Hub repo holding only a pickle is refused.
A Hub id may name a revision, REPO@REVISION (a branch, tag or commit), wherever one is taken. The
Hub is asked once, with a short timeout: offline (HF_HUB_OFFLINE) or unreachable, the copy in the
HF cache is used, and a repo not there is refused with a sentence naming it and why, not after
huggingface_hub's ~25 s of retries and its message that names neither.
"""

import json
import os
import time
from pathlib import Path
from urllib.parse import urlparse

import safetensors.torch
import torch
from huggingface_hub import HfApi, PyTorchModelHubMixin, constants, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

BUNDLED = Path(__file__).resolve().parent.parent / "weights"
REPO_URL = "https://github.com/condgen/condgen"
# Files a model folder holds; the only ones we download or upload.
MODEL_FILES = ["config.json", "model.safetensors", "README.md", "*.png"]
HUB_TIMEOUT = 2.0  # seconds for the one request asking the Hub for a repo's current commit


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
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision=None, **kwargs):
        """Load from a folder, or a Hub id (REPO or REPO@REVISION) through hub_folder: the mixin
        always reads a local folder, so the Hub is asked once and its failures are sentences."""
        name = str(pretrained_model_name_or_path)
        if Path(name).is_dir():
            if not (Path(name) / "config.json").is_file():
                # The mixin would warn and build a default-config model; that hides a wrong folder.
                raise CheckpointError(f"{name}: no config.json, not a saved {cls.__name__}")
            folder = name
        elif looks_like_path(name):
            raise CheckpointError(f"no such folder: {name}")
        else:
            folder = hub_folder(name, revision, f"a saved {cls.__name__}")
        read_config(folder)  # the mixin's json.load would raise a bare JSONDecodeError
        return super().from_pretrained(folder, **kwargs)

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
        model_file = os.path.join(model_id, "model.safetensors")  # from_pretrained passes a folder
        if not os.path.isfile(model_file):
            raise CheckpointError(f"{model_file}: missing")
        try:
            safetensors.torch.load_model(model, model_file, strict=strict, device=map_location)
        except Exception as e:  # safetensors raises RuntimeError/SafetensorError/OSError
            raise CheckpointError(f"{model_file} does not match {cls.__name__}({model_kwargs}): {e}") from e
        return model.eval()


def read_config(folder):
    """folder/config.json, the constructor kwargs, as a dict; a CheckpointError naming the file if it
    is not a JSON object."""
    f = Path(folder) / "config.json"
    try:
        config = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                              "save the model again, or fix the file") from e
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{f} is not valid JSON (not UTF-8 text); save the model again") from e
    if not isinstance(config, dict):
        kind = {list: "an array", str: "a string"}.get(type(config), "a single value")
        raise CheckpointError(f"{f} holds {kind}, not a JSON object of constructor arguments; save the model again")
    return config


def split_revision(name):
    """'user/repo@v1' -> ('user/repo', 'v1'); without '@': (name, None). The form a Hub id at a
    branch, tag or commit takes on every command line and in the app's --*-repo flags."""
    repo_id, _, revision = str(name).partition("@")
    return repo_id, revision or None


def model_folder(path):
    """path/generator for a training run's folder (the layout the training scripts write), else path."""
    return Path(path) / "generator" if (Path(path) / "generator" / "config.json").is_file() else path


def load_first(classes, path, what):
    """The first of classes whose saved model path is: a folder, a training run's folder (holding
    generator/) or a Hub id (REPO or REPO@REVISION). config.json holds the constructor kwargs only,
    not the class; strict loading refuses the wrong class (other layers, other widths), so each is
    tried in turn, on one folder: a Hub id is fetched (or found in the cache) once, not per class."""
    if Path(path).is_dir():
        folder = model_folder(path)
    elif looks_like_path(path):
        raise CheckpointError(f"no such folder: {path}")  # once, not once per class
    else:
        folder = hub_folder(path, what=f"a {what}")
    if (Path(folder) / "config.json").is_file():
        read_config(folder)  # a broken file is the error, not "not a <what>" once per class
    errors = []
    for cls in classes:
        try:
            return cls.from_pretrained(folder)
        except CheckpointError as e:
            errors.append(str(e).splitlines()[0][:300])
    raise CheckpointError(f"{path}: not a {what} ({'; '.join(dict.fromkeys(errors))})")


def _hub_offline():
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def resolve(cls, repo_id=None, local_dir=None, bundled=None, revision=None, timeout=1.0):
    """Load cls from the Hub, else local_dir, else the bundled folder; return (model, source).

    source says which one was used and why the earlier ones were not, e.g.
    "bundled weights/cgan (hub: user/cgan: not in the local Hugging Face cache, and HF_HUB_OFFLINE
    is set ...; local runs/cgan: not found)". repo_id may be REPO@REVISION. The Hub is asked once
    with a short timeout (hub_snapshot); offline or unreachable, a copy already in the HF cache is used.
    """
    why = []
    if repo_id:
        try:
            repo, at = split_revision(repo_id)
            folder, note = hub_snapshot(repo, revision or at, timeout)
            why += [note] if note else []
            model = cls.from_pretrained(folder)
            return model, f"hub {repo}@{Path(folder).name[:7]}" + (f" ({'; '.join(why)})" if why else "")
        except CheckpointError as e:  # a sentence naming the repo already
            why.append(f"hub: {str(e).splitlines()[0][:200]}")
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


def hub_folder(name, revision=None, what="a saved model", timeout=HUB_TIMEOUT):
    """The local folder of Hub id name's model files (REPO or REPO@REVISION; revision, if given, wins),
    checked to hold config.json and model.safetensors; CheckpointErrors name the repo."""
    repo_id, at = split_revision(name)
    folder, _ = hub_snapshot(repo_id, revision or at, timeout)
    if not (Path(folder) / "model.safetensors").is_file():
        raise CheckpointError(f"{repo_id}: no model.safetensors (pickles are not loaded)")
    if not (Path(folder) / "config.json").is_file():
        raise CheckpointError(f"{repo_id}: no config.json, not {what}")
    return folder


def hub_snapshot(repo_id, revision=None, timeout=HUB_TIMEOUT):
    """(folder of repo_id's model files, note): fresh from the Hub if it answers within timeout,
    else the copy in the HF cache, with a note saying why. A repo neither on the Hub nor in the
    cache is a CheckpointError that names it and the reason: HF_HUB_OFFLINE set, or no network."""
    name = repo_id + (f"@{revision}" if revision else "")
    try:
        validate_repo_id(repo_id)
        if _hub_offline():
            why, fix = "HF_HUB_OFFLINE is set, so the Hub was not asked", "unset HF_HUB_OFFLINE to download it"
        else:
            t = time.monotonic()
            try:
                sha = _current_commit(repo_id, revision, timeout)
                return snapshot_download(repo_id, revision=sha, allow_patterns=MODEL_FILES, etag_timeout=timeout), ""
            except RepositoryNotFoundError as e:  # also a private repo, to one not logged in
                raise CheckpointError(f"{repo_id}: no such model on the Hub (a private or gated one needs "
                                      "`hf auth login`)") from e
            except RevisionNotFoundError as e:
                raise CheckpointError(f"{repo_id}: the Hub has no revision {revision!r} (a branch, tag or "
                                      "commit)") from e
            except Exception as e:  # no network, a timeout, the Hub down: the cache may still have it
                host, dt, kind = urlparse(constants.ENDPOINT).hostname, time.monotonic() - t, type(e).__name__
                if isinstance(e, OfflineModeIsEnabled):  # TRANSFORMERS_OFFLINE, or HF_HUB_OFFLINE set before import
                    why = "huggingface_hub is in offline mode, so the Hub was not asked"
                elif isinstance(e, HfHubHTTPError):
                    why = f"the Hub is unreachable ({host} answered HTTP {e.response.status_code})"
                elif kind in ("ReadTimeout", "WriteTimeout"):  # connected: a hung Hub or proxy
                    why = f"the Hub is unreachable ({host} did not answer within {dt:.1f}s: {kind})"
                else:
                    why = f"the Hub is unreachable: no network ({kind} reaching {host} after {dt:.1f}s)"
                fix = "connect to download it"
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES, local_files_only=True)
        return folder, f"{why}; using the cached copy"
    except LocalEntryNotFoundError as e:  # also an incomplete snapshot
        raise CheckpointError(f"{name}: not in the local Hugging Face cache, and {why}; {fix}, or give a "
                              "local folder") from e
    except HFValidationError as e:  # e.g. "my weights": neither a folder nor a repo id
        raise CheckpointError(f"no such folder, and not a Hub repo id: {name}") from e


def _current_commit(repo_id, revision, timeout):
    """The commit revision (None: main) of repo_id names on the Hub: HfApi.model_info's request, made
    without its User-Agent, whose first build in a process asks the Hub for a list of AI agents
    (huggingface_hub 2.4, utils/_detect_agent.py) and waits up to 3 s more when the Hub hangs."""
    from urllib.parse import quote

    from huggingface_hub import get_token
    from huggingface_hub.utils import get_session, hf_raise_for_status

    url = f"{constants.ENDPOINT}/api/models/{repo_id}" + (f"/revision/{quote(revision, safe='')}" if revision else "")
    token = get_token()
    r = get_session().get(url, headers={"authorization": f"Bearer {token}"} if token else {}, timeout=timeout)
    hf_raise_for_status(r)  # RepositoryNotFoundError, RevisionNotFoundError, ... as model_info raises them
    return r.json()["sha"]


def push_error(repo_id, timeout=5.0, later="OUT/generator"):
    """Why pushing to repo_id would fail now (offline, no token, Hub unreachable), or None.
    The training scripts ask before training, not after hours of it. later: the folder to push
    once it can be, named in the command the message gives (None: no command, for condgen.push)."""
    import socket

    from huggingface_hub import get_token

    how = "" if later is None else (
        f"; or train without --push-to-hub and push later with: {push_command(later, repo_id)}"
        + (" (OUT: the run's --out folder)" if str(later).startswith("OUT/") else ""))
    if _hub_offline():
        return f"HF_HUB_OFFLINE is set, so nothing can be pushed: unset it{how}"
    if not get_token():
        return "not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as e:
        return f"cannot reach {url.hostname} ({type(e).__name__}: {e}){how}"
    return None


def push_command(folder, repo_id):
    """The command that pushes folder to repo_id: condgen.push, a module of its own, as
    `python -m condgen.hub` would find this module imported already (condgen/__init__) and warn."""
    return f"python -m condgen.push {folder} {repo_id}"


def push_run(folders, message):
    """push() each (folder, repo_id); a failure does not lose the run: say how to push it later."""
    for folder, repo_id in folders:
        try:
            push(folder, repo_id, message)
            print(f"pushed {folder} to {repo_id}")
        except Exception as e:
            print(f"error: pushing {folder} to {repo_id} failed ({type(e).__name__}: {str(e)[:300]}); the run is "
                  f"saved, push it later with: {push_command(folder, repo_id)}")


def push(folder, repo_id, message, private=False, token=None):
    """Upload a model folder (config, safetensors, model card, sample images) in one commit."""
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    return api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), allow_patterns=MODEL_FILES, commit_message=message
    )


if __name__ == "__main__":  # the old spelling, `python -m condgen.hub push FOLDER REPO_ID`: runpy warns
    import sys

    from condgen.push import main

    main(sys.argv[2:] if sys.argv[1:2] == ["push"] else sys.argv[1:])
