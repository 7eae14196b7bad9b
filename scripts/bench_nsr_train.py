"""NSR's training step against the same-width WDSR-A's, per sparse-group conv formulation, in one run.

The step of restore's issue 19: batch 16 of 48x48 LR patches, x2, L1 loss, Adam (restore-train's:
fused on the CPU), 64 features, 16 blocks, width 1; NSR with k 4, d 16. WDSR-A runs in channels_last
and NCHW; NSR runs every formulation of its sparse-group conv
(restore/archs/layers/sparse_group_conv.py: grouped = the reference, loop, unfold, fused, and auto =
what this machine's measured choice is) in both memory formats; in fp32 and, with --bf16, under bf16
autocast (weights, loss and optimizer in fp32). All nets start from the same seed and train on the
same random batches; an NSR side only differs by its formulation, so all NSR sides compute the same
steps (to float rounding).

Every side lives in this one process (the allocator is tuned as restore-train does); the sides take
turns, one step each per turn, the order rotating every round, and the medians (and minima) over all
rounds are reported with the ratios of this one run: on a shared machine absolute times drift,
interleaved ratios much less. Each NSR side also gets the quartiles of its per-round ratios to the
faster WDSR-A side (both stepped in the same round), which divide out drift slower than a round. The
load average is sampled each round, and each step's process CPU time is recorded too ("share" below
~90 % of the threads: the side did not get its cores).

    python scripts/bench_nsr_train.py                      # fp32, every formulation, both layouts
    python scripts/bench_nsr_train.py --bf16 --rounds 8    # also bf16 autocast
    python scripts/bench_nsr_train.py --layer --bf16       # one block conv instead of the step
    python scripts/bench_nsr_train.py --quick              # tiny sizes, a smoke run
    python scripts/bench_nsr_train.py --layer --threads 1 --formulations grouped fused \
        --profile results/bench_train/nsr_layer_profile.md  # also where each side's time goes

--profile runs one more step of each side under torch.profiler, after the timed rounds, and writes
each side's most expensive ops by self CPU time, with the share the convolutions take.
"""
import argparse
import contextlib
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from restore.utils.allocator import tune_allocator
from restore.utils.machine import cpu_name, write_results_file

FULL = {"batch": 16, "patch": 48, "scale": 2, "num_feat": 64, "num_block": 16, "k": 4, "d": 16, "rounds": 6}
QUICK = {"batch": 4, "patch": 12, "scale": 2, "num_feat": 8, "num_block": 2, "k": 2, "d": 4, "rounds": 2}


@contextlib.contextmanager
def tracked_views(enabled: bool):
    """With `enabled`, the per-sample convs return plain views of the conv output, as before
    sparse_group_conv.OwnView: an in-place ReLU on them then goes through autograd's CopySlices."""
    from restore.archs.layers.sparse_group_conv import OwnView
    if not enabled:
        yield
        return
    OwnView.apply = staticmethod(lambda tensor, view, unview: view(tensor))
    try:
        yield
    finally:
        del OwnView.apply  # torch.autograd.Function's own again


