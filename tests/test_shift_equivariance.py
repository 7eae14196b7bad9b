"""Shift-equivariance metric: hand-computed cases, exactness for stride-free circular nets,
aliasing of strided nets and its reduction by blur-pool, JPEG grid offsets, the restore-test block."""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restore.archs import build_network
from restore.archs.layers.blurpool import BlurPool2d, BlurUpsample
from restore.data import build_dataloader, build_dataset
from restore.data.degradations import jpeg_compress
from restore.evaluation.equivariance import evaluate_equivariance, merge_results, parse_equivariance_options
from restore.metrics.psnr_ssim import calculate_psnr
from restore.evaluation.shift_equivariance import (jpeg_grid_spread, random_shifts, residue_shifts,
                                                shift_equivariance)
from restore.utils.errors import OptionError
from tests.tiny import make_images

torch.set_num_threads(1)


def smooth_image(h=32, w=32, c=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h // 4, w // 4, generator=g)
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (x + 0.05 * torch.rand(1, c, h, w, generator=g)).clamp(0, 1)


def test_shift_sets():
    r = residue_shifts(4)
    assert len(r) == 15 and len(set(r)) == 15 and (0, 0) not in r
    assert residue_shifts(2, include_zero=True) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    a, b = random_shifts(20, 5, seed=3), random_shifts(20, 5, seed=3)
    assert a == b and len(a) == 20 and (0, 0) not in a
    assert all(-5 <= v <= 5 for d in a for v in d) and len(set(a)) > 10


@pytest.mark.parametrize("circular", [True, False])
def test_hand_computed_row_pattern(circular):
    """f(x) = x + c (-1)^row: an odd dy changes the pattern's sign, so MSE = 4c^2; an even dy is exact."""
    c = 0.05
    x = smooth_image(16, 20).double()

    def f(t):
        sign = torch.tensor([(-1.0) ** i for i in range(t.shape[-2])], dtype=torch.float64)[:, None]
        return t + c * sign

    r = shift_equivariance(f, x, shifts=[(0, 1), (1, 0), (1, 1), (2, -3)], circular=circular, clamp=False)
    psnr = {row["shift"]: row["psnr"] for row in r["per_shift"]}
    assert psnr[(0, 1)] == math.inf and psnr[(2, -3)] == math.inf
    assert psnr[(1, 0)] == pytest.approx(-10 * math.log10(4 * c * c), abs=1e-9)
    assert psnr[(1, 1)] == pytest.approx(-10 * math.log10(4 * c * c), abs=1e-9)
    assert r["eq_psnr"] == pytest.approx(-10 * math.log10(2 * 4 * c * c / 4), abs=1e-9)
    assert r["eq_psnr_min"] == pytest.approx(-10 * math.log10(4 * c * c), abs=1e-9)


@pytest.mark.parametrize("circular", [True, False])
def test_sr_shift_maps_to_scale_times_shift(circular):
    x = smooth_image(12, 10, 3)

    def nearest_x3(t):
        return F.interpolate(t, scale_factor=3, mode="nearest")

    shifts = residue_shifts(3) + [(-2, 5)]
    assert shift_equivariance(nearest_x3, x, 3, shifts, circular)["eq_psnr"] == math.inf
    with pytest.raises(ValueError, match="not scale 1"):
        shift_equivariance(nearest_x3, x, 1, shifts, circular)


def test_dpsnr_gt_hand_computed():
    """f zeroes the even-even lattice; its PSNR to gt = x depends on which pixels land there."""
    x = smooth_image(8, 8, seed=4).double()

    def f(t):
        t = t.clone()
        t[..., ::2, ::2] = 0
        return t

    r = shift_equivariance(f, x, shifts=[(1, 0), (2, 2)], circular=True, gt=x, clamp=False)
    xn = x[0, 0].numpy()
    p0 = -10 * math.log10((xn[::2, ::2] ** 2).sum() / 64)
    p1 = -10 * math.log10((xn[1::2, ::2] ** 2).sum() / 64)  # rolled by 1 row: odd rows hit the lattice
    rows = {row["shift"]: row for row in r["per_shift"]}
    assert rows[(1, 0)]["dpsnr_gt"] == pytest.approx(abs(p0 - p1), abs=1e-9)
    assert rows[(2, 2)]["dpsnr_gt"] == 0 and rows[(2, 2)]["psnr"] == math.inf
    assert r["dpsnr_gt"] == pytest.approx(abs(p0 - p1) / 2, abs=1e-9)


def test_stride_free_circular_net_is_exact():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                        nn.Conv2d(8, 3, 5, padding=2, padding_mode="circular")).eval()
    x = smooth_image(24, 28, 3)
    shifts = residue_shifts(4) + random_shifts(6, 10)
    assert shift_equivariance(net, x, shifts=shifts, circular=True, clamp=False)["eq_psnr"] > 100
    # translated crops: exact away from the border (receptive field radius 3)
    assert shift_equivariance(net, x, shifts=shifts, circular=False, crop_border=3, clamp=False)["eq_psnr"] > 100
    assert shift_equivariance(net, x, shifts=shifts, circular=False, crop_border=0, clamp=False)["eq_psnr"] < 100


