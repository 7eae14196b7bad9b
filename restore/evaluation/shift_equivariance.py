"""Shift-equivariance of an image-to-image model (a model-level metric: it runs the model).

EQ-PSNR(d) = PSNR(T_{s d} f(x), f(T_d x)) over the pixels valid in both (StyleGAN3's EQ-T with a
peak of 1 for [0, 1] images), where T_d moves the content by d = (dy, dx) pixels and s is the scale
(an LR shift d is an HR shift s d). Outputs are clamped to [0, 1] and compared in float64.

* `circular=True`: T_d is torch.roll. A net whose every layer wraps around (circular padding) and
  that has no stride commutes with it exactly; a net with L stride-2 layers does so exactly for d
  that are multiples of 2^L (sizes multiples of 2^L), and the other residues measure aliasing.
* `circular=False`: T_d is a translated crop of the same scene: the base input is `lq` without its
  first max(dy, 0) rows / max(dx, 0) columns, the shifted input starts d earlier, so both see real
  image content; PSNR is over the region both outputs cover, less `crop_border` on every side.
  This is the realistic setting (no wrap-around seam); borders differ because the content differs.

The report pools the MSE over all shifts (`eq_psnr`), gives the worst shift (`eq_psnr_min`), and,
with `gt`, the APS-U score |PSNR(f(x), gt) - PSNR(f(T_d x), T_{s d} gt)| (`dpsnr_gt`), both PSNRs
over the same scene pixels. For denoising, shift the *same* noisy image (the noise moves with it).

JPEG is only 8-periodic (16 for 4:2:0 colour): shifts that are multiples of the block are exact,
others change the degradation. `jpeg_grid_spread` compresses the clean image at each of the 64
block-grid offsets and reports the spread of PSNR to the ground truth over the same scene pixels.

Not in METRIC_REGISTRY (whose metrics compare two images); restore-test calls it through
restore/evaluation/equivariance.py (the `val.equivariance` option block).
"""
import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from restore.data.degradations import jpeg_compress
from restore.metrics.psnr_ssim import calculate_psnr
from restore.utils.img_io import img2tensor, tensor2img

Shift = tuple[int, int]
ModelFn = Callable[[torch.Tensor], torch.Tensor]


def residue_shifts(period: int, include_zero: bool = False) -> list[Shift]:
    """Every shift (dy, dx) with 0 <= dy, dx < period: one per phase of a period-`period` grid."""
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    return [(dy, dx) for dy in range(period) for dx in range(period) if include_zero or dy or dx]


def random_shifts(n: int, max_shift: int = 16, seed: int = 0) -> list[Shift]:
    """`n` non-zero shifts drawn uniformly from [-max_shift, max_shift]^2 (the same for a given seed)."""
    if max_shift < 1:
        raise ValueError(f"max_shift must be >= 1, got {max_shift}")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        d = tuple(int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
        if d != (0, 0):
            out.append(d)
    return out


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        return x[None]
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image as CHW or 1xCxHxW, got shape {tuple(x.shape)}")
    return x


def _run(model_fn: ModelFn, x: torch.Tensor, clamp: bool) -> torch.Tensor:
    with torch.no_grad():
        out = model_fn(x)
    out = out.detach().to("cpu", torch.float64)
    return out.clamp(0, 1) if clamp else out


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.mean((a - b) ** 2))


def _overlap(length_b: int, shift: int, border: int) -> tuple[slice, slice]:
    """Rows I of the shifted output and I - shift of the base output both inside their images, less
    `border` on each side (the shifted output is length_b + shift long)."""
    lo, hi = max(0, shift) + border, length_b + shift - border
    if hi <= lo:
        raise ValueError(f"shift {shift} and crop_border {border} leave nothing of {length_b} pixels")
    return slice(lo, hi), slice(lo - shift, hi - shift)