class Side:
    """One network, memory format, formulation and dtype, with its own Adam."""

    def __init__(self, label: str, arch: str, sizes: dict, channels_last: bool, formulation: str | None,
                 bf16: bool):
        import torch

        from restore.archs import build_network
        from restore.archs.layers.sparse_group_conv import set_formulation
        from restore.models.base_model import build_optimizer
        self.label, self.arch, self.bf16 = label, arch, bf16
        # grouped-view: the reference as it ran before its output became a node of its own (OwnView)
        self.tracked_view = formulation == "grouped-view"
        formulation = "grouped" if self.tracked_view else formulation
        self.channels_last, self.formulation = channels_last, formulation
        opt = {"type": arch, "num_feat": sizes["num_feat"], "num_block": sizes["num_block"],
               "upscale": sizes["scale"], "width_mult": 1}
        if arch == "NSR":
            opt.update(k=sizes["k"], d=sizes["d"])
        torch.manual_seed(0)
        self.net = build_network(opt)
        if formulation is not None:
            set_formulation(self.net, formulation)
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.layout).train()
        # restore-train's optimiser (fused Adam on the CPU): NSR has 4x WDSR-A's parameters, so
        # Adam's per-parameter for-loop would bill it 7 ms more a step than what users run
        self.optimizer = build_optimizer({"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]}, self.net.parameters())
        self.times, self.cpu = [], []

    def step(self, batch: dict) -> float:
        import torch
        from torch.nn import functional as F
        lq = batch["lq"].contiguous(memory_format=self.layout)
        gt = batch["gt"].contiguous(memory_format=self.layout)
        c0, t0 = time.process_time(), time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16), tracked_views(self.tracked_view):
            out = self.net(lq)
        loss = F.l1_loss(out.float(), gt)
        loss.backward()
        self.optimizer.step()
        self.times.append(time.perf_counter() - t0)
        self.cpu.append(time.process_time() - c0)
        return float(loss.detach())

    def chosen(self, batch: dict) -> str:
        """For formulation auto: what the sparse-group convs run (the remembered choice per shape)."""
        import torch

        from restore.archs.layers import sparse_group_conv as sgc
        picks = set()

        def record(layer, inputs):
            picks.add(sgc.choose_formulation(layer, inputs[0]))

        layers = [m for m in self.net.modules() if isinstance(m, sgc.SparseGroupConv2d)]
        hooks = [m.register_forward_pre_hook(record) for m in layers]
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                self.net(batch["lq"].contiguous(memory_format=self.layout))
        finally:
            for h in hooks:
                h.remove()
        return "/".join(sorted(picks)) or "?"


class LayerSide(Side):
    """--layer: one block conv (64 -> 64, 3x3, weight norm) + ReLU, forward and backward, on a
    batch of the step's activations: where NSR and WDSR differ, at a fraction of a step's cost."""

    def __init__(self, label: str, arch: str, sizes: dict, channels_last: bool, formulation: str | None,
                 bf16: bool):
        import torch

        from restore.archs.layers.sparse_group_conv import SparseGroupConv2d
        from restore.archs.layers.weight_norm import WeightNormConv2d
        self.label, self.arch, self.bf16 = label, arch, bf16
        self.channels_last, self.formulation = channels_last, formulation
        c = sizes["num_feat"]
        torch.manual_seed(0)
        if arch == "WDSR":
            self.net = WeightNormConv2d(c, c, 3)
        else:
            self.net = SparseGroupConv2d(c, c, 3, k=sizes["k"], d=sizes["d"], weight_norm=True,
                                         formulation=formulation)
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.layout)
        self.times, self.cpu = [], []
        g = torch.Generator().manual_seed(1)
        x = torch.randn(sizes["batch"], c, sizes["patch"], sizes["patch"], generator=g)
        self.x = x.contiguous(memory_format=self.layout)
        if arch == "NSR" and channels_last and formulation in ("grouped", "fused"):
            # what these formulations hand the next layer in a channels_last net: (H, W, B, C) order
            self.x = x.permute(2, 3, 0, 1).contiguous().permute(2, 3, 0, 1)

    def step(self, batch=None) -> float:
        import torch
        x = self.x.detach().requires_grad_()
        c0, t0 = time.process_time(), time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = torch.relu(self.net(x))
        loss = out.float().sum()
        loss.backward()
        self.times.append(time.perf_counter() - t0)
        self.cpu.append(time.process_time() - c0)
        self.net.zero_grad(set_to_none=True)
        return float(loss.detach())

    def chosen(self, batch=None) -> str:
        import torch

        from restore.archs.layers import sparse_group_conv as sgc
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return sgc.choose_formulation(self.net, self.x.detach().requires_grad_())


def build_sides(sizes: dict, args) -> list:
    from restore.archs.layers.sparse_group_conv import FORMULATIONS
    sides = []
    kind = LayerSide if getattr(args, "layer", False) else Side
    for bf16 in ([False, True] if args.bf16 else [False]):
        tag = "bf16" if bf16 else "fp32"
        for cl in (True, False):
            sides.append(kind(f"WDSR {'cl' if cl else 'nchw'} {tag}", "WDSR", sizes, cl, None, bf16))
        for formulation in args.formulations or (*FORMULATIONS, "auto"):
            for cl in (False, True):
                sides.append(kind(f"NSR {formulation} {'cl' if cl else 'nchw'} {tag}", "NSR", sizes, cl,
                                  formulation, bf16))
    return sides


