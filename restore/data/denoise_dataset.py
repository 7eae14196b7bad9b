"""Denoising pairs made on the fly: LQ = GT + additive white Gaussian noise (optionally Poisson first).

The noisy input stays float32 and is neither rounded to 8 bits nor (by default) clipped to [0, 1],
as in the NSR/pt_ir reference; the tables in the denoising literature use the same convention
(MATLAB `im + sigma/255*randn`). Training draws fresh noise per sample; validation noise is seeded
from the image name, so every run, process and machine sees the same noisy images.
"""
from typing import Literal

import numpy as np

from restore.data.base_dataset import GTOnlyDataset
from restore.data.degradations import add_gaussian_noise, add_poisson_noise
from restore.utils.errors import RestoreError
from restore.utils.img_io import to_float32
from restore.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class DenoiseDataset(GTOnlyDataset):
    """`sigma` (0-255 units) for a fixed noise level, or `sigma_range: [lo, hi]` for blind denoising
    (uniform per sample; per image in validation). `poisson_peak` adds shot noise with that many
    photons at white before the Gaussian noise. lq and gt are float32 in [0, 1] (lq may leave it)."""

    def __init__(self, name: str, phase: str, dataroot_gt: str | list[str],
                 io_backend: dict | None = None, sigma: float | None = None,
                 sigma_range: list[float] | None = None, clip: bool = False,
                 poisson_peak: float | None = None, gt_size: int | None = None,
                 use_hflip: bool = True, use_rot: bool = True, color: Literal["gray", "rgb"] = "rgb",
                 exclude: list[str] | None = None, include: list[str] | None = None,
                 cache_mb: float | None = None):
        super().__init__(name, phase, color, dataroot_gt, io_backend, gt_size, use_hflip, use_rot, exclude, include,
                         cache_mb)
        where = f"datasets.{phase}"
        if (sigma is None) == (sigma_range is None):
            raise RestoreError(f"{where}: give exactly one of sigma (fixed level) and sigma_range (blind)")
        if sigma is not None and sigma < 0:
            raise RestoreError(f"{where}.sigma: must be >= 0, got {sigma}")
        if sigma_range is not None and (len(sigma_range) != 2 or not 0 <= sigma_range[0] <= sigma_range[1]):
            raise RestoreError(f"{where}.sigma_range: expected [lo, hi] with 0 <= lo <= hi, got {sigma_range}")
        if poisson_peak is not None and poisson_peak <= 0:
            raise RestoreError(f"{where}.poisson_peak: must be > 0, got {poisson_peak}")
        self.sigma, self.sigma_range = sigma, sigma_range
        self.clip, self.poisson_peak = clip, poisson_peak

    def noise_level(self, rng: np.random.Generator) -> float:
        if self.sigma is not None:
            return float(self.sigma)
        return float(rng.uniform(self.sigma_range[0], self.sigma_range[1]))

    def load(self, index, rng):
        key, name, gt = self.load_gt(index, rng)
        gt = to_float32(gt)
        lq = gt
        if self.poisson_peak is not None:
            lq = add_poisson_noise(lq, self.poisson_peak, rng, clip=self.clip)
        lq = add_gaussian_noise(lq, self.noise_level(rng), rng, clip=self.clip)
        return {"lq": lq, "gt": gt, "key": key, "lq_path": name, "gt_path": name}
