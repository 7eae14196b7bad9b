"""How fast restore's EDSR training step could be against BasicSR's on this CPU: a bound from the convs.

bench_train.py compares whole steps. Both sides call the same oneDNN convolutions, which are nearly
all of the step, so restore's levers (the memory format each conv pass runs in, the allocator, the
work around the convs) are bounded by how fast those convolutions can run here. This script measures,
in one run:

- the three passes of EDSR-baseline x2's body conv at bench_train's batch (16 x 64 x 48 x 48,
  64 -> 64, 3x3, fp32): forward, input gradient, weight + bias gradient, in NCHW and in
  channels_last, interleaved turns, medians, in this process with restore's allocator tuning; beside
  them bench_train's peak conv (channels_last inference) and a square GEMM;
- BasicSR's whole training step: bench_train's BasicSR side in its own process (its arch and SRModel
  step, NCHW, the default allocator: what a BasicSR user runs);
- the FLOPs of that step's convolutions (torch's FlopCounterMode over one forward and backward).

A trainer that spent no time at all outside the convolutions and ran every conv pass at the body
conv's best rate here (each pass in its faster memory format, no conversions) would need the step's
conv FLOPs / that rate; BasicSR's measured step over that time bounds restore's speed-up from above.
The second bound runs every conv at the peak conv's rate instead: reaching it would take conv kernels
faster than the training kernels torch ships. The body conv's rate stands for every conv of the step:
the others (the first, the last and the upsampler's) hold about 11 % of its FLOPs.

    python scripts/bench_conv_ops.py --out results/bench_train/latest/conv_ops.txt
    python scripts/bench_conv_ops.py --quick     # tiny sizes: a smoke run
"""
import argparse
import statistics
import sys
import time

from restore.utils.allocator import tune_allocator
from restore.utils.machine import cpu_name, publish_results
from restore.utils.scripts import load_script

FULL = {"repeats": 7, "gemm": 2048, "basicsr_steps": 5}
QUICK = {"repeats": 2, "gemm": 64, "basicsr_steps": 1}
PASSES = ("forward", "input gradient", "weight + bias gradient")


bench_train = load_script("bench_train")  # its BasicSR side, sizes and peak conv


def conv_passes(sizes: dict, channels_last: bool, grouped: bool = False, dtype=None) -> dict:
    """{pass: a function running it once} for the 64 -> 64 body conv at `sizes`' batch (bench_train's,
    or bench_nsr_train's), in one format; `grouped`: NSR's per-sample conv instead, groups = batch
    on the folded batch ((H, W, B, C) memory order in channels_last, as NSR folds it)."""
    import torch
    from torch.nn import functional as F
    dtype = dtype or torch.float32
    b, s, c = sizes["batch"], sizes["patch"], sizes["num_feat"]
    g = torch.Generator().manual_seed(0)
    x, grad = (torch.randn(b, c, s, s, generator=g).to(dtype) for _ in range(2))
    groups = b if grouped else 1
    w = torch.randn(groups * c, c, 3, 3, generator=g).to(dtype)
    bias = torch.randn(groups * c, generator=g).to(dtype)
    if grouped:
        x, grad = (t.permute(2, 3, 0, 1).reshape(1, s, s, b * c).permute(0, 3, 1, 2) if channels_last
                   else t.reshape(1, b * c, s, s) for t in (x, grad))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x, grad, w = (t.contiguous(memory_format=fmt) for t in (x, grad, w))

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(grad, x, w, [w.shape[0]], [1, 1], [1, 1], [1, 1],
                                                           False, [0, 0], groups, mask)
    return {"forward": lambda: F.conv2d(x, w, bias, 1, 1, groups=groups),
            "input gradient": backward([True, False, False]),
            "weight + bias gradient": backward([False, True, True])}


def reference_ops(train_sizes: dict, gemm: int) -> dict:
    """bench_train's peak conv (channels_last inference) and a square fp32 GEMM."""
    import torch
    a, b = torch.rand(gemm, gemm), torch.rand(gemm, gemm)
    return {"peak conv": bench_train.peak_conv_op(train_sizes["peak_shape"]), "GEMM": lambda: torch.mm(a, b)}


def time_interleaved(ops: dict, repeats: int) -> dict:
    """Median seconds of each op; one call of every op per turn (after a warm-up turn), so a drift of
    the machine reaches all of them alike."""
    times = {name: [] for name in ops}
    for turn in range(repeats + 1):
        for name, op in ops.items():
            t0 = time.perf_counter()
            op()
            if turn:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def training_step_flops(net, lq_shape, gt_shape) -> int:
    """FLOPs (FlopCounterMode: convolutions and matrix products, 2 per multiply-add) of one forward
    and backward of an L1 loss: the arithmetic of a training step, whatever runs it."""
    import torch
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        F.l1_loss(net(torch.rand(lq_shape)), torch.rand(gt_shape)).backward()
    return counter.get_total_flops()


def basicsr_step_seconds(train_sizes: dict, steps: int, timeout: float = 900) -> float:
    """Median wall time of BasicSR's EDSR training step: bench_train's BasicSR side, own process."""
    spec = {"arch": "EDSR", "sizes": train_sizes, "ema_decay": 0.0, "threads": None, "label": "basicsr",
            **bench_train.SIDES["basicsr"][0]}
    worker = bench_train.WorkerProcess(spec, timeout)
    try:
        return statistics.median(worker.ask("train", steps)["times"])
    finally:
        worker.close()


