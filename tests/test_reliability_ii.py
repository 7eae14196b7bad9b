"""Reliability II (issue 16): worker errors never hang, two runs never mix, hostile files and names
never escape. Each test names the item of the issue it covers; every one that starts a process runs
under a timeout that fails the test on a hang."""
import os
import signal
import subprocess
import sys
import time

import lmdb
import numpy as np
import pytest
import torch

import tests.tiny  # noqa: F401
from restore.cli.common import run_cli
from restore.train import main as train_main
from restore.utils.checkpoint import load_safely, save_network_file
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes, imencode, imread, imwrite
from restore.utils.yaml_io import dump_yaml
from tests.tiny import TinyTestSR, make_images, train_options, write_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG = 90  # seconds: far above what any of these runs needs; reaching it is the failure


def run_train(tmp_path, opt, *extra, name="o.yml", timeout=HANG):
    """restore-train in its own process group; returns (exit code, stderr, pids left in the group)."""
    path = write_options(tmp_path / name, opt)
    proc = subprocess.Popen([sys.executable, "-m", "tests.ddp_entry", "-opt", path, *extra], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"restore-train hung (> {timeout} s)")
    time.sleep(0.2)
    return proc.returncode, err, group_members(proc.pid)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group: orphaned DataLoader workers would show here."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(pid))
    return found


def error_line(err: str) -> str:
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def error_in_process(capsys, tmp_path, opt, *extra, path=None):
    """Exit code and the one error line of an in-process restore-train run."""
    path = path or write_options(tmp_path / "opt.yml", opt)
    code = run_cli(train_main, ["-opt", str(path), *extra])
    return code, error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- 1: worker errors never hang
def small_image_among_many(tmp_path):
    """Training options whose 3rd image is smaller than the patch: the first batch passes the pre-run
    check, and a DataLoader worker meets the error later."""
    opt = train_options(tmp_path, train__total_iter=50, logger__save_checkpoint_freq=1000)
    folder = opt["datasets"]["train"]["dataroot_gt"]
    make_images(tmp_path / "extra", n=1, size=(12, 12))
    os.replace(tmp_path / "extra" / "img00.png", os.path.join(folder, "img02.png"))
    opt["datasets"]["train"].update(batch_size_per_gpu=1, dataset_enlarge_ratio=4)
    return opt, os.path.join(folder, "img02.png")


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_error_inside_a_dataloader_worker_ends_the_run(tmp_path, workers):
    opt, bad = small_image_among_many(tmp_path)
    opt["datasets"]["train"]["num_worker_per_gpu"] = workers
    start = time.time()
    code, err, left = run_train(tmp_path, opt)
    assert code == 2, err[-2000:]
    assert error_line(err) == f"error: {bad}: image 12x12 is smaller than the patch 16x16"
    assert left == [], f"processes left behind: {left}"
    assert time.time() - start < 60


@pytest.mark.parametrize("workers,attempt", [(0, 0), (2, 0), (2, 1), (2, 2)])
@pytest.mark.slow
def test_gt_lq_mismatch_inside_workers(tmp_path, workers, attempt):
    # three 2-worker runs: killing one worker used to let torch's SIGCHLD handler abort the clean-up
    # of the others, and the exit then waited on them forever (about one run in two)
    # a paired set whose 3rd LQ has the wrong size: the first batch is fine, a worker meets it later
    gt = make_images(str(tmp_path / "gt"), n=4, size=(32, 32))
    lq = make_images(str(tmp_path / "lq"), n=4, size=(16, 16))
    imwrite(os.path.join(lq, "img02.png"), np.zeros((10, 10, 3), np.uint8))
    opt = train_options(tmp_path, train__total_iter=40, logger__save_checkpoint_freq=1000)
    opt["datasets"]["train"] = {"name": "p", "type": "PairedImageDataset", "dataroot_gt": gt, "dataroot_lq": lq,
                                "gt_size": 16, "batch_size_per_gpu": 1, "num_worker_per_gpu": workers,
                                "dataset_enlarge_ratio": 4}
    code, err, left = run_train(tmp_path, opt)
    assert code == 2 and "img02" in error_line(err) and left == [], err[-2000:]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_missing_lmdb_key(tmp_path, workers):
    db = make_lmdb(tmp_path / "train.lmdb", n=6)
    with open(db / "meta_info.txt", "a") as f:
        f.write("ghost.png (32,32,3) 1\n")
    opt = train_options(tmp_path)
    opt["datasets"]["train"].update(dataroot_gt=str(db), io_backend={"type": "lmdb"}, num_worker_per_gpu=workers)
    code, err, left = run_train(tmp_path, opt)
    assert code == 2 and left == [], err[-2000:]
    assert error_line(err) == f"error: {db}[ghost]: key listed in meta_info.txt but missing from the LMDB"
    assert not (tmp_path / "experiments").exists()


