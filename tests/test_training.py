"""Real (tiny) training runs: the loss falls, and a resumed run equals an uninterrupted one."""
import os

import torch

import tests.tiny  # noqa: F401  registers TinyTestSR
from restore.archs import build_network
from restore.train import train
from restore.utils.checkpoint import load_network, load_safely
from restore.utils.options import parse_options
from tests.tiny import train_options, write_options


def run(tmp_path, opt_dict, auto_resume=False, overrides=()):
    path = write_options(os.path.join(tmp_path, f"{opt_dict['name']}.yml"), opt_dict)
    return train(parse_options(path, is_train=True, overrides=list(overrides)), auto_resume=auto_resume)


def test_loss_falls_and_experiment_folder(tmp_path):
    opt = train_options(tmp_path, train__total_iter=60, logger__save_checkpoint_freq=30,
                        val__val_freq=30, **{"datasets__train__batch_size_per_gpu": 4})
    result = run(tmp_path, opt)
    h = result["history"]
    assert len(h) == 60
    assert sum(h[-10:]) / 10 < 0.7 * sum(h[:10]) / 10, h
    exp = os.path.join(tmp_path, "experiments", "tiny")
    for f in ("models/net_g_30.pth", "models/net_g_60.pth", "models/net_g_latest.pth",
              "training_states/30.state", "training_states/60.state", "tiny.yml"):
        assert os.path.isfile(os.path.join(exp, f)), f
    assert any(f.startswith("train_tiny_") and f.endswith(".log") for f in os.listdir(exp))
    ckpt = load_safely(os.path.join(exp, "models", "net_g_60.pth"))
    assert set(ckpt) == {"params", "params_ema"}
    state = load_safely(os.path.join(exp, "training_states", "60.state"))
    assert state["iter"] == 60 and "psnr" in state["best"]["va"]
    # a fresh run of the same name archives the old folder instead of overwriting it
    run(tmp_path, train_options(tmp_path, train__total_iter=2))
    assert any(d.startswith("tiny_archived_") for d in os.listdir(os.path.join(tmp_path, "experiments")))


def _params(exp_dir, it):
    return load_safely(os.path.join(exp_dir, "models", f"net_g_{it}.pth"))


