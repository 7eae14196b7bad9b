"""JPEG artefact-removal pairs made on the fly: LQ = OpenCV JPEG round trip of the GT.

`color: gray` and `color: y` compress a 1-channel image as a gray JPEG (the Classic5 / LIVE1-Y
protocol of ARCNN and DnCNN-3); `color: rgb` compresses a colour JPEG with OpenCV's default 4:2:0
chroma subsampling. Training compresses the augmented GT patch (quality drawn per sample from
`quality_range`); validation compresses the whole image, at a quality seeded from the image name.
"""
from typing import Literal

import numpy as np

from restore.data.base_dataset import GTOnlyDataset
from restore.data.degradations import jpeg_compress
from restore.utils.errors import RestoreError
from restore.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class JPEGDataset(GTOnlyDataset):
    """`quality` (1-100) fixed, or `quality_range: [lo, hi]` (integers, uniform, inclusive)."""

    def __init__(self, name: str, phase: str, dataroot_gt: str | list[str],
                 io_backend: dict | None = None, quality: int | None = None,
                 quality_range: list[int] | None = None, gt_size: int | None = None,
                 use_hflip: bool = True, use_rot: bool = True,
                 color: Literal["gray", "y", "rgb"] = "gray",
                 exclude: list[str] | None = None, include: list[str] | None = None,
                 cache_mb: float | None = None):
        super().__init__(name, phase, color, dataroot_gt, io_backend, gt_size, use_hflip, use_rot, exclude, include,
                         cache_mb)
        where = f"datasets.{phase}"
        if (quality is None) == (quality_range is None):
            raise RestoreError(f"{where}: give exactly one of quality (fixed) and quality_range (blind)")
        if quality is not None and not 1 <= quality <= 100:
            raise RestoreError(f"{where}.quality: must be in 1..100, got {quality}")
        if quality_range is not None and (len(quality_range) != 2
                                          or not 1 <= quality_range[0] <= quality_range[1] <= 100):
            raise RestoreError(f"{where}.quality_range: expected [lo, hi] with 1 <= lo <= hi <= 100, "
                               f"got {quality_range}")
        self.quality, self.quality_range = quality, quality_range

    def quality_of(self, rng: np.random.Generator) -> int:
        if self.quality is not None:
            return self.quality
        return int(rng.integers(self.quality_range[0], self.quality_range[1] + 1))

    def load(self, index, rng):
        key, name, gt = self.load_gt(index, rng)
        if gt.dtype != np.uint8:
            raise RestoreError(f"{name}: JPEG pairs need 8-bit images, this one is {gt.dtype}")
        lq = jpeg_compress(gt, self.quality_of(rng))
        return {"lq": lq, "gt": gt, "key": key, "lq_path": name, "gt_path": name}