def run(args, log=print, profile_to: str | None = None, argv: list | None = None) -> str:
    """The timed rounds and their report; with profile_to, also the profile (its header quotes argv)."""
    import torch
    sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes["rounds"] = args.rounds
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    b, p, s = sizes["batch"], sizes["patch"], sizes["scale"]
    batches = [{"lq": torch.rand(b, 3, p, p, generator=g), "gt": torch.rand(b, 3, p * s, p * s, generator=g)}
               for _ in range(3)]
    sides = build_sides(sizes, args)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_before = os.getloadavg()
    for side in sides:  # warm-up: oneDNN primitives, auto's measurement
        t0 = time.perf_counter()
        side.step(batches[0])
        side.step(batches[1])
        side.times.clear()
        side.cpu.clear()
        log(f"  {side.label}: warm in {time.perf_counter() - t0:.1f} s")
    loads = []
    for r in range(sizes["rounds"]):
        loads.append(os.getloadavg()[0])
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for side in order:
            side.step(batches[r % len(batches)])
        log(f"  round {r + 1}/{sizes['rounds']}, load average {loads[-1]:.2f}")
    loads.append(os.getloadavg()[0])
    text = report(sides, sizes, started, load_before, os.getloadavg(), loads, batches[0], args.layer)
    if profile_to:
        setting = (f"One step of each side under torch.profiler, {torch.get_num_threads()} thread(s), "
                   f"{'one block conv + ReLU' if args.layer else 'the whole training step'}, batch {sizes['batch']}, "
                   f"{sizes['patch']}x{sizes['patch']} LR, {sizes['num_feat']} features; load average "
                   f"{os.getloadavg()[0]:.2f}.")
        command = ["python", "scripts/bench_nsr_train.py", *(argv if argv is not None else sys.argv[1:])]
        write_results_file(profile_to, command, [setting, "", *profile_report(sides, batches[0])])
    return text


def report(sides: list, sizes: dict, started: str, load_before, load_after, loads, batch: dict,
           layer: bool = False) -> str:
    import torch
    threads = torch.get_num_threads()
    lines = [f"# bench_nsr_train  {started}",
             f"torch {torch.__version__}, {cpu_name()}, {threads} threads, python {platform.python_version()}, "
             f"allocator: {'glibc, tuned (tune_allocator)' if tune_allocator() else 'default'}",
             f"step: batch {sizes['batch']} of {sizes['patch']}x{sizes['patch']} LR patches, x{sizes['scale']}, "
             f"L1 + Adam, {sizes['num_feat']} features, {sizes['num_block']} blocks, width 1; NSR k {sizes['k']}, "
             f"d {sizes['d']}; {sizes['rounds']} rounds, one step per side per round, sides in turn",
             *(["--layer: one block conv (weight norm) + ReLU, forward and backward, not the whole step; "
                "WDSR = its plain conv"] if layer else []),
             f"load average (1, 5, 15 min): before {', '.join(f'{v:.2f}' for v in load_before)}; after "
             f"{', '.join(f'{v:.2f}' for v in load_after)}; during {min(loads):.2f}-{max(loads):.2f}", ""]
    for tag in ("fp32", "bf16"):
        group = [s for s in sides if s.label.endswith(tag)]
        if not group:
            continue
        med = {s.label: statistics.median(s.times) for s in group}
        low = {s.label: min(s.times) for s in group}
        wdsr = [s for s in group if s.arch == "WDSR"]
        base = min(wdsr, key=lambda s: med[s.label])
        lines.append(f"## {tag}: ratios to the faster WDSR-A side ({base.label}): median step, min step and "
                     f"median CPU time per step")
        cpu = {s.label: statistics.median(s.cpu) for s in group}
        lines.append(f"{'side':<30} {'ms median':>9} {'ms min':>8} {'CPU ms':>8} {'share':>5} {'ratio':>6} "
                     f"{'ratio min':>9} {'CPU ratio':>9}")
        for s in group:
            share = sum(s.cpu) / sum(s.times) / threads
            name = s.label + (f" (= {s.chosen(batch)})" if s.formulation == "auto" else "")
            lines.append(f"{name:<30} {1e3 * med[s.label]:>9.0f} {1e3 * low[s.label]:>8.0f} "
                         f"{1e3 * statistics.median(s.cpu):>8.0f} {share:>5.0%} "
                         f"{med[s.label] / med[base.label]:>5.2f}x {low[s.label] / low[base.label]:>8.2f}x "
                         f"{cpu[s.label] / cpu[base.label]:>8.2f}x")
        nsr = [s for s in group if s.arch == "NSR" and s.formulation != "auto"]
        if nsr:
            best = min(nsr, key=lambda s: med[s.label])
            ref = min((s for s in nsr if s.formulation == "grouped"), key=lambda s: med[s.label], default=None)
            lines.append(f"  best NSR side: {best.label}, {med[best.label] / med[base.label]:.2f}x {base.label}")
            best_cpu = min(nsr, key=lambda s: cpu[s.label])
            lines.append(f"  by CPU time (steadier on a loaded machine): best NSR side {best_cpu.label}, "
                         f"{cpu[best_cpu.label] / cpu[base.label]:.2f}x {base.label}, "
                         f"{cpu[best_cpu.label] / min(cpu[w.label] for w in wdsr):.2f}x the faster WDSR side")
            if ref is not None:
                lines.append(f"  reference formulation (grouped, faster layout): {ref.label}, "
                             f"{med[ref.label] / med[base.label]:.2f}x {base.label}; best / reference "
                             f"{med[best.label] / med[ref.label]:.2f}x")
            lines.append(f"  paired by round (each NSR step over the {base.label} step of the same round; "
                         f"cancels drift slower than a round): median [quartiles]")
            for s in nsr:
                q1, q2, q3 = paired_quartiles(s.times, base.times)
                lines.append(f"    {s.label}: {q2:.2f}x [{q1:.2f}-{q3:.2f}]")
        lines.append("")
    return "\n".join(lines)


