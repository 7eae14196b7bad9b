"""Noise and JPEG degradations, and the DenoiseDataset / JPEGDataset built on them."""
import hashlib
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from restore.data import build_dataloader, build_dataset
from restore.data.degradations import add_gaussian_noise, add_poisson_noise, jpeg_compress
from restore.utils.color import rgb2ycbcr
from restore.utils.errors import OptionError, RestoreError
from restore.utils.img_io import imwrite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def smooth_image(h, w, seed, channels=3):
    """A natural-ish 8-bit image: gradients plus texture (JPEG of pure noise is a poor test)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = [128 + 90 * np.sin(x / (11 + 5 * c) + y / (17 + 3 * c)) for c in range(channels)]
    img = np.stack(base, axis=2) + rng.normal(0, 12, (h, w, channels))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    imwrite(tmp_path / "a.png", smooth_image(64, 80, 0))
    imwrite(tmp_path / "b.png", smooth_image(72, 60, 1))
    imwrite(tmp_path / "c.png", smooth_image(50, 50, 2, channels=1))
    return tmp_path


# ---- degradation functions ---------------------------------------------------------------------
def test_gaussian_noise_std_matches_sigma_and_is_unclipped():
    clean = np.full((512, 512, 1), 0.5, np.float32)
    noisy = add_gaussian_noise(clean, 25, np.random.default_rng(0))
    assert noisy.dtype == np.float32
    assert abs((noisy - clean).std() / (25 / 255) - 1) < 0.02
    assert abs((noisy - clean).mean()) < 0.002
    dark = add_gaussian_noise(np.zeros((64, 64, 3), np.float32), 25, np.random.default_rng(1))
    assert dark.min() < 0  # not clipped
    clipped = add_gaussian_noise(np.zeros((64, 64, 3), np.float32), 25, np.random.default_rng(1), clip=True)
    assert clipped.min() == 0 and clipped.max() <= 1
    np.testing.assert_array_equal(clipped, np.clip(dark, 0, 1))


def test_gray_noise_is_the_same_in_every_channel():
    noisy = add_gaussian_noise(np.zeros((32, 32, 3), np.float32), 15, np.random.default_rng(2), gray_noise=True)
    np.testing.assert_array_equal(noisy[:, :, 0], noisy[:, :, 1])
    np.testing.assert_array_equal(noisy[:, :, 0], noisy[:, :, 2])
    colour = add_gaussian_noise(np.zeros((32, 32, 3), np.float32), 15, np.random.default_rng(2))
    assert not np.array_equal(colour[:, :, 0], colour[:, :, 1])


def test_poisson_noise_has_poisson_statistics():
    clean = np.full((256, 256, 1), 0.25, np.float32)
    noisy = add_poisson_noise(clean, peak=40.0, rng=np.random.default_rng(3))
    # counts ~ Poisson(0.25 * 40 = 10): mean 0.25, variance 10 / 40^2
    assert abs(noisy.mean() - 0.25) < 0.005
    assert abs(noisy.var() / (10 / 40 ** 2) - 1) < 0.05
    assert np.allclose(noisy * 40, np.round(noisy * 40), atol=1e-4)  # whole photon counts


def test_jpeg_compress_equals_opencv_round_trip():
    rgb = smooth_image(40, 56, 4)
    bgr_ref = cv2.imdecode(cv2.imencode(".jpg", rgb[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 30])[1], 1)
    np.testing.assert_array_equal(jpeg_compress(rgb, 30), bgr_ref[:, :, ::-1])
    gray = smooth_image(40, 56, 5, channels=1)
    out = jpeg_compress(gray, 10)
    assert out.shape == gray.shape
    ref = cv2.imdecode(cv2.imencode(".jpg", gray[:, :, 0], [cv2.IMWRITE_JPEG_QUALITY, 10])[1], 0)
    np.testing.assert_array_equal(out[:, :, 0], ref)
    with pytest.raises(RestoreError, match="quality"):
        jpeg_compress(gray, 0)


# ---- DenoiseDataset ----------------------------------------------------------------------------
def test_denoise_validation_is_float_unquantised_and_seeded_by_name(folder):
    ds = build_dataset({"type": "DenoiseDataset", "name": "val", "dataroot_gt": str(folder), "sigma": 25,
                        "color": "gray"}, "val")
    item = ds[2]
    assert item["key"] == "c" and item["lq"].shape == (1, 50, 50)
    noise = (item["lq"] - item["gt"]).numpy()
    assert not np.allclose(item["lq"].numpy() * 255, np.round(item["lq"].numpy() * 255), atol=1e-3)
    assert 0.8 < noise.std() / (25 / 255) < 1.2
    assert np.array_equal(ds[2]["lq"].numpy(), item["lq"].numpy())  # same image, same noise
    other = build_dataset({"type": "DenoiseDataset", "name": "val", "dataroot_gt": str(folder), "sigma": 25,
                           "color": "gray"}, "val")[0]["lq"] - ds[0]["gt"]
    assert not np.allclose(other[:, :50, :50].numpy(), noise)  # another image, other noise


VAL_HASH_SCRIPT = """
import hashlib, sys
from restore.data import build_dataset
ds = build_dataset({"type": "DenoiseDataset", "name": "CBSD", "dataroot_gt": sys.argv[1],
                    "sigma_range": [5, 50], "color": "rgb"}, "val")
