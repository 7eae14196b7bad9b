"""restore-test: runs a checkpoint over test sets and writes the tables and images."""
import json

import numpy as np
import pytest
import torch

import tests.tiny  # noqa: F401
from restore.cli.common import run_cli
from restore.metrics.psnr_ssim import calculate_psnr
from restore import test as restore_test
from restore.utils.checkpoint import save_network_file
from restore.utils.img_io import imread, tensor2img
from restore.utils.imresize import bicubic_degrade
from tests.tiny import TinyTestSR, make_images, write_options


def test_restore_test_writes_tables_and_images(tmp_path, capsys):
    torch.manual_seed(0)
    net = TinyTestSR(num_feat=8, upscale=2)
    ckpt = str(tmp_path / "net.pth")
    save_network_file(ckpt, net.state_dict(), {k: v * 0 for k, v in net.state_dict().items()})
    folder = make_images(tmp_path / "set", n=3, size=(33, 47))  # odd sizes: modcrop to 32x46
    opt = {"name": "tiny_test", "scale": 2, "device": "cpu",
           "datasets": {"test_1": {"name": "mini", "type": "SRImageDataset", "dataroot_gt": str(folder)}},
           "network_g": {"type": "TinyTestSR", "num_feat": 8, "upscale": 2},
           "path": {"pretrain_network_g": ckpt, "results_root": str(tmp_path / "results")},
           "val": {"save_img": True, "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2}}}}
    assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / "t.yml", opt)]) == 0
    out = tmp_path / "results" / "tiny_test"
    results = json.loads((out / "results.json").read_text())
    rows = results["mini"]["images"]
    assert [r["name"] for r in rows] == ["img00", "img01", "img02"]
    assert abs(results["mini"]["mean"]["psnr"] - np.mean([r["psnr"] for r in rows])) < 1e-9
    assert "| mini | 3 |" in (out / "results.md").read_text()
    assert "| mini | 3 |" in capsys.readouterr().out
    # the saved image is the network output, and its PSNR is the reported one
    gt = imread(folder / "img01.png")[:32, :46]
    sr_file = imread(out / "visualization" / "mini" / "img01_tiny_test.png")
    lq = torch.from_numpy(bicubic_degrade(gt, 2).transpose(2, 0, 1)).float()[None] / 255
    with torch.no_grad():
        expected = tensor2img(net(lq))
    assert np.array_equal(sr_file, expected)
    assert abs(calculate_psnr(sr_file, gt, crop_border=2) - rows[1]["psnr"]) < 1e-9
    # param_key_g picks the EMA weights (here all zero), giving a different output
    opt["path"]["param_key_g"] = "params_ema"
    opt["name"] = "tiny_test_ema"
    assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / "t2.yml", opt)]) == 0
    ema = json.loads((tmp_path / "results" / "tiny_test_ema" / "results.json").read_text())
    assert ema["mini"]["mean"]["psnr"] != results["mini"]["mean"]["psnr"]


def test_checkpoint_that_does_not_fit_is_named(tmp_path, capsys):
    ckpt = str(tmp_path / "wrong.pth")
    save_network_file(ckpt, TinyTestSR(num_feat=4).state_dict())
    folder = make_images(tmp_path / "set", n=1)
    opt = {"name": "bad", "scale": 2, "device": "cpu",
           "datasets": {"test_1": {"type": "SRImageDataset", "dataroot_gt": str(folder)}},
           "network_g": {"type": "TinyTestSR", "num_feat": 8},
           "path": {"pretrain_network_g": ckpt, "results_root": str(tmp_path / "results")}}
    assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / "t.yml", opt)]) == 2
    err = capsys.readouterr().err
    assert "wrong.pth" in err and "wrong shapes" in err
    assert not (tmp_path / "results" / "bad").exists() or not any((tmp_path / "results" / "bad").iterdir())


def test_restore_test_reports_shift_equivariance(tmp_path):
    folder = make_images(tmp_path / "set", n=2, size=(32, 32))
    opt = {"name": "eq", "scale": 1, "device": "cpu",
           "datasets": {"test_1": {"name": "mini", "type": "SRImageDataset", "dataroot_gt": str(folder)}},
           "network_g": {"type": "UNet", "num_feat": 4, "num_level": 2, "padding_mode": "circular",
                         "downsample": {"type": "blurpool", "filter_size": 3, "pad_mode": "circular"}},
           "path": {"results_root": str(tmp_path / "results")},
           "val": {"metrics": {"psnr": {"type": "calculate_psnr"}}, "equivariance": {"circular": True}}}
    assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / "t.yml", opt)]) == 0
    r = json.loads((tmp_path / "results" / "eq" / "results.json").read_text())["mini"]
    assert "eq_psnr" in r["mean"] and all("eq_psnr" in row for row in r["images"])


