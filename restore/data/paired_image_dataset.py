"""GT and LQ images read from two folders (or LMDBs), matched by file name."""
import os

import numpy as np

from restore.data.base_dataset import BaseDataset
from restore.data.transforms import augment, paired_random_crop
from restore.utils.errors import RestoreError
from restore.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class PairedImageDataset(BaseDataset):
    """`filename_tmpl` maps a GT name to its LQ name, e.g. '{}x2' for DIV2K's 0001x2.png.

    `meta_info_file` (BasicSR's key): a text file whose lines start with GT file names (BasicSR's
    `generate_meta_info.py` writes `0001_s001.png (480,480,3)`; only the first token counts); the
    dataset is then those images, in that order, instead of every image of dataroot_gt. BasicSR
    ignores it with an LMDB backend; here it selects from LMDB keys the same way.
    """

    def __init__(self, name: str, phase: str, dataroot_gt: str | list[str], dataroot_lq: str | list[str],
                 io_backend: dict | None = None, filename_tmpl: str = "{}", scale: int = 1,
                 gt_size: int | None = None, use_hflip: bool = True, use_rot: bool = True,
                 color: str = "rgb", meta_info_file: str | None = None, cache_mb: float | None = None):
        super().__init__(name, phase, color, cache_mb)
        self.scale = scale
        self.gt_size = gt_size
        self.use_hflip, self.use_rot = use_hflip, use_rot
        self.gt_db = self.open(dataroot_gt, io_backend, "dataroot_gt")
        self.lq_db = self.open(dataroot_lq, io_backend, "dataroot_lq")
        lq_keys = set(self.lq_db.keys())
        gt_keys = self.gt_db.keys()
        if meta_info_file is not None:
            gt_keys = read_meta_info_keys(meta_info_file, set(gt_keys), dataroot_gt, f"datasets.{phase}")
        self.pairs, missing = [], []
        for key in gt_keys:
            lq_key = filename_tmpl.format(key)
            (self.pairs.append((key, lq_key)) if lq_key in lq_keys else missing.append(key))
        if missing:
            shown = ", ".join(missing[:10]) + (f" ... ({len(missing)} in all)" if len(missing) > 10 else "")
            raise RestoreError(f"datasets.{phase}: GT images without an LQ image named by filename_tmpl "
                               f"'{filename_tmpl}' in {dataroot_lq}: {shown}")
        if self.is_train and not gt_size:
            raise RestoreError(f"datasets.{phase}.gt_size: required for training")

    def keys(self):
        return [gt for gt, _ in self.pairs]

    def load(self, index, rng):
        gt_key, lq_key = self.pairs[index]
        gt, gt_channels = self.image(self.gt_db, gt_key)
        lq, _ = self.image(self.lq_db, lq_key)
        name = self.gt_db.name_of(gt_key)
        if self.is_train:
            gt, lq = paired_random_crop(gt, lq, self.gt_size, self.scale, rng, name)
            gt, lq = augment([gt, lq], self.use_hflip, self.use_rot, rng)
        else:
            # benchmark GT may not be a multiple of the scale: crop it to the LQ grid
            h, w = lq.shape[0] * self.scale, lq.shape[1] * self.scale
            if gt.shape[0] < h or gt.shape[1] < w or gt.shape[0] >= h + self.scale or gt.shape[1] >= w + self.scale:
                raise RestoreError(f"{name}: GT size {gt.shape[1]}x{gt.shape[0]} does not match LQ "
                                   f"{lq.shape[1]}x{lq.shape[0]} at scale {self.scale}")
            gt = np.ascontiguousarray(gt[:h, :w])
        return {"lq": lq, "gt": gt, "key": gt_key, "lq_path": self.lq_db.name_of(lq_key),
                "gt_path": name, "gt_channels": gt_channels}


def read_meta_info_keys(path: str, available: set, dataroot_gt, where: str) -> list[str]:
    """The GT keys (file stems) a meta-info file lists, in its order; errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RestoreError(f"{where}.meta_info_file: cannot read {path} ({e})") from None
    keys = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        first = line.split()[0]
        if "/" in first or "\\" in first:
            raise RestoreError(f"{where}.meta_info_file: {path} line {number}: '{first}' is in a subfolder; "
                               f"list images that are directly inside dataroot_gt")
        key = os.path.splitext(first)[0]
        if key not in available:
            raise RestoreError(f"{where}.meta_info_file: {path} line {number}: no image '{first}' in {dataroot_gt}")
        keys.append(key)
    if not keys:
        raise RestoreError(f"{where}.meta_info_file: {path} lists no image")
    return keys
