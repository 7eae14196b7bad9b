"""Checkpoints of the NSR / WDSR reference code (ychfan/pt_ir, ychfan/wdsr) as restore networks.

The reference trainer saves `{'model_state_dict', 'optimizer_state_dict', 'lr_scheduler_state_dict',
'epoch'}`; its model keeps head, blocks and tail in one `body` Sequential and wraps the skip conv
and the sparse-group gate Linear in Sequentials. Four rename rules map it onto restore's NSR / WDSR
(restore/archs/wdsr_arch.py), key for key (169 -> 169 for the released 16-block NSR):

    body.0.*                      -> head.*                      the head conv
    body.<N+1>.*                  -> tail.*                      the tail conv
    body.<i>.body.<0|2>[.mlp.0].* -> body.<i-1>.conv<1|2>[.mlp].*  block i's two convs (and gates)
    skip.0.*                      -> skip.*                      the 5x5 skip (absent at scale 1)

The tensors need no change: restore's sparse-group conv stores its k candidate banks in the
reference's order (sparse_group_conv.py), and both use the weight_g / weight_v weight norm. The
arch options come from the shapes: num_feat, num_block, upscale, width_mult and, for NSR, k and d.
"""
import math
import re
from typing import Optional

import torch

from restore.utils.errors import RestoreError

FORMAT = "pt_ir"
_BLOCK = re.compile(r"^body\.(\d+)\.body\.([02])\.(mlp\.0\.)?(.+)$")
_TOP = re.compile(r"^body\.(\d+)\.([^.]+)$")
_SKIP = re.compile(r"^skip\.0\.(.+)$")


def pt_ir_state_dict(ckpt) -> Optional[dict]:
    """The model state dict if `ckpt` (a loaded checkpoint, or a bare state dict) has the pt_ir
    layout, else None."""
    if not isinstance(ckpt, dict):
        return None
    sd = ckpt.get("model_state_dict", ckpt)
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        return None
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
    if "body.0.weight_v" in sd and any(_BLOCK.match(k) for k in sd):
        return sd
    return None


def convert_pt_ir(sd: dict, where: str = "checkpoint") -> tuple[dict, dict]:
    """(restore state dict, network_g) for a pt_ir model state dict; one-line errors naming `where`."""
    blocks = sorted({int(m.group(1)) for m in map(_BLOCK.match, sd) if m})
    tops = sorted({int(m.group(1)) for m in map(_TOP.match, sd) if m})
    if not blocks or blocks != list(range(1, len(blocks) + 1)) or tops != [0, len(blocks) + 1]:
        raise RestoreError(f"{where}: not a pt_ir NSR/WDSR state dict (expected body.0 = head, "
                           f"body.1..N = blocks, body.N+1 = tail; found blocks {blocks[:3]}... and convs {tops})")
    tail_index = len(blocks) + 1
    out = {}
    for key, value in sd.items():
        block, top, skip = _BLOCK.match(key), _TOP.match(key), _SKIP.match(key)
        if block:
            i, conv, mlp, rest = block.groups()
            new = f"body.{int(i) - 1}.conv{1 if conv == '0' else 2}.{'mlp.' if mlp else ''}{rest}"
        elif top:
            new = f"{'head' if int(top.group(1)) == 0 else 'tail'}.{top.group(2)}"
        elif skip:
            new = f"skip.{skip.group(1)}"
        else:
            raise RestoreError(f"{where}: unexpected key '{key}' for the pt_ir NSR/WDSR layout")
        out[new] = value
    return out, _network_options(sd, len(blocks), tail_index, where)


def _network_options(sd: dict, num_block: int, tail_index: int, where: str) -> dict:
    head = sd["body.0.weight_v"]
    num_feat, num_in = head.shape[0], head.shape[1]
    tail_out = sd[f"body.{tail_index}.weight_v"].shape[0]
    scale = math.isqrt(tail_out // num_in)
    if scale * scale * num_in != tail_out:
        raise RestoreError(f"{where}: tail has {tail_out} outputs, not scale^2 x {num_in} channels")
    conv1_out = sd["body.1.body.0.weight_v"].shape[0]
    conv2_out = sd["body.1.body.2.weight_v"].shape[0]
    network_g = {"num_in_ch": num_in, "num_out_ch": num_in, "num_feat": num_feat, "num_block": num_block,
                 "upscale": scale}
    if "body.1.body.0.mlp.0.weight" in sd:
        k = conv2_out // num_feat                    # the second conv has num_feat * k candidate filters
        d = sd["body.1.body.0.mlp.0.weight"].shape[0] // k
        width = conv1_out // (num_feat * k)
        network_g = {"type": "NSR", **network_g, "width_mult": width, "k": k, "d": d}
    else:
        width = conv1_out // num_feat
        network_g = {"type": "WDSR", **network_g, "width_mult": width}
    if width * num_feat * (network_g.get("k", 1)) != conv1_out:
        raise RestoreError(f"{where}: block width {conv1_out} is not a whole multiple of {num_feat} features "
                           f"(pt_ir's fractional width multipliers are not supported)")
    return network_g


__all__ = ["FORMAT", "pt_ir_state_dict", "convert_pt_ir"]
