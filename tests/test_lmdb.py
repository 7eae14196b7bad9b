"""restore-lmdb and the LMDB io backend: exact pixels, BasicSR compatibility, errors that name things."""
import os
import subprocess
import sys

import cv2
import lmdb
import numpy as np
import pytest
import torch

import restore.data.lmdb_writer as lmdb_writer
from restore.cli.common import run_cli
from restore.cli.create_lmdb import main as lmdb_main
from restore.data.lmdb_writer import create_lmdb
from restore.data import build_dataloader, build_dataset
from restore.data.io_backends import build_backend
from restore.data.lmdb_backend import LmdbBackend, key_of_meta_line, shared_env
from restore.utils.errors import RestoreError
from restore.utils.img_io import imdecode, imread, imwrite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_images(folder, rng):
    """Gray 8-bit, RGB 8-bit, 16-bit gray and 16-bit RGB, with different sizes."""
    os.makedirs(folder, exist_ok=True)
    images = {
        "gray8": rng.integers(0, 256, (37, 53, 1), dtype=np.uint8),
        "rgb8": rng.integers(0, 256, (64, 48, 3), dtype=np.uint8),
        "gray16": rng.integers(0, 65536, (40, 41, 1), dtype=np.uint16),
        "rgb16": rng.integers(0, 65536, (33, 70, 3), dtype=np.uint16),
    }
    for key, img in images.items():
        imwrite(os.path.join(folder, key + ".png"), img)
    return images


@pytest.fixture
def images_and_lmdb(tmp_path):
    images = make_images(tmp_path / "src", np.random.default_rng(0))
    out = tmp_path / "db.lmdb"
    assert create_lmdb(str(tmp_path / "src"), str(out), level=1, workers=1, verify=True) == 4
    return images, out


def test_round_trip_keeps_pixels_channels_and_bit_depth(images_and_lmdb):
    images, out = images_and_lmdb
    db = LmdbBackend(str(out))
    assert db.keys() == sorted(images)
    for key, img in images.items():
        got = imdecode(db.get(key), db.name_of(key))
        assert got.dtype == img.dtype and got.shape == img.shape
        np.testing.assert_array_equal(got, img)


def test_meta_info_is_basicsr_format(images_and_lmdb):
    _, out = images_and_lmdb
    assert (out / "meta_info.txt").read_text() == (
        "gray16.png (40,41,1) 1\n"
        "gray8.png (37,53,1) 1\n"
        "rgb16.png (33,70,3) 1\n"
        "rgb8.png (64,48,3) 1\n")
    assert sorted(os.listdir(out)) == ["data.mdb", "lock.mdb", "meta_info.txt"]


def test_cli_with_workers_and_verify(tmp_path, capsys):
    images = make_images(tmp_path / "src", np.random.default_rng(1))
    out = tmp_path / "w.lmdb"
    code = run_cli(lmdb_main, [str(tmp_path / "src"), str(out), "--workers", "2", "--verify",
                               "--compress-level", "9", "--batch", "1"])
    assert code == 0
    assert "wrote 4 images" in capsys.readouterr().out
    db = LmdbBackend(str(out))
    for key, img in images.items():
        np.testing.assert_array_equal(imdecode(db.get(key), key), img)
    assert (out / "meta_info.txt").read_text().splitlines()[0] == "gray16.png (40,41,1) 9"


def test_map_size_grows_when_the_estimate_is_short(tmp_path, monkeypatch):
    # force a tiny map: the writer must recover from MDB_MAP_FULL instead of failing
    monkeypatch.setattr(lmdb_writer, "MIN_MAP_SIZE", 64 * 1024)
    monkeypatch.setattr(lmdb_writer, "map_size_for", lambda sizes, page: 0)
    rng = np.random.default_rng(2)
    src = tmp_path / "src"
    noise = {f"n{i}": rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for i in range(6)}
    for k, img in noise.items():
        imwrite(src / f"{k}.png", img)
    create_lmdb(str(src), str(tmp_path / "big.lmdb"), workers=1, batch=3)
    db = LmdbBackend(str(tmp_path / "big.lmdb"))
    for k, img in noise.items():
        np.testing.assert_array_equal(imdecode(db.get(k), k), img)


