"""Calibrating a CSC denoiser's test-time lambda on a validation set (SDNet's "robust inference",
made per image).

For each noise level sigma: add seeded Gaussian noise to every validation image, measure at the first
CSC layer's input the noise-level estimate and the residual r at the trained lambda, then sweep the
lambda multiplier m over a grid and record the mean PSNR (outputs rounded to 8 bits, as in
validation). The best m per level against the mean measurement of that level gives the points of a
straight line m(f) (restore/csc/lambda_fit.py), which "auto" evaluates per test image.
"""
import os

import numpy as np
import torch
from torch import nn

from restore.csc.control import first_layer_measure, reset_csc_lambda, scale_csc_lambda
from restore.csc.lambda_fit import ApplyTo, Feature, LambdaFit, feature_of
from restore.data.degradations import add_gaussian_noise
from restore.data.transforms import to_color_mode
from restore.metrics.psnr_ssim import calculate_psnr
from restore.utils.errors import RestoreError
from restore.utils.img_io import img2tensor, imread, list_images, tensor2img, to_float32

MEASURES = {"residual": "residual", "sqrt_residual": "residual", "noise_sigma": "noise_sigma"}  # feature -> row key

DEFAULT_MULTIPLIERS = tuple(float(2.0 ** (k / 4)) for k in range(-8, 9))  # 0.25 ... 4, 17 values


def resolve_val_dir(val_dir: str, data_root) -> str:
    """A folder as given, else a dataset name under the data root."""
    if os.path.isdir(val_dir) or not data_root:
        return val_dir
    return os.path.join(data_root, val_dir)


def load_validation_images(folder: str, color: str, max_images: int, crop: int) -> list[np.ndarray]:
    """The first `max_images` images of `folder` in colour mode `color`, centre-cropped to `crop`
    (0: whole), as float32 in [0, 1]."""
    images = []
    for path in list_images(folder)[:max_images]:
        img = to_color_mode(imread(path), color, path)
        if crop:
            h, w = img.shape[:2]
            if min(h, w) < crop:
                raise RestoreError(f"{path}: {w}x{h} is smaller than --crop {crop}")
            top, left = (h - crop) // 2, (w - crop) // 2
            img = img[top:top + crop, left:left + crop]
        images.append(to_float32(img))
    return images


def noisy_versions(images: list[np.ndarray], sigma: float, seed: int) -> list[np.ndarray]:
    """Each float [0, 1] image plus Gaussian noise of level sigma (0-255 units), seeded by
    (seed, sigma, index) so every sweep and every run sees the same noise."""
    return [add_gaussian_noise(img, sigma, np.random.default_rng([seed, round(sigma * 100), i]))
            for i, img in enumerate(images)]


@torch.no_grad()
def _psnr(net: nn.Module, lq: torch.Tensor, gt_u8: np.ndarray) -> float:
    return float(calculate_psnr(tensor2img(net(lq).float().cpu()), gt_u8))


@torch.no_grad()
def sweep(net: nn.Module, images: list[np.ndarray], sigmas, multipliers=DEFAULT_MULTIPLIERS,
          apply_to: ApplyTo = "all", seed: int = 0, device="cpu", progress=None) -> list[dict]:
    """One row per sigma: mean residual at the trained lambda and mean noise estimate at the first
    CSC layer, mean PSNR per multiplier, the best multiplier. `images` are float32 HWC in [0, 1] (their 8-bit values are the ground truth)."""
    net = net.eval()
    gts = [(img * 255).round().clip(0, 255).astype(np.uint8) for img in images]
    rows = []
    try:
        for sigma in sigmas:
            lqs = [img2tensor(lq).unsqueeze(0).to(device) for lq in noisy_versions(images, sigma, seed)]
            reset_csc_lambda(net)
            residuals = [float(first_layer_measure(net, lq, "residual")[0]) for lq in lqs]
            sigmas_hat = [float(first_layer_measure(net, lq, "noise_sigma")[0]) for lq in lqs]
            psnr = []
            for m in multipliers:
                scale_csc_lambda(net, float(m), apply_to)
                psnr.append(float(np.mean([_psnr(net, lq, gt) for lq, gt in zip(lqs, gts)])))
                if progress:
                    progress(sigma, m, psnr[-1])
            best = int(np.argmax(psnr))
            rows.append({"sigma": float(sigma), "residual": float(np.mean(residuals)),
                         "residual_per_image": residuals, "noise_sigma": float(np.mean(sigmas_hat)),
                         "noise_sigma_per_image": sigmas_hat, "multipliers": [float(m) for m in multipliers],
                         "psnr": psnr, "best_multiplier": float(multipliers[best]),
                         "best_psnr": psnr[best], "psnr_at_1": _at_one(multipliers, psnr)})
    finally:
        reset_csc_lambda(net)
    return rows


def _at_one(multipliers, psnr):
    for m, p in zip(multipliers, psnr):
        if abs(m - 1.0) < 1e-9:
            return p
    return None


def fit_rows(rows: list[dict], feature: Feature = "noise_sigma", apply_to: ApplyTo = "all",
             info: dict | None = None) -> LambdaFit:
    """The line through (f(mean measurement), best multiplier) of every sigma; the multiplier range
    is the swept one."""
    multipliers = rows[0]["multipliers"]
    keys = ("sigma", "residual", "noise_sigma", "best_multiplier", "best_psnr", "psnr_at_1")
    points = [{k: r[k] for k in keys if k in r} for r in rows]
    measures = np.array([r[MEASURES[feature]] for r in rows])
    fit = LambdaFit.from_points(measures, [r["best_multiplier"] for r in rows],
                                (min(multipliers), max(multipliers)), feature, apply_to, points, info)
    x = feature_of(measures, feature)
    y = np.array([r["best_multiplier"] for r in rows])
    pred = fit.slope * x + fit.intercept
    fit.info["r2"] = float(1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-30))
    return fit
