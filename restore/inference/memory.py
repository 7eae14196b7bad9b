"""Running out of memory during a forward: recognising it, and the tiles to fall back on.

A forward that fails for memory is retried in tiles, halving the tile until it fits (runner.py);
`--max-pixels` tiles large inputs up front instead, so the failure is never met. Tiles are powers of
two from the largest one below the image's longer side down to MIN_TILE; below that the tile padding
would be most of every window.
"""
import gc
import math
from typing import Optional

import torch

MIN_TILE = 32
_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
             "failed to allocate")


def is_out_of_memory(error: BaseException) -> bool:
    """True for MemoryError, torch.OutOfMemoryError and the RuntimeErrors torch raises when an
    allocation fails (CPU: "DefaultCPUAllocator: can't allocate memory", CUDA: "CUDA out of memory")."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    if isinstance(error, RuntimeError):
        message = str(error).lower()
        return any(m in message for m in _MESSAGES)
    return False


def release_memory(device: torch.device) -> None:
    """Give back what the failed forward held before the retry (its tensors are garbage by now)."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def smaller_tile(tile: Optional[int], height: int, width: int) -> Optional[int]:
    """The next tile to try after `tile` (None: the whole image) failed, or None when none is left."""
    if tile is None:
        longer = max(height, width)
        if longer <= MIN_TILE:
            return None
        return max(MIN_TILE, 1 << (longer - 1).bit_length() - 1)  # the largest power of two < longer
    if tile <= MIN_TILE:
        return None
    return max(MIN_TILE, tile // 2)


def tile_for_budget(max_pixels: int) -> int:
    """The tile whose core holds at most `max_pixels` input pixels (at least MIN_TILE)."""
    return max(MIN_TILE, math.isqrt(max_pixels))
