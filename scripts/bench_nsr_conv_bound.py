"""How close NSR's training step can come to the same-width WDSR-A's on this CPU: a bound from the convs.

NSR and WDSR-A of bench_nsr_train.py are the same network but for their block convs: WDSR-A's are
plain convs, NSR's are sparse-group convs, whose per-sample kernels run as one conv with groups =
batch (the batch folded into the channels). Everything else NSR adds (the gates, the kernel mixing,
weight norm over k candidate banks) only makes its step longer. So while the per-sample conv runs as
oneDNN's grouped conv (formulations `grouped` and `fused`; `loop` and `unfold` were slower still on
every CPU measured), NSR's step takes at least WDSR-A's step plus, for each block conv, the time the
grouped conv passes take over the plain conv passes they replace. This script measures, in one process:

- the three passes (forward, input gradient, weight + bias gradient) of the block conv at
  bench_nsr_train's batch (16 x 64 x 48 x 48, 64 -> 64, 3x3), plain and grouped (groups = 16 on the
  folded batch; in channels_last the folded batch is NSR's (H, W, B, C) order), in NCHW and
  channels_last, in fp32 and (--bf16) bf16;
- WDSR-A's whole training step in channels_last (bench_nsr_train's side, its faster format on the
  AVX-512 CPUs measured), in the same interleaved turns, so that a drift of the machine reaches all;

and prints the lower bound on NSR's step / WDSR-A's: (WDSR-A step + n x (grouped passes - plain
passes)) / WDSR-A step, n = the number of sparse-group convs in NSR, the grouped passes each in its
faster format (no layout conversions counted: the bound is generous to NSR), the plain ones in
channels_last, as WDSR-A ran them.

    python scripts/bench_nsr_conv_bound.py --bf16 --out results/bench_train/latest/nsr_conv_bound.txt
    python scripts/bench_nsr_conv_bound.py --quick     # tiny sizes: a smoke run
"""
import argparse
import sys
import time

from restore.utils.allocator import tune_allocator
from restore.utils.machine import cpu_name, publish_results
from restore.utils.scripts import load_script

FORMATS = ("nchw", "cl")


bench_nsr_train = load_script("bench_nsr_train")
bench_conv_ops = load_script("bench_conv_ops")  # the conv passes and the interleaved timing
PASSES = bench_conv_ops.PASSES


def step_ratio_bound(wdsr_step_s: float, n_convs: int, grouped_s: float, plain_s: float) -> float:
    """The lowest NSR step / WDSR-A step the convs allow: WDSR-A's step with each of its n block convs'
    passes (plain_s) replaced by the grouped conv's (grouped_s)."""
    return (wdsr_step_s + n_convs * (grouped_s - plain_s)) / wdsr_step_s


def measure(sizes: dict, precision: str, repeats: int) -> dict:
    """{(kind, format, pass) or "WDSR step": median seconds} for one precision."""
    import torch
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    ops = {}
    for kind in ("plain", "grouped"):
        for fmt in FORMATS:
            for name, op in bench_conv_ops.conv_passes(sizes, fmt == "cl", kind == "grouped", dtype).items():
                ops[(kind, fmt, name)] = op
    wdsr = bench_nsr_train.Side("WDSR cl", "WDSR", sizes, True, None, precision == "bf16")
    g = torch.Generator().manual_seed(1)
    b, p, s = sizes["batch"], sizes["patch"], sizes["scale"]
    batch = {"lq": torch.rand(b, 3, p, p, generator=g), "gt": torch.rand(b, 3, p * s, p * s, generator=g)}
    wdsr.step(batch)  # oneDNN's primitives made before the turns
    ops["WDSR step"] = lambda: wdsr.step(batch)
    return bench_conv_ops.time_interleaved(ops, repeats)


def report(sizes: dict, n_convs: int, medians: dict, repeats: int, started: str) -> list:
    import torch
    b, s, c = sizes["batch"], sizes["patch"], sizes["num_feat"]
    lines = [f"Run {started}, torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}, "
             f"allocator tuned (tune_allocator).", "",
             f"Block conv at bench_nsr_train's batch: {b}x{c}x{s}x{s}, {c} -> {c}, 3x3; grouped: groups = {b} on "
             f"the folded batch. WDSR-A: bench_nsr_train's step ({sizes['num_block']} blocks, batch {b} of "
             f"{sizes['patch']}x{sizes['patch']} LR, x{sizes['scale']}, L1 + Adam), channels_last. {repeats} "
             f"interleaved turns, medians; NSR has {n_convs} sparse-group convs.", ""]
    for precision, seconds in medians.items():
        lines += [f"## {precision}", "",
                  "| pass | plain NCHW ms | plain channels_last ms | grouped NCHW ms | grouped channels_last ms |",
                  "|---|---:|---:|---:|---:|"]
        for name in (*PASSES, "all three"):
            names = PASSES if name == "all three" else (name,)
            cells = [sum(seconds[(kind, fmt, n)] for n in names) for kind in ("plain", "grouped") for fmt in FORMATS]
            lines.append(f"| {name} | " + " | ".join(f"{1e3 * v:.2f}" for v in cells) + " |")
        plain = sum(seconds[("plain", "cl", n)] for n in PASSES)
        grouped = sum(min(seconds[("grouped", fmt, n)] for fmt in FORMATS) for n in PASSES)
        step = seconds["WDSR step"]
        lines += ["", f"WDSR-A step, channels_last: {1e3 * step:.1f} ms. Block conv passes: plain channels_last "
                      f"{1e3 * plain:.2f} ms, grouped each pass in its faster format {1e3 * grouped:.2f} ms "
                      f"({grouped / plain:.2f}x).",
                  f"Lower bound on NSR's step / WDSR-A's ({precision}): "
                  f"{step_ratio_bound(step, n_convs, grouped, plain):.2f}x", ""]
    return lines


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 turns: a smoke run")
    p.add_argument("--bf16", action="store_true", help="also in bf16 (the convs' dtype under bf16 autocast)")
    p.add_argument("--repeats", type=int, help="interleaved turns (default 9, --quick 2)")
    p.add_argument("--out", help="also write the report to this results file")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()  # before torch allocates: restore-train's setting
    from restore.archs import build_network
    from restore.archs.layers.sparse_group_conv import SparseGroupConv2d
    sizes = dict(bench_nsr_train.QUICK if args.quick else bench_nsr_train.FULL)
    repeats = args.repeats or (2 if args.quick else 9)
    nsr = build_network({"type": "NSR", "num_feat": sizes["num_feat"], "num_block": sizes["num_block"],
                         "upscale": sizes["scale"], "width_mult": 1, "k": sizes["k"], "d": sizes["d"]})
    n_convs = sum(isinstance(m, SparseGroupConv2d) for m in nsr.modules())
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    medians = {p: measure(sizes, p, repeats) for p in (("fp32", "bf16") if args.bf16 else ("fp32",))}
    lines = report(sizes, n_convs, medians, repeats, started)
    publish_results(lines, args.out, ["python", "scripts/bench_nsr_conv_bound.py", *(argv if argv is not None else sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
