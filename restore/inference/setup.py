"""The one inference set-up: what restore-infer, restore-bench, restore-test and `load_model()` do to a
process and a network before running it, so all of them run at the speed of the bare forward.

- The process (`prepare_process`, once): glibc's allocator keeps large buffers on the heap
  (restore/utils/allocator.py; without it every forward faults in fresh pages: 1.2-2x slower on the
  project's machines) and torch uses as many threads as the process may run on (its default counts
  the machine's cores, which oversubscribes a process confined to fewer by taskset or a container).
- The network (`prepare_net`): eval mode, no gradients, on its device and in its inference memory
  format, which is channels_last on the CPU: a batch of one folds nothing, and every net here runs
  batch-1 inference faster in it (restore/models/memory_format.py; restore-test's SRModel makes the
  same choice). The choice is stored on the net (`set_memory_format`), so every later caller finds it.
- The inputs (`net_input`, `FormattedNet`): each tensor is handed to the net in that same format.
  A channels_last net fed an NCHW tensor pays a layout conversion in its first conv, and layers
  that choose their path from the input's layout (NSR's per-sample convs) take the NCHW one. Tiles
  and the self-ensemble's flipped copies are not contiguous in any format, so each is copied into
  the net's format, tiles into one reused buffer per shape.

Callers run the forward under `torch.inference_mode()` (inference_forward's callers all do).
"""
from typing import Callable, Optional

import torch
from torch import nn

from restore.utils.allocator import tune_allocator
from restore.utils.machine import available_cpus

_threads_set = False


def prepare_process(threads: Optional[int] = None) -> dict:
    """Tune the allocator and set torch's thread count (`threads`, else min(torch's default, the
    CPUs of the affinity mask)). Returns what was set, for reports."""
    global _threads_set
    allocator = tune_allocator()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        _threads_set = True
    elif not _threads_set:
        torch.set_num_threads(min(torch.get_num_threads(), available_cpus()))
        _threads_set = True
    return {"allocator_tuned": allocator, "threads": torch.get_num_threads()}


def inference_channels_last(device: torch.device) -> bool:
    """The inference memory format: channels_last on the CPU (memory_format.py), NCHW elsewhere."""
    return torch.device(device).type == "cpu"


def prepare_net(net: nn.Module, device: Optional[torch.device] = None) -> nn.Module:
    """`net` in eval mode without gradients, on `device` (default: where its parameters are) and in
    the inference memory format for that device. Returns the same module."""
    if device is None:
        first = next(iter(net.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    # imported here: restore.models imports restore.inference (SRModel.test runs inference_forward)
    from restore.models.memory_format import set_memory_format
    device = torch.device(device)
    net.eval().requires_grad_(False)
    with torch.inference_mode(False):
        net.to(device)
    set_memory_format(net, inference_channels_last(device))
    return net


def memory_format_of(net) -> torch.memory_format:
    """The memory format `net` was put in by `prepare_net` / `set_memory_format` (NCHW if neither)."""
    return torch.channels_last if getattr(net, "_restore_channels_last", False) else torch.contiguous_format


def in_format(x: torch.Tensor, memory_format: torch.memory_format) -> bool:
    return x.dim() != 4 or x.is_contiguous(memory_format=memory_format)


def net_input(net, x: torch.Tensor) -> torch.Tensor:
    """`x` in `net`'s memory format (no copy when it already is)."""
    fmt = memory_format_of(net)
    return x if in_format(x, fmt) else x.contiguous(memory_format=fmt)


class FormattedNet:
    """Calls `net` with every input in `memory_format`; inputs that need a copy (tiles, flips) are
    copied into a buffer kept per shape, so a tiled run allocates one input buffer per tile shape
    instead of one per tile."""
    formats_inputs = True

    def __init__(self, net: Callable[[torch.Tensor], torch.Tensor], memory_format: torch.memory_format):
        self.net, self.memory_format = net, memory_format
        self._buffers: dict = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if in_format(x, self.memory_format):
            return self.net(x)
        key = (tuple(x.shape), x.dtype, x.device)
        buf = self._buffers.get(key)
        if buf is None:
            buf = torch.empty_like(x, memory_format=self.memory_format)
        buf.copy_(x)
        out = self.net(buf)
        # a net that returns (a view of) its input would see that output overwritten by the next call
        aliased = out.untyped_storage().data_ptr() == buf.untyped_storage().data_ptr()
        if aliased:
            self._buffers.pop(key, None)
        else:
            self._buffers[key] = buf
        return out


def formatted(net: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """`net` wrapped to receive inputs in its memory format; callables marked `formats_inputs` (a
    FormattedNet, the self-ensemble, which formats each flipped copy) are returned as they are."""
    if getattr(net, "formats_inputs", False):
        return net
    return FormattedNet(net, memory_format_of(net))
