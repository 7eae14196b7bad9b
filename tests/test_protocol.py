"""Scoring protocols: `basicsr` (BasicSR's Y of every file read as RGB) and `literature` (MATLAB's
rounded Y, one-channel files on their gray values), and the published bicubic rows."""
import math
import os

import numpy as np
import pytest

from restore.data import build_dataloader, build_dataset
from restore.data.testsets import get_testset
from restore.metrics import calculate_metric
from restore.metrics.protocol import PUBLISHED_BICUBIC_PSNR, bicubic_output, bicubic_scores
from restore.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from restore.utils.errors import OptionError
from restore.utils.img_io import imwrite, tensor2img


def gray_pair(seed=0, shape=(40, 36)):
    rng = np.random.default_rng(seed)
    gt = rng.integers(20, 230, shape + (1,)).astype(np.uint8)
    out = np.clip(gt.astype(int) + rng.integers(-6, 7, gt.shape), 0, 255).astype(np.uint8)
    return out, gt


def plain_psnr(a, b, crop):
    d = a[crop:-crop, crop:-crop].astype(np.float64) - b[crop:-crop, crop:-crop]
    return 10 * math.log10(255 ** 2 / np.mean(d ** 2))


def test_one_channel_gt_literature_scores_gray_basicsr_inflates_by_255_over_219():
    out, gt = gray_pair()
    rgb_out, rgb_gt = np.repeat(out, 3, 2), np.repeat(gt, 3, 2)
    want = plain_psnr(out, gt, 2)
    # the GT as a one-channel array, or the replicated GT with gt_channels=1: gray values
    assert calculate_psnr(rgb_out, gt, 2, True, protocol="literature") == pytest.approx(want, abs=1e-9)
    assert calculate_psnr(rgb_out, rgb_gt, 2, True, protocol="literature", gt_channels=1) == \
        pytest.approx(want, abs=1e-9)
    # BasicSR maps the replicated file to Y = 16 + 219/255 gray: errors shrink by 219/255
    basicsr = calculate_psnr(rgb_out, rgb_gt, 2, True)
    assert basicsr - want == pytest.approx(20 * math.log10(255 / 219), abs=2e-3)
    assert basicsr == calculate_psnr(rgb_out, rgb_gt, 2, True, gt_channels=1)  # basicsr ignores it
    # a gray image stored as RGB (Set14's man.png): MATLAB converts it to Y like any RGB file
    rounded_y = (np.floor(16 + (65.481 + 128.553 + 24.966) * rgb_gt[..., :1] / 255 + 0.5),
                 np.floor(16 + (65.481 + 128.553 + 24.966) * rgb_out[..., :1] / 255 + 0.5))
    assert calculate_psnr(rgb_out, rgb_gt, 2, True, protocol="literature", gt_channels=3) == \
        pytest.approx(plain_psnr(rounded_y[1], rounded_y[0], 2), abs=1e-9)


def test_literature_y_is_matlab_rounded_y():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (30, 30, 3)).astype(np.uint8)
    out = np.clip(gt.astype(int) + rng.integers(-9, 10, gt.shape), 0, 255).astype(np.uint8)

    def matlab_y(x):  # rgb2ycbcr on uint8: round half away from zero
        x = x.astype(np.float64)
        return np.floor(16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255 + 0.5)[..., None]

    want = plain_psnr(matlab_y(out), matlab_y(gt), 3)
    assert calculate_psnr(out, gt, 3, True, protocol="literature") == pytest.approx(want, abs=1e-9)
    assert calculate_psnr(out, gt, 3, True) != pytest.approx(want, abs=1e-3)  # BasicSR: unrounded Y
    ssim = calculate_ssim(out, gt, 3, True, protocol="literature")
    assert ssim == pytest.approx(calculate_ssim(matlab_y(out).astype(np.uint8), matlab_y(gt).astype(np.uint8), 3),
                                 abs=1e-12)


