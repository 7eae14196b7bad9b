"""The bicubic baseline reproduces the numbers every SR paper prints (Set5, Y channel, crop = scale).

Published (MATLAB) bicubic Set5: x2 33.66 / 0.9299, x3 30.39 / 0.8682, x4 28.42 / 0.8104. MATLAB
rounds Y to uint8 and we follow BasicSR's unrounded Y, so we allow a few hundredths of a dB. The
baseline is the one restore-bench reports (`baseline()`: MATLAB's uint8 imresize), which the Bicubic
option files of restore-test build too (tests/test_benchmark.py checks the two agree).
"""
import os

import pytest

from restore.benchmark.models import baseline
from restore.data import build_dataloader, build_dataset
from restore.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from restore.utils.img_io import tensor2img

PUBLISHED = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_set5_matches_literature(data_root, scale):
    ds = build_dataset({"type": "SRImageDataset", "dataroot_gt": os.path.join(data_root, "Set5"),
                        "scale": scale, "name": "Set5"}, "test")
    net = baseline("sr", 3, scale).loaded.net
    psnr, ssim = [], []
    for batch in build_dataloader(ds, {}, "test"):
        sr, gt = tensor2img(net(batch["lq"])), tensor2img(batch["gt"])
        psnr.append(calculate_psnr(sr, gt, crop_border=scale, test_y_channel=True))
        ssim.append(calculate_ssim(sr, gt, crop_border=scale, test_y_channel=True))
    assert len(psnr) == 5
    want_psnr, want_ssim = PUBLISHED[scale]
    assert abs(sum(psnr) / 5 - want_psnr) < 0.05
    assert abs(sum(ssim) / 5 - want_ssim) < 0.002
