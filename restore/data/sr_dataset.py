"""Super-resolution pairs made on the fly: LQ = MATLAB bicubic downscale of the GT."""
from restore.data.base_dataset import GTOnlyDataset
from restore.data.transforms import modcrop
from restore.utils.errors import RestoreError
from restore.utils.imresize import bicubic_degrade
from restore.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class SRImageDataset(GTOnlyDataset):
    """GT images only; training crops a GT patch, then downscales it; validation modcrops the
    whole GT and downscales it (the standard Set5/Set14/BSD100 protocol)."""

    def __init__(self, name: str, phase: str, dataroot_gt: str | list[str], scale: int,
                 io_backend: dict | None = None, gt_size: int | None = None,
                 use_hflip: bool = True, use_rot: bool = True, color: str = "rgb",
                 exclude: list[str] | None = None, include: list[str] | None = None,
                 cache_mb: float | None = None):
        super().__init__(name, phase, color, dataroot_gt, io_backend, gt_size, use_hflip, use_rot, exclude, include,
                         cache_mb)
        self.scale = scale
        if self.is_train and gt_size % scale:
            raise RestoreError(f"datasets.{phase}.gt_size: {gt_size} is not a multiple of scale {scale}")

    def load(self, index, rng):
        key, name, gt = self.load_gt(index, rng)
        if not self.is_train:
            gt = modcrop(gt, self.scale)
            if min(gt.shape[:2]) < self.scale:
                raise RestoreError(f"{name}: image {gt.shape[1]}x{gt.shape[0]} is smaller than scale {self.scale}")
        lq = bicubic_degrade(gt, self.scale)
        return {"lq": lq, "gt": gt, "key": key, "lq_path": name, "gt_path": name,
                "gt_channels": self.stored_channels[key]}