def test_gray_output_of_a_colour_output_is_rounded_bt601_luma():
    out, gt = gray_pair(2)
    rgb_out = np.concatenate([out, np.clip(out.astype(int) + 3, 0, 255).astype(np.uint8), out], axis=2)
    luma = np.floor(rgb_out.astype(np.float64) @ [0.299, 0.587, 0.114] + 0.5)[..., None]
    assert calculate_psnr(rgb_out, gt, 0, True, protocol="literature") == \
        pytest.approx(10 * math.log10(255 ** 2 / np.mean((luma - gt) ** 2)), abs=1e-9)


def test_bad_protocol_and_metric_dispatch():
    out, gt = gray_pair()
    with pytest.raises(OptionError, match="protocol must be basicsr or literature, got 'matlab'"):
        calculate_psnr(out, gt, protocol="matlab")
    rgb = np.repeat(gt, 3, 2)
    via_registry = calculate_metric({"img": np.repeat(out, 3, 2), "img2": rgb, "gt_channels": 1},
                                    {"type": "psnr", "crop_border": 2, "test_y_channel": True,
                                     "protocol": "literature"})
    assert via_registry == pytest.approx(plain_psnr(out, gt, 2), abs=1e-9)
    opts = get_testset("Set14").metric_options(3, "literature")
    assert opts["psnr"] == {"type": "calculate_psnr", "crop_border": 3, "test_y_channel": True,
                            "protocol": "literature"}
    assert "protocol" not in get_testset("Set14").metric_options(3)["ssim"]  # basicsr: as before


def test_validation_passes_the_gt_file_channels(tmp_path):
    """SRImageDataset reads a one-channel file as RGB but reports gt_channels=1, so a model's
    validation scores it on gray under the literature protocol."""
    from restore.archs import build_network

    folder = tmp_path / "gt"
    folder.mkdir()
    _, gray = gray_pair(3, (48, 48))
    imwrite(str(folder / "a_gray.png"), gray)
    imwrite(str(folder / "b_rgb.png"), np.repeat(gray, 3, 2))
    ds = build_dataset({"type": "SRImageDataset", "dataroot_gt": str(folder), "scale": 2, "name": "t"}, "test")
    assert [ds[i]["gt_channels"] for i in range(2)] == [1, 3]
    net = build_network({"type": "Bicubic", "upscale": 2})
    opt = {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True, "protocol": "literature"}
    scores = []
    for batch in build_dataloader(ds, {}, "test"):
        sr, gt = tensor2img(net(batch["lq"])), tensor2img(batch["gt"])
        scores.append(calculate_metric({"img": sr, "img2": gt, "gt_channels": batch["gt_channels"][0]}, opt))
        if int(batch["gt_channels"][0]) == 1:
            assert scores[-1] == pytest.approx(plain_psnr(sr[..., :1], gray, 2), abs=1e-9)
    # the same pixels: scored on gray, and (as an RGB file) on studio Y, whose errors are 219/255 as large
    assert scores[1] - scores[0] == pytest.approx(20 * math.log10(255 / 219), abs=0.02)


def test_bicubic_output_literature_never_quantises_the_lr():
    rng = np.random.default_rng(4)
    gt = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    from restore.utils.imresize import imresize
    up = imresize(imresize(gt / 255.0, 0.5), 2)
    assert np.array_equal(bicubic_output(gt, 2, "literature"), np.clip(np.floor(up * 255 + 0.5), 0, 255))
    assert np.array_equal(bicubic_output(gt, 2, "basicsr"), imresize(imresize(gt, 0.5), 2))


