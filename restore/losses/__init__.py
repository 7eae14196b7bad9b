"""Training losses. Every `*_loss.py` module registers its classes in LOSS_REGISTRY; a train option
block whose key ends in `_opt` (pixel_opt, ...) names one by `type`."""
from restore.utils.registry import LOSS_REGISTRY, Registry

Registry.import_all("restore.losses", "_loss.py")


def build_loss(opt: dict, where: str):
    return LOSS_REGISTRY.build(opt, where)


__all__ = ["LOSS_REGISTRY", "build_loss"]