# --------------------------------------------------------------------------- 2: one run per experiment
@pytest.mark.slow
def test_a_second_run_of_the_same_experiment_is_refused_and_kill_frees_it(tmp_path):
    opt = train_options(tmp_path, train__total_iter=100000, logger__save_checkpoint_freq=100000)
    opt["val"]["val_freq"] = 100000
    first = subprocess.Popen([sys.executable, "-m", "tests.ddp_entry", "-opt",
                              write_options(tmp_path / "a.yml", opt)], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        exp = tmp_path / "experiments" / "tiny"
        deadline = time.time() + HANG
        while not (exp / "models").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (exp / "models").exists()
        for extra in ([], ["--auto_resume"]):
            code, err, _ = run_train(tmp_path, opt, *extra, name="b.yml")
            assert code == 2
            assert error_line(err) == (f"error: {exp}: the experiment is in use by another run (PID "
                                       f"{first.pid}); wait for it to end or choose another name")
        assert sorted(os.listdir(tmp_path / "experiments")) == ["tiny"]  # nothing archived
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the kernel drops the lock with the process
        first.wait(HANG)
    opt["train"]["total_iter"] = 2
    code, err, _ = run_train(tmp_path, opt, name="c.yml")
    assert code == 0, err[-2000:]
    assert len(os.listdir(tmp_path / "experiments")) == 2  # the killed run's folder was archived


# --------------------------------------------------------------------------- 3: truncated data.mdb
def make_lmdb(path, n=40):
    os.makedirs(path)
    env = lmdb.open(str(path), map_size=1 << 24)
    rng = np.random.default_rng(0)
    with env.begin(write=True) as txn:
        for i in range(n):
            txn.put(f"img{i:02d}".encode(), imencode(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    env.close()
    (path / "meta_info.txt").write_text("".join(f"img{i:02d}.png (32,32,3) 1\n" for i in range(n)))
    return path


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_truncated_lmdb_is_named_not_a_sigbus(tmp_path, workers):
    db = make_lmdb(tmp_path / "train.lmdb")
    data = db / "data.mdb"
    os.truncate(data, os.path.getsize(data) // 2)
    opt = train_options(tmp_path)
    opt["datasets"]["train"].update(dataroot_gt=str(db), io_backend={"type": "lmdb"}, num_worker_per_gpu=workers)
    code, err, left = run_train(tmp_path, opt)
    assert code == 2 and left == [], err[-2000:]
    assert error_line(err).startswith(f"error: {db}: truncated LMDB: data.mdb has")
    assert not (tmp_path / "experiments").exists()


# --------------------------------------------------------------------------- 4: names stay inside the root
@pytest.mark.parametrize("name", ["../experiments", "a/b", "/abs", "", ".", "..", "a\\b"])
def test_experiment_name_is_one_folder_name(tmp_path, capsys, name):
    opt = train_options(tmp_path)
    os.makedirs(tmp_path / "experiments" / "keep")
    opt["name"] = name
    code, line = error_in_process(capsys, tmp_path, opt)
    assert code == 2 and f"name: {name!r} is not a valid experiment name" in line
    assert os.listdir(tmp_path / "experiments") == ["keep"] and not (tmp_path / "abs").exists()


# --------------------------------------------------------------------------- 5: files follow the umask
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        imwrite(tmp_path / "b.png", np.zeros((4, 4, 3), np.uint8))
        save_network_file(str(tmp_path / "c.pth"), TinyTestSR().state_dict())
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for name in ("a.bin", "b.png", "c.pth", "plain"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == expected, name


@pytest.mark.slow
def test_training_outputs_follow_the_umask(tmp_path):
    opt = train_options(tmp_path, train__total_iter=2)
    path = write_options(tmp_path / "o.yml", opt)
    proc = subprocess.run(["bash", "-c", f"umask 027 && {sys.executable} -m tests.ddp_entry -opt {path}"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True,
                          timeout=HANG)
    assert proc.returncode == 0, proc.stderr[-2000:]
    exp = tmp_path / "experiments" / "tiny"
    for f in [exp / "tiny.yml", exp / "models" / "net_g_2.pth", exp / "training_states" / "2.state"]:
        assert os.stat(f).st_mode & 0o777 == 0o640, f


# --------------------------------------------------------------------------- 7: header bombs, every format
def test_header_bombs_of_every_format_are_refused_before_decoding(tmp_path, monkeypatch):
    from restore.utils.scripts import load_script
    corpus = load_script("make_bad_inputs")
    bombs = corpus.bombs()
    assert {os.path.splitext(n)[1] for n in bombs} >= {".png", ".jpg", ".webp", ".tif", ".bmp", ".ppm", ".pgm"}
    for name, data in bombs.items():
        start = time.time()
        with pytest.raises(RestoreError, match=rf"{name}: the \w+ header claims \d+x\d+ pixels, more than "
                                               rf"the limit of 200000000 \(set RESTORE_MAX_PIXELS"):
            from restore.utils.img_io import imdecode
            imdecode(data, name)
        assert time.time() - start < 1
    # raising the limit lets the header through; the tiny file then fails to decode, as it should
    monkeypatch.setenv("RESTORE_MAX_PIXELS", "1e9")
    (tmp_path / "bomb.png").write_bytes(bombs["bomb_png.png"])
    with pytest.raises(RestoreError) as e:
        imread(tmp_path / "bomb.png")
    assert "header claims" not in str(e.value)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif", ".bmp", ".ppm", ".pgm"])
def test_header_sizes_match_the_decoded_images(tmp_path, ext):
    from restore.utils.img_io import check_image_file
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (37, 53), (300, 17)]:
        img = rng.integers(0, 256, (h, w, 1 if ext == ".pgm" else 3), dtype=np.uint8)
        imwrite(tmp_path / f"x{ext}", img)
        assert check_image_file(tmp_path / f"x{ext}")[1:] == (w, h)
        assert imread(tmp_path / f"x{ext}").shape[:2] == (h, w)


# --------------------------------------------------------------------------- 8: every bad option before the folder
BAD_OPTIONS = [
    ("val__val_freq", 0, "val.val_freq: must be positive"),
    ("logger__save_checkpoint_freq", 0, "logger.save_checkpoint_freq: must be positive"),
    ("logger__print_freq", 0, "logger.print_freq: must be positive"),
    ("scale", 0, "scale: must be at least 1"),
    ("datasets__train__batch_size_per_gpu", 0, "datasets.train.batch_size_per_gpu: must be at least 1"),
    ("datasets__train__batch_size_per_gpu", -1, "datasets.train.batch_size_per_gpu: must be at least 1"),
    ("train__optim_g__lr", -1e-4, "train.optim_g.lr: must be a positive number"),
    ("train__total_iter", 0, "train.total_iter: must be at least 1"),
    ("train__total_iter", -5, "train.total_iter: must be at least 1"),
    ("network_g__upscale", 4, "network_g.upscale: 4 differs from scale: 2"),
]


@pytest.mark.parametrize("key,value,words", BAD_OPTIONS, ids=[f"{k}={v}" for k, v, _ in BAD_OPTIONS])
def test_bad_values_fail_before_the_experiment_folder(tmp_path, capsys, key, value, words):
    opt = train_options(tmp_path, **{key: value})
    previous = tmp_path / "experiments" / "tiny"
    os.makedirs(previous)  # an earlier run's folder must not be archived by a run that cannot start
    code, line = error_in_process(capsys, tmp_path, opt)
    assert code == 2 and words in line, line
    assert os.listdir(tmp_path / "experiments") == ["tiny"] and os.listdir(previous) == []


def test_non_utf8_option_file(tmp_path, capsys):
    path = tmp_path / "latin1.yml"
    text = dump_yaml(train_options(tmp_path)).replace("name: tiny", "name: caf\u00e9")
    path.write_bytes(text.encode("latin-1"))
    code, line = error_in_process(capsys, tmp_path, None, path=path)
    assert code == 2 and line.startswith(f"error: {path}: not a UTF-8 text file")
    assert not (tmp_path / "experiments").exists()


def test_net_of_the_wrong_scale_fails_before_the_folder(tmp_path, capsys):
    # a same-size net (DnCNN has no upscale to take the scale from) meets x2 data
    opt = train_options(tmp_path)
    opt["network_g"] = {"type": "DnCNN", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_layer": 3}
    code, line = error_in_process(capsys, tmp_path, opt)
    assert code == 2 and "datasets.train: the net turns a (3, 8, 8) input into (3, 8, 8)" in line, line
    assert not (tmp_path / "experiments").exists()


def test_resume_state_of_another_arch(tmp_path, capsys):
    opt = train_options(tmp_path, train__total_iter=2)
    assert run_cli(train_main, ["-opt", write_options(tmp_path / "a.yml", opt)]) == 0
    state = tmp_path / "experiments" / "tiny" / "training_states" / "2.state"
    other = train_options(tmp_path, name="other", network_g__num_feat=16)
    other["path"]["resume_state"] = str(state)
    code, line = error_in_process(capsys, tmp_path, other)
    assert code == 2 and f"path.resume_state: {state}:" in line and "does not fit the network" in line
    assert sorted(os.listdir(tmp_path / "experiments")) == ["tiny"]


def test_unreadable_image_anywhere_in_the_set_fails_before_the_folder(tmp_path, capsys):
    opt = train_options(tmp_path)
    bad = os.path.join(opt["datasets"]["train"]["dataroot_gt"], "img05.png")
    data = open(bad, "rb").read()
    with open(bad, "wb") as f:
        f.write(data[:len(data) // 2])
    code, line = error_in_process(capsys, tmp_path, opt)
    assert code == 2 and line == f"error: {bad}: truncated PNG file (no IEND chunk at the end)"
    assert not (tmp_path / "experiments").exists()


# --------------------------------------------------------------------------- 9: --auto_resume
def trained(tmp_path, total=4):
    opt = train_options(tmp_path, train__total_iter=total)
    path = write_options(tmp_path / "o.yml", opt)
    assert run_cli(train_main, ["-opt", path]) == 0
    return path, tmp_path / "experiments" / "tiny"


def test_auto_resume_with_no_usable_state_is_an_error_and_restart_starts_over(tmp_path, capsys):
    path, exp = trained(tmp_path)
    for state in (exp / "training_states").iterdir():
        state.write_bytes(b"garbage")
    capsys.readouterr()
    code = run_cli(train_main, ["-opt", path, "--auto_resume"])
    line = error_line(capsys.readouterr().err)
    assert code == 2 and "no usable training state to resume from" in line and "--restart" in line
    for it in (2, 4):
        assert f"skipped the checkpoint of iteration {it}: {exp}/training_states/{it}.state: " in line
    assert os.listdir(tmp_path / "experiments") == ["tiny"]
    assert run_cli(train_main, ["-opt", path, "--auto_resume", "--restart"]) == 0
    assert len(os.listdir(tmp_path / "experiments")) == 2
    assert (exp / "training_states" / "4.state").exists()


def test_auto_resume_falls_back_past_a_nan_checkpoint_and_logs_it(tmp_path, capsys):
    path, exp = trained(tmp_path)
    newest = exp / "models" / "net_g_4.pth"
    nets = load_safely(str(newest))
    nets["params"] = {k: torch.full_like(v, float("nan")) for k, v in nets["params"].items()}
    torch.save(nets, newest)
    assert run_cli(train_main, ["-opt", path, "--auto_resume", "--set", "train.total_iter=6"]) == 0
    err = capsys.readouterr().err
    assert "skipped the checkpoint of iteration 4" in err and "holds NaN or Inf" in err
    assert "resumed from iteration 2" in err
    logs = sorted((exp).glob("train_tiny_*.log"))
    assert "skipped the checkpoint of iteration 4" in logs[-1].read_text()


# --------------------------------------------------------------------------- 11: exit codes, messages
def test_pickle_refusal_does_not_advise_running_the_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))
    path = tmp_path / "evil.pth"
    torch.save({"params": {}, "x": Evil()}, path)
    with pytest.raises(RestoreError) as e:
        load_safely(str(path))
    message = str(e.value)
    assert "refused to load" in message and "posix.system" in message
    assert "weights_only=False" not in message and "\n" not in message