h = hashlib.sha256()
for i in range(len(ds)):
    h.update(ds[i]["lq"].numpy().tobytes())
print(h.hexdigest())
"""


@pytest.mark.slow
def test_validation_noise_is_identical_in_separate_processes(folder):
    env = dict(os.environ, PYTHONPATH=ROOT)
    runs = [subprocess.run([sys.executable, "-c", VAL_HASH_SCRIPT, str(folder)], capture_output=True,
                           text=True, env=env, timeout=120, check=True).stdout.strip() for _ in range(2)]
    assert len(runs[0]) == 64 and runs[0] == runs[1]
    ds = build_dataset({"type": "DenoiseDataset", "name": "CBSD", "dataroot_gt": str(folder),
                        "sigma_range": [5, 50], "color": "rgb"}, "val")
    h = hashlib.sha256()
    for i in range(len(ds)):
        h.update(ds[i]["lq"].numpy().tobytes())
    assert h.hexdigest() == runs[0]


def test_denoise_train_crops_augments_and_draws_blind_sigma(folder):
    opt = {"type": "DenoiseDataset", "dataroot_gt": str(folder), "sigma_range": [0, 50], "gt_size": 32,
           "color": "rgb", "batch_size_per_gpu": 3, "num_worker_per_gpu": 0}
    ds = build_dataset(opt, "train")
    batch = next(iter(build_dataloader(ds, opt, "train", seed=3)))
    assert batch["lq"].shape == batch["gt"].shape == (3, 3, 32, 32)
    stds = (batch["lq"] - batch["gt"]).flatten(1).std(1) * 255
    assert all(0 <= s < 55 for s in stds) and len(set(stds.tolist())) == 3
    again = next(iter(build_dataloader(build_dataset(opt, "train"), opt, "train", seed=3)))
    assert (again["lq"] == batch["lq"]).all()  # the sampler position fixes crop, flips and noise


def test_denoise_option_errors(folder):
    base = {"type": "DenoiseDataset", "dataroot_gt": str(folder)}
    with pytest.raises(RestoreError, match="exactly one of sigma"):
        build_dataset(dict(base, sigma=25, sigma_range=[0, 50]), "val")
    with pytest.raises(RestoreError, match="sigma_range"):
        build_dataset(dict(base, sigma_range=[30, 10]), "val")
    with pytest.raises(RestoreError, match="gt_size: required"):
        build_dataset(dict(base, sigma=25), "train")
    with pytest.raises(OptionError, match="color"):
        build_dataset(dict(base, sigma=25, color="y"), "val")
    with pytest.raises(OptionError, match="unknown key 'sgima'"):
        build_dataset(dict(base, sgima=25), "val")


@pytest.mark.parametrize("kind,extra", [("DenoiseDataset", {"sigma": 25}), ("JPEGDataset", {"quality": 20}),
                                         ("SRImageDataset", {"scale": 2})])
def test_exclude_leaves_named_images_out(folder, kind, extra):
    base = {"type": kind, "dataroot_gt": str(folder), **extra}
    assert [d["key"] for d in build_dataset(dict(base, exclude=["b"]), "val")] == ["a", "c"]
    with pytest.raises(RestoreError, match=r"exclude: no image named 'bb'"):
        build_dataset(dict(base, exclude=["bb"]), "val")
    with pytest.raises(RestoreError, match="leave no image"):
        build_dataset(dict(base, exclude=["a", "b", "c"]), "val")
    # a held-back validation split: the same list as the training set's exclude
    assert [d["key"] for d in build_dataset(dict(base, include=["c", "a"]), "val")] == ["a", "c"]
    with pytest.raises(RestoreError, match=r"include: no image named 'z'"):
        build_dataset(dict(base, include=["z"]), "val")


# ---- JPEGDataset -------------------------------------------------------------------------------
def opencv_jpeg(img, quality):
    if img.shape[2] == 1:
        return cv2.imdecode(cv2.imencode(".jpg", img[:, :, 0], [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 0)[:, :, None]
    bgr = cv2.imdecode(cv2.imencode(".jpg", img[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 1)
    return bgr[:, :, ::-1]


@pytest.mark.parametrize("color", ["gray", "y", "rgb"])
def test_jpeg_validation_input_is_opencv_jpeg_at_that_quality(folder, color):
    ds = build_dataset({"type": "JPEGDataset", "dataroot_gt": str(folder), "quality": 10, "color": color}, "val")
    item = ds[0]
    src = smooth_image(64, 80, 0)
    gt = {"gray": cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)[:, :, None],
          "y": rgb2ycbcr(src, y_only=True).reshape(64, 80, 1), "rgb": src}[color]
    np.testing.assert_array_equal((item["gt"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8), gt)
    lq = (item["lq"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(lq, opencv_jpeg(gt, 10))


def test_jpeg_quality_range_is_per_image_and_repeatable(folder):
    opt = {"type": "JPEGDataset", "name": "LIVE1", "dataroot_gt": str(folder), "quality_range": [10, 40]}
    ds = build_dataset(opt, "val")
    qualities = []
    for i in range(len(ds)):
        item = ds[i]
        gt = (item["gt"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        lq = (item["lq"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        qualities.append([q for q in range(10, 41) if np.array_equal(opencv_jpeg(gt, q), lq)])
        assert qualities[-1], "lq is not a JPEG of gt at a quality in the range"
        assert np.array_equal(build_dataset(opt, "val")[i]["lq"].numpy(), item["lq"].numpy())


def test_jpeg_train_patch_is_compressed_after_crop(folder):
    opt = {"type": "JPEGDataset", "dataroot_gt": str(folder), "quality": 20, "gt_size": 40, "color": "gray"}
    ds = build_dataset(opt, "train")
    item = ds[(1, (0, 0, 5))]
    gt = (item["gt"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    assert gt.shape == (40, 40, 1)
    np.testing.assert_array_equal((item["lq"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8),
                                  opencv_jpeg(gt, 20))


def test_jpeg_train_on_t91_and_bsd200_as_one_list(data_root):
    opt = {"type": "JPEGDataset", "dataroot_gt": [f"{data_root}/T91", f"{data_root}/BSD200"],
           "quality": 10, "gt_size": 48, "color": "gray", "batch_size_per_gpu": 4}
    ds = build_dataset(opt, "train")
    assert len(ds) == 291
    batch = next(iter(build_dataloader(ds, opt, "train")))
    assert batch["lq"].shape == (4, 1, 48, 48)
