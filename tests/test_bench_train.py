"""scripts/bench_train.py: both sides train the same thing, and a tiny run produces the ratios."""
import math
import os
import re
import sys

import pytest
import torch

from restore.utils.scripts import load_script
from tests.tiny import graph_nodes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

bt = load_script("bench_train")
from restore.benchmark.basicsr_reference import basicsr_dir, load_basicsr_training


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


@pytest.mark.slow
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


def test_ablation_sides_undo_the_speedups_but_take_the_same_steps(one_thread):
    """restore-before (fused Adam, the residual without `* 1` and the unclipped norm undone) trains
    exactly what restore trains, so the ablation times compare like with like."""
    torch.manual_seed(0)
    now = bt.build_trainer({"impl": "restore", "arch": "EDSR", "sizes": TINY, "ema_decay": 0.0})
    before = bt.build_trainer({"impl": "restore", "arch": "EDSR", "sizes": TINY, "ema_decay": 0.0,
                               "legacy": list(bt.LEGACY)})
    before.net().load_state_dict(now.net().state_dict())
    assert now.model.optimizer.param_groups[0]["fused"] is True
    assert before.model.optimizer.param_groups[0]["fused"] is False
    assert before.model.grad_clip == math.inf and not now.model.grad_clip
    assert "forward" in vars(before.net().body[0]) and "forward" not in vars(now.net().body[0])
    batches = bt.random_batches(TINY)
    for it in range(1, 4):
        assert math.isclose(now.step(it, batches[it]), before.step(it, batches[it]), rel_tol=1e-6)
    for (name, a), b in zip(now.net().state_dict().items(), before.net().state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_bench_nsr_train_runs_every_formulation_on_the_same_steps(one_thread, monkeypatch, tmp_path):
    monkeypatch.setenv("RESTORE_SPARSE_GROUP_CACHE", str(tmp_path / "choices.json"))
    bn = load_script("bench_nsr_train")
    sizes = {**bn.QUICK, "rounds": 1}
    args = bn.build_parser().parse_args(["--quick"])
    sides = bn.build_sides(sizes, args)
    assert [s.label for s in sides if s.arch == "WDSR"] == ["WDSR cl fp32", "WDSR nchw fp32"]
    assert {s.formulation for s in sides if s.arch == "NSR"} == {"grouped", "loop", "unfold", "fused", "auto"}
    # each side steps with restore-train's optimiser (fused Adam on the CPU), not torch's default loop
    assert all(s.optimizer.param_groups[0]["fused"] is True for s in sides)
    batch = {"lq": torch.rand(4, 3, 12, 12), "gt": torch.rand(4, 3, 24, 24)}
    losses = {s.label: [s.step(batch), s.step(batch)] for s in sides}
    reference = losses["NSR grouped nchw fp32"]
    for label, found in losses.items():  # same seed, same batches: every formulation, same steps
        if label.startswith("WDSR"):
            continue
        assert all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(found, reference)), (label, found, reference)
    text = bn.report(sides, sizes, "now", (0, 0, 0), (0, 0, 0), [0.0], batch)
    assert "## fp32: ratios to the faster WDSR-A side" in text
    assert "NSR auto nchw fp32 (= " in text and "best NSR side:" in text
    assert "    NSR fused nchw fp32: " in text  # the paired-by-round ratios


