"""PSNR and SSIM computed exactly as BasicSR 1.4.2 (and so as the SR papers that use it).

Inputs are numpy HWC **RGB** images (gray HxWx1 or HxW), uint8 (peak 255) or uint16 (peak 65535),
both images of the same shape and dtype. `crop_border` pixels are removed from every edge. Math is
in float64; SSIM is the Wang et al. Gaussian SSIM (11x11 window, sigma 1.5, "valid" region,
C1 = (0.01 peak)^2, C2 = (0.03 peak)^2), averaged over channels; it equals scikit-image's
`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`.

Y channel convention (`test_y_channel=True`): as BasicSR, Y = BT.601 studio-swing luma of the
float32 image / peak, kept *unrounded* (float32) and scaled back by the peak. MATLAB's
`rgb2ycbcr` on a uint8 image rounds Y to integers; that gives Y-PSNR values about 0.01 dB lower
(e.g. 31.665 vs 31.674 dB). Numbers here are comparable with BasicSR-based papers.

`protocol` (see restore/metrics/protocol.py and docs/protocol.md): 'basicsr' (the default, above)
or 'literature', the MATLAB scripts (SRCNN, VDSR, ...) behind the tables the field quotes: Y is MATLAB's
`rgb2ycbcr` of the uint8 image, *rounded*, and a GT that was a one-channel file (`gt_channels=1`,
or a HxWx1 `img2` beside an RGB `img`) is scored on its gray values, the output reduced to gray by
rounded BT.601 luma (0.299 R + 0.587 G + 0.114 B, which maps R = G = B to itself). BasicSR instead
replicates the gray file to RGB and maps it to studio-swing Y (16-235), which shrinks every error
by 219/255 and adds 1.32 dB to that image's PSNR.
"""
from typing import Literal, Optional

import cv2
import numpy as np

from restore.metrics.protocol import check_protocol
from restore.utils.color import rgb2y
from restore.utils.registry import METRIC_REGISTRY

_PEAK = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_LUMA = np.array([0.299, 0.587, 0.114])  # BT.601 luma on the image's own scale (MATLAB's rgb2gray, rounded)


def _as_hwc(x: np.ndarray, input_order: str) -> np.ndarray:
    if x.ndim == 3 and input_order == "CHW":
        return x.transpose(1, 2, 0)
    return x[:, :, None] if x.ndim == 2 else x


def _gray_gt(img, img2, input_order: str, gt_channels, protocol: str, what: str):
    """Literature protocol, one-channel GT file: (gray of img, gray GT), else None."""
    if protocol != "literature":
        return None
    a, b = _as_hwc(img, input_order), _as_hwc(img2, input_order)
    if b.ndim != 3 or a.ndim != 3 or a.shape[:2] != b.shape[:2]:
        return None
    if gt_channels is None and not (b.shape[2] == 1 and a.shape[2] == 3):
        return None
    if gt_channels is not None and int(gt_channels) != 1:
        return None
    if b.shape[2] == 3:
        if not (np.array_equal(b[:, :, 0], b[:, :, 1]) and np.array_equal(b[:, :, 0], b[:, :, 2])):
            raise ValueError(f"{what}: gt_channels=1 but the GT's three channels differ")
        b = b[:, :, :1]
    if a.shape[2] == 3:
        peak = _PEAK.get(a.dtype)
        if peak is not None:
            luma = a.astype(np.float64) @ _LUMA
            a = np.clip(np.floor(luma + 0.5), 0, peak).astype(a.dtype)[:, :, None]
    return a, b


