"""Tiled forward pass: run a network on overlapping windows so memory depends on the tile, not the image.

The input is cut into a grid of `tile` x `tile` cores; each core is run with up to `tile_pad` pixels
of real image context on every side (less at the image border, where the untiled net sees its own
zero padding too), and only the output of the core is kept. Cores do not overlap, so nothing is
blended: when the net's receptive-field radius is at most `tile_pad` input pixels, the tiled output
equals the untiled one up to floating-point rounding. Nets whose every output pixel depends on the
whole image (NSR with `gate_region: image` pools over the image) give a close but different result.
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from restore.inference.setup import formatted


@dataclass(frozen=True)
class Tile:
    """A core [y0:y1, x0:x1] and the padded window [wy0:wy1, wx0:wx1] it is run in (input pixels)."""
    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int


def tile_grid(height: int, width: int, tile: int, tile_pad: int) -> list[Tile]:
    """Row-major cores of at most tile x tile covering the image, each with its padded window."""
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if tile_pad < 0:
        raise ValueError(f"tile_pad must be >= 0, got {tile_pad}")
    tiles = []
    for y0 in range(0, height, tile):
        y1 = min(y0 + tile, height)
        for x0 in range(0, width, tile):
            x1 = min(x0 + tile, width)
            tiles.append(Tile(y0, y1, x0, x1, max(y0 - tile_pad, 0), min(y1 + tile_pad, height),
                              max(x0 - tile_pad, 0), min(x1 + tile_pad, width)))
    return tiles


def _scale_of(window_hw, out_hw) -> int:
    """The integer factor between a window and the net's output for it."""
    sy, sx = out_hw[0] / window_hw[0], out_hw[1] / window_hw[1]
    if sy != sx or sy != int(sy) or sy < 1:
        raise ValueError(f"tiling needs a net that scales by a whole factor; a {window_hw[0]}x{window_hw[1]} "
                         f"window gave a {out_hw[0]}x{out_hw[1]} output")
    return int(sy)


Writer = Callable[[torch.Tensor, tuple], None]


def tiled_forward(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int,
                  tile_pad: int = 16, write: Optional[Writer] = None,
                  out_device: Optional[torch.device] = None,
                  on_tile: Optional[Callable[[], None]] = None) -> Optional[torch.Tensor]:
    """Run `net` on `x` (N, C, H, W) tile by tile.

    Without `write`, returns the assembled output (on `out_device`, default x's device). With
    `write(core_out, (y0, y1, x0, x1))`, hands each tile's core output (N, C', h, w) and its box in
    output pixels to the callback instead and returns None, so the caller can store outputs in any
    form (e.g. quantised to uint8 in a numpy array) and only one tile's activations are alive at once.
    `on_tile()` is called after each tile (progress bars). Each window reaches the net in the net's
    memory format, copied into a buffer reused for every window of the same shape (setup.py).
    """
    net = formatted(net)
    height, width = x.shape[-2:]
    out = None
    for t in tile_grid(height, width, tile, tile_pad):
        window = x[..., t.wy0:t.wy1, t.wx0:t.wx1]
        result = net(window)
        scale = _scale_of(window.shape[-2:], result.shape[-2:])
        core = result[..., (t.y0 - t.wy0) * scale:(t.y1 - t.wy0) * scale,
                      (t.x0 - t.wx0) * scale:(t.x1 - t.wx0) * scale]
        box = (t.y0 * scale, t.y1 * scale, t.x0 * scale, t.x1 * scale)
        if write is not None:
            write(core, box)
        else:
            if out is None:
                out = result.new_empty((*result.shape[:-2], height * scale, width * scale),
                                       device=out_device or x.device)
            out[..., box[0]:box[1], box[2]:box[3]] = core.to(out.device)
        if on_tile is not None:
            on_tile()
    return out


def count_tiles(height: int, width: int, tile: int) -> int:
    return math.ceil(height / tile) * math.ceil(width / tile)