def test_bench_nsr_train_grouped_view_is_the_reference_before_own_view(one_thread, monkeypatch, tmp_path):
    # the side that measures what OwnView bought: the same steps, through CopySlices (WDSR's in-place
    # ReLU on a view), and OwnView itself again once the side's step is done
    monkeypatch.setenv("RESTORE_SPARSE_GROUP_CACHE", str(tmp_path / "choices.json"))
    bn = load_script("bench_nsr_train")
    from restore.archs.layers.sparse_group_conv import OwnView
    args = bn.build_parser().parse_args(["--quick", "--formulations", "grouped", "grouped-view"])
    sides = [s for s in bn.build_sides({**bn.QUICK, "rounds": 1}, args) if s.arch == "NSR"]
    assert [s.label for s in sides] == ["NSR grouped nchw fp32", "NSR grouped cl fp32",
                                        "NSR grouped-view nchw fp32", "NSR grouped-view cl fp32"]
    batch = {"lq": torch.rand(4, 3, 12, 12), "gt": torch.rand(4, 3, 24, 24)}
    losses = [[s.step(batch), s.step(batch)] for s in sides]
    assert all(math.isclose(a, b, rel_tol=1e-5) for found in losses[1:] for a, b in zip(found, losses[0]))
    x = torch.rand(4, 3, 12, 12)
    for side in sides[::2]:
        with bn.tracked_views(side.tracked_view):
            nodes = graph_nodes(side.net(x).grad_fn)
        assert ("torch::autograd::CopySlices" in nodes) == side.tracked_view
    assert OwnView.apply.__func__ is torch.autograd.Function.apply.__func__


def test_paired_ratios_divide_out_a_drift_between_rounds():
    """A machine that slows 3x between rounds moves both sides of a round together: the paired
    ratios stay 1.1, where the ratio of the two medians would not be."""
    bn = load_script("bench_nsr_train")
    base = [1.0, 3.0, 1.0, 3.0, 2.0]
    nsr = [1.1 * b for b in base]
    assert bn.paired_quartiles(nsr, base) == pytest.approx((1.1, 1.1, 1.1))
    q1, q2, q3 = bn.paired_quartiles([1.0, 1.2, 1.4, 1.6, 1.8], [1.0] * 5)  # hand-computed quartiles
    assert (q1, q2, q3) == pytest.approx((1.2, 1.4, 1.6))
    assert bn.paired_quartiles([2.0], [1.0]) == (2.0, 2.0, 2.0)


def test_bench_nsr_train_profile_writes_each_sides_ops(one_thread, monkeypatch, tmp_path):
    monkeypatch.setenv("RESTORE_SPARSE_GROUP_CACHE", str(tmp_path / "choices.json"))
    out = tmp_path / "profile.md"
    argv = ["--quick", "--layer", "--rounds", "1", "--formulations", "grouped", "fused", "--profile", str(out)]
    assert load_script("bench_nsr_train").main(argv) == 0
    text = out.read_text()
    assert text.startswith("Made by `python scripts/bench_nsr_train.py --quick --layer ")
    sides = re.findall(r"^## (.+)$", text, re.M)
    assert sides == ["WDSR cl fp32", "WDSR nchw fp32", "NSR grouped nchw fp32", "NSR grouped cl fp32",
                     "NSR fused nchw fp32", "NSR fused cl fp32"]
    for total, conv, share, rest in re.findall(r"self CPU ([\d.]+) ms in all, convolutions ([\d.]+) ms "
                                               r"\((\d+) %\), the rest ([\d.]+) ms", text):
        assert abs(float(total) - float(conv) - float(rest)) <= 0.11 and 0 < float(conv) <= float(total)
    assert text.count("`aten::convolution_backward`") == 6  # every side's backward conv is among its top ops


@pytest.mark.slow
def test_bench_layouts_measures_both_formats_and_reports_the_auto_choice(one_thread):
    bl = load_script("bench_layouts")
    dncnn, nsr = bl.measure("DnCNN", rounds=1), bl.measure("NSR-DN", rounds=1)
    # what restore-train picks here: timed once per net and shape on this machine, then remembered
    assert {dncnn["auto"], nsr["auto"]} <= {"channels_last", "NCHW"}
    assert bl.measure("DnCNN", rounds=1)["auto"] == dncnn["auto"]
    for r in (dncnn, nsr):
        assert all(r[k] > 0 for k in ("cpu_nchw", "cpu_cl", "wall_nchw", "wall_cl"))
        assert r["speedup_cpu"] == r["cpu_nchw"] / r["cpu_cl"]