@pytest.mark.parametrize("name", ["Set5", "Set14"])
@pytest.mark.slow
def test_literature_protocol_reproduces_published_bicubic_rows(data_root, name):
    for scale in (2, 3, 4):
        lit = bicubic_scores(os.path.join(data_root, name), scale, "literature", ssim=False)["mean"]["psnr"]
        assert abs(lit - PUBLISHED_BICUBIC_PSNR[name][scale]) <= 0.01, (name, scale, lit)
    if name == "Set14":  # bridge.png, the one one-channel file, is the whole basicsr offset at x2
        basic = bicubic_scores(os.path.join(data_root, name), 2, "basicsr", ssim=False)
        lit = bicubic_scores(os.path.join(data_root, name), 2, "literature", ssim=False)
        assert [r["name"] for r in basic["images"] if r["channels"] == 1] == ["bridge"]
        assert basic["mean"]["psnr"] - lit["mean"]["psnr"] == pytest.approx(0.094, abs=0.01)
        assert abs(basic["mean"]["psnr"] - 30.24) > 0.08  # why BasicSR's Set14 misses the published 30.24


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.slow
def test_literature_protocol_reproduces_published_bicubic_bsd100(data_root, scale):
    lit = bicubic_scores(os.path.join(data_root, "BSD100"), scale, "literature", ssim=False)["mean"]["psnr"]
    assert abs(lit - PUBLISHED_BICUBIC_PSNR["BSD100"][scale]) <= 0.01, (scale, lit)


def test_restore_test_protocol_flag(tmp_path):
    """restore-test --protocol literature scores the one-channel GT file on gray; the option file's
    own blocks (no protocol key) score it as BasicSR does."""
    import json

    from restore.test import main as test_main
    from restore.utils.yaml_io import dump_yaml

    folder = tmp_path / "gt"
    folder.mkdir()
    _, gray = gray_pair(5, (32, 32))
    imwrite(str(folder / "g.png"), gray)
    opt_file = tmp_path / "t.yml"
    opt_file.write_text(dump_yaml({
        "name": "proto", "scale": 2, "device": "cpu",
        "datasets": {"test_1": {"name": "G", "type": "SRImageDataset", "dataroot_gt": str(folder)}},
        "network_g": {"type": "Bicubic", "upscale": 2},
        "path": {"results_root": str(tmp_path / "results")},
        "val": {"pbar": False, "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2,
                                                    "test_y_channel": True}}}}))
    scores = {}
    for protocol in ("basicsr", "literature"):
        assert test_main(["-opt", str(opt_file), "--protocol", protocol]) == 0
        results = json.loads((tmp_path / "results" / "proto" / "results.json").read_text())
        scores[protocol] = results["G"]["mean"]["psnr"]
        md = (tmp_path / "results" / "proto" / "results.md").read_text()
        assert f"Scoring protocol: {protocol} (docs/protocol.md)" in md
    assert scores["basicsr"] - scores["literature"] == pytest.approx(20 * math.log10(255 / 219), abs=0.05)


@pytest.mark.slow
def test_restore_bench_protocol_flag(tmp_path, data_root):
    """restore-bench's bicubic row on Set14 x2 under each protocol is the protocol's own bicubic
    (restore.metrics.protocol.bicubic_scores), and the literature one is the published 30.24."""
    import json

    from restore.cli.benchmark import main as bench_main

    for protocol in ("basicsr", "literature"):
        out = tmp_path / protocol
        assert bench_main(["--sets", "Set14", "--scales", "2", "--protocol", protocol, "--data-root", data_root,
                           "--latency-runs", "0", "--no-html", "-o", str(out)]) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["settings"]["protocol"] == protocol
        assert results["results"][0]["protocol"].startswith(f"{protocol} protocol:")
        got = results["results"][0]["mean"]["Bicubic"]
        want = bicubic_scores(os.path.join(data_root, "Set14"), 2, protocol)["mean"]
        # to float rounding: a memory layout can flip a .5 rounding of one pixel (monarch: 1e-6 dB)
        assert got["psnr"] == pytest.approx(want["psnr"], abs=1e-5)
        assert got["ssim"] == pytest.approx(want["ssim"], abs=1e-6)
    assert abs(got["psnr"] - 30.24) <= 0.01