def test_resume_reproduces_uninterrupted_run(tmp_path):
    # 6 images x enlarge 2 / batch 4 = 3 iterations per epoch: the stop at 4 is mid-epoch
    straight = train_options(tmp_path / "a", name="straight", train__total_iter=8)
    run(tmp_path, straight)
    halves = train_options(tmp_path / "b", name="halves", train__total_iter=4)
    run(tmp_path, halves)
    result = run(tmp_path, halves, auto_resume=True, overrides=["train.total_iter=8"])
    assert result["iter"] == 8 and len(result["history"]) == 4
    a = _params(os.path.join(tmp_path / "a", "experiments", "straight"), 8)
    b = _params(os.path.join(tmp_path / "b", "experiments", "halves"), 8)
    for key in ("params", "params_ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    # and the resumed run did not archive the experiment
    assert not any("archived" in d for d in os.listdir(tmp_path / "b" / "experiments"))


def test_resume_with_workers_and_explicit_state(tmp_path):
    common = {"datasets__train__num_worker_per_gpu": 1, "train__total_iter": 6}
    run(tmp_path, train_options(tmp_path / "a", name="w_straight", **common))
    opt = train_options(tmp_path / "b", name="w_halves", **{**common, "train__total_iter": 2})
    run(tmp_path, opt)
    state = os.path.join(tmp_path / "b", "experiments", "w_halves", "training_states", "2.state")
    run(tmp_path, opt, overrides=["train.total_iter=6", f"path.resume_state={state}"])
    a = _params(os.path.join(tmp_path / "a", "experiments", "w_straight"), 6)
    b = _params(os.path.join(tmp_path / "b", "experiments", "w_halves"), 6)
    assert all(torch.equal(a["params"][k], b["params"][k]) for k in a["params"])


def test_ema_warms_up_then_follows_the_decay(tmp_path):
    from restore.models.sr_model import SRModel
    model = SRModel(parse_options(write_options(tmp_path / "o.yml", train_options(tmp_path, train__ema_decay=0.999)), True))
    p = next(model.net_g.parameters())
    e = next(model.net_g_ema.parameters())
    with torch.no_grad():
        p.add_(1.0)
    before = e.detach().clone()
    model.update_ema()  # first update: decay (1 + 0) / (10 + 0) = 0.1
    assert torch.allclose(e, 0.1 * before + 0.9 * p.detach(), atol=1e-6)
    model.ema_updates = 10**6  # long runs: the configured decay
    before = e.detach().clone()
    model.update_ema()
    assert torch.allclose(e, 0.999 * before + 0.001 * p.detach(), atol=1e-6)


def test_x4_run_starts_from_x2_weights_except_the_tail(tmp_path):
    """strict_load_g: false loads every tensor whose shape fits (an x4 net from an x2 one, as the
    zoo's nsr_sr_x4 does), logs the ones that keep their initial values, and trains."""
    x2 = run(tmp_path / "a", train_options(tmp_path / "a", name="x2", train__total_iter=2))
    x2_ckpt = os.path.join(x2["experiment"], "models", "net_g_latest.pth")
    opt = train_options(tmp_path / "b", name="x4", scale=4, train__total_iter=2,
                        network_g={"type": "TinyTestSR", "num_feat": 8, "upscale": 4},
                        path__pretrain_network_g=x2_ckpt, path__strict_load_g=False,
                        **{"datasets__train__gt_size": 16})
    x4 = run(tmp_path / "b", opt)
    assert len(x4["history"]) == 2
    with open(next(os.path.join(x4["experiment"], f) for f in os.listdir(x4["experiment"]) if f.endswith(".log"))) as f:
        log = f.read()
    assert "loaded all but 2 tensors, which keep their initial values (body.2.weight, body.2.bias)" in log
    first = load_safely(x2_ckpt)["params"]["body.0.weight"]
    net = build_network({"type": "TinyTestSR", "num_feat": 8, "upscale": 4})
    assert load_network(net, x2_ckpt, "params", strict=False) == ["body.2.weight", "body.2.bias"]
    assert torch.equal(net.body[0].weight, first)


def test_busy_cores_are_named_before_training_when_threads_would_wait(tmp_path, monkeypatch):
    from restore.utils.machine import busy_cores_note
    assert busy_cores_note(threads=1, load=9.0, cpus=2) is None       # one thread waits for nobody
    assert busy_cores_note(threads=2, load=1.2, cpus=2) is None       # a core is free
    note = busy_cores_note(threads=2, load=1.6, cpus=2)
    assert "load average is 1.6 on 2 CPUs" in note and "OMP_NUM_THREADS=1" in note
    # the training log says it at the start, as a warning
    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 7.0, 6.0))
    monkeypatch.setattr("restore.train.available_cpus", lambda: 2)  # a load of 7.5 on 2 CPUs, anywhere
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        opt = train_options(tmp_path, **{"train__total_iter": 2, "val__val_freq": 2})
        train(parse_options(write_options(tmp_path / "o.yml", opt), True))
    finally:
        torch.set_num_threads(threads)
    log = next((tmp_path / "experiments" / "tiny").glob("train_tiny_*.log")).read_text()
    assert "WARNING: the load average is 7.5 on" in log


def _progress_lines(tmp_path, name):
    exp = os.path.join(tmp_path, "experiments", name)
    log = [f for f in os.listdir(exp) if f.endswith(".log")][0]
    with open(os.path.join(exp, log), encoding="utf-8") as f:
        return [line for line in f if "INFO: iter " in line]


def test_progress_lines_say_how_long_the_step_waited_for_data(tmp_path, monkeypatch):
    import re
    import time

    from restore.data.sr_dataset import SRImageDataset
    from restore.models.sr_model import SRModel
    load = SRImageDataset.load
    # slow data (50 ms a sample, batch 4) beside a fast step: the loop mostly waits, and says so
    monkeypatch.setattr(SRImageDataset, "load", lambda self, *a: (time.sleep(0.05), load(self, *a))[1])
    run(tmp_path / "slow_data", train_options(tmp_path / "slow_data", name="slow_data", train__total_iter=4,
                                              logger__print_freq=2))
    lines = _progress_lines(tmp_path / "slow_data", "slow_data")
    shares = [int(re.search(r" it/s data (\d+)% eta ", line)[1]) for line in lines]
    assert len(shares) == 2 and min(shares) >= 60, lines
    assert all("the step waits for batches: raise datasets.train.num_worker_per_gpu" in line for line in lines)
    # a slow step (100 ms) beside fast data: the share is small and no line complains
    monkeypatch.setattr(SRImageDataset, "load", load)
    step = SRModel.optimize_parameters
    monkeypatch.setattr(SRModel, "optimize_parameters", lambda self, b, it=None: (time.sleep(0.1), step(self, b, it))[1])
    run(tmp_path / "slow_step", train_options(tmp_path / "slow_step", name="slow_step", train__total_iter=4,
                                              logger__print_freq=2))
    lines = _progress_lines(tmp_path / "slow_step", "slow_step")
    shares = [int(re.search(r" it/s data (\d+)% eta ", line)[1]) for line in lines]
    assert len(shares) == 2 and max(shares) <= 30, lines
    assert not any("waits for batches" in line for line in lines)