def paired_quartiles(times: list, base_times: list) -> tuple:
    """Quartiles of the per-round ratios times[r] / base_times[r]: both sides ran in round r, minutes
    apart at most, so a drift of the machine slower than a round divides out."""
    ratios = [t / b for t, b in zip(times, base_times)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, q2, q3


CONV = "conv"  # in every convolution op's name: aten::mkldnn_convolution, aten::convolution_backward, ...


def profile_report(sides: list, batch: dict, top: int = 10) -> list:
    """One profiled step per side: its `top` ops by self CPU time and the convolutions' share."""
    from torch.profiler import ProfilerActivity, profile
    lines = []
    with profile(activities=[ProfilerActivity.CPU]):  # the profiler's own start-up, not counted
        sides[0].step(batch)
    for side in sides:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            side.step(batch)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        conv = sum(e.self_cpu_time_total for e in events if CONV in e.key)
        lines += [f"## {side.label}", "",
                  f"self CPU {total / 1e3:.1f} ms in all, convolutions {conv / 1e3:.1f} ms "
                  f"({100 * conv / max(total, 1):.0f} %), the rest {(total - conv) / 1e3:.1f} ms", "",
                  "| op | calls | self CPU ms | share |", "|---|---:|---:|---:|"]
        lines += [f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1e3:.2f} | "
                  f"{100 * e.self_cpu_time_total / max(total, 1):.1f} % |" for e in events[:top]]
        lines.append("")
    return lines


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds: a smoke run")
    p.add_argument("--bf16", action="store_true", help="also every side under bf16 autocast")
    p.add_argument("--layer", action="store_true",
                   help="time one block conv + ReLU (forward and backward) instead of the whole step")
    p.add_argument("--formulations", nargs="+", choices=["grouped", "loop", "unfold", "fused", "auto", "grouped-view"],
                   help="NSR formulations to run (default: all and auto; grouped-view: the reference with its "
                        "output a tracked view of the conv's, as before the output became an autograd node of "
                        "its own)")
    p.add_argument("--rounds", type=int, help="rounds of turns (default 6, --quick 2)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--out", help="also write the report to this file")
    p.add_argument("--profile", metavar="FILE",
                   help="then profile one step of each side (torch.profiler) and write the ops to this results file")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()  # before torch allocates anything, as restore-train
    text = run(args, log=lambda msg: print(msg, file=sys.stderr, flush=True), profile_to=args.profile,
               argv=argv)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
