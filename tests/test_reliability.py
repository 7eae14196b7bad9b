"""Reliability: safe loading, the non-finite guard, saving onto a full disk, SIGTERM, bad inputs."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import tests.tiny  # noqa: F401
from restore import test as restore_test
from restore.cli.common import run_cli
from restore.train import main as train_main
from restore.utils.checkpoint import load_safely, save_network_file
from restore.utils.errors import RestoreError
from restore.utils.img_io import imwrite
from tests.tiny import TinyTestSR, make_images, train_options, write_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "x": Evil(marker)}, path)
    with pytest.raises(RestoreError, match="evil.pth: refused to load"):
        load_safely(str(path))
    assert not marker.exists()


def test_safetensors_round_trip(tmp_path):
    net = TinyTestSR()
    path = str(tmp_path / "net.safetensors")
    save_network_file(path, net.state_dict(), net.state_dict())
    ckpt = load_safely(path)
    assert set(ckpt) == {"params", "params_ema"}
    assert all(torch.equal(ckpt["params"][k], v) for k, v in net.state_dict().items())


def test_nonfinite_run_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, capsys):
    opt = train_options(tmp_path, train__total_iter=4, logger__save_checkpoint_freq=2)
    path = write_options(tmp_path / "o.yml", opt)
    assert run_cli(train_main, ["-opt", path]) == 0
    good = load_safely(str(tmp_path / "experiments" / "tiny" / "models" / "net_g_4.pth"))
    code = run_cli(train_main, ["-opt", path, "--auto_resume", "--set", "train.total_iter=20",
                                "--set", "train.pixel_opt.loss_weight=.nan", "--set", "train.max_nonfinite=3"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "3 steps in a row had a non-finite loss" in err and "iteration 7" in err
    after = load_safely(str(tmp_path / "experiments" / "tiny" / "models" / "net_g_6.pth"))
    assert all(torch.equal(good["params"][k], after["params"][k]) for k in good["params"])


@pytest.mark.slow
def test_save_onto_full_disk_fails_clearly_and_keeps_previous(tmp_path):
    script = textwrap.dedent(f"""
        import resource, signal, sys, os, torch
        sys.path.insert(0, {ROOT!r})
        from restore.utils.checkpoint import save_network_file, load_safely
        from restore.utils.errors import RestoreError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        d = {str(tmp_path)!r}
        save_network_file(os.path.join(d, "net.pth"), {{"w": torch.zeros(10)}})
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))   # a disk with 2 kB left
        try:
            save_network_file(os.path.join(d, "net.pth"), {{"w": torch.ones(100000)}})
        except RestoreError as e:
            print("ERR", e)
        assert torch.equal(load_safely(os.path.join(d, "net.pth"))["params"]["w"], torch.zeros(10))
        print("LEFT", sorted(os.listdir(d)))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ERR" in r.stdout and "net.pth: cannot save (File too large)" in r.stdout
    assert "previous checkpoint is unchanged" in r.stdout
    assert "LEFT ['net.pth']" in r.stdout  # no temporary file left behind


@pytest.mark.slow
@pytest.mark.parametrize("workers,whole_group", [(0, False), (1, True)])
def test_sigterm_saves_a_state_and_resume_continues(tmp_path, workers, whole_group):
    # whole_group: the signal reaches the DataLoader workers too, as Ctrl-C or `pkill -f` does
    opt = train_options(tmp_path, train__total_iter=100000, logger__save_checkpoint_freq=100000)
    opt["val"]["val_freq"] = 100000
    opt["datasets"]["train"]["num_worker_per_gpu"] = workers
    path = write_options(tmp_path / "o.yml", opt)
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-m", "tests.ddp_entry", "-opt", path], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    states = tmp_path / "experiments" / "tiny" / "training_states"
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "experiments" / "tiny" / "models").exists():
        time.sleep(0.2)
    time.sleep(3)
    if whole_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]  # 128 + SIGTERM (issue 16 item 11)
    assert "SIGTERM: saved the state of iteration" in err
    saved = [f for f in os.listdir(states) if f.endswith(".state")]
    assert len(saved) == 1
    it = int(saved[0][:-6])
    assert it > 0 and load_safely(str(states / saved[0]))["iter"] == it


