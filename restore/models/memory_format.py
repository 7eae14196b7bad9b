"""Which memory format a network trains in: `train.channels_last: auto | true | false`.

On the CPU the faster format depends on the machine and the network. channels_last (NHWC) lets
oneDNN read activations without reordering them on every call, which made ordinary conv nets train
1.14-1.23x faster in fp32 on an Intel Xeon; on an AMD EPYC without AVX-512 NCHW was faster for
EDSR, and on one with AVX-512 channels_last by only a few per cent (docs/performance.md). Networks
whose convs fold the batch into the channels to give each sample its own kernel (NSR's sparse-group
conv) trained 12-21 % slower in channels_last on the first two. So `auto` on the CPU times the training step (forward + L1 + backward of a copy of the
network on the first batch's shape, random data, the RNG state kept) in both formats and keeps the
faster, once per network, shape and machine (restore/utils/measured_choice.py: a later run, or a
resumed one, makes the same choice without timing). On CUDA `auto` keeps NCHW: nothing here
measured the GPU, and `true` is one option away.

Inference is another matter: a batch of one folds nothing, and every network here, NSR included,
runs batch-1 inference faster in channels_last on the CPU. A network that trains in NCHW is switched
to channels_last for validation and back for the next training step (`set_memory_format`).
"""
import copy
import hashlib
import time
from typing import Optional

import torch
from torch import nn

from restore.utils.measured_choice import ChoiceCache, machine_id

CHOICES = ChoiceCache("RESTORE_MEMORY_FORMAT_CACHE", "memory_formats.json")
LAYOUTS = ("channels_last", "nchw")


def use_channels_last(setting, net: nn.Module, device: torch.device) -> tuple[Optional[bool], str]:
    """(channels_last?, why) for `train.channels_last` = `setting` (True, False or 'auto'); None:
    measure at the first training step (`choose_channels_last`)."""
    if setting != "auto":
        return bool(setting), f"train.channels_last: {str(bool(setting)).lower()}"
    if device.type != "cpu":
        return False, f"train.channels_last: auto -> NCHW on {device.type}"
    return None, "train.channels_last: auto -> timed on the first batch's shape"


# Raised when a change to restore's layers can change which format trains a net faster, so that the
# choices cached before it are measured anew (2: NSR's per-sample convs stopped returning views that
# an in-place ReLU sent through CopySlices, which had made NCHW win for NSR x2 in bf16 on the Xeon).
LAYOUT_RULE = 2


def layout_key(net: nn.Module, shape, amp_dtype) -> str:
    # the module tree's repr names every layer and its options: a digest of it tells nets apart
    digest = hashlib.sha256(repr(net).encode()).hexdigest()[:12]
    dtype = str(amp_dtype or torch.float32).replace("torch.", "")
    return (f"{machine_id()} | layouts {LAYOUT_RULE} | {type(net).__name__} {digest} | "
            f"{'x'.join(map(str, shape))} {dtype}")


def measure_layouts(net: nn.Module, shape, amp_dtype=None, reps: int = 4) -> dict:
    """Min seconds of a training forward + L1 + backward of a copy of `net` on random data of `shape`,
    per memory format; the formats take turns, after one warm-up turn. Four turns, not two: where the
    formats are within a few per cent (EDSR on the AVX-512 AMD EPYC, 1-5 %), the min of two turns
    picked the slower one in one of three tries, which cost restore's EDSR step 0.05x against BasicSR
    there. The global RNG state (gumbel gates, dropout) is put back afterwards, so a run that measures
    draws what one that reads the choice from the cache draws."""
    device = next(net.parameters()).device
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        probe = copy.deepcopy(net).train()
        gen = torch.Generator().manual_seed(0)
        data = torch.randn(tuple(shape), generator=gen).to(device)
        times = {name: [] for name in LAYOUTS}
        for rep in range(reps + 1):
            for name in LAYOUTS:
                set_memory_format(probe, name == "channels_last")
                x = data.contiguous(memory_format=torch.channels_last if name == "channels_last"
                                    else torch.contiguous_format)
                t0 = time.perf_counter()
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    out = probe(x)
                out.float().abs().mean().backward()
                if rep:
                    times[name].append(time.perf_counter() - t0)
                probe.zero_grad(set_to_none=True)
    return {name: min(t) for name, t in times.items()}


def choose_channels_last(net: nn.Module, shape, amp_dtype=None) -> tuple[bool, str]:
    """`auto`'s choice for training `net` on batches of `shape` on the CPU, and a line saying why."""
    key = layout_key(net, shape, amp_dtype)
    measured = []

    def measure():
        measured.append(measure_layouts(net, shape, amp_dtype))
        return measured[0]

    choice = CHOICES.choose(key, LAYOUTS, measure)
    if measured:
        how = "timed: " + ", ".join(f"{name} {measured[0][name] * 1e3:.0f} ms" for name in LAYOUTS)
    else:
        how = "this machine's earlier timing"
    return choice == "channels_last", f"train.channels_last: auto -> {choice} ({how})"


def set_memory_format(net: nn.Module, channels_last: bool) -> None:
    """Convert `net` to channels_last or NCHW in place, unless it is in that format already. The
    Parameter objects stay the same, so an optimizer's references and state remain valid."""
    if getattr(net, "_restore_channels_last", None) is not channels_last:
        with torch.inference_mode(False):  # called from validation: inference tensors could not train
            net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        net._restore_channels_last = channels_last