class ToyStrided(nn.Module):
    """conv - ReLU - downsample x2 - conv - ReLU - blurred nearest upsampling x2 - conv, circular."""

    def __init__(self, down: nn.Module, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        conv = {"padding": 1, "padding_mode": "circular"}
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 8, 3, **conv), nn.Conv2d(8, 8, 3, **conv), nn.Conv2d(8, 1, 3, **conv)
        for c in (self.c1, self.c2, self.c3):
            nn.init.kaiming_normal_(c.weight)
        self.down, self.up = down, BlurUpsample(8, 2, 3, "circular")

    def forward(self, x):
        return self.c3(self.up(F.relu(self.c2(self.down(F.relu(self.c1(x)))))))


@pytest.fixture(scope="module")
def toy_results():
    x = smooth_image(32, 32)
    out = {}
    for name, filter_size in (("stride", 1), ("blur3", 3), ("blur5", 5)):
        net = ToyStrided(BlurPool2d(8, filter_size, 2, "circular")).eval()
        out[name] = {"residues": shift_equivariance(net, x, shifts=residue_shifts(2), circular=True, clamp=False),
                     "even": shift_equivariance(net, x, shifts=[(2, 0), (4, -6)], circular=True, clamp=False)}
    return out


def test_strided_net_is_finite_and_exact_on_its_period(toy_results):
    r = toy_results["stride"]
    assert math.isfinite(r["residues"]["eq_psnr"]) and r["residues"]["eq_psnr"] < 60
    assert r["even"]["eq_psnr"] > 100


def test_blurpool_lowers_the_equivariance_error(toy_results):
    stride, b3, b5 = (toy_results[k]["residues"]["eq_psnr"] for k in ("stride", "blur3", "blur5"))
    assert b3 > stride + 3 and b5 > b3, (stride, b3, b5)
    assert toy_results["blur5"]["even"]["eq_psnr"] > 100


def test_unet_circular_exact_on_period_and_blur_helps():
    x = smooth_image(32, 32)
    common = {"type": "UNet", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 4, "num_level": 3,
              "padding_mode": "circular", "residual": False}
    torch.manual_seed(0)
    aliased = build_network({**common, "downsample": {"type": "maxpool"}}).eval()
    torch.manual_seed(0)
    blurred = build_network({**common, "downsample": {"type": "blurpool", "filter_size": 5}, "up_blur": 3}).eval()
    for net in (aliased, blurred):
        exact = shift_equivariance(net, x, shifts=[(4, 0), (0, 8), (-4, 12)], circular=True, clamp=False)
        assert exact["eq_psnr"] > 100
    a = shift_equivariance(aliased, x, shifts=residue_shifts(4), circular=True, clamp=False)["eq_psnr"]
    b = shift_equivariance(blurred, x, shifts=residue_shifts(4), circular=True, clamp=False)["eq_psnr"]
    assert math.isfinite(a) and b > a + 10, (a, b)


def test_errors():
    x = smooth_image(8, 8)
    with pytest.raises(ValueError, match="do not fit"):
        shift_equivariance(lambda t: t, x, shifts=[(5, 0), (-4, 0)])
    with pytest.raises(ValueError, match="leave nothing"):
        shift_equivariance(lambda t: t, x, shifts=[(2, 0)], crop_border=3)
    with pytest.raises(ValueError, match="one image"):
        shift_equivariance(lambda t: t, torch.rand(2, 1, 8, 8))


