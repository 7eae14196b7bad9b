"""BasicSR option keys: `meta_info_file` selects PairedImageDataset's images as in BasicSR, and keys
restore accepts but ignores are reported one line each."""
import os

import numpy as np
import pytest

from restore.data import build_dataset
from restore.utils.errors import RestoreError
from restore.utils.img_io import imwrite
from restore.utils.options import ignored_option_notes, parse_options
from restore.utils.yaml_io import dump_yaml


@pytest.fixture()
def pairs(tmp_path):
    """GT 0001..0004 (8x8) and their x2 LQ named DIV2K-style 000Nx2.png (4x4); pixel value = index."""
    gt, lq = tmp_path / "gt", tmp_path / "lq"
    gt.mkdir()
    lq.mkdir()
    for i in range(1, 5):
        imwrite(str(gt / f"000{i}.png"), np.full((8, 8, 3), 10 * i, np.uint8))
        imwrite(str(lq / f"000{i}x2.png"), np.full((4, 4, 3), 10 * i, np.uint8))
    return tmp_path


def paired(root, **extra):
    return {"type": "PairedImageDataset", "dataroot_gt": str(root / "gt"), "dataroot_lq": str(root / "lq"),
            "filename_tmpl": "{}x2", "scale": 2, **extra}


def test_meta_info_file_selects_and_orders_the_images(pairs):
    meta = pairs / "meta_info.txt"
    # BasicSR's generate_meta_info.py format; only the first token of a line counts
    meta.write_text("0003.png (8,8,3)\n\n0001.png (8,8,3)\n")
    ds = build_dataset(paired(pairs, meta_info_file=str(meta)), "val")
    assert ds.keys() == ["0003", "0001"]
    item = ds[0]
    assert item["key"] == "0003" and item["lq_path"].endswith("0003x2.png")
    assert float(item["gt"].mean()) == pytest.approx(30 / 255) and item["gt_channels"] == 3
    assert build_dataset(paired(pairs), "val").keys() == ["0001", "0002", "0003", "0004"]  # without it


def test_meta_info_file_errors_name_file_and_line(pairs):
    meta = pairs / "meta.txt"
    meta.write_text("0001.png (8,8,3)\n0009.png (8,8,3)\n")
    with pytest.raises(RestoreError, match=r"datasets.val.meta_info_file: .*meta.txt line 2: no image '0009.png'"):
        build_dataset(paired(pairs, meta_info_file=str(meta)), "val")
    meta.write_text("sub/0001.png (8,8,3)\n")
    with pytest.raises(RestoreError, match="line 1: 'sub/0001.png' is in a subfolder"):
        build_dataset(paired(pairs, meta_info_file=str(meta)), "val")
    meta.write_text("\n")
    with pytest.raises(RestoreError, match="lists no image"):
        build_dataset(paired(pairs, meta_info_file=str(meta)), "val")


def test_meta_info_file_in_an_option_file_is_resolved_and_used(pairs):
    (pairs / "meta.txt").write_text("0002.png (8,8,3)\n")
    opt_file = pairs / "test.yml"
    opt_file.write_text(dump_yaml({
        "name": "t", "scale": 2, "network_g": {"type": "Bicubic", "upscale": 2},
        "datasets": {"test_1": {"name": "p", "type": "PairedImageDataset", "dataroot_gt": "gt",
                                "dataroot_lq": "lq", "filename_tmpl": "{}x2", "meta_info_file": "meta.txt"}},
        "path": {"root": str(pairs)}}))
    opt = parse_options(str(opt_file), is_train=False)
    ds_opt = opt["datasets"]["test_1"]
    assert ds_opt["meta_info_file"] == os.path.join(str(pairs), "meta.txt")
    assert build_dataset(ds_opt, "test_1").keys() == ["0002"]


def test_ignored_basicsr_keys_give_one_note_each():
    opt = {"logger": {"wandb": {"project": "sr", "resume_id": None}},
           "datasets": {"train": {"prefetch_mode": "cuda"}, "val": {"prefetch_mode": None}},
           "dist_params": {"backend": "nccl", "port": 29500},
           "path": {"ignore_resume_networks": ["network_g"]}}
    notes = ignored_option_notes(opt)
    assert len(notes) == 4
    assert notes[0].startswith("logger.wandb is ignored")
    assert notes[1].startswith("datasets.train.prefetch_mode (cuda) is ignored")
    assert notes[2].startswith("dist_params.port (29500) is ignored")
    assert notes[3].startswith("path.ignore_resume_networks is ignored")
    # BasicSR's own templates set these to null: nothing is being ignored then
    quiet = {"logger": {"wandb": {"project": None, "resume_id": None}}, "datasets": {"train": {"prefetch_mode": None}},
             "dist_params": {"backend": "nccl", "port": None}, "path": {"ignore_resume_networks": None}}
    assert ignored_option_notes(quiet) == []


def test_ignored_keys_survive_parse_options(tmp_path):
    """The notes are computed from parsed options, so the keys must get through validation."""
    from tests.tiny import train_options

    opt = train_options(tmp_path)
    opt["logger"] = {"wandb": {"project": "x"}}
    opt["dist_params"] = {"port": 4321}
    opt["datasets"]["train"]["prefetch_mode"] = "cpu"
    path = tmp_path / "train.yml"
    path.write_text(dump_yaml(opt))
    notes = ignored_option_notes(parse_options(str(path), is_train=True))
    assert [n.split(" ")[0] for n in notes] == ["logger.wandb", "datasets.train.prefetch_mode", "dist_params.port"]