STORM = textwrap.dedent("""
    import os, signal, threading, time
    import torch
    from torch.utils.data import TensorDataset
    from restore.data.worker_signals import StopSafeDataLoader, init_worker
    got = []
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    loader = StopSafeDataLoader(TensorDataset(torch.arange(8.0)), batch_size=4, num_workers=2,
                                worker_init_fn=init_worker)
    done = threading.Event()
    def storm():  # SIGTERM to the whole group, workers included, every 2 ms while they keep starting
        while not done.is_set():
            os.killpg(os.getpgrp(), signal.SIGTERM)
            time.sleep(0.002)
    threading.Thread(target=storm, daemon=True).start()
    total = sum(float(b[0].sum()) for _ in range(40) for b in loader)  # 40 epochs: 80 worker starts
    done.set()
    print("OK", total, len(got) > 0)
""")


WORKER_THREADS = textwrap.dedent("""
    import numpy, threadpoolctl, torch
    from torch.utils.data import Dataset
    from restore.data.worker_signals import StopSafeDataLoader, init_worker
    class Threads(Dataset):
        def __len__(self):
            return 1
        def __getitem__(self, i):
            blas = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
            return torch.tensor([torch.get_num_threads(), max(blas)])
    blas = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    loader = StopSafeDataLoader(Threads(), batch_size=1, num_workers=1, worker_init_fn=init_worker)
    print(torch.get_num_threads(), max(blas), *next(iter(loader))[0].tolist())
""")


def test_workers_compute_with_one_thread_for_torch_and_for_numpys_blas():
    # numpy's BLAS threads in a worker spin against the training's own threads (10x slower x4 patches)
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", WORKER_THREADS], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    main_torch, main_blas, worker_torch, worker_blas = map(int, out.stdout.split())
    assert (main_torch, main_blas) == (2, 2)  # the main process keeps its threads
    assert (worker_torch, worker_blas) == (1, 1)


