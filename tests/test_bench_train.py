"""scripts/bench_train.py: both sides train the same thing, and a tiny run produces the ratios."""
import math
import os
import sys

import pytest
import torch

from tests.tiny import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

bt = load_script("bench_train")
from _basicsr_files import basicsr_dir, load_basicsr_training  # scripts/ is on sys.path now


@pytest.fixture(scope="module", autouse=True)
def need_basicsr():
    if basicsr_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but basicsr 1.4.2 is not installed (pip install --no-deps basicsr==1.4.2)")
        pytest.skip("basicsr is not installed")


TINY = {**bt.QUICK, "batch": 2, "patch": 8}


@pytest.fixture
def one_thread():
    """Tiny ops on a busy 2-core machine: one thread avoids OpenMP waiting on descheduled threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_loading_leaves_no_basicsr_modules_behind():
    before = {n for n in sys.modules if n.startswith(("basicsr", "torchvision"))}
    b = load_basicsr_training()
    after = {n for n in sys.modules if n.startswith(("basicsr", "torchvision"))}
    assert after == before
    assert "EDSR" in b.ARCH_REGISTRY and "L1Loss" in b.LOSS_REGISTRY and "SRModel" in b.MODEL_REGISTRY
    assert b.EDSR.__module__ == "basicsr.archs.edsr_arch"


@pytest.mark.parametrize("arch", ["EDSR", "NSR"])
def test_both_sides_take_the_same_training_steps(arch, one_thread):
    """Same weights and batches: BasicSR's step (NCHW) and restore's (its defaults) give the same
    losses and weights step after step, so the benchmark compares like with like."""
    torch.manual_seed(0)
    basicsr = bt.BasicSRTrainer(arch, TINY, ema_decay=0.0)
    restore = bt.RestoreTrainer(arch, TINY, ema_decay=0.0)
    restore.net().load_state_dict(basicsr.net().state_dict())
    start = {k: v.clone() for k, v in basicsr.net().state_dict().items()}
    ga, gb = basicsr.model.optimizer_g.param_groups[0], restore.model.optimizer.param_groups[0]
    for key in ("lr", "betas", "eps", "weight_decay", "amsgrad"):
        assert ga[key] == gb[key], key
    batches = bt.random_batches(TINY)
    a, b = [], []
    for it in range(1, 5):
        a.append(basicsr.step(it, batches[it % 4]))
        b.append(restore.step(it, batches[it % 4]))
    for x, y in zip(a, b):
        assert math.isclose(x, y, rel_tol=1e-5), (a, b)
    wa, wb = basicsr.net().state_dict(), restore.net().state_dict()
    moved = max((wa[k] - start[k]).abs().max().item() for k in wa)
    apart = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert moved > 3e-4  # 4 Adam steps of lr 1e-4
    assert apart < 2e-6  # float noise; a 10 % different lr gives > 4e-5 here
    # and inference gives the same image on both sides
    lq = torch.rand(1, 3, 12, 12)
    torch.testing.assert_close(restore.infer(lq).contiguous(), basicsr.infer(lq).contiguous(), rtol=1e-4, atol=1e-5)


def test_quick_run_reports_ratios():
    args = bt.build_parser().parse_args(["--quick", "--archs", "EDSR", "--sides", "basicsr", "restore",
                                         "--rounds", "1", "--iters", "2", "--threads", "1"])
    results, report = bt.run(args, log=lambda msg: None)
    (res,) = results
    assert not res["failed"]
    assert len(res["times"]["basicsr"]["train"]) == 2 and len(res["times"]["restore"]["train"]) == 2
    assert res["info"]["basicsr"]["allocator"] == "glibc default"
    assert res["info"]["restore"]["channels_last"] and not res["info"]["basicsr"]["channels_last"]
    assert res["info"]["basicsr"]["macs"] == res["info"]["restore"]["macs"] > 0
    ratios = res["summary"]["ratios"]
    for key in ("train it/s restore / basicsr", "inference speed restore / basicsr", "restore inference / peak conv"):
        assert 0 < ratios[key] < math.inf, ratios
    assert "train it/s restore / basicsr:" in report and "## EDSR x2" in report


def test_bench_layouts_measures_both_formats_and_reports_the_auto_choice(one_thread):
    bl = load_script("bench_layouts")
    dncnn, nsr = bl.measure("DnCNN", rounds=1), bl.measure("NSR-DN", rounds=1)
    assert dncnn["auto"] == "channels_last" and nsr["auto"] == "NCHW"
    for r in (dncnn, nsr):
        assert all(r[k] > 0 for k in ("cpu_nchw", "cpu_cl", "wall_nchw", "wall_cl"))
        assert r["speedup_cpu"] == r["cpu_nchw"] / r["cpu_cl"]


@pytest.mark.parametrize("doc", ["README.md", "docs/performance.md"])
def test_the_documented_benchmark_commands_parse(doc):
    """Every `python scripts/bench_*.py ...` line in the docs uses flags the script has."""
    parsers = {"bench_train": bt.build_parser(), "bench_layouts": load_script("bench_layouts").build_parser()}
    seen = 0
    with open(os.path.join(ROOT, doc)) as f:
        for line in f:
            line = line.split("#")[0].strip()
            for name, parser in parsers.items():
                prefix = f"python scripts/{name}.py"
                if line.startswith(prefix):
                    args = line[len(prefix):].replace("[", "").replace("]", "").split()
                    parser.parse_args(args)  # exits (SystemExit) on an unknown flag
                    seen += 1
    assert seen >= 2