def test_failed_run_leaves_no_lmdb(tmp_path):
    src = tmp_path / "src"
    make_images(src, np.random.default_rng(3))
    (src / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(RestoreError, match="zz_broken.png"):
        create_lmdb(str(src), str(tmp_path / "out.lmdb"), workers=1)
    assert sorted(os.listdir(tmp_path)) == ["src"]


def cli_subprocess(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", "from restore.cli.create_lmdb import cli; cli()", *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_cli_errors_are_one_line_exit_2(images_and_lmdb, tmp_path):
    _, out = images_and_lmdb
    existing = cli_subprocess(str(tmp_path / "src"), str(out))
    assert existing.returncode == 2
    assert existing.stderr == f"error: {out}: already exists; remove it or choose another name\n"
    missing = cli_subprocess(str(tmp_path / "nope"), str(tmp_path / "new.lmdb"))
    assert missing.returncode == 2
    assert missing.stderr == f"error: {tmp_path / 'nope'}: folder not found\n"
    suffix = cli_subprocess(str(tmp_path / "src"), str(tmp_path / "new"))
    assert suffix.returncode == 2 and suffix.stderr.count("\n") == 1 and "must end with .lmdb" in suffix.stderr


def basicsr_recipe_lmdb(path, images_bgr):
    """An LMDB written as BasicSR's make_lmdb_from_imgs does (cv2 BGR, PNG level 1, ASCII keys)."""
    env = lmdb.open(str(path), map_size=64 * 2**20)
    txn = env.begin(write=True)
    lines = []
    for key, img in images_bgr.items():
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        assert ok
        txn.put(key.encode("ascii"), buf.tobytes())
        h, w = img.shape[:2]
        lines.append(f"{key}.png ({h},{w},{1 if img.ndim == 2 else img.shape[2]}) 1\n")
    txn.commit()
    env.close()
    (path / "meta_info.txt").write_text("".join(lines))


def test_basicsr_recipe_lmdb_reads_unchanged(tmp_path):
    rng = np.random.default_rng(4)
    bgr = {"0001_s001": rng.integers(0, 256, (30, 20, 3), dtype=np.uint8),
           "img.v2": rng.integers(0, 256, (16, 24), dtype=np.uint8)}  # a dot in the name
    path = tmp_path / "gt.lmdb"
    basicsr_recipe_lmdb(path, bgr)
    db = build_backend({"type": "lmdb"}, str(path), "datasets.train.dataroot_gt")
    assert db.keys() == ["0001_s001", "img.v2"]
    np.testing.assert_array_equal(imdecode(db.get("0001_s001"), "x"), bgr["0001_s001"][:, :, ::-1])
    np.testing.assert_array_equal(imdecode(db.get("img.v2"), "x")[:, :, 0], bgr["img.v2"])


def test_meta_key_uses_last_dot():
    assert key_of_meta_line("img.v2.png (16,24,1) 1\n") == "img.v2"
    assert key_of_meta_line("0001_s001.png (480,480,3)") == "0001_s001"
    assert key_of_meta_line("noext (1,1,1) 1") == "noext"


def test_lmdb_without_meta_info_lists_keys_from_the_db(tmp_path):
    path = tmp_path / "other.lmdb"
    basicsr_recipe_lmdb(path, {"b": np.zeros((4, 4, 3), np.uint8), "a": np.ones((4, 4, 3), np.uint8)})
    os.remove(path / "meta_info.txt")
    assert LmdbBackend(str(path)).keys() == ["a", "b"]


def test_bad_lmdb_paths_are_named(tmp_path):
    with pytest.raises(RestoreError, match=f"{tmp_path / 'missing.lmdb'}: LMDB folder not found"):
        LmdbBackend(str(tmp_path / "missing.lmdb"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(RestoreError, match=f"{tmp_path / 'plain'}: not an LMDB"):
        LmdbBackend(str(tmp_path / "plain"))
    (tmp_path / "junk.lmdb").mkdir()
    (tmp_path / "junk.lmdb" / "data.mdb").write_bytes(b"\0" * 8192)
    with pytest.raises(RestoreError, match=f"{tmp_path / 'junk.lmdb'}: not a readable LMDB"):
        LmdbBackend(str(tmp_path / "junk.lmdb"))


def test_missing_key_is_named(images_and_lmdb):
    _, out = images_and_lmdb
    with pytest.raises(RestoreError, match=f"{out}: no image with key 'nope' in this LMDB"):
        LmdbBackend(str(out)).get("nope")


def test_key_in_meta_but_not_in_db_is_named(tmp_path):
    path = tmp_path / "gt.lmdb"
    basicsr_recipe_lmdb(path, {"a": np.zeros((4, 4, 3), np.uint8)})
    with open(path / "meta_info.txt", "a") as f:
        f.write("ghost.png (4,4,3) 1\n")
    with pytest.raises(RestoreError, match=r"gt.lmdb\[ghost\]: key listed in meta_info.txt but missing"):
        LmdbBackend(str(path)).get("ghost")


def test_corrupted_value_names_key_and_lmdb(tmp_path):
    path = tmp_path / "bad.lmdb"
    basicsr_recipe_lmdb(path, {"good": np.zeros((8, 8, 3), np.uint8)})
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"good", b"\x89PNG\r\n\x1a\ntruncated")
    env.close()
    ds = build_dataset({"type": "SRImageDataset", "dataroot_gt": str(path), "io_backend": {"type": "lmdb"},
                        "scale": 2}, "val")
    with pytest.raises(RestoreError, match=rf"{path}\[good\]: damaged PNG header"):
        ds[0]


def test_lmdb_and_folder_give_identical_batches_with_two_workers(tmp_path):
    rng = np.random.default_rng(5)
    src = tmp_path / "src"
    for i in range(6):
        imwrite(src / f"im{i}.png", rng.integers(0, 256, (40 + i, 36, 3), dtype=np.uint8))
    create_lmdb(str(src), str(tmp_path / "src.lmdb"), workers=1)
    opt = {"type": "SRImageDataset", "scale": 2, "gt_size": 16, "batch_size_per_gpu": 2,
           "num_worker_per_gpu": 2}
    batches = {}
    for kind, root in (("disk", src), ("lmdb", tmp_path / "src.lmdb")):
        ds = build_dataset(dict(opt, dataroot_gt=str(root), io_backend={"type": kind}), "train")
        ds[(0, (0, 0, 0))]  # opens the LMDB in this process before the workers fork
        loader = build_dataloader(ds, opt, "train", seed=7)
        batches[kind] = [(b["key"], b["gt"], b["lq"]) for b in loader]
    assert len(batches["lmdb"]) == 3
    for (k1, g1, l1), (k2, g2, l2) in zip(batches["disk"], batches["lmdb"]):
        assert k1 == k2
        assert torch.equal(g1, g2) and torch.equal(l1, l2)


def test_environment_is_reopened_after_fork_and_shared_within_a_process(images_and_lmdb, monkeypatch):
    _, out = images_and_lmdb
    db, twin = LmdbBackend(str(out)), LmdbBackend(str(out))  # py-lmdb refuses a second open
    first = shared_env(str(out))
    assert db.get("rgb8") == twin.get("rgb8")
    monkeypatch.setattr(os, "getpid", lambda: -1)  # what a forked DataLoader worker looks like
    db.get("rgb8")
    assert shared_env(str(out)) is not first


def test_replaced_lmdb_is_reopened(tmp_path):
    src = tmp_path / "src"
    imwrite(src / "a.png", np.zeros((4, 4, 1), np.uint8))
    create_lmdb(str(src), str(tmp_path / "d.lmdb"), workers=1)
    assert LmdbBackend(str(tmp_path / "d.lmdb")).get("a")
    os.rename(tmp_path / "d.lmdb", tmp_path / "old.lmdb")
    imwrite(src / "a.png", np.full((4, 4, 1), 7, np.uint8))
    create_lmdb(str(src), str(tmp_path / "d.lmdb"), workers=1)
    assert imdecode(LmdbBackend(str(tmp_path / "d.lmdb")).get("a"), "a")[0, 0, 0] == 7


def test_list_of_folders_reads_as_one_source(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    imwrite(a / "x.png", np.zeros((4, 4, 3), np.uint8))
    imwrite(b / "y.png", np.full((4, 4, 3), 9, np.uint8))
    create_lmdb(str(b), str(tmp_path / "b.lmdb"), workers=1)
    db = build_backend(None, [str(a), str(b)], "datasets.train.dataroot_gt")
    assert db.keys() == ["x", "y"]
    assert db.name_of("y") == str(b / "y.png")
    assert imread(b / "y.png")[0, 0, 0] == imdecode(db.get("y"), "y")[0, 0, 0] == 9
    mixed = build_backend({"type": "lmdb"}, [str(tmp_path / "b.lmdb")], "w")
    assert mixed.keys() == ["y"]
    imwrite(b / "x.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(RestoreError, match="'x' is in both"):
        build_backend(None, [str(a), str(b)], "w")


def test_verify_catches_a_wrong_stored_image(tmp_path, monkeypatch):
    make_images(tmp_path / "src", np.random.default_rng(6))
    real_encode = lmdb_writer.encode_image

    def encode_with_one_wrong_pixel(job):
        key, value, shape = real_encode(job)
        if key == "rgb8":
            img = imdecode(value, key)
            img[0, 0, 0] ^= 1
            value = lmdb_writer.imencode(img, ".png")
        return key, value, shape

    monkeypatch.setattr(lmdb_writer, "encode_image", encode_with_one_wrong_pixel)
    with pytest.raises(RestoreError, match="verification failed: rgb8: stored pixels differ"):
        create_lmdb(str(tmp_path / "src"), str(tmp_path / "v.lmdb"), workers=1, verify=True)
    assert sorted(os.listdir(tmp_path)) == ["src"]
