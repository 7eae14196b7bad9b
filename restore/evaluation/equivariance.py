"""The `val.equivariance` option block: shift-equivariance columns for restore-test's table.

    val:
      equivariance:
        shifts: residues+random   # residues | random | residues+random | [[dy, dx], ...]
        period: ~                 # residues modulo this; default the net's `shift_period` (UNet: 2^L)
        num_random: 8             # random shifts, uniform in [-max_shift, max_shift]^2, same for every image
        max_shift: 16
        circular: false           # torch.roll (exact test for circular-padded nets) or translated crops
        crop_border: 0            # pixels left out on each side of the compared region
        center_crop: ~            # evaluate on a centred LR crop of this size (cost)
        max_images: ~             # only the first N images of each test set (cost)
        seed: 0
        jpeg_grid: false          # also PSNR spread over the 8x8 JPEG block-grid offsets (JPEG sets)
        jpeg_quality: ~           # default: the dataset's fixed `quality`
        jpeg_block: 8             # 16 for 4:2:0 colour JPEG

Columns added per image (and averaged per dataset): eq_psnr, eq_psnr_min, eq_dpsnr_gt (when the
set has GT), and with jpeg_grid: jpeg_grid_std, jpeg_grid_range. See restore/evaluation/shift_equivariance.py.
"""
from typing import Literal, Optional, Union

import numpy as np

from restore.evaluation.shift_equivariance import jpeg_grid_spread, random_shifts, residue_shifts, shift_equivariance
from restore.utils.dist import all_gather_list
from restore.utils.errors import OptionError
from restore.utils.img_io import tensor2img
from restore.utils.registry import check_kwargs

WHERE = "val.equivariance"
COLUMNS = ("eq_psnr", "eq_psnr_min", "eq_dpsnr_gt", "jpeg_grid_std", "jpeg_grid_range")


class EquivarianceOptions:
    def __init__(self, shifts: Union[Literal["residues", "random", "residues+random"], list] = "residues+random",
                 period: Optional[int] = None, num_random: int = 8, max_shift: int = 16, circular: bool = False,
                 crop_border: int = 0, center_crop: Optional[int] = None, max_images: Optional[int] = None,
                 seed: int = 0, jpeg_grid: bool = False, jpeg_quality: Optional[int] = None, jpeg_block: int = 8):
        if isinstance(shifts, list) and not all(
                isinstance(d, (list, tuple)) and len(d) == 2 and all(isinstance(v, int) for v in d) for d in shifts):
            raise OptionError(f"{WHERE}.shifts: expected residues, random, residues+random or a list of "
                              f"[dy, dx] integer pairs, got {shifts!r}")
        for key, value, low in (("period", period, 1), ("num_random", num_random, 0), ("max_shift", max_shift, 1),
                                ("crop_border", crop_border, 0), ("center_crop", center_crop, 1),
                                ("max_images", max_images, 1), ("jpeg_block", jpeg_block, 1)):
            if value is not None and value < low:
                raise OptionError(f"{WHERE}.{key}: must be >= {low}, got {value}")
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
            raise OptionError(f"{WHERE}.jpeg_quality: must be in 1..100, got {jpeg_quality}")
        self.shifts, self.period, self.num_random, self.max_shift = shifts, period, num_random, max_shift
        self.circular, self.crop_border, self.center_crop = circular, crop_border, center_crop
        self.max_images, self.seed = max_images, seed
        self.jpeg_grid, self.jpeg_quality, self.jpeg_block = jpeg_grid, jpeg_quality, jpeg_block

    def shift_list(self, net=None) -> list:
        if isinstance(self.shifts, list):
            return [tuple(d) for d in self.shifts]
        out = []
        if "residues" in self.shifts:
            period = self.period or getattr(net, "shift_period", None)
            if period is None:
                raise OptionError(f"{WHERE}.period: the network has no shift_period; give the period "
                                  f"(e.g. 2^L for L stride-2 layers) or use shifts: random")
            out += residue_shifts(period)
        if "random" in self.shifts:
            out += random_shifts(self.num_random, self.max_shift, self.seed)
        if not out:
            raise OptionError(f"{WHERE}.shifts: no shifts (period 1 has no non-zero residue; use random)")
        return out


def parse_equivariance_options(block: Optional[dict]) -> Optional[EquivarianceOptions]:
    """Validate the `val.equivariance` block (None when absent); OptionError names the key."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise OptionError(f"{WHERE}: expected a mapping of keys, got {block!r}")
    check_kwargs(EquivarianceOptions, block, "equivariance", WHERE)
    return EquivarianceOptions(**block)


def _center_crop(lq, gt, size: int, scale: int):
    h, w = lq.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    lq = lq[..., y:y + ch, x:x + cw]
    if gt is not None:
        gt = gt[..., scale * y:scale * (y + ch), scale * x:scale * (x + cw)]
    return lq, gt


def _fixed_quality(loader) -> Optional[int]:
    dataset = getattr(loader, "dataset", None)
    dataset = getattr(dataset, "dataset", dataset)  # validation loaders wrap the dataset in a Subset
    return getattr(dataset, "quality", None)


def evaluate_equivariance(model_fn, loader, opts: EquivarianceOptions, scale: int = 1, net=None,
                          dataset_name: str = "") -> dict:
    """{'images': [{'name', eq_psnr, ...}], 'mean': {column: value}} over this rank's images, gathered."""
    shifts = opts.shift_list(net)
    quality = (opts.jpeg_quality or _fixed_quality(loader)) if opts.jpeg_grid else None
    if opts.jpeg_grid and quality is None:
        raise OptionError(f"{WHERE}.jpeg_quality: needed for jpeg_grid (the test set '{dataset_name}' "
                          f"has no fixed quality)")
    rows = []
    for i, batch in enumerate(loader):
        if opts.max_images is not None and i >= opts.max_images:
            break
        lq, gt = batch["lq"], batch.get("gt")
        if opts.center_crop:
            lq, gt = _center_crop(lq, gt, opts.center_crop, scale)
        try:
            r = shift_equivariance(model_fn, lq, scale, shifts, opts.circular, gt, opts.crop_border)
        except ValueError as e:
            raise OptionError(f"{WHERE}: {batch['key'][0]}: {e}") from None
        row = {"name": batch["key"][0], "eq_psnr": r["eq_psnr"], "eq_psnr_min": r["eq_psnr_min"]}
        if gt is not None:
            row["eq_dpsnr_gt"] = r["dpsnr_gt"]
        if quality is not None:
            if gt is None:
                raise OptionError(f"{WHERE}.jpeg_grid: the test set '{dataset_name}' has no ground truth")
            g = jpeg_grid_spread(model_fn, tensor2img(gt), quality, opts.jpeg_block, opts.crop_border)
            row["jpeg_grid_std"], row["jpeg_grid_range"] = g["std"], g["range"]
        rows.append(row)
    rows = sorted(all_gather_list(rows), key=lambda r: r["name"])
    mean = {c: float(np.mean([r[c] for r in rows])) for c in COLUMNS if rows and c in rows[0]}
    return {"images": rows, "mean": mean}


def merge_results(results: dict, eq: dict) -> dict:
    """Add the equivariance columns to a `SRModel.validation` result (rows matched by name)."""
    by_name = {r["name"]: r for r in eq["images"]}
    for row in results["images"]:
        row.update({k: v for k, v in by_name.get(row["name"], {}).items() if k != "name"})
    results["mean"].update(eq["mean"])
    return results
