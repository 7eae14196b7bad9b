"""One entry point for inference-time forward passes: plain, tiled, self-ensembled or both.

SRModel.test, restore-infer and restore-bench all call `inference_forward`, so `val.tile`,
`val.tile_pad` and `val.self_ensemble` mean the same thing everywhere. The ensemble runs inside each
tile (8 passes of one tile at a time), which keeps the memory bound of tiling.
"""
from functools import partial
from typing import Callable, Optional

import torch

from restore.inference.ensemble import self_ensemble as ensemble_pass
from restore.inference.setup import formatted
from restore.inference.tiling import Writer, tiled_forward


def inference_forward(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                      tile: Optional[int] = None, tile_pad: int = 16, self_ensemble: bool = False,
                      write: Optional[Writer] = None, out_device: Optional[torch.device] = None,
                      on_tile: Optional[Callable[[], None]] = None) -> Optional[torch.Tensor]:
    """net(x), optionally x8 self-ensembled and/or run in `tile`-pixel tiles with `tile_pad` context.

    Call it under torch.inference_mode() with the net in eval mode. `write`, `out_device` and
    `on_tile` are passed to `tiled_forward` (a whole-image run counts as one tile); with `write` the
    output goes to the callback and None is returned. Every tensor reaches the net in the memory
    format `prepare_net` chose for it (setup.py).
    """
    run = formatted(net)
    if self_ensemble:
        run = partial(ensemble_pass, run)
        run.formats_inputs = True  # each flipped copy is formatted inside; tiles need no copy first
    if tile:
        return tiled_forward(run, x, tile, tile_pad, write=write, out_device=out_device, on_tile=on_tile)
    out = run(x)
    if on_tile is not None:
        on_tile()
    if write is not None:
        write(out, (0, out.shape[-2], 0, out.shape[-1]))
        return None
    return out if out_device is None else out.to(out_device)
