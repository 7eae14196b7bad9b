"""DDP through torchrun on CPU (gloo), AMP and the non-finite guard."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

import tests.tiny  # noqa: F401
from restore.archs import build_network
from restore.models.memory_format import layout_key
from restore.train import train
from restore.utils.checkpoint import load_safely
from restore.utils.errors import RestoreError
from restore.utils.measured_choice import machine_id
from restore.utils.options import parse_options
from tests.tiny import train_options, write_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """A port nobody listens on now: each torchrun gets its own, so a previous run's socket or another
    job on the machine cannot make the rendezvous fail."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(opt_path, nproc, *extra):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "tests.ddp_entry", "-opt", opt_path, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def params(tmp, name, it):
    return load_safely(os.path.join(tmp, "experiments", name, "models", f"net_g_{it}.pth"))["params"]


def remember_layout(monkeypatch, tmp_path, opt, layout):
    """Make `channels_last: auto` choose `layout` on a torchrun rank (one thread, the first batch's
    shape) as if this machine had timed it so: both code paths run on every machine."""
    net = build_network(opt["network_g"])
    gt = opt["datasets"]["train"]["gt_size"]
    shape = (opt["datasets"]["train"]["batch_size_per_gpu"], 3, gt // opt["scale"], gt // opt["scale"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torchrun's ranks run with OMP_NUM_THREADS=1
    try:
        rank_machine = machine_id.__wrapped__()
    finally:
        torch.set_num_threads(threads)
    key = layout_key(net, shape, None).replace(machine_id(), rank_machine)
    cache = tmp_path / "memory_formats.json"
    cache.write_text(json.dumps({key: layout}))
    monkeypatch.setenv("RESTORE_MEMORY_FORMAT_CACHE", str(cache))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_two_process_gloo_equals_one_process_with_same_global_batch(tmp_path, monkeypatch, layout):
    common = {"train__total_iter": 20, "logger__save_checkpoint_freq": 10, "val__val_freq": 10,
              "train__ema_decay": 0.0}
    one = train_options(tmp_path / "one", name="one", **common, **{"datasets__train__batch_size_per_gpu": 4})
    two = train_options(tmp_path / "two", name="two", **common, **{"datasets__train__batch_size_per_gpu": 2})
    for o, d in ((one, "one"), (two, "two")):
        o["path"]["experiments_root"] = str(tmp_path / "experiments")
        o["datasets"]["train"]["dataroot_gt"] = one["datasets"]["train"]["dataroot_gt"]
    remember_layout(monkeypatch, tmp_path, two, layout)
    torchrun(write_options(tmp_path / "two.yml", two), 2, "--launcher", "pytorch")  # BasicSR's flag
    # only rank 0 wrote files: one log file, one options copy
    logs = [f for f in os.listdir(tmp_path / "experiments" / "two") if f.endswith(".log")]
    assert len(logs) == 1
    # `channels_last: auto` was decided on rank 0 and followed by rank 1, after which DDP wrapped the
    # net (a net converted after wrapping trained to other weights); the one-process run trains in
    # the same format, since another summation order would be another result
    log = (tmp_path / "experiments" / "two" / logs[0]).read_text()
    assert f"train.channels_last: auto -> {layout} (this machine's earlier timing)" in log
    one["train"]["channels_last"] = layout == "channels_last"
    train(parse_options(write_options(tmp_path / "one.yml", one), True))
    a, b = params(tmp_path, "one", 20), params(tmp_path, "two", 20)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k

    # resume under DDP: stop at 10 (the saved state), resume to 20, same parameters
    two_b = dict(two, name="two_b")
    two_b["train"] = dict(two["train"], total_iter=10)
    path = write_options(tmp_path / "two_b.yml", two_b)
    torchrun(path, 2)
    torchrun(path, 2, "--auto_resume", "--set", "train.total_iter=20")
    c = params(tmp_path, "two_b", 20)
    for k in b:
        assert torch.allclose(b[k], c[k], atol=1e-6), k


@pytest.mark.parametrize("fails", [False, True])
def test_train_cli_tears_the_process_group_down_on_success_and_on_error(tmp_path, monkeypatch, fails):
    """Left to interpreter shutdown, gloo's threads can abort a rank (exit -6) after a run that
    succeeded; restore-train destroys the group itself, also when training raised."""
    import torch.distributed as dist
    from restore import train as train_module
    from restore.utils.errors import RestoreError
    opt = train_options(tmp_path, train__total_iter=4, logger__save_checkpoint_freq=4, val__val_freq=4)
    path = write_options(tmp_path / "o.yml", opt)
    if fails:
        def broken(*_a, **_k):
            raise RestoreError("broken on purpose")
        monkeypatch.setattr(train_module, "train", broken)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        if fails:
            with pytest.raises(RestoreError, match="broken on purpose"):
                train_module.main(["-opt", str(path)])
        else:
            assert train_module.main(["-opt", str(path)]) == 0
            assert os.path.exists(tmp_path / "experiments" / "tiny" / "models" / "net_g_4.pth")
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_bf16_autocast_training_loss_falls(tmp_path):
    opt = train_options(tmp_path, train__total_iter=60, train__amp="bf16", logger__save_checkpoint_freq=60,
                        val__val_freq=60)
    h = train(parse_options(write_options(tmp_path / "o.yml", opt), True))["history"]
    assert sum(h[-10:]) < 0.75 * sum(h[:10])


def test_nonfinite_step_is_skipped_counted_not_applied(tmp_path, monkeypatch):
    from restore.models.sr_model import SRModel
    opt = parse_options(write_options(tmp_path / "o.yml", train_options(tmp_path)), True)
    model = SRModel(opt)
    batch = {"lq": torch.rand(2, 3, 8, 8), "gt": torch.rand(2, 3, 16, 16)}
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    bad = {"lq": batch["lq"].clone(), "gt": batch["gt"].clone()}
    bad["gt"][0, 0, 0, 0] = float("nan")
    logs = model.optimize_parameters(bad)
    assert logs["skipped"] == 1 and model.nonfinite_total == 1 and model.nonfinite_in_a_row == 1
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())
    assert all(s == {} for s in model.optimizer.state.values()) or not model.optimizer.state
    model.optimize_parameters(batch)
    assert model.nonfinite_in_a_row == 0 and model.nonfinite_total == 1
    assert not all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())


