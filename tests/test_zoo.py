"""The shipped models: each loads by name, matches its checksum, has its card and option file, and
restores a small crop of a test image better than the bicubic / noisy / JPEG input."""
import os
import shutil

import numpy as np
import pytest
import torch
from skimage import data

from restore.cli import infer
from restore.cli.common import run_cli
from restore.data.degradations import add_gaussian_noise, jpeg_compress
from restore.data.transforms import to_color_mode
from restore.inference import load_model
from restore.inference.zoo import ZOO_ENV, BUILTIN_LIST, get_zoo_entry, sha256_of, zoo_entries
from restore.metrics.psnr_ssim import calculate_psnr
from restore.utils.errors import RestoreError
from restore.utils.imresize import bicubic_degrade, imresize
from restore.utils.img_io import img2tensor, imread, imwrite, tensor2img
from restore.utils.yaml_io import dump_yaml
from tests.tiny import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ["nsr_sr_x2", "nsr_sr_x4", "nsr_dn_gray_blind", "nsr_jpeg_gray_blind"]


@pytest.fixture(autouse=True)
def builtin_only(monkeypatch):
    monkeypatch.delenv(ZOO_ENV, raising=False)


def run(net, img: np.ndarray) -> np.ndarray:
    """uint8 HWC in, uint8 HWC out, as restore-infer writes it."""
    with torch.no_grad():
        return tensor2img(net(img2tensor(img.astype(np.float32) / 255).unsqueeze(0)))


def test_every_shipped_model_is_listed_with_its_files():
    entries = zoo_entries()
    assert sorted(SHIPPED) == sorted(n for n, e in entries.items() if e.origin == BUILTIN_LIST)
    for name in SHIPPED:
        e = entries[name]
        assert e.sha256 and sha256_of(e.weights) == e.sha256
        assert os.path.getsize(e.weights) < 8e6, "weights must stay small enough for the repository"
        assert os.path.isfile(os.path.join(ROOT, e.card)) and os.path.isfile(os.path.join(ROOT, e.options))
        with open(os.path.join(ROOT, e.card), encoding="utf-8") as f:
            card = f.read()
        assert e.sha256 in card and f"restore-infer --model {name}" in card


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_models_beat_bicubic_on_a_crop(scale):
    model = load_model(model=f"nsr_sr_x{scale}")
    assert model.scale == scale
    gt = data.astronaut()[40:136, 180:276]                       # 96 x 96, face and hair
    lr = bicubic_degrade(gt, scale)
    bicubic = imresize(lr, scale)
    sr = run(model.net, lr)
    assert sr.shape == gt.shape
    psnr_sr = calculate_psnr(sr, gt, crop_border=scale, test_y_channel=True)
    psnr_bicubic = calculate_psnr(bicubic, gt, crop_border=scale, test_y_channel=True)
    assert psnr_sr > psnr_bicubic + 0.3, (psnr_sr, psnr_bicubic)


def test_denoiser_beats_the_noisy_input_at_several_levels():
    model = load_model(model="nsr_dn_gray_blind")
    gt = data.camera()[100:196, 200:296, None]
    for sigma in (10, 25, 50):
        noisy = add_gaussian_noise(gt.astype(np.float32) / 255, sigma, np.random.default_rng(sigma))
        with torch.no_grad():
            out = tensor2img(model.net(img2tensor(noisy).unsqueeze(0)))
        noisy_u8 = tensor2img(img2tensor(noisy))
        assert calculate_psnr(out, gt) > calculate_psnr(noisy_u8, gt) + 3, sigma


def test_jpeg_deblocker_beats_the_jpeg_input_on_luma():
    model = load_model(model="nsr_jpeg_gray_blind")
    gt = to_color_mode(data.astronaut()[200:296, 100:196], "y")
    for quality in (10, 30):
        jpeg = jpeg_compress(gt, quality)
        out = run(model.net, jpeg)
        assert calculate_psnr(out, gt) > calculate_psnr(jpeg, gt) + 0.3, quality


def test_named_model_runs_through_restore_infer_and_tile_gates(tmp_path):
    imwrite(tmp_path / "in" / "a.png", data.astronaut()[:40, :48])
    assert run_cli(infer.main, ["--model", "nsr_sr_x2", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                "--no-progress"]) == 0
    assert imread(tmp_path / "out" / "a.png").shape == (80, 96, 3)
    tiled = load_model(model="nsr_sr_x2", arch_opts=["gate_region=tile"])
    assert tiled.net.tile_size == 48 and tiled.network_g["gate_region"] == "tile"
    with pytest.raises(RestoreError, match="does not fit the network"):
        load_model(model="nsr_sr_x2", arch_opts=["num_feat=16"])


def test_a_corrupted_weight_file_is_refused(tmp_path, monkeypatch):
    entry = get_zoo_entry("nsr_sr_x2")
    copy = tmp_path / "nsr_sr_x2.safetensors"
    shutil.copy(entry.weights, copy)
    with open(copy, "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\1")
    zoo = tmp_path / "zoo.yml"
    zoo.write_text(dump_yaml({"nsr_sr_x2": {"network_g": entry.network_g, "weights": copy.name,
                                            "sha256": entry.sha256}}))
    monkeypatch.setenv(ZOO_ENV, str(zoo))
    with pytest.raises(RestoreError, match="does not match its SHA256"):
        load_model(model="nsr_sr_x2")


def test_the_zoo_page_tables_match_the_committed_results():
    """docs/zoo.md's tables are what `scripts/zoo_release.py --zoo-page` makes from results/zoo/."""
    zoo_release = load_script("zoo_release")
    with open(os.path.join(ROOT, "docs", "zoo.md"), encoding="utf-8") as f:
        page = f.read()
    assert zoo_release.render_zoo_page(page) == page, "run python scripts/zoo_release.py --zoo-page"
    with open(os.path.join(ROOT, "results", "zoo", "size_sweep.md"), encoding="utf-8") as f:
        sweep_table = f.read().split("\n\n", 1)[1].strip()
    assert sweep_table in page
    for name in zoo_release.DESCRIPTIONS:
        assert f"[zoo/{name}.md](zoo/{name}.md)" in page


def test_the_zoo_page_generator_replaces_a_stale_table_and_refuses_a_page_without_markers():
    zoo_release = load_script("zoo_release")
    with open(os.path.join(ROOT, "docs", "zoo.md"), encoding="utf-8") as f:
        page = f.read()
    stale = page.replace("| `nsr_sr_x2` | sr x2 | 616,148 |", "| `nsr_sr_x2` | sr x2 | 1 |")
    assert stale != page and zoo_release.render_zoo_page(stale) == page
    with pytest.raises(RestoreError, match="zoo-tables: begin"):
        zoo_release.render_zoo_page(page.replace("<!-- zoo-tables: begin", "<!-- gone"))