@pytest.mark.parametrize("doc,at_least", [("README.md", 1), ("docs/performance.md", 2)])
def test_the_documented_benchmark_commands_parse(doc, at_least):
    """Every `python scripts/bench_*.py ...` command in the docs, on its own line or in `code`,
    uses flags the script has."""
    parsers = {"bench_train": bt.build_parser(), "bench_layouts": load_script("bench_layouts").build_parser(),
               "bench_nsr_train": load_script("bench_nsr_train").build_parser(),
               "bench_conv_ops": load_script("bench_conv_ops").build_parser(),
               "bench_nsr_conv_bound": load_script("bench_nsr_conv_bound").build_parser()}
    command = re.compile(r"python scripts/(bench_train|bench_layouts|bench_nsr_train|bench_conv_ops|bench_nsr_conv_bound)"
                         r"\.py([^`#\n]*)")
    seen = 0
    with open(os.path.join(ROOT, doc)) as f:
        for name, args in command.findall(f.read()):
            parsers[name].parse_args(args.replace("[", "").replace("]", "").split())  # SystemExit on a bad flag
            seen += 1
    assert seen >= at_least


def test_bench_conv_ops_counts_a_steps_flops_by_hand():
    """FlopCounterMode over a forward and backward: conv2 gets its input and weight gradients, conv1
    (whose input needs none) its weight gradient only; 2 FLOPs per multiply-add."""
    bc = load_script("bench_conv_ops")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 3, padding=1))
    conv1, conv2 = 2 * 4 * 3 * 9 * 64, 2 * 4 * 4 * 9 * 64  # per pass, on 8x8
    assert bc.training_step_flops(net, (1, 3, 8, 8), (1, 4, 8, 8)) == (conv1 + conv2) + (2 * conv2 + conv1)
    assert bc.speedup_bound(10.0, 300e9, 60e9) == pytest.approx(2.0)  # 10 s against 300 GFLOP at 60 GFLOP/s


def test_bench_conv_ops_quick_run_writes_the_bounds(one_thread, tmp_path):
    out = tmp_path / "conv_ops.txt"
    assert load_script("bench_conv_ops").main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("Made by `python scripts/bench_conv_ops.py --quick --out ")
    for pass_name in ("forward", "input gradient", "weight + bias gradient", "all three"):
        assert f"| {pass_name} | " in text
    bounds = re.findall(r"^- every conv pass at .*: ([\d.]+)x$", text, re.M)
    assert len(bounds) == 2 and all(float(b) > 0 for b in bounds)


def test_bench_nsr_conv_bound_reports_a_bound_per_precision(one_thread, tmp_path):
    bc = load_script("bench_nsr_conv_bound")
    # hand-computed: a 1000 ms step with 32 convs each 5 ms slower grouped than plain -> 1.16x
    assert bc.step_ratio_bound(1.0, 32, 0.035, 0.030) == pytest.approx(1.16)
    assert bc.step_ratio_bound(1.0, 32, 0.030, 0.030) == 1.0
    out = tmp_path / "bound.txt"
    assert bc.main(["--quick", "--bf16", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("Made by `python scripts/bench_nsr_conv_bound.py --quick --bf16")
    assert "NSR has 4 sparse-group convs" in text  # 2 blocks x 2 convs at --quick's sizes
    assert re.findall(r"^## (\w+)$", text, re.M) == ["fp32", "bf16"]
    found = re.findall(
            r"^## (\w+)$.*?WDSR-A step, channels_last: ([\d.]+) ms\. Block conv passes: plain channels_last "
            r"([\d.]+) ms, grouped each pass in its faster format ([\d.]+) ms.*?\(\1\): ([\d.]+)x", text, re.M | re.S)
    assert [f[0] for f in found] == ["fp32", "bf16"]
    for precision, step, plain, grouped, bound in found:
        assert float(bound) == pytest.approx(bc.step_ratio_bound(float(step), 4, float(grouped), float(plain)),
                                             abs=0.02), precision
    assert text.count("| all three |") == 2
