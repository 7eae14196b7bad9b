"""Blur-pool experiment: a small U-Net denoiser (sigma 25) with strided-conv, max-pool or blur-pool
downsampling, each trained with the same number of iterations through restore's trainer, then
evaluated on the test set for quality (PSNR/SSIM), shift-equivariance and CPU time per image.

Variants (all from options/train/UNet/; the blur-pool ones blur after upsampling too):
    stride          conv 3x3 stride 2 + ReLU, transposed-conv upsampling
    maxpool         2x2 max pool
    maxpool_upblur  max pool, with a [1 2 1] blur after each upsampling (isolates the decoder blur)
    blurpool3/5/7   max pool at stride 1 + binomial blur-pool of size 3/5/7, up_blur 3
    blurpool5_noupblur  blur-pool 5 with un-blurred upsampling (isolates the encoder blur)

Equivariance (restore/evaluation/shift_equivariance.py) uses translated crops (the nets pad with
zeros), a centred crop of each test image and `crop_border` pixels off every side:
    eq_res     EQ-PSNR pooled over the 15 non-zero shift residues modulo 4 (2 downsamplings)
    eq_rand    EQ-PSNR over 8 random shifts in [-16, 16]^2 (the same for every image and net)
    eq_period  EQ-PSNR over shifts that are multiples of 4 (a sanity check: exact but for float error)
    dpsnr      mean |PSNR(f(x), gt) - PSNR(f(T x), T gt)| over the residues
Time per image: batch 1, 481x321 gray (a BSD68 image), the variants' forwards interleaved over
`--time-rounds` rounds after a warm-up and the median taken, so load changes on a shared machine hit
every variant alike (times during the evaluation loop are also recorded, as eval_ms_per_image).
`--timing-only` skips training (untrained nets cost the same).

    python scripts/exp_blurpool.py --iters 500 --threads 1 [--variants stride blurpool5] [--out DIR] [--table FILE]
Writes DIR/results.md and DIR/results.json (default experiments/exp_blurpool), and with --table the
same table to FILE (the results file docs/blurpool.md quotes).
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch


from restore.archs import build_network
from restore.archs.unet_arch import _up_blur_size
from restore.cli.common import run_cli
from restore.data import build_dataloader, build_dataset
from restore.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from restore.evaluation.shift_equivariance import random_shifts, residue_shifts, shift_equivariance
from restore.train import train
from restore.utils.checkpoint import load_safely
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes, tensor2img
from restore.utils.flops import count_params
from restore.utils.machine import made_by
from restore.utils.options import parse_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPT_DIR = os.path.join(ROOT, "options", "train", "UNet")
VARIANTS = {
    "stride": ("train_UNet_DN25_gray_stride.yml", []),
    "maxpool": ("train_UNet_DN25_gray_maxpool.yml", []),
    "maxpool_upblur": ("train_UNet_DN25_gray_maxpool.yml", ["network_g.up_blur=3"]),
    "blurpool3": ("train_UNet_DN25_gray_blurpool.yml", ["network_g.downsample.filter_size=3"]),
    "blurpool5": ("train_UNet_DN25_gray_blurpool.yml", ["network_g.downsample.filter_size=5"]),
    "blurpool7": ("train_UNet_DN25_gray_blurpool.yml", ["network_g.downsample.filter_size=7"]),
    "blurpool5_noupblur": ("train_UNet_DN25_gray_blurpool.yml", ["network_g.downsample.filter_size=5",
                                                                  "network_g.up_blur=false"]),
}
COLOR = {"gray": [], "rgb": ["datasets.train.dataroot_gt=${data_root}/BSD200", "datasets.train.name=BSD200",
                             "datasets.train.color=rgb", "datasets.val.dataroot_gt=${data_root}/CBSD68",
                             "datasets.val.name=CBSD68", "datasets.val.color=rgb",
                             "network_g.num_in_ch=3", "network_g.num_out_ch=3"]}


def build_parser():
    p = argparse.ArgumentParser(prog="exp_blurpool", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--iters", type=int, default=500, help="training iterations per variant (same for all)")
    p.add_argument("--color", choices=list(COLOR), default="gray",
                   help="gray: Train400 -> BSD68; rgb: BSD200 -> CBSD68")
    p.add_argument("--max-images", type=int, help="test only the first N images (smoke runs)")
    p.add_argument("--eq-images", type=int, default=20, help="test images used for equivariance (the first N)")
    p.add_argument("--eq-crop", type=int, default=128, help="centred crop for equivariance")
    p.add_argument("--crop-border", type=int, default=16)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is much faster than 2 on a shared 2-core machine)")
    p.add_argument("--time-rounds", type=int, default=7, help="interleaved timing rounds")
    p.add_argument("--timing-runs", type=int, default=2,
                   help="separate timing runs; ms/img shows the range of their medians")
    p.add_argument("--timing-only", action="store_true", help="only time the variants' forwards")
    p.add_argument("--out", default=os.path.join(ROOT, "experiments", "exp_blurpool"))
    p.add_argument("--table", metavar="FILE",
                   help="also write the results table here, headed by the command and the machine "
                        "(results/blurpool/unet_dn25.md is the one docs/blurpool.md quotes)")
    p.add_argument("--data-root", help="folder holding the datasets")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def train_variant(name: str, args) -> tuple[dict, dict, float, str]:
    file, overrides = VARIANTS[name]
    overrides = overrides + COLOR[args.color] + [
        f"name=exp_blurpool_{args.color}_{name}", f"train.total_iter={args.iters}",
        f"train.scheduler.milestones=[{int(args.iters * 0.8)}]", f"path.experiments_root={args.out}",
        f"logger.save_checkpoint_freq={args.iters}", f"logger.print_freq={max(args.iters // 5, 1)}"]
    opt = parse_options(os.path.join(OPT_DIR, file), is_train=True, overrides=overrides, data_root=args.data_root)
    val_opt = opt["datasets"].pop("val")  # evaluated below, once, with the equivariance metrics
    start = time.time()
    result = train(opt)
    return opt, val_opt, time.time() - start, result["experiment"]


def evaluate(net, val_opt: dict, args) -> dict:
    loader = build_dataloader(build_dataset(val_opt, "val"), val_opt, "val")
    shift_sets = {"eq_res": residue_shifts(4), "eq_rand": random_shifts(8, 16, seed=0),
                  "eq_period": [(4, 0), (0, 4), (8, -4), (-12, 8)]}
    psnr, ssim, times, eq = [], [], [], {k: [] for k in (*shift_sets, "dpsnr")}
    with torch.inference_mode():
        for i, batch in enumerate(loader):
            if args.max_images is not None and i >= args.max_images:
                break
            start = time.perf_counter()
            out = net(batch["lq"])
            times.append(time.perf_counter() - start)
            sr, gt = tensor2img(out), tensor2img(batch["gt"])
            psnr.append(calculate_psnr(sr, gt))
            ssim.append(calculate_ssim(sr, gt))
            if i >= args.eq_images:
                continue
            lq, gt_t = batch["lq"], batch["gt"]
            h, w = lq.shape[-2:]
            y, x = (h - args.eq_crop) // 2, (w - args.eq_crop) // 2
            lq, gt_t = (t[..., y:y + args.eq_crop, x:x + args.eq_crop] for t in (lq, gt_t))
            for key, shifts in shift_sets.items():
                r = shift_equivariance(net, lq, 1, shifts, False, gt_t if key == "eq_res" else None,
                                       args.crop_border)
                eq[key].append(r["eq_psnr"])
                if key == "eq_res":
                    eq["dpsnr"].append(r["dpsnr_gt"])
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "images": len(psnr),
            "eval_ms_per_image": 1000 * statistics.median(times), **{k: float(np.mean(v)) for k, v in eq.items()}}


def variant_net(name: str, args):
    file, overrides = VARIANTS[name]
    opt = parse_options(os.path.join(OPT_DIR, file), is_train=True, overrides=overrides + COLOR[args.color],
                        data_root=args.data_root)
    return build_network(opt["network_g"]).eval(), opt


def time_variants(nets: dict, channels: int, rounds: int) -> dict:
    """Median ms per 481x321 forward of each net, the nets interleaved round by round."""
    x = torch.rand(1, channels, 321, 481)
    times = {name: [] for name in nets}
    with torch.inference_mode():
        for net in nets.values():
            net(x)  # warm-up
        for _ in range(rounds):
            for name, net in nets.items():
                start = time.perf_counter()
                net(x)
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def downsample_label(d: dict) -> str:
    if d["type"] == "stride":
        k = d.get("kernel_size", 3)
        return f"conv {k}x{k} s2"
    if d["type"] == "maxpool":
        return "max 2x2"
    return f"blurpool {d.get('base', 'max')} f{d['filter_size']}"


def ms_cell(times: list) -> str:
    """The medians of the timing runs: one number, or their range (load drifts between runs)."""
    low, high = min(times), max(times)
    return f"{low:.0f}" if round(low) == round(high) else f"{low:.0f}–{high:.0f}"


def markdown(rows: list, args, header: str) -> str:
    lines = [header, "", f"# Blur-pool U-Net, sigma 25 {args.color}, {args.iters} iterations each", "",
             "| variant | downsample | up_blur | params | PSNR | SSIM | eq_res | eq_rand | eq_period | dPSNR-gt "
             "| ms/img |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        size = _up_blur_size(r["up_blur"])
        up_blur = size if size > 1 else "–"
        lines.append(f"| {r['variant']} | {downsample_label(r['downsample'])} | {up_blur} | {r['params']:,} | "
                     f"{r['psnr']:.3f} | {r['ssim']:.4f} | {r['eq_res']:.2f} | {r['eq_rand']:.2f} | "
                     f"{r['eq_period']:.1f} | {r['dpsnr']:.4f} | {ms_cell(r['ms_per_image'])} |")
    lines += ["", "Training wall-clock per variant: " + ", ".join(f"{r['variant']} {r['train_s']:.0f} s" for r in rows)
              + f". ms/img: the medians of {args.timing_runs} interleaved timing run(s) of {args.time_rounds} rounds."]
    return "\n".join(lines) + "\n"


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    channels = 1 if args.color == "gray" else 3
    if args.timing_only:
        nets = {name: variant_net(name, args)[0] for name in args.variants}
        for name, ms in time_variants(nets, channels, args.time_rounds).items():
            print(f"{name}: {ms:.0f} ms per 481x321 image ({count_params(nets[name])} params)")
        return 0
    rows, nets = [], {}
    for name in args.variants:
        opt, val_opt, train_s, exp_dir = train_variant(name, args)
        net = build_network(opt["network_g"])
        ckpt = load_safely(os.path.join(exp_dir, "models", "net_g_latest.pth"))
        net.load_state_dict(ckpt["params"])
        net.eval()
        nets[name] = net
        start = time.time()
        metrics = evaluate(net, val_opt, args)
        rows.append({"variant": name, "downsample": opt["network_g"]["downsample"],
                     "up_blur": opt["network_g"]["up_blur"], "params": count_params(net),
                     "train_s": train_s, "eval_s": time.time() - start, **metrics})
        print(json.dumps(rows[-1]), flush=True)
    if not rows:
        raise RestoreError("no variants to run")
    timings = [time_variants(nets, channels, args.time_rounds) for _ in range(args.timing_runs)]
    for row in rows:
        row["ms_per_image"] = [t[row["variant"]] for t in timings]
    md = markdown(rows, args, made_by("python", "scripts/exp_blurpool.py", *argv))
    atomic_write_bytes(os.path.join(args.out, "results.md"), md.encode())
    if args.table:
        os.makedirs(os.path.dirname(os.path.abspath(args.table)), exist_ok=True)
        atomic_write_bytes(args.table, md.encode())
    atomic_write_bytes(os.path.join(args.out, "results.json"), json.dumps(rows, indent=1).encode())
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
