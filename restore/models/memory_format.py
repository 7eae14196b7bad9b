"""Which memory format a network trains in: `train.channels_last: auto | true | false`.

On the CPU, channels_last (NHWC) makes ordinary conv nets train 1.14-1.23x faster in fp32 and
1.2-1.6x in bf16: oneDNN's kernels read NHWC directly instead of reordering NCHW activations on
every call (EDSR, WDSR, DnCNN, CSC-DnCNN and the blur-pool U-Net; scripts/bench_layouts.py,
docs/performance.md). Networks whose convs fold the batch into the channels to give each sample its
own kernel (NSR's sparse-group conv, marked `folds_batch = True`) train 12-21 % slower in it in fp32
(and gain at most 1.1x in bf16): the folded activations come back in an (H, W, B, C) memory
order, and autograd's element-wise kernels and layout copies on that order cost more than the convs
save. So `auto` means channels_last on the CPU unless the network has such a layer. On CUDA `auto`
keeps NCHW: nothing here measured the GPU, and `true` is one option away.

Inference is another matter: a batch of one folds nothing, and every network here, NSR included,
runs batch-1 inference faster in channels_last on the CPU. A network that trains in NCHW is switched
to channels_last for validation and back for the next training step (`set_memory_format`).
"""
import torch
from torch import nn


def folds_batch(net: nn.Module) -> bool:
    """True when some layer of `net` runs a per-sample (batch-folded) convolution."""
    return any(getattr(m, "folds_batch", False) for m in net.modules())


def use_channels_last(setting, net: nn.Module, device: torch.device) -> tuple[bool, str]:
    """(channels_last?, why) for `train.channels_last` = `setting` (True, False or 'auto')."""
    if setting != "auto":
        return bool(setting), f"train.channels_last: {str(bool(setting)).lower()}"
    if device.type != "cpu":
        return False, f"train.channels_last: auto -> NCHW on {device.type}"
    if folds_batch(net):
        return False, "train.channels_last: auto -> NCHW (the network has batch-folded sparse-group convs)"
    return True, "train.channels_last: auto -> channels_last on the CPU"


def set_memory_format(net: nn.Module, channels_last: bool) -> None:
    """Convert `net` to channels_last or NCHW in place, unless it is in that format already. The
    Parameter objects stay the same, so an optimizer's references and state remain valid."""
    if getattr(net, "_restore_channels_last", None) is not channels_last:
        with torch.inference_mode(False):  # called from validation: inference tensors could not train
            net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        net._restore_channels_last = channels_last