def test_fp16_autocast_trains_with_a_grad_scaler_whose_state_is_checkpointed(tmp_path):
    opt = train_options(tmp_path, train__total_iter=60, train__amp="fp16", logger__save_checkpoint_freq=60,
                        val__val_freq=60)
    h = train(parse_options(write_options(tmp_path / "o.yml", opt), True))["history"]
    assert sum(h[-10:]) < 0.75 * sum(h[:10])
    state = load_safely(os.path.join(tmp_path, "experiments", "tiny", "training_states", "60.state"))
    assert state["scaler"]["scale"] > 0  # an enabled GradScaler (a disabled one saves {})


@pytest.mark.slow
def test_compiled_training_takes_the_same_steps(tmp_path):
    """train.compile: true runs the net through torch.compile and learns what eager mode learns."""
    from restore.models import build_model
    models = []
    for name, compiled in (("eager", False), ("compiled", True)):
        opt = train_options(tmp_path / name, name=name, train__compile=compiled, train__ema_decay=0.0)
        models.append(build_model(parse_options(write_options(tmp_path / f"{name}.yml", opt), True)))
    eager, compiled = models
    compiled.net_g.load_state_dict(eager.net_g.state_dict())
    assert compiled.train_net is not compiled.net_g and eager.train_net is eager.net_g
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = {"lq": torch.rand(2, 3, 8, 8, generator=g), "gt": torch.rand(2, 3, 16, 16, generator=g)}
        la, lb = eager.optimize_parameters(batch)["loss"], compiled.optimize_parameters(batch)["loss"]
        assert abs(la - lb) <= 1e-5 * abs(la)
    for (k, a), b in zip(eager.net_g.state_dict().items(), compiled.net_g.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), k


@pytest.mark.parametrize("device, backend", [("cpu", "gloo"), ("auto", "nccl"), ("cuda", "nccl")])
def test_a_cpu_run_on_a_gpu_machine_gets_gloo_and_a_gpu_run_nccl_on_its_own_gpu(monkeypatch, device, backend):
    """Found on a one-GPU machine: `device: cpu` under torchrun got NCCL (chosen by whether a GPU
    exists) and rank 1 was pinned to a GPU 1 that the machine lacks."""
    from restore.models.base_model import runs_on_cuda
    from restore.utils import dist as rdist
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(rdist.dist, "init_process_group", lambda backend, init_method: calls.append(backend))
    monkeypatch.setattr(rdist.dist, "is_initialized", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    rdist.init_dist(None, runs_on_cuda({"device": device}))
    assert calls == ([backend] if backend == "gloo" else [("set_device", 1), backend])
    # more ranks than GPUs: one line that says what to do, before any process group exists
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    calls.clear()
    if backend == "gloo":
        rdist.init_dist(None, runs_on_cuda({"device": device}))
        assert calls == ["gloo"]
    else:
        with pytest.raises(RestoreError, match=r"local rank 1 has no GPU .*--nproc_per_node 1 or less"):
            rdist.init_dist(None, runs_on_cuda({"device": device}))
        assert calls == []
