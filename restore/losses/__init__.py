"""Training losses. Every `*_loss.py` module registers its classes in LOSS_REGISTRY; a train option
block whose key ends in `_opt` (pixel_opt, ...) names one by `type`.

Any loss block may also carry `start_iter` / `end_iter`: the loss then counts only in iterations
start_iter + 1 .. end_iter (the same counting as `total_iter` and the schedulers' periods), so a
recipe such as "L1, then fine-tune with L2" is one option file whose resumed and uninterrupted
runs take the same path."""
import math

from restore.utils.errors import OptionError
from restore.utils.registry import LOSS_REGISTRY, Registry

Registry.import_all("restore.losses", "_loss.py")

def build_loss(opt: dict, where: str):
    return LOSS_REGISTRY.build(opt, where)


def build_losses(train_opt: dict) -> tuple[dict, dict]:
    """The `train.*_opt` blocks as ({name: loss}, {name: (start_iter, end_iter)}), keyed by the block
    name without `_opt`. Raises OptionError when a window is malformed or some iteration of
    1..total_iter has no loss at all."""
    total = train_opt["total_iter"]
    losses, windows = {}, {}
    for key, block in train_opt.items():
        if not key.endswith("_opt"):
            continue
        where = f"train.{key}"
        block = dict(block)
        start, end = block.pop("start_iter", 0), block.pop("end_iter", None)
        for name, value in (("start_iter", start), ("end_iter", end)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise OptionError(f"{where}.{name}: expected an iteration count >= 0, got {value!r}")
        if end is not None and start >= end:
            raise OptionError(f"{where}: start_iter ({start}) must be below end_iter ({end})")
        # a window past total_iter is allowed: a run cut short (total_iter=... to stop early, then
        # --auto_resume with the file's own) never reaches it
        end = math.inf if end is None else end
        losses[key[:-4]] = build_loss(block, where)
        windows[key[:-4]] = (start, end)
    covered = 0  # the iterations 1..covered all have a loss
    for start, end in sorted(windows.values()):
        if start > covered:
            break
        covered = max(covered, end)
    if covered < total:
        raise OptionError(f"train: no loss is active at iteration {covered + 1} of {total} "
                          f"(see the loss blocks' start_iter / end_iter)")
    return losses, windows


def active_losses(windows: dict, it: int) -> list[str]:
    """The names of the losses that count at iteration `it` (1-based)."""
    return [name for name, (start, end) in windows.items() if start < it <= end]


__all__ = ["LOSS_REGISTRY", "active_losses", "build_loss", "build_losses"]