def _prepare(img, img2, crop_border: int, test_y_channel: bool, input_order: str, what: str,
             protocol: str = "basicsr", gt_channels=None):
    """Both images as float64 HxWxC (cropped, optionally Y), and their peak value."""
    for x in (img, img2):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{what}: expected numpy images, got {type(x).__name__}")
    check_protocol(protocol, what)
    gray = _gray_gt(img, img2, input_order, gt_channels, protocol, what)
    if gray is not None:
        img, img2 = gray
        input_order, test_y_channel = "HWC", False  # gray values: no colour conversion left
    if img.shape != img2.shape:
        raise ValueError(f"{what}: images have different shapes: {img.shape} and {img2.shape}")
    if img.dtype != img2.dtype:
        raise ValueError(f"{what}: images have different dtypes: {img.dtype} and {img2.dtype}")
    peak = _PEAK.get(img.dtype)
    if peak is None:
        raise TypeError(f"{what}: expected uint8 or uint16 images, got {img.dtype} "
                        "(quantise network outputs with tensor2img first)")
    if input_order not in ("HWC", "CHW"):
        raise ValueError(f"{what}: input_order must be 'HWC' or 'CHW', got {input_order!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"{what}: crop_border must be a non-negative integer, got {crop_border!r}")
    out = []
    for x in (img, img2):
        if x.ndim == 2:
            x = x[:, :, None]
        elif x.ndim == 3 and input_order == "CHW":
            x = x.transpose(1, 2, 0)
        elif x.ndim != 3:
            raise ValueError(f"{what}: expected an HxW or HxWxC image, got shape {x.shape}")
        h, w = x.shape[:2]
        if 2 * crop_border >= min(h, w):
            raise ValueError(f"{what}: crop_border {crop_border} leaves nothing of a {h}x{w} image")
        if crop_border:
            x = x[crop_border:-crop_border, crop_border:-crop_border]
        if test_y_channel:
            x = _y_channel(x, peak, what, rounded=protocol == "literature")
        out.append(x.astype(np.float64))
    return out[0], out[1], peak


def _y_channel(img: np.ndarray, peak: float, what: str, rounded: bool = False) -> np.ndarray:
    """BasicSR's `to_y_channel`: float32 image / peak -> BT.601 Y (float32, unrounded) -> x peak;
    `rounded`: MATLAB's `rgb2ycbcr` of the integer image (Y rounded to an integer)."""
    if rounded and img.shape[2] == 3:
        return rgb2y(img)[:, :, None]
    x = img.astype(np.float32) / np.float32(peak)
    if img.shape[2] == 3:
        x = rgb2y(x).astype(np.float32)[:, :, None]
    elif img.shape[2] != 1:
        raise ValueError(f"{what}: test_y_channel needs an RGB or gray image, got {img.shape[2]} channels")
    return x * np.float32(peak)


@METRIC_REGISTRY.register()
def calculate_psnr(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False,
                   input_order: Literal["HWC", "CHW"] = "HWC", protocol: str = "basicsr",
                   gt_channels: Optional[int] = None) -> float:
    """PSNR in dB between two uint8/uint16 RGB (or gray) images; inf for identical images."""
    a, b, peak = _prepare(img, img2, crop_border, test_y_channel, input_order, "calculate_psnr",
                          protocol, gt_channels)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def _ssim_channel(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    c1 = (0.01 * peak) ** 2
    c2 = (0.03 * peak) ** 2
    g = cv2.getGaussianKernel(_SSIM_WINDOW, _SSIM_SIGMA)
    window = g @ g.T
    r = _SSIM_WINDOW // 2

    def local_mean(x):  # "valid" region: drop the border where the window leaves the image
        return cv2.filter2D(x, -1, window)[r:-r, r:-r]

    mu_a, mu_b = local_mean(a), local_mean(b)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = local_mean(a * a) - mu_aa
    var_b = local_mean(b * b) - mu_bb
    cov = local_mean(a * b) - mu_ab
    ssim_map = ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_aa + mu_bb + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


@METRIC_REGISTRY.register()
def calculate_ssim(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False,
                   input_order: Literal["HWC", "CHW"] = "HWC", protocol: str = "basicsr",
                   gt_channels: Optional[int] = None) -> float:
    """Gaussian SSIM between two uint8/uint16 RGB (or gray) images, averaged over channels."""
    a, b, peak = _prepare(img, img2, crop_border, test_y_channel, input_order, "calculate_ssim",
                          protocol, gt_channels)
    if min(a.shape[:2]) < _SSIM_WINDOW:
        raise ValueError(f"calculate_ssim: image ({a.shape[0]}x{a.shape[1]} after cropping) is smaller "
                         f"than the {_SSIM_WINDOW}x{_SSIM_WINDOW} SSIM window")
    return float(np.mean([_ssim_channel(a[:, :, c], b[:, :, c], peak) for c in range(a.shape[2])]))


METRIC_REGISTRY.register(calculate_psnr, name="psnr")
METRIC_REGISTRY.register(calculate_ssim, name="ssim")

__all__ = ["calculate_psnr", "calculate_ssim"]
