"""Which precision to compute in: bf16 autocast where the device does bf16 arithmetic natively,
fp32 everywhere else (`--amp auto`, the training scripts' default; the app and colorize ask too).

bf16 keeps fp32's exponent range, so unlike fp16 it needs no loss scaling: autocast runs the
matmuls and convolutions in bf16 while losses, BatchNorm statistics and the optimizer's fp32
weights and moments stay as they are. It only pays where the hardware computes it: on a CPU
without AVX512-BF16 or AMX, torch emulates bf16 and a GEMM runs several times slower than in fp32
(docs/performance.md), so `auto` must look before it picks.
"""

from contextlib import nullcontext

import torch

CHOICES = ("auto", "bf16", "none")


def _probe(name):
    """torch.cpu's private capability checks (`_is_avx512_bf16_supported`, `_is_amx_tile_supported`):
    False if this torch lacks one or it fails, so a renamed private never breaks training."""
    try:
        return bool(getattr(torch.cpu, name)())
    except Exception:
        return False


def cpu_capabilities():
    """What this CPU computes natively, as torch sees it: {'avx512_bf16', 'amx', 'isa'}; isa is the
    widest vector set torch dispatches to ('AVX512', 'AVX2', 'DEFAULT', ...)."""
    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except Exception:
        isa = "unknown"
    return {"avx512_bf16": _probe("_is_avx512_bf16_supported"), "amx": _probe("_is_amx_tile_supported"), "isa": isa}


def native_bf16(device):
    """True where bf16 is computed in hardware: a CUDA GPU with bf16 (Ampere or newer), a CPU with
    AVX512-BF16 or AMX. Apple's MPS and anything else: False (auto stays in fp32 there)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except Exception:
            return False
    if device.type == "cpu":
        caps = cpu_capabilities()
        return caps["avx512_bf16"] or caps["amx"]
    return False


def resolve_amp(choice, device):
    """--amp auto|bf16|none on `device` -> torch.bfloat16 (autocast in bf16) or None (plain fp32)."""
    if choice not in CHOICES:
        raise ValueError(f"amp must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    return torch.bfloat16 if choice == "bf16" else None


def describe(choice, device):
    """One line for logs, args.json and model cards, e.g. 'bf16 autocast (auto: cpu has AVX512-BF16, AMX)'."""
    device = torch.device(device)
    amp = resolve_amp(choice, device)
    name = "bf16 autocast" if amp else "fp32"
    if choice != "auto":
        return f"{name} (--amp {choice})"
    if device.type == "cpu":
        caps = cpu_capabilities()
        have = [n for n, k in (("AVX512-BF16", "avx512_bf16"), ("AMX", "amx")) if caps[k]]
        why = f"cpu has {', '.join(have)}" if have else f"cpu has no AVX512-BF16 or AMX ({caps['isa']})"
    elif device.type == "cuda":
        why = f"{torch.cuda.get_device_name(device)} {'has' if amp else 'lacks'} bf16"
    else:
        why = f"no native bf16 check for {device.type}"
    return f"{name} (auto: {why})"


def autocast(device, amp):
    """torch.autocast in `amp` on `device`'s type, or a no-op context when amp is None."""
    return torch.autocast(torch.device(device).type, dtype=amp) if amp else nullcontext()


def inference_generator(G, device="cpu", choice="auto"):
    """The eval-mode copy of a pix2pix generator that the app and `condgen.colorize` run: BatchNorm
    folded into the convolutions, NHWC weights (oneDNN's faster layout), and bf16 weights where
    `choice` resolves to bf16 (on a CPU with AVX512-BF16 and AMX: faster, and the output a few
    levels out of 255 from fp32's at most; docs/performance.md). Feed it inputs of its dtype
    (colorize does)."""
    from .pix2pix import fold_batchnorm

    G = fold_batchnorm(G).to(memory_format=torch.channels_last)
    return G.to(torch.bfloat16) if resolve_amp(choice, device) else G


def default_channels_last(batch_size, amp):
    """train_pix2pix's --channels-last when not given: NHWC batches and weights, except at batch 1
    in fp32, as measured by bench/run_all.py (U-Net + PatchGAN ngf 64; docs/performance.md): NHWC is
    faster at batch 4 in both precisions and at batch 1 under bf16 autocast, while at batch 1 in fp32
    NCHW ties or wins; so the paper's batch 1 in fp32 stays NCHW."""
    return not (batch_size == 1 and amp is None)
