"""Scoring protocols: which published tables a number can stand beside (docs/protocol.md).

    basicsr     BasicSR 1.4.2's `calculate_psnr/ssim`: every file is read as RGB (a one-channel file
                is replicated), Y = unrounded BT.601 studio-swing luma. What papers evaluated with
                BasicSR (SwinIR, HAT, ...) report. The default.
    literature  The MATLAB scripts behind the SR tables everyone quotes (SRCNN, VDSR, ... and their
                bicubic rows): Y = `rgb2ycbcr` of the uint8 image (rounded), and a one-channel file
                is scored on its gray values.

Set14's bridge.png is the one one-channel file of Set5/Set14/BSD100 (man.png is gray stored as
RGB, which MATLAB also maps to Y). Under `basicsr` its replicated RGB maps to
Y = 16 + 219/255 gray, which shrinks every error by 219/255 (+1.32 dB on that image) and inflates
any method's Set14 mean by about 0.09 dB.

The published bicubic rows were also made from an LR that was never written to an 8-bit file
(MATLAB resized the double image down and up, then quantised the output), so `bicubic_output`
under `literature` does the same; models always get the 8-bit LR, as in those papers.
"""
import os
from typing import Optional

import numpy as np

from restore.utils.errors import OptionError

PROTOCOLS = ("basicsr", "literature")
DEFAULT_PROTOCOL = "basicsr"

# Published bicubic rows (SRCNN / VDSR tables, MATLAB), PSNR on Y, crop = scale.
PUBLISHED_BICUBIC_PSNR = {
    "Set5": {2: 33.66, 3: 30.39, 4: 28.42},
    "Set14": {2: 30.24, 3: 27.55, 4: 26.00},
    "BSD100": {2: 29.56, 3: 27.21, 4: 25.96},
    "Urban100": {2: 26.88, 3: 24.46, 4: 23.14},
}


def check_protocol(protocol, where: str = "protocol") -> str:
    if protocol not in PROTOCOLS:
        raise OptionError(f"{where}: protocol must be {' or '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def stored_channels(img: np.ndarray) -> int:
    """Channels of an image as read unchanged (HxW counts as one)."""
    return 1 if img.ndim == 2 else int(img.shape[2])


def bicubic_output(gt: np.ndarray, scale: int, protocol: str = DEFAULT_PROTOCOL) -> np.ndarray:
    """The bicubic baseline's output for a mod-cropped uint8/uint16 GT (HxWxC), same dtype.

    basicsr: LR = MATLAB bicubic of the integer GT (rounded, as an LR file), upscaled as an integer
    image (rounded); literature: down and up in float64, only the output rounded (SRCNN's scripts).
    """
    from restore.utils.imresize import bicubic_degrade, imresize

    check_protocol(protocol)
    if protocol == "basicsr":
        return imresize(bicubic_degrade(gt, scale), scale)
    peak = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(gt.dtype)
    if peak is None:
        raise TypeError(f"bicubic_output: expected an uint8 or uint16 image, got {gt.dtype}")
    up = imresize(imresize(gt.astype(np.float64) / peak, 1.0 / scale), scale)
    return np.clip(np.floor(up * peak + 0.5), 0, peak).astype(gt.dtype)


def bicubic_scores(folder: str, scale: int, protocol: str = DEFAULT_PROTOCOL,
                   max_images: Optional[int] = None, ssim: bool = True) -> dict:
    """Y-PSNR / Y-SSIM (crop = scale) of the bicubic baseline on every image of an SR test set.

    Returns {'images': [{'name', 'channels', 'psnr', 'ssim'}], 'mean': {'psnr', 'ssim'}}
    (no 'ssim' without `ssim`: it costs most of the time).
    """
    from restore.data.transforms import modcrop
    from restore.metrics.psnr_ssim import calculate_psnr, calculate_ssim
    from restore.utils.img_io import imread, list_images

    check_protocol(protocol)
    rows = []
    for path in list_images(folder)[:max_images]:
        raw = imread(path)  # unchanged: a one-channel file stays HxWx1
        channels = stored_channels(raw)
        gt = modcrop(raw if raw.ndim == 3 else raw[:, :, None], scale)
        rgb = np.repeat(gt, 3, axis=2) if channels == 1 else gt[:, :, :3]  # what an RGB net sees
        out = bicubic_output(rgb, scale, protocol)
        kw = dict(crop_border=scale, test_y_channel=True, protocol=protocol, gt_channels=channels)
        row = {"name": os.path.splitext(os.path.basename(path))[0], "channels": channels,
               "psnr": calculate_psnr(out, rgb, **kw)}
        if ssim:
            row["ssim"] = calculate_ssim(out, rgb, **kw)
        rows.append(row)
    mean = {m: float(np.mean([r[m] for r in rows])) for m in ("psnr", "ssim") if m in rows[0]}
    return {"images": rows, "mean": mean}


def set_metric_protocol(metrics: Optional[dict], protocol: str) -> list[str]:
    """Give every metric block of `val.metrics` that takes a protocol (PSNR, SSIM) `protocol`, as a
    `--protocol` flag does; returns the names of the blocks changed."""
    import inspect

    from restore.utils.registry import METRIC_REGISTRY

    check_protocol(protocol, "--protocol")
    changed = []
    for name, block in (metrics or {}).items():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in METRIC_REGISTRY and "protocol" in inspect.signature(METRIC_REGISTRY.get(kind)).parameters:
            block["protocol"] = protocol
            changed.append(name)
    return changed


def metric_protocol_note(metrics: Optional[dict]) -> Optional[str]:
    """One line naming the scoring protocol of a `val.metrics` block (for results tables), or None
    when no metric block takes a protocol."""
    import inspect

    from restore.utils.registry import METRIC_REGISTRY

    used = set()
    for block in (metrics or {}).values():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in METRIC_REGISTRY and "protocol" in inspect.signature(METRIC_REGISTRY.get(kind)).parameters:
            used.add(block.get("protocol", DEFAULT_PROTOCOL))
    if not used:
        return None
    return f"Scoring protocol: {', '.join(sorted(used))} (docs/protocol.md)"


__all__ = ["PROTOCOLS", "DEFAULT_PROTOCOL", "PUBLISHED_BICUBIC_PSNR", "check_protocol", "stored_channels",
           "bicubic_output", "bicubic_scores", "set_metric_protocol", "metric_protocol_note"]
