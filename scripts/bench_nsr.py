"""CPU inference time of NSR against WDSR-A of the same width and of the same parameter count.

Batch 1, a random LR input (256x256 by default), x2, channels_last, torch.inference_mode, after a
warm-up; every model runs once per round, rounds interleaved, and the median per model is reported,
with the ratios from this one run (absolute times drift between runs on shared machines, ratios
much less). Also times NSR's tiled inference (gate_region: tile, the reference's 48px tiles).

The memory allocator changes these numbers a lot (see the project's CPU notes): by default glibc
returns large buffers to the OS after every forward; --pinned-malloc keeps them on the heap
(mallopt M_MMAP_THRESHOLD / M_TRIM_THRESHOLD, as MALLOC_MMAP_THRESHOLD_=2000000000
MALLOC_TRIM_THRESHOLD_=4000000000 would). The setting used is printed.

    python scripts/bench_nsr.py [--size 256] [--repeats 5] [--pinned-malloc] [--nchw] [--threads N]
                                [--table results/nsr/speed.md]

--table also writes the report to a results file whose first line names the command and the machine
(docs/nsr.md quotes it).
"""
import argparse
import os
import statistics
import sys
import time

import torch


from restore.archs import build_network
from restore.utils.allocator import tune_allocator
from restore.utils.flops import count_macs, count_params
from restore.utils.machine import write_results_file


def allocator_setting(pinned: bool) -> str:
    preload = os.environ.get("LD_PRELOAD", "")
    for lib in ("jemalloc", "tcmalloc", "mimalloc"):
        if lib in preload:
            return f"{lib} (LD_PRELOAD)"
    if pinned:
        return "glibc, large buffers kept on the heap (mallopt, --pinned-malloc)"
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return ("glibc with MALLOC_MMAP_THRESHOLD_=" + os.environ.get("MALLOC_MMAP_THRESHOLD_", "-")
                + " MALLOC_TRIM_THRESHOLD_=" + os.environ.get("MALLOC_TRIM_THRESHOLD_", "-"))
    return "glibc default (buffers returned to the OS after each call)"


def same_params_width(target: int, scale: int) -> int:
    """num_feat of a width-1 WDSR-A whose parameter count is closest to `target`."""
    def params(feat):
        with torch.device("meta"):  # no initialisation arithmetic
            return count_params(build_network({"type": "WDSR", "num_feat": feat, "width_mult": 1,
                                               "upscale": scale}))
    return min(range(64, 257, 2), key=lambda feat: abs(params(feat) - target))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="LR input height and width (default 256)")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--pinned-malloc", action="store_true", help="keep large buffers on the heap")
    p.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
    p.add_argument("--no-tiles", action="store_true", help="skip NSR's tiled inference")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--table", help="also write the report to this results file (markdown)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pinned = tune_allocator() if args.pinned_malloc else False  # restore-train's setting
    torch.manual_seed(0)

    nsr = {"type": "NSR", "upscale": args.scale}
    nsr_params = count_params(build_network(nsr))
    feat = same_params_width(nsr_params, args.scale)
    configs = {
        "NSR (64 feat, k4 d16)": nsr,
        "WDSR-A same width (64 feat)": {"type": "WDSR", "num_feat": 64, "width_mult": 1, "upscale": args.scale},
        f"WDSR-A same params ({feat} feat)": {"type": "WDSR", "num_feat": feat, "width_mult": 1,
                                              "upscale": args.scale},
    }
    if not args.no_tiles:
        configs["NSR tiled (48px tiles)"] = {**nsr, "gate_region": "tile"}
    memory_format = torch.contiguous_format if args.nchw else torch.channels_last
    shape = (1, 3, args.size, args.size)
    x = torch.rand(shape).contiguous(memory_format=memory_format)
    models, macs = {}, {}
    for name, opt in configs.items():
        models[name] = build_network(opt).eval().to(memory_format=memory_format)
        macs[name] = count_macs(models[name], shape)

    report = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{'NCHW' if args.nchw else 'channels_last'}, batch 1, {args.size}x{args.size} LR, x{args.scale}",
              f"allocator: {allocator_setting(pinned)}",
              f"load average before: {os.getloadavg()[0]:.2f} (other processes share this CPU)"]
    print("\n".join(report))
    times = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():  # warm-up
            model(x)
        for _ in range(args.repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    report.append(f"load average after: {os.getloadavg()[0]:.2f}")
    print(report[-1] + "\n")
    results = ["| model | params | GMACs | median ms | min ms | GFLOP/s |", "|---|---|---|---|---|---|"]
    for name, m in medians.items():
        g = macs[name]["macs"] / 1e9
        results.append(f"| {name} | {macs[name]['params']:,} | {g:.1f} | {m * 1e3:.0f} | "
                       f"{min(times[name]) * 1e3:.0f} | {2 * g / m:.0f} |")
    names = list(medians)
    results += ["", f"- NSR / WDSR-A same width: {medians[names[0]] / medians[names[1]]:.3f}x",
                f"- NSR / WDSR-A same params: {medians[names[0]] / medians[names[2]]:.3f}x"]
    if not args.no_tiles:
        results.append(f"- NSR tiled / NSR whole image: {medians[names[3]] / medians[names[0]]:.3f}x")
    print("\n".join(results))
    if args.table:
        command = ["python", "scripts/bench_nsr.py", *(argv if argv is not None else sys.argv[1:])]
        write_results_file(args.table, command, [*(f"- {line}" for line in report), "", *results])
    return 0


if __name__ == "__main__":
    sys.exit(main())
