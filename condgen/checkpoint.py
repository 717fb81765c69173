"""Atomic, resumable training state in safetensors.

The published weights go through `save_pretrained` (config.json + model.safetensors). The resume
state (optimizer moments, RNG streams, epoch, args) is ours: one safetensors file, so resuming
never unpickles anything. Tensors are stored flat (`opt_G/state/3/exp_avg`); everything that is not
a tensor (param_groups, epoch, args) is JSON in the file's metadata.
"""

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


def atomic_write(path, write):
    """Call write(tmp_path), then rename onto path: a killed run leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; checkpoints and model cards are for sharing
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_pretrained_atomic(model, directory, **kwargs):
    """save_pretrained into a temporary folder, then move each file into place atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".tmp-") as tmp:
        model.save_pretrained(tmp, **kwargs)
        move_into(tmp, directory)


def move_into(folder, directory):
    """Move each file of folder into directory (made if missing), each move an atomic rename, the
    files readable by all (as atomic_write)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    for f in Path(folder).iterdir():
        os.chmod(f, 0o644)
        os.replace(f, Path(directory) / f.name)


def _contiguous_cpu(t):
    # safetensors wants dense, contiguous, unaliased tensors; clone also breaks sharing between
    # optimizer states and parameters.
    return t.detach().to("cpu").contiguous().clone()


def save_state(path, modules=None, optimizers=None, rng=None, meta=None):
    """Write modules' state_dicts, optimizers' states, RNG states and JSON metadata to one file."""
    tensors, info = {}, {"meta": meta or {}, "optimizers": {}}
    for name, module in (modules or {}).items():
        for k, v in module.state_dict().items():
            tensors[f"{name}/{k}"] = _contiguous_cpu(v)
    for name, opt in (optimizers or {}).items():
        sd = opt.state_dict()
        scalars = {}
        for idx, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"{name}/state/{idx}/{k}"] = _contiguous_cpu(v)
                else:
                    scalars[f"{idx}/{k}"] = v
        info["optimizers"][name] = {"param_groups": sd["param_groups"], "scalars": scalars}
    for name, state in (rng or {}).items():
        tensors[f"rng/{name}"] = _contiguous_cpu(state)
    metadata = {"condgen": json.dumps(info)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_state(path, modules=None, optimizers=None, optional=()):
    """Restore what save_state wrote; returns (rng_states, meta). Strict: every key must match,
    except that modules named in `optional` are left as they are when the file has none of them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: not a condgen training state ({e})") from e
    info = read_info(path)
    for name, module in (modules or {}).items():
        sd = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{name}/")}
        if not sd and name in optional:
            continue
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{path}: '{name}' does not match the model being resumed: {e}") from e
    for name, opt in (optimizers or {}).items():
        if name not in info["optimizers"]:
            raise ValueError(f"{path}: no optimizer state '{name}'")
        saved = info["optimizers"][name]
        state = {}
        prefix = f"{name}/state/"
        for k, v in tensors.items():
            if k.startswith(prefix):
                idx, key = k[len(prefix) :].split("/", 1)
                state.setdefault(int(idx), {})[key] = v
        for k, v in saved["scalars"].items():
            idx, key = k.split("/", 1)
            state.setdefault(int(idx), {})[key] = v
        try:
            opt.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        except (ValueError, KeyError) as e:
            raise ValueError(f"{path}: optimizer '{name}' does not match: {e}") from e
        _match_layouts(opt)
    rng = {k[len("rng/") :]: v for k, v in tensors.items() if k.startswith("rng/")}
    return rng, info["meta"]


def read_info(path):
    """What save_state wrote into path's metadata ({meta, optimizers}), without reading the tensors;
    a ValueError when path is not a condgen training state."""
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            return json.loads(f.metadata()["condgen"])
    except (SafetensorError, KeyError, TypeError, json.JSONDecodeError, OSError) as e:
        raise ValueError(f"{path}: not a condgen training state ({e})") from e


def check_resume(state_file, args, keys):
    """--resume must continue the same run: raise ValueError naming each flag in keys whose value
    differs from the one saved in state_file's args (other flags, e.g. --epochs, may change).
    A missing file is left to load_state to report."""
    path = Path(state_file)
    if not path.is_file():
        return
    saved = read_info(path)["meta"].get("args", {})
    changed = [(f"--{key.replace('_', '-')}", saved[key], str(getattr(args, key)))
               for key in keys if key in saved and saved[key] != str(getattr(args, key))]
    if changed:
        was_now = ", ".join(f"{flag} {was} (now {now})" for flag, was, now in changed)
        raise ValueError(f"{path} was started with " + was_now
                         + ": resume with " + " ".join(f"{flag} {was}" for flag, was,
                                                       _ in changed) + ", or train into a new --out")


def _match_layouts(opt):
    """Give each per-parameter state tensor its parameter's memory layout (e.g. channels_last).
    Loaded state is contiguous, and fused Adam walks a parameter and its moments as flat memory:
    with different layouts it would pair the wrong elements, silently."""
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    opt.state[p][k] = torch.empty_like(p, dtype=v.dtype).copy_(v)
