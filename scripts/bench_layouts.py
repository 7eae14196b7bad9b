"""Training step in NCHW vs channels_last, per network family: the evidence for `channels_last: auto`.

For each network (the sizes of its option files in options/train/), one training step -- forward,
L1 loss, backward, Adam -- on random tensors, in NCHW and in channels_last from the same weights.
Both formats take turns, one step each per round; the medians of each step's process CPU time
(steadier than wall time on a shared machine) and of wall time are reported, with the speed-up of
channels_last and what `train.channels_last: auto` picks for the network on this device.
restore-train's allocator tuning is applied, as in training.

    python scripts/bench_layouts.py                 # all networks, ~2 min on 2 cores
    python scripts/bench_layouts.py --only EDSR NSR-SR --rounds 9 --bf16
"""
import argparse
import copy
import statistics
import sys
import time


from restore.utils.allocator import tune_allocator

TUNED = tune_allocator()  # before torch allocates anything

import torch

from restore.archs import build_network
from restore.models.memory_format import choose_channels_last

CSC_FIRST = {"type": "csc", "where": "first", "n_iter": 3, "lmbda": 0.1, "nonneg": True}
# name: (network_g, batch, LR patch, channels, scale) -- each as in its option files
NETWORKS = {
    "EDSR": ({"type": "EDSR", "num_feat": 64, "num_block": 16, "upscale": 2}, 16, 48, 3, 2),
    "WDSR": ({"type": "WDSR", "num_feat": 32, "num_block": 8, "upscale": 2}, 16, 48, 3, 2),
    "DnCNN": ({"type": "DnCNN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 32, "num_layer": 8,
               "use_bn": False, "residual": True}, 8, 40, 1, 1),
    "DnCNN-CSC": ({"type": "DnCNN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 32, "num_layer": 8,
                   "use_bn": False, "residual": True, "conv": CSC_FIRST}, 8, 40, 1, 1),
    "UNet-blurpool": ({"type": "UNet", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 16, "num_level": 3,
                       "residual": True, "downsample": {"type": "blurpool", "base": "max", "filter_size": 5},
                       "up_mode": "transposed", "up_blur": 3}, 8, 64, 1, 1),
    "NSR-SR": ({"type": "NSR", "num_feat": 64, "num_block": 16, "upscale": 2, "k": 4, "d": 16}, 16, 48, 3, 2),
    "NSR-DN": ({"type": "NSR", "num_in_ch": 1, "num_out_ch": 1, "upscale": 1, "num_feat": 32, "num_block": 8,
                "k": 4, "d": 8}, 16, 48, 1, 1),
}


def training_step(net, lq, gt, amp_dtype=None):
    """A closure running one L1 + Adam step of `net` on (lq, gt), under autocast when amp_dtype."""
    optimizer = torch.optim.Adam(net.parameters(), 1e-4, betas=(0.9, 0.99))

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=amp_dtype, enabled=amp_dtype is not None):
            out = net(lq)
        torch.nn.functional.l1_loss(out.float(), gt).backward()
        optimizer.step()
    return step


def measure(name: str, rounds: int, amp_dtype=None) -> dict:
    net_opt, batch, patch, channels, scale = NETWORKS[name]
    torch.manual_seed(0)
    base = build_network(net_opt)
    lq, gt = torch.rand(batch, channels, patch, patch), torch.rand(batch, channels, patch * scale, patch * scale)
    steps = {}
    for fmt, memory_format in (("nchw", torch.contiguous_format), ("cl", torch.channels_last)):
        net = copy.deepcopy(base).to(memory_format=memory_format)
        steps[fmt] = training_step(net, lq.contiguous(memory_format=memory_format),
                                   gt.contiguous(memory_format=memory_format), amp_dtype)
        steps[fmt]()  # oneDNN builds its primitives on the first call
    cpu, wall = {fmt: [] for fmt in steps}, {fmt: [] for fmt in steps}
    for r in range(rounds):
        for fmt in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            c0, t0 = time.process_time(), time.perf_counter()
            steps[fmt]()
            wall[fmt].append(time.perf_counter() - t0)
            cpu[fmt].append(time.process_time() - c0)
    med = {f"{kind}_{fmt}": statistics.median(v[fmt]) for kind, v in (("cpu", cpu), ("wall", wall)) for fmt in steps}
    auto, _ = choose_channels_last(base, tuple(lq.shape), amp_dtype)  # restore-train's pick on this machine
    return {**med, "speedup_cpu": med["cpu_nchw"] / med["cpu_cl"], "speedup_wall": med["wall_nchw"] / med["wall_cl"],
            "auto": "channels_last" if auto else "NCHW", "batch": batch, "patch": patch}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=NETWORKS, help="these networks only")
    p.add_argument("--rounds", type=int, default=5, help="steps per format per network (default 5)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--bf16", action="store_true", help="train under bf16 autocast (train.amp: bf16)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# bench_layouts  {time.strftime('%Y-%m-%d %H:%M:%S')}  torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, allocator {'tuned' if TUNED else 'default'}, "
          f"{args.rounds} rounds, medians, {'bf16 autocast' if args.bf16 else 'fp32'}")
    print(f"{'network':<14} {'batch x LR':>10} {'NCHW ms':>9} {'cl ms':>9} {'cl speed-up':>11} "
          f"{'(wall)':>7}  auto picks")
    for name in args.only or NETWORKS:
        r = measure(name, args.rounds, torch.bfloat16 if args.bf16 else None)
        print(f"{name:<14} {r['batch']:>4} x {r['patch']:<3} {1e3 * r['cpu_nchw']:>9.1f} {1e3 * r['cpu_cl']:>9.1f} "
              f"{r['speedup_cpu']:>10.2f}x {r['speedup_wall']:>6.2f}x  {r['auto']}", flush=True)
    print("ms: median process CPU time per training step (all threads); speed-up > 1: channels_last is faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
