"""extract_subimages: crop positions, count, full coverage, names, refusal to overwrite."""
import os
import subprocess
import sys

import numpy as np
import pytest

from restore.data.subimages import crop_positions, extract_subimages
from restore.utils.errors import RestoreError
from restore.utils.img_io import imread, imwrite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_crop_positions_follow_basicsr():
    assert crop_positions(1000, 480, 240, 0) == [0, 240, 480, 520]  # edge-aligned last crop
    assert crop_positions(960, 480, 240, 0) == [0, 240, 480]  # exact fit: nothing left over
    assert crop_positions(1000, 480, 240, 40) == [0, 240, 480]  # leftover 40 is not > thresh 40
    assert crop_positions(1000, 480, 240, 39) == [0, 240, 480, 520]
    assert crop_positions(300, 480, 240, 0) == [0]  # smaller than a crop: one (smaller) sub-image


def test_count_names_and_coverage(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65536, (500, 700, 3), dtype=np.uint16)  # 16-bit must survive
    imwrite(tmp_path / "in" / "bigx2.png", img)
    n = extract_subimages(str(tmp_path / "in"), str(tmp_path / "out"), crop_size=200, step=150, workers=1)
    rows, cols = [0, 150, 300], [0, 150, 300, 450, 500]
    assert n == len(rows) * len(cols) == 15
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == [f"bigx2_s{i:03d}.png" for i in range(1, 16)]  # 'x2' kept by default
    canvas = np.zeros_like(img)
    covered = np.zeros(img.shape[:2], bool)
    index = 0
    for top in rows:
        for left in cols:
            index += 1
            tile = imread(tmp_path / "out" / f"bigx2_s{index:03d}.png")
            assert tile.shape == (200, 200, 3) and tile.dtype == np.uint16
            canvas[top: top + 200, left: left + 200] = tile
            covered[top: top + 200, left: left + 200] = True
    assert covered.all()
    np.testing.assert_array_equal(canvas, img)


def test_workers_give_the_same_files_and_scale_suffix_is_stripped_on_request(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("0001x2", "0002x2"):
        imwrite(tmp_path / "lr" / f"{name}.png", rng.integers(0, 256, (90, 130, 1), dtype=np.uint8))
    extract_subimages(str(tmp_path / "lr"), str(tmp_path / "a"), 60, 30, workers=1)
    extract_subimages(str(tmp_path / "lr"), str(tmp_path / "b"), 60, 30, workers=2, strip_scale_suffix=True)
    a, b = sorted(os.listdir(tmp_path / "a")), sorted(os.listdir(tmp_path / "b"))
    assert len(a) == len(b) == 2 * (2 * 4)  # rows 0,30; columns 0,30,60,70
    assert [n.replace("x2", "") for n in a] == b
    for x, y in zip(a, b):
        np.testing.assert_array_equal(imread(tmp_path / "a" / x), imread(tmp_path / "b" / y))


def test_empty_existing_output_is_used_and_nothing_is_left_on_failure(tmp_path):
    imwrite(tmp_path / "in" / "a.png", np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "out").mkdir()
    assert extract_subimages(str(tmp_path / "in"), str(tmp_path / "out"), 8, 4, workers=1) == 4  # offsets 0, 2
    (tmp_path / "in" / "b.png").write_bytes(b"broken")
    with pytest.raises(RestoreError, match="b.png"):
        extract_subimages(str(tmp_path / "in"), str(tmp_path / "out2"), 8, 4, workers=1)
    assert sorted(os.listdir(tmp_path)) == ["in", "out"]


def test_cli_refuses_non_empty_output(tmp_path):
    imwrite(tmp_path / "in" / "a.png", np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    r = subprocess.run([sys.executable, "-c", "from restore.cli.extract_subimages import cli; cli()",
                        str(tmp_path / "in"), str(tmp_path / "out")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 2
    assert r.stderr == (f"error: {tmp_path / 'out'}: output folder exists and is not empty; "
                        "remove it or choose another\n")
