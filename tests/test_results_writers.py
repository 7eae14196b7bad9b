"""The scripts that write the results files the docs quote (tests/test_docs_tables.py) write what they
measured: first line the made_by line naming the script and its arguments, table rows from the
numbers given (here a small hand-made set, the measurements stubbed out), and a write that fails
leaves the previous file whole and no temp file behind."""
import os
import shlex
import sys

import numpy as np
import pytest
import torch

from restore.utils.img_io import current_umask
from restore.utils.scripts import load_script


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def assert_made_by(text: str, script: str, argv: list[str]) -> None:
    command = shlex.join(["python", f"scripts/{script}.py", *argv])
    assert text.splitlines()[0].startswith(f"Made by `{command}` on "), text.splitlines()[0]


def assert_plain_file(path) -> None:
    """A complete file with the umask's permissions (not mkstemp's 0600)."""
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()


@pytest.fixture
def keep_threads():
    """Scripts set torch's thread count for their timings; the other tests keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def failing_fsync(monkeypatch):
    """Every write dies after its bytes went out and before it could be renamed into place."""
    def fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", fsync)


def assert_untouched(folder, before: dict) -> None:
    """`folder` holds exactly the files of `before` ({name: text}), unchanged: no half file, no temp."""
    assert sorted(os.listdir(folder)) == sorted(before)
    for name, text in before.items():
        assert (folder / name).read_text() == text


# --- protocol_bicubic --------------------------------------------------------------------------
def bicubic_table() -> dict:
    """Set5 only; PSNR and SSIM chosen so each cell is easy to write by hand."""
    means = {"basicsr": {2: (33.67341, 0.93031), 3: (30.40329, 0.86889), 4: (28.42901, 0.81112)},
             "literature": {2: (33.65299, 0.92961), 3: (30.38961, 0.86801), 4: (28.41971, 0.81024)}}
    results = {p: {str(s): {"images": [], "mean": {"psnr": v[0], "ssim": v[1]}} for s, v in by.items()}
               for p, by in means.items()}
    return {"published_psnr": {}, "results": {"Set5": results}}


def test_protocol_bicubic_writes_its_table(tmp_path, monkeypatch):
    pb = load_script("protocol_bicubic")
    table = bicubic_table()
    folders = {"Set5": str(tmp_path)}
    monkeypatch.setattr(pb, "find_data_root", lambda explicit: str(tmp_path))
    monkeypatch.setattr(pb, "find_testset", lambda testset, root: folders.get(testset.name))
    monkeypatch.setattr(pb, "bicubic_scores",
                        lambda folder, scale, protocol: table["results"]["Set5"][protocol][str(scale)])
    out = tmp_path / "out"
    argv = ["--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["protocol_bicubic.py", *argv])
    assert pb.main() == 0
    text = (out / "bicubic.md").read_text()
    assert_made_by(text, "protocol_bicubic", argv)
    assert rows(text) == [
        "| protocol | scale | Set5 |", "|---|---|---|",
        "| basicsr | x2 | 33.6734 / 0.9303 |", "| basicsr | x3 | 30.4033 / 0.8689 |",
        "| basicsr | x4 | 28.4290 / 0.8111 |",
        "| literature | x2 | 33.6530 / 0.9296 |", "| literature | x3 | 30.3896 / 0.8680 |",
        "| literature | x4 | 28.4197 / 0.8102 |",
        "| published | x2 | 33.66 |", "| published | x3 | 30.39 |", "| published | x4 | 28.42 |"]
    assert_plain_file(out / "bicubic.md")
    assert sorted(os.listdir(out)) == ["bicubic.json", "bicubic.md"]


def test_protocol_bicubic_failed_write_keeps_the_old_files(tmp_path, failing_fsync):
    pb = load_script("protocol_bicubic")
    before = {"bicubic.json": "{}\n", "bicubic.md": "Made by `old` on CPU.\n| a | 1.00 |\n"}
    for name, text in before.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(OSError):
        pb.write_results(bicubic_table(), str(tmp_path), "Made by `new` on CPU.")
    assert_untouched(tmp_path, before)


# --- bench_data --table -----------------------------------------------------------------------
def test_bench_data_writes_its_table(tmp_path, monkeypatch, keep_threads):
    bd = load_script("bench_data")
    mib = 2 ** 20
    sources = {"folders": (["T91"], "disk", 3 * mib), "sub-images": (["sub"], "disk", 5.26 * mib),
               "lmdb (sub-images)": (["sub.lmdb"], "lmdb", 4.04 * mib), bd.CACHED: (["T91 "], "disk", 3 * mib)}
    speeds = {("folders", 0): 100.4, ("folders", 2): 250.6, ("sub-images", 0): 80.0,
              ("sub-images", 2): 199.7, ("lmdb (sub-images)", 0): 310.2, ("lmdb (sub-images)", 2): 612.49,
              (bd.CACHED, 0): 900.0, (bd.CACHED, 2): 1200.2}
    timed = []

    def fake_speed(opt, w, batch, batches, warm_draws):
        name = next(n for n, s in sources.items() if s[0] == opt["dataroot_gt"])
        timed.append((name, opt.get("cache_mb"), warm_draws))
        return speeds[name, w]

    monkeypatch.setattr(bd, "find_data_root", lambda explicit: str(tmp_path))
    monkeypatch.setattr(bd, "prepare", lambda *a: sources)
    monkeypatch.setattr(bd, "describe_sources",
                        lambda root, sets: {"folders": "folders (T91 BMP)", "sub-images": "sub-images (PNG level 3)",
                                            "lmdb (sub-images)": "LMDB of the sub-images (PNG level 1)",
                                            bd.CACHED: "folders, cached"})
    monkeypatch.setattr(bd, "patches_per_second", fake_speed)
    table = tmp_path / "results" / "loading_speed.md"
    argv = ["--workers", "0", "2", "--table", str(table)]
    monkeypatch.setattr(sys, "argv", ["bench_data.py", *argv])
    assert bd.main() == 0
    text = table.read_text()
    assert_made_by(text, "bench_data", argv)
    assert rows(text) == ["| source | MiB | 0 workers | 2 workers |", "|---|---|---|---|",
                          "| folders (T91 BMP) | 3.0 | 100 | 251 |",
                          "| sub-images (PNG level 3) | 5.3 | 80 | 200 |",
                          "| LMDB of the sub-images (PNG level 1) | 4.0 | 310 | 612 |",
                          "| folders, cached | 3.0 | 900 | 1200 |"]
    # the three layouts decode every patch's image; the cached row is timed once the cache is full
    assert set(timed) == {("folders", 0, 0), ("sub-images", 0, 0), ("lmdb (sub-images)", 0, 0), (bd.CACHED, None, 4)}
    assert_plain_file(table)


# --- exp_blurpool --table ---------------------------------------------------------------------
BLURPOOL_ROWS = {  # variant: (downsample, up_blur, params, metrics, train_s)
    "stride": ({"type": "stride"}, False, 123456,
               {"psnr": 28.1234, "ssim": 0.81236, "eq_res": 31.456, "eq_rand": 33.04, "eq_period": 95.04,
                "dpsnr": 0.01234}, 61.4),
    "blurpool5": ({"type": "blurpool", "filter_size": 5}, 3, 120000,
                  {"psnr": 28.5, "ssim": 0.8, "eq_res": 40.0, "eq_rand": 41.25, "eq_period": 99.96,
                   "dpsnr": 0.00051}, 70.6),
}


def test_exp_blurpool_writes_its_table(tmp_path, monkeypatch, keep_threads):
    eb = load_script("exp_blurpool")
    def train_variant(name, args):
        downsample, up_blur, *_ = BLURPOOL_ROWS[name]
        return {"network_g": {"name": name, "downsample": downsample, "up_blur": up_blur}}, {}, 0.0, f"exp/{name}"

    def evaluate(net, val_opt, args):
        return dict(BLURPOOL_ROWS[net.variant][3])

    def build_network(opt):
        net = torch.nn.Identity()
        net.variant = opt["name"]
        return net

    runs = iter([{"stride": 12.4, "blurpool5": 20.2}, {"stride": 13.6, "blurpool5": 20.4}])
    monkeypatch.setattr(eb, "train_variant", train_variant)
    monkeypatch.setattr(eb, "build_network", build_network)
    monkeypatch.setattr(eb, "load_safely", lambda path: {"params": {}})
    monkeypatch.setattr(eb, "evaluate", evaluate)
    monkeypatch.setattr(eb, "count_params", lambda net: BLURPOOL_ROWS[net.variant][2])
    monkeypatch.setattr(eb, "time_variants", lambda nets, channels, rounds: next(runs))
    table = tmp_path / "results" / "unet_dn25.md"
    argv = ["--variants", "stride", "blurpool5", "--iters", "300", "--out", str(tmp_path / "exp"),
            "--table", str(table)]
    assert eb.main(argv) == 0
    text = table.read_text()
    assert_made_by(text, "exp_blurpool", argv)
    assert rows(text) == [
        "| variant | downsample | up_blur | params | PSNR | SSIM | eq_res | eq_rand | eq_period | dPSNR-gt | ms/img |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| stride | conv 3x3 s2 | – | 123,456 | 28.123 | 0.8124 | 31.46 | 33.04 | 95.0 | 0.0123 | 12–14 |",
        "| blurpool5 | blurpool max f5 | 3 | 120,000 | 28.500 | 0.8000 | 40.00 | 41.25 | 100.0 | 0.0005 | 20 |"]
    assert (tmp_path / "exp" / "results.md").read_text() == text
    assert_plain_file(table)


# --- exp_csc_denoise ----------------------------------------------------------------------------
def csc_cost() -> dict:
    return {"layers": {"1->32 3x3 on 256x256": {"plain": {"params": 320, "macs": 18874368, "cpu_ms": 1.234},
                                                "csc n_iter=1": {"params": 288, "macs": 18874368, "cpu_ms": 2.06}}},
            "nets": {"plain": {"params": 56000, "macs": 3.67e9, "cpu_ms": 40.44}}, "threads": 1}


def test_exp_csc_denoise_writes_its_tables(tmp_path, monkeypatch):
    ecd = load_script("exp_csc_denoise")

    def stage_cost(results):
        results["cost"] = csc_cost()

    monkeypatch.setattr(ecd, "stage_cost", stage_cost)
    argv = ["--stages", "cost", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["exp_csc_denoise.py", *argv])
    ecd.main()
    assert sorted(os.listdir(tmp_path)) == ["cost.md", "results.json"]
    text = (tmp_path / "cost.md").read_text()
    assert_made_by(text, "exp_csc_denoise", argv)
    assert rows(text) == ["| what | params | MACs (M) | CPU ms |", "|---|---:|---:|---:|",
                          "| 1->32 3x3 on 256x256: plain | 320 | 18.9 | 1.2 |",
                          "| 1->32 3x3 on 256x256: csc n_iter=1 | 288 | 18.9 | 2.1 |",
                          "| DnCNN-8-32 plain | 56000 | 3670.0 | 40.4 |"]
    assert_plain_file(tmp_path / "cost.md")
    assert_plain_file(tmp_path / "results.json")


def test_exp_csc_denoise_training_table():
    ecd = load_script("exp_csc_denoise")
    train = {"plain": {"option_file": "a.yml", "iterations": 250, "seconds": 180.0, "loss_first_20": 0.01234,
                       "loss_last_20": 0.0015},
             "CSC": {"option_file": "b.yml", "iterations": 250, "seconds": 270.0, "loss_first_20": 0.02,
                     "loss_last_20": 0.00149}}
    lines = ecd.sections({"train": train})["training"]
    assert rows("\n".join(lines))[2:] == ["| plain | a.yml | 250 | 3.0 | 1.23e-02 | 1.50e-03 |",
                                         "| CSC | b.yml | 250 | 4.5 | 2.00e-02 | 1.49e-03 |"]
    assert lines[-1] == "Total training wall-clock: 7.5 min."


def test_exp_csc_denoise_failed_write_keeps_the_old_files(tmp_path, failing_fsync):
    ecd = load_script("exp_csc_denoise")
    before = {"cost.md": "Made by `old` on CPU.\n| a | 1.00 |\n"}
    (tmp_path / "cost.md").write_text(before["cost.md"])
    with pytest.raises(OSError):
        ecd.write_sections({"cost": csc_cost()}, str(tmp_path), "Made by `new` on CPU.")
    assert_untouched(tmp_path, before)


# --- csc_sdnet_difference -----------------------------------------------------------------------
def test_csc_sdnet_difference_writes_its_table(tmp_path, monkeypatch, keep_threads):
    sd = load_script("csc_sdnet_difference")
    measured = {1: {("sdnet", "fista"): 0.0, ("bound", "sdnet"): 0.01834, ("bound", "fista"): 0.01834},
                3: {("sdnet", "fista"): 0.02249, ("bound", "sdnet"): 0.0133, ("bound", "fista"): 0.000404}}
    seeds = []
    monkeypatch.setattr(sd, "relative_differences", lambda x, seed: seeds.append(seed) or measured)
    monkeypatch.setattr(sd, "astronaut_crop", lambda: None)
    out = tmp_path / "sdnet_difference.md"
    argv = ["--seed", "3", "--out", str(out)]
    assert sd.main(argv) == 0
    text = out.read_text()
    assert seeds == [3] and "weights seeded 3" in text
    assert_made_by(text, "csc_sdnet_difference", argv)
    assert rows(text) == [
        "| steps | `step: sdnet`, `momentum: fista` | `step: bound`, `momentum: sdnet` | defaults (`bound`, `fista`) |",
        "|---|---|---|---|", "| 1 | 0 | 1.8e-2 | 1.8e-2 |", "| 3 | 2.2e-2 | 1.3e-2 | 4.0e-4 |"]
    assert_plain_file(out)


def test_csc_sdnet_difference_failed_write_keeps_the_old_file(tmp_path, monkeypatch, keep_threads, failing_fsync):
    sd = load_script("csc_sdnet_difference")
    monkeypatch.setattr(sd, "relative_differences", lambda x, seed: {1: dict.fromkeys(sd.VARIANTS, 0.5)})
    monkeypatch.setattr(sd, "astronaut_crop", lambda: None)
    before = {"sdnet_difference.md": "Made by `old` on CPU.\n| a | 1.00 |\n"}
    (tmp_path / "sdnet_difference.md").write_text(before["sdnet_difference.md"])
    with pytest.raises(OSError):
        sd.main(["--out", str(tmp_path / "sdnet_difference.md")])
    assert_untouched(tmp_path, before)


def test_csc_sdnet_momentum_rule_changes_nothing_before_the_third_step(keep_threads):
    sd = load_script("csc_sdnet_difference")
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    torch.set_num_threads(1)  # as the script: tiny convolutions, ~100x slower on two busy threads
    for n, same in ((2, True), (3, False)):
        a = sd.codes(x, n, "sdnet", "sdnet", 0)
        b = sd.codes(x, n, "sdnet", "fista", 0)
        assert torch.equal(a, b) == same


# --- protocol_changes ---------------------------------------------------------------------------
def test_protocol_changes_writes_its_table(tmp_path, monkeypatch):
    pc = load_script("protocol_changes")
    means = {"Set5": {"none": 33.65299, "lr_rounded": 33.6404, "y_unrounded": 33.68651, "gray_as_rgb": 33.65299},
             "Set14": {"none": 30.24002, "lr_rounded": 30.2176, "y_unrounded": 30.2524, "gray_as_rgb": 30.33449}}
    monkeypatch.setattr(pc, "find_data_root", lambda explicit: str(tmp_path))
    monkeypatch.setattr(pc, "find_testset", lambda testset, root: testset.name)
    monkeypatch.setattr(pc, "set_means", lambda folder, scale: means[folder])
    out = tmp_path / "changes.md"
    argv = ["--out", str(out)]
    assert pc.main(argv) == 0
    text = out.read_text()
    assert_made_by(text, "protocol_changes", argv)
    assert rows(text) == ["| change from `literature` | Set5 x2 | Set14 x2 |", "|---|---|---|",
                          "| none | 33.653 | 30.240 |", "| LR rounded to 8 bits first | 33.640 | 30.218 |",
                          "| Y unrounded (BasicSR's) | 33.687 | 30.252 |",
                          "| bridge.png as RGB -> studio Y | 33.653 | 30.334 |"]
    assert_plain_file(out)


def test_protocol_changes_failed_write_keeps_the_old_file(tmp_path, monkeypatch, failing_fsync):
    pc = load_script("protocol_changes")
    monkeypatch.setattr(pc, "find_data_root", lambda explicit: str(tmp_path))
    monkeypatch.setattr(pc, "find_testset", lambda testset, root: testset.name)
    monkeypatch.setattr(pc, "set_means", lambda folder, scale: dict.fromkeys(pc.CHANGES, 30.0))
    before = {"changes.md": "Made by `old` on CPU.\n| a | 1.00 |\n"}
    (tmp_path / "changes.md").write_text(before["changes.md"])
    with pytest.raises(OSError):
        pc.main(["--out", str(tmp_path / "changes.md")])
    assert_untouched(tmp_path, before)


def test_protocol_changes_change_one_thing_each():
    """An RGB file has no gray file to score as RGB; a gray file has no Y to round."""
    pc = load_script("protocol_changes")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (24, 24), dtype=np.uint8)
    color, mono = pc.image_psnrs(rgb, 2), pc.image_psnrs(gray, 2)
    assert color["gray_as_rgb"] == color["none"] and color["y_unrounded"] != color["none"]
    assert mono["y_unrounded"] == mono["none"] and mono["gray_as_rgb"] != mono["none"]
    assert color["lr_rounded"] != color["none"] and mono["lr_rounded"] != mono["none"]
