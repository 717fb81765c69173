"""Data-parallel training under torchrun, the way nanoGPT does it: a few helpers, no framework.

    torchrun --standalone --nproc_per_node 4 train_mnist.py --model cgan
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 train_pix2pix.py

Each process (rank) trains a replica on its own slice of every global batch; DistributedDataParallel
averages the gradients in backward, so every rank takes the same optimizer step and the replicas
stay identical. Rank 0, the master process, alone logs, writes files and pushes. Without torchrun
(no RANK in the environment) every helper is a no-op and a script runs as one plain process.
https://pytorch.org/tutorials/intermediate/ddp_tutorial.html
"""

import hashlib
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def pick_device(name):
    """--device: 'auto' takes CUDA, then Apple's MPS, then the CPU; any other name is used as given."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("mps" if torch.backends.mps.is_available() else "cpu")


def rng_states(shuffle, device):
    """The random streams a resumed run must continue: torch's (noise, dropout), the data
    shuffle's, and CUDA's when training there."""
    rng = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state()
    return rng


def set_rng_states(rng, shuffle, device):
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"])


def setup(device_name):
    """(rank, world_size, device). Under torchrun: join the process group, nccl between GPUs and
    gloo between CPUs, one GPU per process (LOCAL_RANK picks it on its node)."""
    device = pick_device(device_name)
    if "RANK" not in os.environ:
        return 0, 1, device
    rank, world_size, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, device


def wrap(module, device):
    """DDP(module) under torchrun, the module itself otherwise. DDP copies rank 0's weights and
    buffers to every rank here, so the ranks start identical whatever their seeds."""
    if not dist.is_initialized():
        return module
    return DDP(module, device_ids=[device.index] if device.type == "cuda" else None)


def shard(idx, rank, world_size):
    """This rank's contiguous 1/world_size of a global batch of indices. Every rank draws the same
    permutation from the same seeded generator, so the shards are disjoint and cover the batch."""
    return idx.tensor_split(world_size)[rank]


def mean_over_ranks(t):
    """t averaged over the ranks (for logging: every rank's losses, not rank 0's alone)."""
    if not dist.is_initialized():
        return t
    # a copy, on the GPU for nccl (which reduces CUDA tensors only)
    s = t.to(torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else t.device, copy=True)
    dist.all_reduce(s)  # SUM: gloo has no AVG
    return (s / dist.get_world_size()).to(t.device)


def any_rank(flag, device):
    """True on every rank when flag is true on any (a stop asked of one process stops them all at the
    same step). A collective under torchrun: call it on every rank at the same step."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([float(flag)], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_rng_states(shuffle, device):
    """rng_states for the checkpoint, plus the torch (and CUDA) stream of every other rank as
    torch.<rank>, so a resumed run continues each rank's noise. A collective: call it on every rank."""
    rng = rng_states(shuffle, device)
    if not dist.is_initialized():
        return rng
    streams = [None] * dist.get_world_size()
    dist.all_gather_object(streams, {k: v for k, v in rng.items() if k != "shuffle"})
    for rank, s in enumerate(streams[1:], start=1):
        rng.update({f"{k}.{rank}": v for k, v in s.items()})
    return rng


def own_rng_states(rng, rank, seed):
    """The RNG states this rank resumes from. A checkpoint from fewer processes has no stream for
    this rank: it starts afresh from seed + rank (its own noise, but not a bit-exact continuation)."""
    own = {k: v for k, v in rng.items() if "." not in k}  # rank 0's, as a single process saves them
    if rank == 0:
        return own
    if f"torch.{rank}" not in rng:
        own.pop("cuda", None)
        return {**own, "torch": torch.Generator().manual_seed(seed + rank).get_state()}
    return {**own, **{k: rng[f"{k}.{rank}"] for k in ("torch", "cuda") if f"{k}.{rank}" in rng}}


def param_digests(*modules):
    """SHA-256 of the modules' parameters on each rank, gathered (a collective). All equal: DDP kept
    the replicas in sync. Buffers are left out: BatchNorm's running statistics are per rank."""
    h = hashlib.sha256()
    for m in modules:
        for p in m.parameters():
            h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    if not dist.is_initialized():
        return [h.hexdigest()]
    digests = [None] * dist.get_world_size()
    dist.all_gather_object(digests, h.hexdigest())
    return digests


def finish(*modules):
    """End of training under torchrun: rank 0 prints every rank's parameter digest on one line,
    {"ddp_param_digests": [...]}, all equal if DDP kept the replicas in sync; then leave the group."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        digests = param_digests(*modules)
        if dist.get_rank() == 0:
            print(json.dumps({"ddp_param_digests": digests}))
    cleanup()


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()
