"""The hostile-input corpus (scripts/make_bad_inputs.py) through restore-infer, restore-test and
restore-train (issue 16): no hang, no traceback, every bad file named, nothing written outside the
output folder."""
import json
import os
import subprocess
import sys

import pytest

from tests.tiny import TinyTestSR, train_options, write_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG = 120
ENV = {**os.environ, "PYTHONPATH": ROOT}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "bad"
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_bad_inputs.py"), str(out)],
                   check=True, timeout=HANG, capture_output=True)
    manifest = json.loads((out / "manifest.json").read_text())
    return out, manifest


def run(args, cwd, timeout=HANG):
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def tree(folder) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files}


def test_the_corpus_is_big_enough(corpus):
    _, manifest = corpus
    bad = [n for n, v in manifest["images"].items() if v["expect"] == "bad"]
    assert len(manifest["images"]) + len(manifest["lmdb"]) >= 40 and len(bad) >= 30


@pytest.mark.slow
def test_restore_infer_over_the_corpus(corpus, tmp_path):
    folder, manifest = corpus
    ckpt = tmp_path / "net.pth"
    import torch
    torch.save({"params": TinyTestSR().state_dict()}, ckpt)
    before = tree(folder)
    out = tmp_path / "out"
    proc = run([sys.executable, "-c", "import tests.tiny; from restore.cli.infer import cli; cli()",
                "--ckpt", str(ckpt), "--arch", "TinyTestSR", "-i", str(folder / "images"), "-o", str(out),
                "--no-progress"], cwd=ROOT)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert tree(folder) == before  # nothing written beside the inputs
    written = {os.path.splitext(f)[0] for f in os.listdir(out)}
    listed = [n for n in manifest["images"] if n.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif",
                                                                   ".tiff", ".webp", ".ppm", ".pgm"))]
    for name in listed:
        stem, expect = os.path.splitext(name)[0], manifest["images"][name]["expect"]
        if expect == "bad":
            assert name in proc.stderr, f"{name} not reported"
    for stem in ("good_png", "one_pixel_png", "sixteen_bit_tif", "cmyk", "exif_rotated", "palette", "rgba"):
        assert stem in written, stem
    for f in os.listdir(out):
        assert not f.startswith(".") and not f.endswith(".tmp")


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_restore_test_over_the_corpus(corpus, tmp_path, workers):
    folder, _ = corpus
    opt = {"name": "corpus", "scale": 2, "device": "cpu",
           "datasets": {"test_1": {"type": "SRImageDataset", "dataroot_gt": str(folder / "images"),
                                   "num_worker_per_gpu": workers}},
           "network_g": {"type": "TinyTestSR"},
           "path": {"results_root": str(tmp_path / "results")},
           "val": {"save_img": True, "pbar": False, "metrics": {"psnr": {"type": "calculate_psnr"}}}}
    before = tree(folder)
    proc = run([sys.executable, "-c", "import tests.tiny; from restore.test import cli; cli()",
                "-opt", write_options(tmp_path / "t.yml", opt)], cwd=ROOT)
    assert proc.returncode in (1, 2), proc.stderr[-3000:]
    assert tree(folder) == before
    if proc.returncode == 2:  # the whole set refused: one line naming the file
        assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_restore_train_over_the_corpus_images(corpus, tmp_path, workers):
    folder, _ = corpus
    opt = train_options(tmp_path)
    opt["datasets"]["train"].update(dataroot_gt=str(folder / "images"), num_worker_per_gpu=workers)
    proc = run([sys.executable, "-m", "tests.ddp_entry", "-opt", write_options(tmp_path / "o.yml", opt)],
               cwd=ROOT)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and str(folder / "images") in errors[0], proc.stderr[-2000:]
    assert not (tmp_path / "experiments").exists()


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_restore_train_over_each_bad_lmdb(corpus, tmp_path, workers):
    folder, manifest = corpus
    for name in manifest["lmdb"]:
        db = folder / "lmdb" / name
        opt = train_options(tmp_path)
        opt["datasets"]["train"].update(dataroot_gt=str(db), io_backend={"type": "lmdb"},
                                        num_worker_per_gpu=workers)
        proc = run([sys.executable, "-m", "tests.ddp_entry", "-opt", write_options(tmp_path / "o.yml", opt)],
                   cwd=ROOT)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 2 and len(errors) == 1 and str(db) in errors[0], (name, proc.stderr[-2000:])
        assert not (tmp_path / "experiments").exists(), name
