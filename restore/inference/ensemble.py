"""x8 self-ensemble (geometric test-time augmentation, Lim et al. EDSR+ / Timofte et al. 2016).

The input is run through the net under each of the 8 symmetries of the square (flips and a
transpose), each output is mapped back, and the 8 outputs are averaged. For a net that commutes with
these symmetries the result equals a single pass.
"""
from typing import Callable

import torch

from restore.inference.setup import formatted

NUM_TRANSFORMS = 8


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Symmetry k (0..7) of the last two axes: bit 0 flips W, bit 1 flips H, bit 2 transposes."""
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    if k & 4:
        x = x.transpose(-2, -1)
    return x


def inverse_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Undo `dihedral(., k)`: transpose back first, then the flips (which commute)."""
    if k & 4:
        x = x.transpose(-2, -1)
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    return x


def self_ensemble(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean of inverse_dihedral(net(dihedral(x, k)), k) over the 8 symmetries, accumulated in float32.
    Each flipped copy reaches the net in the net's memory format (setup.py)."""
    net = formatted(net)
    total = None
    for k in range(NUM_TRANSFORMS):
        out = inverse_dihedral(net(dihedral(x, k)), k).float()
        total = out if total is None else total.add_(out)
    return total.div_(NUM_TRANSFORMS)