def test_restore_test_tiles_and_self_ensemble_options(tmp_path):
    torch.manual_seed(0)
    ckpt = str(tmp_path / "net.pth")
    save_network_file(ckpt, TinyTestSR(num_feat=8).state_dict())
    folder = make_images(tmp_path / "set", n=2, size=(40, 56))
    base = {"scale": 2, "device": "cpu",
            "datasets": {"test_1": {"name": "mini", "type": "SRImageDataset", "dataroot_gt": str(folder)}},
            "network_g": {"type": "TinyTestSR", "num_feat": 8},
            "path": {"pretrain_network_g": ckpt, "results_root": str(tmp_path / "results")}}
    psnr = {}
    for name, val in (("whole", {}), ("tiled", {"tile": 8, "tile_pad": 4}),
                      ("ensemble", {"self_ensemble": True})):
        opt = {**base, "name": name, "val": {**val, "metrics": {"psnr": {"type": "calculate_psnr"}}}}
        assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / f"{name}.yml", opt)]) == 0
        psnr[name] = json.loads((tmp_path / "results" / name / "results.json").read_text())["mini"]["mean"]["psnr"]
    assert abs(psnr["whole"] - psnr["tiled"]) < 1e-6  # receptive field (2 px) fits the tile padding
    assert psnr["ensemble"] != psnr["whole"]  # the tiny net is not flip-equivariant


def test_restore_test_csc_lambda_override_changes_the_output(tmp_path):
    folder = make_images(tmp_path / "set", n=2, size=(24, 24), channels=1)
    net = {"type": "DnCNN", "num_feat": 8, "num_layer": 3, "conv": {"type": "csc", "where": "first", "n_iter": 3}}
    torch.manual_seed(0)
    from restore.archs import build_network
    ckpt = str(tmp_path / "csc.pth")
    save_network_file(ckpt, build_network(net).state_dict())
    psnr = {}
    for name, extra in (("trained", []), ("big", ["--csc-lambda", "5.0"])):
        opt = {"name": name, "scale": 1, "device": "cpu", "network_g": net,
               "datasets": {"test_1": {"name": "mini", "type": "DenoiseDataset", "sigma": 25, "color": "gray",
                                       "dataroot_gt": str(folder)}},
               "path": {"pretrain_network_g": ckpt, "results_root": str(tmp_path / "results")},
               "val": {"metrics": {"psnr": {"type": "calculate_psnr"}}}}
        assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / f"{name}.yml", opt), *extra]) == 0
        psnr[name] = json.loads((tmp_path / "results" / name / "results.json").read_text())["mini"]["mean"]["psnr"]
    assert psnr["trained"] != psnr["big"]


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_image_is_skipped_listed_and_exit_1(tmp_path, capsys, workers):
    torch.manual_seed(0)
    ckpt = str(tmp_path / "net.pth")
    save_network_file(ckpt, TinyTestSR(num_feat=8).state_dict())
    folder = make_images(tmp_path / "set", n=3, size=(24, 30))
    bad = folder / "img01.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    opt = {"name": "skip", "scale": 2, "device": "cpu", "network_g": {"type": "TinyTestSR", "num_feat": 8},
           "datasets": {"test_1": {"name": "mini", "type": "SRImageDataset", "dataroot_gt": str(folder),
                                   "num_worker_per_gpu": workers}},
           "path": {"pretrain_network_g": ckpt, "results_root": str(tmp_path / "results")},
           "val": {"metrics": {"psnr": {"type": "calculate_psnr"}}}}
    assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / "t.yml", opt)]) == 1
    err = capsys.readouterr().err
    listed = err.split("skipped 1 file(s):\n")[-1].splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"  {bad}: ") and "Traceback" not in err
    reason = listed[0][2:]  # the reader's own words (truncated, cannot decode, ...)
    results = json.loads((tmp_path / "results" / "skip" / "results.json").read_text())["mini"]
    assert [r["name"] for r in results["images"]] == ["img00", "img02"]
    assert results["skipped"] == [reason]
    assert results["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in results["images"]]))
    assert f"- {reason}" in (tmp_path / "results" / "skip" / "results.md").read_text()