def speedup_bound(basicsr_step_s: float, step_flops: float, flops_per_s: float) -> float:
    """BasicSR's step time over that of a step doing only its conv FLOPs at `flops_per_s`."""
    return basicsr_step_s / (step_flops / flops_per_s)


def report(train_sizes: dict, repeats: int, seconds: dict, refs: dict, basicsr_s: float, step_flops: int,
           gemm: int, threads: int, started: str) -> list:
    b, s, channels = train_sizes["batch"], train_sizes["patch"], train_sizes["num_feat"]
    flops = 2 * b * channels * channels * 9 * s * s
    best = sum(min(seconds["nchw"][p], seconds["cl"][p]) for p in PASSES)
    best_rate = 3 * flops / best
    peak_rate = bench_train.peak_conv_flops(train_sizes["peak_shape"]) / refs["peak conv"]
    lines = [f"Run {started}, torch threads {threads}, {cpu_name()}, this process's allocator tuned "
             f"(tune_allocator).", "",
             f"Body conv of EDSR-baseline x2 at bench_train's batch: {b}x{channels}x{s}x{s}, {channels} -> "
             f"{channels}, 3x3, fp32; {repeats} interleaved turns, medians.", "",
             "| pass | NCHW ms | channels_last ms | NCHW GFLOP/s | channels_last GFLOP/s | faster |",
             "|---|---:|---:|---:|---:|---|"]
    for name in (*PASSES, "all three"):
        if name == "all three":
            nchw, cl, work = (sum(seconds["nchw"][p] for p in PASSES), sum(seconds["cl"][p] for p in PASSES),
                              3 * flops)
        else:
            nchw, cl, work = seconds["nchw"][name], seconds["cl"][name], flops
        lines.append(f"| {name} | {1e3 * nchw:.1f} | {1e3 * cl:.1f} | {work / nchw / 1e9:.1f} | "
                     f"{work / cl / 1e9:.1f} | {'NCHW' if nchw <= cl else 'channels_last'} |")
    lines += ["", f"Each pass in its faster format: {best_rate / 1e9:.1f} GFLOP/s over the three passes. Peak conv "
              f"(channels_last inference, {'x'.join(map(str, train_sizes['peak_shape']))}): "
              f"{peak_rate / 1e9:.1f} GFLOP/s. GEMM {gemm}^3 fp32: {2 * gemm ** 3 / refs['GEMM'] / 1e9:.1f} GFLOP/s.",
              f"BasicSR's EDSR x2 training step (own process, NCHW, default allocator): {1e3 * basicsr_s:.0f} ms; "
              f"its convolutions and matrix products: {step_flops / 1e9:.1f} GFLOP, "
              f"{step_flops / basicsr_s / 1e9:.1f} GFLOP/s over the whole step.", "",
              "Upper bounds on restore's step speed / BasicSR's, for a step that does nothing but its "
              "convolutions:",
              f"- every conv pass at the body conv's rate in its faster format: "
              f"{speedup_bound(basicsr_s, step_flops, best_rate):.2f}x",
              f"- every conv pass at the peak conv's rate: {speedup_bound(basicsr_s, step_flops, peak_rate):.2f}x"]
    return lines


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 turns: a smoke run")
    p.add_argument("--repeats", type=int, help="interleaved turns (default 7)")
    p.add_argument("--out", help="also write the report to this results file")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from restore.benchmark.basicsr_reference import basicsr_dir
    if basicsr_dir() is None:
        print("error: basicsr is not installed (pip install --no-deps --no-build-isolation basicsr==1.4.2)",
              file=sys.stderr)
        return 2
    tune_allocator()  # before torch allocates: restore-train's setting
    import torch

    from restore.archs import build_network
    sizes = dict(QUICK if args.quick else FULL)
    train_sizes = bench_train.QUICK if args.quick else bench_train.FULL
    repeats = args.repeats or sizes["repeats"]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    basicsr_s = basicsr_step_seconds(train_sizes, sizes["basicsr_steps"])
    b, s, scale = train_sizes["batch"], train_sizes["patch"], train_sizes["scale"]
    torch.manual_seed(0)
    net = build_network(bench_train.network_opt("EDSR", train_sizes))
    step_flops = training_step_flops(net, (b, 3, s, s), (b, 3, s * scale, s * scale))
    ops = {}
    for fmt in ("nchw", "cl"):
        ops.update({(fmt, name): op for name, op in conv_passes(train_sizes, fmt == "cl").items()})
    ops.update(reference_ops(train_sizes, sizes["gemm"]))
    medians = time_interleaved(ops, repeats)
    seconds = {fmt: {name: medians[(fmt, name)] for name in PASSES} for fmt in ("nchw", "cl")}
    refs = {name: medians[name] for name in ("peak conv", "GEMM")}
    lines = report(train_sizes, repeats, seconds, refs, basicsr_s, step_flops, sizes["gemm"],
                   torch.get_num_threads(), started)
    publish_results(lines, args.out, ["python", "scripts/bench_conv_ops.py", *(argv if argv is not None else sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