@pytest.mark.slow
def test_workers_survive_sigterm_while_they_start():
    # A plain DataLoader fails this within a few epochs ("DataLoader worker exited unexpectedly", or
    # hangs): torch's worker SIGTERM handler is live before worker_init_fn can ignore the signal.
    proc = subprocess.Popen([sys.executable, "-c", STORM], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, err[-2000:]
    assert out.strip() == "OK 1120.0 True"  # every batch of every epoch; the main process got the signals


# --- the bad-input corpus: each item gives exit 2, one 'error:' line naming it, no traceback ----

def _png_bomb(path):
    import struct
    import zlib
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def _corrupt(folder, kind):
    target = os.path.join(folder, "img01.png")
    if kind == "truncated":
        data = open(target, "rb").read()
        open(target, "wb").write(data[:60])
        return "img01.png", "truncated PNG file"
    if kind == "zero_byte":
        open(target, "wb").close()
        return "img01.png", "empty image file"
    if kind == "wrongly_named":
        with open(os.path.join(folder, "notes.png"), "w") as f:
            f.write("this is text, not an image")
        return "notes.png", "not an image restore reads"
    if kind == "tiny_1x1":
        imwrite(os.path.join(folder, "dot.png"), np.zeros((1, 1, 3), np.uint8))
        return "dot.png", "smaller than scale"
    if kind == "decompression_bomb":
        _png_bomb(os.path.join(folder, "bomb.png"))
        return "bomb.png", "header claims 100000x100000"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated", "zero_byte", "wrongly_named", "tiny_1x1", "decompression_bomb"])
def test_bad_image_in_a_test_set(tmp_path, capsys, kind):
    folder = make_images(tmp_path / "set", n=3)
    name, words = _corrupt(str(folder), kind)
    opt = {"name": "corpus", "scale": 2, "device": "cpu",
           "datasets": {"test_1": {"type": "SRImageDataset", "dataroot_gt": str(folder)}},
           "network_g": {"type": "TinyTestSR"},
           "path": {"results_root": str(tmp_path / "results")},
           "val": {"save_img": True, "metrics": {"psnr": {"type": "calculate_psnr"}}}}
    code = run_cli(restore_test.main, ["-opt", write_options(tmp_path / "t.yml", opt)])
    err = capsys.readouterr().err
    # skipped and listed, the rest of the set scored, exit 1 (as restore-infer; issue 16 item 11)
    lines = err.split("skipped 1 file(s):\n")[-1].splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert name in lines[0] and words in lines[0], lines[0]
    out = tmp_path / "results" / "corpus"
    scored = [row["name"] for row in json.loads((out / "results.json").read_text())["test_1"]["images"]]
    assert len(scored) >= 2 and os.path.splitext(name)[0] not in scored
    for root, _, files in os.walk(out):  # anything written is complete (no temp files)
        assert not [f for f in files if f.endswith(".tmp")]


def test_sixteen_bit_and_alpha_images_train(tmp_path):
    folder = tmp_path / "mixed"
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    imwrite(folder / "deep.png", (rng.random((40, 40, 3)) * 65535).astype(np.uint16))
    imwrite(folder / "alpha.png", (rng.random((40, 40, 4)) * 255).astype(np.uint8))
    imwrite(folder / "gray.png", (rng.random((40, 40, 1)) * 255).astype(np.uint8))
    opt = train_options(tmp_path, train__total_iter=3)
    opt["datasets"]["train"]["dataroot_gt"] = str(folder)
    opt["datasets"]["train"]["batch_size_per_gpu"] = 3
    del opt["datasets"]["val"]
    assert run_cli(train_main, ["-opt", write_options(tmp_path / "o.yml", opt)]) == 0


def test_mismatched_gt_lq_sizes_are_named(tmp_path, capsys):
    gt = make_images(tmp_path / "gt", n=2, size=(32, 32))
    lq = make_images(tmp_path / "lq", n=2, size=(16, 16))
    imwrite(os.path.join(lq, "img01.png"), np.zeros((10, 16, 3), np.uint8))
    opt = {"name": "pairs", "scale": 2, "device": "cpu", "network_g": {"type": "TinyTestSR"},
           "datasets": {"test_1": {"type": "PairedImageDataset", "dataroot_gt": str(gt), "dataroot_lq": str(lq)}},
           "path": {"results_root": str(tmp_path / "results")}}
    assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / "t.yml", opt)]) == 1  # skipped, listed
    err = capsys.readouterr().err.splitlines()[-1]
    assert "img01.png" in err and "does not match LQ" in err


@pytest.mark.parametrize("problem", ["missing", "extra", "shape", "nan"])
def test_bad_checkpoint_keys(tmp_path, capsys, problem):
    sd = TinyTestSR(num_feat=8).state_dict()
    if problem == "missing":
        sd.pop("body.0.bias")
    elif problem == "extra":
        sd["body.9.weight"] = torch.zeros(1)
    elif problem == "shape":
        sd["body.0.bias"] = torch.zeros(5)
    else:
        sd["body.0.bias"][0] = float("nan")
    ckpt = str(tmp_path / f"{problem}.pth")
    save_network_file(ckpt, sd)
    opt = {"name": "ck", "scale": 2, "device": "cpu", "network_g": {"type": "TinyTestSR", "num_feat": 8},
           "datasets": {"test_1": {"type": "SRImageDataset", "dataroot_gt": str(make_images(tmp_path / "s", n=1))}},
           "path": {"pretrain_network_g": ckpt, "results_root": str(tmp_path / "results")}}
    assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / "t.yml", opt)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{problem}.pth" in err
    want = {"missing": "missing keys: body.0.bias", "extra": "unexpected keys: body.9.weight",
            "shape": "wrong shapes: body.0.bias", "nan": "'body.0.bias' holds NaN"}[problem]
    assert want in err
    assert not (tmp_path / "results" / "ck").exists()


def test_yaml_bomb_and_debug_traceback(tmp_path, capsys):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    path = tmp_path / "bomb.yml"
    path.write_text(bomb)
    assert run_cli(train_main, ["-opt", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bomb.yml" in err and len(err.splitlines()) == 1
    with pytest.raises(RestoreError):  # --debug keeps the traceback
        run_cli(train_main, ["-opt", str(path), "--debug"])
