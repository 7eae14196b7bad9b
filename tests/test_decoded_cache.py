"""Datasets keep decoded images in memory (`cache_mb`): the samples stay the same, each file is
decoded once per process, the budget holds, and nothing can write into a cached image."""
import pytest
import torch

import restore.data.base_dataset as base_dataset
from restore.data import build_dataloader, build_dataset
from restore.utils.errors import RestoreError
from restore.utils.img_io import imwrite

from test_degradation_datasets import smooth_image

TRAIN = {
    "SRImageDataset": {"scale": 2, "gt_size": 32},
    "DenoiseDataset": {"sigma_range": [0, 55], "gt_size": 32, "color": "gray"},
    "JPEGDataset": {"quality_range": [10, 40], "gt_size": 32, "color": "y"},
}


@pytest.fixture
def folder(tmp_path):
    for i, (h, w, c) in enumerate([(64, 80, 3), (72, 60, 3), (50, 50, 1), (90, 40, 3)]):
        imwrite(tmp_path / f"img{i}.png", smooth_image(h, w, i, channels=c))
    return tmp_path


@pytest.fixture
def decodes(monkeypatch):
    """How many times each file was decoded."""
    counts = {}
    real = base_dataset.imdecode

    def counting(data, name, mode="unchanged"):
        counts[name] = counts.get(name, 0) + 1
        return real(data, name, mode)

    monkeypatch.setattr(base_dataset, "imdecode", counting)
    return counts


def samples(dataset, items):
    return [dataset[item] for item in items]


@pytest.mark.parametrize("kind", sorted(TRAIN))
def test_cached_samples_equal_uncached_and_each_file_is_decoded_once(kind, folder, decodes):
    opt = {"type": kind, "dataroot_gt": str(folder), **TRAIN[kind]}
    items = [(i % 4, (7, i)) for i in range(12)]  # every image three times, each with its own seed
    plain = samples(build_dataset({**opt, "cache_mb": 0}, "train"), items)
    assert sorted(decodes.values()) == [3, 3, 3, 3]
    decodes.clear()
    cached = samples(build_dataset(opt, "train"), items)  # training sets cache by default
    assert sorted(decodes.values()) == [1, 1, 1, 1]
    for a, b in zip(plain, cached):
        assert a["key"] == b["key"]
        torch.testing.assert_close(a["lq"], b["lq"], rtol=0, atol=0)
        torch.testing.assert_close(a["gt"], b["gt"], rtol=0, atol=0)


def test_validation_sets_do_not_cache_unless_asked(folder, decodes):
    opt = {"type": "SRImageDataset", "dataroot_gt": str(folder), "scale": 2}
    val = build_dataset(opt, "val")
    samples(val, [0, 0])
    assert decodes == {str(folder / "img0.png"): 2}
    decodes.clear()
    samples(build_dataset({**opt, "cache_mb": 1}, "val"), [0, 0])
    assert decodes == {str(folder / "img0.png"): 1}


def test_the_budget_holds_and_cached_images_are_read_only(folder, decodes):
    # img0 (80x64 RGB) takes 15,360 bytes, img1 (60x72 RGB) 12,960: a 20,000-byte budget keeps the first
    dataset = build_dataset({"type": "SRImageDataset", "dataroot_gt": str(folder), "scale": 2, "gt_size": 32,
                             "cache_mb": 20_000 / 2 ** 20}, "train")
    samples(dataset, [(0, (1,)), (1, (2,)), (0, (3,)), (1, (4,))])
    assert decodes == {str(folder / "img0.png"): 1, str(folder / "img1.png"): 2}
    (cached, channels), = dataset._decoded.values()
    assert cached.shape == (64, 80, 3) and channels == 3
    with pytest.raises(ValueError, match="read-only"):
        cached[0, 0, 0] = 0


def test_paired_datasets_cache_gt_and_lq_apart(tmp_path, decodes):
    for side, size in (("gt", (64, 64)), ("lq", (32, 32))):
        (tmp_path / side).mkdir()
        imwrite(tmp_path / side / "same.png", smooth_image(*size, 0 if side == "gt" else 1))
    opt = {"type": "PairedImageDataset", "dataroot_gt": str(tmp_path / "gt"), "dataroot_lq": str(tmp_path / "lq"),
           "scale": 2, "gt_size": 32}
    plain = samples(build_dataset({**opt, "cache_mb": 0}, "train"), [(0, (1,)), (0, (2,))])
    decodes.clear()
    cached = samples(build_dataset(opt, "train"), [(0, (1,)), (0, (2,))])
    assert decodes == {str(tmp_path / "gt" / "same.png"): 1, str(tmp_path / "lq" / "same.png"): 1}
    for a, b in zip(plain, cached):  # one key, two files: neither stands in for the other
        torch.testing.assert_close(a["lq"], b["lq"], rtol=0, atol=0)
        torch.testing.assert_close(a["gt"], b["gt"], rtol=0, atol=0)


@pytest.mark.timeout(120)
def test_batches_are_the_same_with_two_workers(folder):
    opt = {"type": "DenoiseDataset", "dataroot_gt": str(folder), **TRAIN["DenoiseDataset"],
           "batch_size_per_gpu": 2, "dataset_enlarge_ratio": 3}

    def batches(workers, cache_mb):
        dataset = build_dataset({**opt, "cache_mb": cache_mb}, "train")
        loader = build_dataloader(dataset, {**opt, "num_worker_per_gpu": workers}, "train", seed=5)
        return [b["lq"] for b in loader]

    reference = batches(0, 0)
    assert len(reference) == 6
    for got in batches(2, 512):
        torch.testing.assert_close(got, reference.pop(0), rtol=0, atol=0)


def test_a_negative_budget_names_the_key(folder):
    with pytest.raises(RestoreError, match=r"datasets.train.cache_mb: must be >= 0, got -1"):
        build_dataset({"type": "SRImageDataset", "dataroot_gt": str(folder), "scale": 2, "gt_size": 32,
                       "cache_mb": -1}, "train")
