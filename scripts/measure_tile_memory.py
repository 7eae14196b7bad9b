"""Peak memory (RSS) of a tiled x4 restore-infer run on a large image, measured in a subprocess.

    python scripts/measure_tile_memory.py                      # 2000x2000 input, EDSR 64x4, x4, tile 128
    python scripts/measure_tile_memory.py --size 4000 3000 --tile 256 --limit-gb 3

The parent writes a smooth random RGB PNG and a random-weight EDSR checkpoint to a temp folder, then
runs restore-infer in a fresh Python process, which reports its own peak RSS
(resource.getrusage(RUSAGE_SELF).ru_maxrss) after reading, running and writing the image. A second
process that imports the same modules and builds the net without running it gives the baseline
(Python + torch). Exits 1 when the peak is above --limit-gb.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from restore.archs import build_network
from restore.utils.checkpoint import save_network_file
from restore.utils.img_io import imwrite

CHILD = """
import json, resource, sys, time
from restore.cli.infer import main
from restore.inference.loading import load_model
args = {args!r}
start = time.perf_counter()
if args:
    code = main(args)
else:  # baseline: everything but the run itself
    load_model(ckpt=sys.argv[1], arch="EDSR", arch_opts=sys.argv[2:])
    code = 0
print(json.dumps({{"code": code, "seconds": time.perf_counter() - start,
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b, f = rng.uniform(0.5, 3, 3)
        img[:, :, c] = 0.5 + 0.4 * np.sin(xx / (40 * a) + f) * np.cos(yy / (35 * b))
    return (img.clip(0, 1) * 255).round().astype(np.uint8)


def run_child(args: list, extra: list) -> dict:
    code = CHILD.format(args=args)
    out = subprocess.run([sys.executable, "-c", code, *extra], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"child failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", nargs=2, type=int, default=[2000, 2000], metavar=("H", "W"))
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--tile-pad", type=int, default=16)
    p.add_argument("--num-feat", type=int, default=64)
    p.add_argument("--num-block", type=int, default=4)
    p.add_argument("--limit-gb", type=float, default=2.0)
    args = p.parse_args()
    arch_opts = [f"num_feat={args.num_feat}", f"num_block={args.num_block}", f"upscale={args.scale}"]
    with tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, "in", "big.png")
        imwrite(image, smooth_image(*args.size))
        ckpt = os.path.join(tmp, "edsr.pth")
        save_network_file(ckpt, build_network({"type": "EDSR", **{k: int(v) for k, v in
                                                                 (o.split("=") for o in arch_opts)}}).state_dict())
        infer_args = ["--ckpt", ckpt, "--arch", "EDSR", "--arch-opt", *arch_opts, "-i", image,
                      "-o", os.path.join(tmp, "out"), "--tile", str(args.tile), "--tile-pad", str(args.tile_pad),
                      "--device", "cpu", "--no-progress"]
        base = run_child([], [ckpt, *arch_opts])
        start = time.perf_counter()
        run = run_child(infer_args, [])
        wall = time.perf_counter() - start
        out_file = os.path.join(tmp, "out", "big.png")
        out_size = os.path.getsize(out_file) if os.path.isfile(out_file) else 0
    peak_gb = run["max_rss_kb"] * 1024 / 1e9
    print(f"input {args.size[1]}x{args.size[0]} RGB, EDSR num_feat {args.num_feat} num_block {args.num_block} "
          f"x{args.scale}, tile {args.tile} pad {args.tile_pad}, {os.cpu_count()} CPUs")
    print(f"output {args.size[1] * args.scale}x{args.size[0] * args.scale} PNG ({out_size / 1e6:.1f} MB), "
          f"run {run['seconds']:.1f} s (process {wall:.1f} s), exit {run['code']}")
    print(f"peak RSS {peak_gb:.2f} GB ({run['max_rss_kb']} kB); baseline (imports + net) "
          f"{base['max_rss_kb'] * 1024 / 1e9:.2f} GB; limit {args.limit_gb} GB")
    return 0 if run["code"] == 0 and peak_gb <= args.limit_gb else 1


if __name__ == "__main__":
    sys.exit(main())