def shift_equivariance(model_fn: ModelFn, lq: torch.Tensor, scale: int = 1,
                       shifts: Optional[Sequence[Shift]] = None, circular: bool = False,
                       gt: Optional[torch.Tensor] = None, crop_border: int = 0, clamp: bool = True) -> dict:
    """EQ-PSNR of `model_fn` (1xCxHxW [0, 1] -> 1xC'x sH x sW) on one image for each shift.

    shifts: (dy, dx) pairs in LR pixels; default every non-zero residue modulo 4. Returns
    {'eq_psnr' (pooled MSE), 'eq_psnr_min', 'per_shift': [{'shift', 'psnr'[, 'dpsnr_gt']}]
    [, 'dpsnr_gt' (mean), 'dpsnr_gt_max']}.
    """
    lq = _as_batch(lq)
    gt = _as_batch(gt).to(torch.float64) if gt is not None else None
    shifts = [tuple(int(v) for v in d) for d in (residue_shifts(4) if shifts is None else shifts)]
    if not shifts:
        raise ValueError("no shifts to evaluate")
    h, w = lq.shape[-2:]
    if circular:
        base_in, base_gt = lq, gt
    else:
        my, mx = max(0, *(d[0] for d in shifts)), max(0, *(d[1] for d in shifts))
        if my - min(0, *(d[0] for d in shifts)) >= h or mx - min(0, *(d[1] for d in shifts)) >= w:
            raise ValueError(f"shifts up to {shifts} do not fit a {h}x{w} image")
        base_in = lq[..., my:, mx:]
        base_gt = gt[..., scale * my:, scale * mx:] if gt is not None else None
    out_b = _run(model_fn, base_in, clamp)
    if out_b.shape[-2:] != (scale * base_in.shape[-2], scale * base_in.shape[-1]):
        raise ValueError(f"the model's output {tuple(out_b.shape[-2:])} is not scale {scale} x its input "
                         f"{tuple(base_in.shape[-2:])}")
    rows, mses = [], []
    for dy, dx in shifts:
        if circular:
            out_s = _run(model_fn, torch.roll(lq, (dy, dx), dims=(-2, -1)), clamp)
            ref = torch.roll(out_b, (scale * dy, scale * dx), dims=(-2, -1))
            b = crop_border
            region_s = region_b = (slice(b, out_s.shape[-2] - b), slice(b, out_s.shape[-1] - b))
            gt_s = torch.roll(gt, (scale * dy, scale * dx), dims=(-2, -1)) if gt is not None else None
            a, r = out_s[..., region_s[0], region_s[1]], ref[..., region_s[0], region_s[1]]
        else:
            shifted_in = lq[..., my - dy:, mx - dx:]
            out_s = _run(model_fn, shifted_in, clamp)
            ys, yb = _overlap(out_b.shape[-2], scale * dy, crop_border)
            xs, xb = _overlap(out_b.shape[-1], scale * dx, crop_border)
            region_s, region_b = (ys, xs), (yb, xb)
            gt_s = gt[..., scale * (my - dy):, scale * (mx - dx):] if gt is not None else None
            a, r = out_s[..., ys, xs], out_b[..., yb, xb]
        mse = _mse(a, r)
        mses.append(mse)
        row = {"shift": (dy, dx), "psnr": psnr_from_mse(mse)}
        if gt is not None:
            p_base = psnr_from_mse(_mse(out_b[..., region_b[0], region_b[1]],
                                        base_gt[..., region_b[0], region_b[1]]))
            p_shift = psnr_from_mse(_mse(a, gt_s[..., region_s[0], region_s[1]]))
            row["dpsnr_gt"] = 0.0 if p_base == p_shift else abs(p_base - p_shift)
        rows.append(row)
    result = {"eq_psnr": psnr_from_mse(float(np.mean(mses))), "eq_psnr_min": min(r["psnr"] for r in rows),
              "per_shift": rows}
    if gt is not None:
        result["dpsnr_gt"] = float(np.mean([r["dpsnr_gt"] for r in rows]))
        result["dpsnr_gt_max"] = float(max(r["dpsnr_gt"] for r in rows))
    return result


def jpeg_grid_spread(model_fn: ModelFn, gt: np.ndarray, quality: int, block: int = 8,
                     crop_border: int = 0) -> dict:
    """PSNR to the ground truth of f(JPEG(crop)) at each of the block x block grid offsets.

    `gt`: the clean uint8 HWC image (1 channel: gray JPEG). The crop at offset (oy, ox) is
    gt[oy:oy + H - block + 1, ox:...]; every PSNR (8-bit, as the literature) is over the same scene
    pixels (rows/columns block-1 .. H-block, less crop_border). Returns {'psnr': block x block list,
    'mean', 'std', 'range' (max - min), 'worst_offset'}.
    """
    h, w = gt.shape[:2]
    margin = block - 1
    if h <= 2 * margin + 2 * crop_border or w <= 2 * margin + 2 * crop_border:
        raise ValueError(f"a {h}x{w} image is too small for {block}x{block} grid offsets")
    ch, cw = h - margin, w - margin
    table = np.zeros((block, block))
    for oy in range(block):
        for ox in range(block):
            crop = np.ascontiguousarray(gt[oy:oy + ch, ox:ox + cw])
            lq = jpeg_compress(crop, quality)
            if lq.ndim == 2:
                lq = lq[:, :, None]
            out = tensor2img(_run(model_fn, img2tensor(lq)[None], clamp=True).float())
            # scene rows margin .. h - block are rows margin - oy .. in this crop
            y0, x0 = margin - oy + crop_border, margin - ox + crop_border
            y1, x1 = y0 + h - 2 * margin - 2 * crop_border, x0 + w - 2 * margin - 2 * crop_border
            ref = crop if crop.ndim == 3 else crop[:, :, None]
            table[oy, ox] = calculate_psnr(out[y0:y1, x0:x1], ref[y0:y1, x0:x1])
    worst = np.unravel_index(np.argmin(table), table.shape)
    return {"psnr": table.tolist(), "mean": float(table.mean()), "std": float(table.std()),
            "range": float(table.max() - table.min()), "worst_offset": (int(worst[0]), int(worst[1]))}