def test_jpeg_grid_spread_identity():
    rng = np.random.default_rng(0)
    gt = (smooth_image(40, 48, seed=2)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    gt = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    r = jpeg_grid_spread(lambda t: t, gt, quality=20)
    table = np.array(r["psnr"])
    assert table.shape == (8, 8) and r["std"] > 0 and r["range"] == pytest.approx(table.max() - table.min())
    # offset (3, 5), by hand: the crop starting there, and the scene rows/cols 7 .. H-8
    crop = gt[3:3 + 33, 5:5 + 41]
    out = jpeg_compress(np.ascontiguousarray(crop), 20).reshape(crop.shape)
    expected = calculate_psnr(out[7 - 3:7 - 3 + 26, 7 - 5:7 - 5 + 34], crop[7 - 3:7 - 3 + 26, 7 - 5:7 - 5 + 34])
    assert table[3, 5] == pytest.approx(expected, abs=1e-9)


# --- the restore-test block ----------------------------------------------------------------------

def test_option_block_validation():
    assert parse_equivariance_options(None) is None
    opts = parse_equivariance_options({"shifts": "residues+random", "num_random": 3, "max_shift": 5})
    assert len(opts.shift_list(build_network({"type": "UNet", "num_feat": 4, "num_level": 2}))) == 3 + 3
    with pytest.raises(OptionError, match=r"val\.equivariance: unknown key 'shift'"):
        parse_equivariance_options({"shift": "residues"})
    with pytest.raises(OptionError, match=r"val\.equivariance\.shifts"):
        parse_equivariance_options({"shifts": "all"})
    with pytest.raises(OptionError, match=r"val\.equivariance\.shifts"):
        parse_equivariance_options({"shifts": [[1, 2, 3]]})
    with pytest.raises(OptionError, match=r"val\.equivariance\.period: the network has no shift_period"):
        parse_equivariance_options({"shifts": "residues"}).shift_list(nn.Identity())
    with pytest.raises(OptionError, match=r"val\.equivariance\.jpeg_quality"):
        parse_equivariance_options({"jpeg_quality": 0})


def _loader(tmp_path, ds_type, **extra):
    folder = make_images(os.path.join(tmp_path, ds_type), n=2, size=(40, 48), channels=1)
    ds_opt = {"name": "tiny", "type": ds_type, "dataroot_gt": folder, "color": "gray", **extra}
    return build_dataloader(build_dataset(ds_opt, "test"), ds_opt, "test")


def test_evaluate_on_a_denoising_set(tmp_path):
    loader = _loader(tmp_path, "DenoiseDataset", sigma=25)
    torch.manual_seed(0)
    net = build_network({"type": "UNet", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 4, "num_level": 3}).eval()
    opts = parse_equivariance_options({"shifts": "residues+random", "num_random": 2, "max_shift": 6,
                                       "crop_border": 6, "center_crop": 36})
    eq = evaluate_equivariance(net, loader, opts, net=net)
    assert [r["name"] for r in eq["images"]] == ["img00", "img01"]
    assert set(eq["mean"]) == {"eq_psnr", "eq_psnr_min", "eq_dpsnr_gt"}
    assert all(math.isfinite(r["eq_psnr"]) and r["eq_psnr_min"] <= r["eq_psnr"] for r in eq["images"])
    results = {"images": [{"name": "img00", "psnr": 20.0}, {"name": "img01", "psnr": 21.0}], "mean": {"psnr": 20.5}}
    merge_results(results, eq)
    assert results["images"][1]["eq_psnr"] == eq["images"][1]["eq_psnr"]
    assert results["mean"]["eq_psnr"] == pytest.approx(np.mean([r["eq_psnr"] for r in eq["images"]]))


def test_evaluate_jpeg_grid_uses_the_dataset_quality(tmp_path):
    loader = _loader(tmp_path, "JPEGDataset", quality=30)
    opts = parse_equivariance_options({"shifts": [[8, 0], [0, 8]], "jpeg_grid": True, "max_images": 1})
    eq = evaluate_equivariance(lambda t: t, loader, opts)
    assert len(eq["images"]) == 1
    row = eq["images"][0]
    assert row["eq_psnr"] == math.inf and row["jpeg_grid_std"] > 0 and row["jpeg_grid_range"] > 0
