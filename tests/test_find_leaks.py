import json

import cv2
import numpy as np
import pytest

from restore.cli.common import run_cli
from restore.cli.find_leaks import main
from restore.features.aligned_check import aligned_check
from restore.utils.img_io import imdecode, imencode, imwrite

# Small and fast: full-resolution, 48 px windows, 64 features whitened to 16 dimensions.
FAST = ["--scale", "1", "--window", "48", "--n", "64", "--whiten", "16", "--grid-height", "48"]


def textured_image(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """A random RGB 'natural-ish' image: noise summed over several blur scales."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w, 3))
    for sigma, weight in ((1.0, 0.3), (3.0, 1.0), (8.0, 2.0)):
        noise = rng.normal(0, 1, (h, w, 3))
        acc += weight * cv2.GaussianBlur(noise, (0, 0), sigma) * sigma
    acc = (acc - acc.min()) / (acc.max() - acc.min())
    return np.round(acc * 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    return imdecode(imencode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]), "jpeg", "rgb")


@pytest.fixture
def folders(tmp_path):
    test, train = tmp_path / "test", tmp_path / "train"
    for i in range(3):
        imwrite(test / f"query{i}.png", textured_image(100 + i))
    for i in range(8):
        imwrite(train / f"random{i}.png", textured_image(200 + i, 80 + 8 * i, 120))
    return test, train


def run(tmp_path, test, train, *extra):
    out = tmp_path / "report"
    code = main(["--train", str(train), "--test", str(test), "--out", str(out), *FAST, *extra])
    assert code == 0
    return json.loads((out / "leaks.json").read_text()), out


def test_planted_near_copy_is_found(tmp_path, folders):
    test, train = folders
    planted = jpeg(textured_image(101)[10:82, 20:116], 40)  # a 96x72 crop of query1, JPEG q40
    imwrite(train / "planted.png", planted)
    report, out = run(tmp_path, test, train)
    assert [(p["test"], p["train"]) for p in report["pairs"]] == [("test/query1", "train/planted")]
    pair = report["pairs"][0]
    assert pair["ncc"] > 0.97
    # Wherever the matched template lies in the crop, it is found where the crop came from (10, 20).
    (ty, tx, th, tw), (y, x, h, w) = pair["box_train"], pair["box_test"]
    assert (th, tw) == (h, w) and th >= 38 and tw >= 50
    assert (y - ty, x - tx) in {(10 + dy, 20 + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    grid = cv2.imread(str(out / "leaks.png"))
    assert grid is not None and grid.shape[0] > 48
    assert "planted" in (out / "leaks.md").read_text()


def test_clean_set_yields_no_pair(tmp_path, folders):
    test, train = folders
    report, out = run(tmp_path, test, train)
    assert report["pairs"] == []
    assert report["candidates_checked"] > 0  # candidates were checked and rejected by the pixel check
    assert all(p["ncc"] < 0.85 for p in report["closest_rejected"])
    assert not (out / "leaks.png").exists()
    assert "No test image matched" in (out / "leaks.md").read_text()


def test_bare_names_resolve_under_the_data_root(tmp_path, folders):
    test, train = folders
    out = tmp_path / "r"
    assert main(["--data-root", str(tmp_path), "--train", "train", "--test", "test", "--out", str(out), *FAST]) == 0
    assert json.loads((out / "leaks.json").read_text())["train_counts"] == {"train": 8}


def test_calibration_reports_precision_and_recall(tmp_path, folders):
    test, train = folders
    out = tmp_path / "cal"
    assert main(["--train", str(train), "--test", str(test), "--out", str(out), "--calibrate", *FAST]) == 0
    result = json.loads((out / "calibration.json").read_text())
    assert result["positives"] == 3 * 5
    chosen = result["at_chosen_thresholds"]
    assert chosen["precision"] == 1.0 and chosen["recall"] >= 0.8
    assert "| feature threshold |" in (out / "calibration.md").read_text()


def test_aligned_check_finds_the_offset_of_a_crop():
    big = textured_image(5).mean(axis=2).astype(np.float32) / 255
    crop = big[17:77, 31:111]
    check = aligned_check(crop, big)
    assert check["ncc"] == pytest.approx(1.0, abs=0.02)  # < 1 only where the detail filter meets the crop's edge
    y, x, h, w = check["box_b"]
    assert (y, x) == (17 + check["box_a"][0], 31 + check["box_a"][1]) and (h, w) == tuple(check["box_a"][2:])
    # Two crops of one image that overlap by 60% of their width are found by a part template.
    left, right = big[:, :80], big[:, 32:]
    check = aligned_check(left, right)
    assert check["template"] == "part" and check["ncc"] > 0.95
    assert check["box_a"][1] - check["box_b"][1] == 32
    other = textured_image(6).mean(axis=2).astype(np.float32) / 255
    assert aligned_check(crop, other)["ncc"] < 0.8


def test_missing_folder_is_one_line_error(tmp_path, folders, capsys):
    test, _ = folders
    code = run_cli(main, ["--train", str(tmp_path / "nope"), "--test", str(test), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: --train[0]: ") and "nope" in err


def test_empty_folder_and_bad_option_are_errors(tmp_path, folders, capsys):
    test, _ = folders
    (tmp_path / "empty").mkdir()
    assert run_cli(main, ["--train", str(tmp_path / "empty"), "--test", str(test)]) == 2
    assert "no image files" in capsys.readouterr().err
    assert run_cli(main, ["--train", str(test), "--test", str(test), "--kernel-size", "4"]) == 2
    assert "odd" in capsys.readouterr().err


def test_lmdb_training_source(tmp_path, folders):
    from restore.cli.create_lmdb import main as create_lmdb
    test, train = folders
    imwrite(train / "planted.png", jpeg(textured_image(102)[5:85, 0:110], 60))
    lmdb_path = tmp_path / "train.lmdb"
    assert run_cli(create_lmdb, [str(train), str(lmdb_path)]) == 0
    report, _ = run(tmp_path, test, lmdb_path)
    assert [(p["test"], p["train"]) for p in report["pairs"]] == [("test/query2", "train/planted")]


def test_results_table_of_a_search(tmp_path, folders):
    test, train = folders
    imwrite(train / "planted.png", textured_image(101)[10:82, 20:116])  # an exact 96x72 crop of query1
    table = tmp_path / "t" / "leaks.md"
    _, out = run(tmp_path, test, train, "--table", str(table))
    text = table.read_text()
    assert text.startswith("Made by `restore-leaks --train ") and " on " in text.splitlines()[0]
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert rows[2:] == ["| test/query1 | train/planted | 1.0000 | x 20-115, y 10-81 | x 0-95, y 0-71 | 56% / 100% | "
                        "1.00000 | 0.00 | inf |"]
    assert "9 training images (train); " in text and "1 pair(s) reported at NCC >= 0.85" in text


def test_full_resolution_match_refines_a_coarse_offset(tmp_path):
    from restore.features.leaks import LeakSettings, full_resolution_match, load_items, resolve_source
    big = textured_image(7, 120, 160)
    imwrite(tmp_path / "a" / "crop.png", big[13:93, 27:127])
    imwrite(tmp_path / "b" / "big.png", np.clip(big.astype(int) + 1, 0, 255).astype(np.uint8))
    settings = LeakSettings(scale=0.5)
    (crop,), (whole,) = (load_items([resolve_source(str(tmp_path / d), None, d)], settings, d) for d in "ab")
    # The search's working-scale boxes put the crop at (7, 13) working px, (14, 26) full px: one off in x.
    m = full_resolution_match(crop, whole, [0, 0, 20, 20], [7, 13, 20, 20], 0.5)
    assert m["test_origin"] == [0, 0] and m["train_origin"] == [13, 27] and m["size"] == [80, 100]
    assert m["share_test"] == 1.0 and m["share_train"] == pytest.approx(8000 / 19200)
    gray_shift = m["mean_abs_diff"]  # +1 on every channel, except where 255 clips, is about +1 in luma
    assert 0.5 < gray_shift <= 1.0 and m["ncc"] > 0.9999 and 48 < m["psnr"] < 55


def test_calibration_table_rows():
    from restore.features.leak_report import calibration_table
    row = {"feature_threshold": 0.9, "ncc_threshold": 0.85, "precision": 1.0, "recall": 0.8,
           "recall_by_degradation": {"crop": 0.5, "shift": 1.0, "downup_x2": 1.0, "jpeg": 0.5, "noise": None}}
    result = {"positives": 10, "negative_pairs": 12345, "at_chosen_thresholds": row,
              "sweep": [dict(row, ncc_threshold=0.95, recall=0.7)],
              "ncc_checked_positives": {"min": 0.9123, "count": 9}, "ncc_checked_negatives": {"max": 0.4567, "count": 30},
              "missed": [{"copy": "t/a [crop 8x8+0+0]", "feature_score": 0.5, "ncc": "not among the candidates"},
                         {"copy": "t/b [jpeg q30]", "feature_score": 0.95, "ncc": 0.8}],
              "images_embedded": 40, "seconds": 90.0}
    text = calibration_table(result, "Made by `x` on y.", 120.0)
    assert [line for line in text.splitlines() if line.startswith("|")] == [
        "| positives | negative pairs | precision | recall | recall: crop / shift / x2 down-up / JPEG / noise |",
        "|---|---|---|---|---|",
        "| 10 | 12,345 | 1.000 | 0.800 | 0.50 / 1.00 / 1.00 / 0.50 / n/a |",
        "| feature threshold | NCC threshold | precision | recall | recall: crop / shift / x2 down-up / JPEG / noise |",
        "|---|---|---|---|---|",
        "| 0.9 | 0.95 | 1.000 | 0.700 | 0.50 / 1.00 / 1.00 / 0.50 / n/a |"]
    assert text.startswith("Made by `x` on y.\n")
    assert "min 0.912 (9 checked)" in text and "max 0.457 (30 checked)" in text
    assert "t/a [crop 8x8+0+0]: feature score 0.500, never a candidate" in text
    assert "t/b [jpeg q30]: feature score 0.950, NCC 0.800" in text
    assert "2.0 CPU-minutes (user + sys), 1.5 min wall" in text


def test_calibration_markdown_is_the_table_with_settings_and_hardest_negatives():
    """calibration.md (always written) and the --table results file share one writer."""
    from restore.features.leak_report import calibration_markdown, calibration_table
    row = {"feature_threshold": 0.9, "ncc_threshold": 0.85, "precision": 1.0, "recall": 1.0,
           "recall_by_degradation": {"crop": 1.0, "shift": 1.0, "downup_x2": 1.0, "jpeg": 1.0, "noise": 1.0}}
    result = {"settings": {"scale": 0.5}, "positives": 5, "negative_pairs": 20, "at_chosen_thresholds": row,
              "sweep": [row], "ncc_checked_positives": {"min": 0.99, "count": 5},
              "ncc_checked_negatives": {"max": 0.3, "count": 4}, "missed": [], "images_embedded": 6,
              "seconds": 30.0, "hardest_negatives": [{"test": "t/a", "other": "t/b", "feature_score": 0.91, "ncc": 0.3}]}
    text = calibration_markdown(result)
    header = "# restore-leaks calibration on synthetic near-copies\n\n- settings: {'scale': 0.5}"
    assert text.startswith(calibration_table(result, header, None))
    assert "- Time: 0.5 min wall." in text
    assert text.endswith("| test image | other image | feature score | NCC |\n|---|---|---|---|\n"
                         "| t/a | t/b | 0.910 | 0.3000 |\n")
