"""restore-infer's end-to-end time per image against the bare forward of the same net, in one run.

    python scripts/bench_infer.py                    # ~3 MP photos, every zoo model and EDSR, untiled and tile 512
    python scripts/bench_infer.py --quick            # ~0.25 MP photos: a minute, for a smoke check
    python scripts/bench_infer.py --models nsr_sr_x2 EDSR --tiles 0 --images 1 --out results/bench_infer/x.txt

A folder of photos is made from skimage.data (resized with bicubic to about --megapixels each; gray
copies for the gray models). For every model and tile setting (0 = untiled), each image is run
through restore-infer's own path (`run_jobs`: PNG read, the shared inference set-up's forward,
quantisation, atomic PNG write) and, separately, through the bare forward: the net alone on a
channels_last tensor that is already in memory (for a tiled run, on the tile windows, already cut).
Printed per image:

- e2e: restore-infer's time for the image; bare: the bare forward; io: PNG read + write of the same
  image and output, timed alone; ratio = e2e / (bare + io), the goal being <= 1.15; cpu r: the same
  ratio of the process's CPU times (all threads), which load from other processes disturbs far less
  than wall times (OpenMP threads spinning at barriers while a sibling is descheduled still count);
- GFLOP/s of the bare forward (2 x MACs counted on the meta device / time) and that as a % of the
  peak of a 3x3 128->128 conv on a 1x128x256x256 channels_last input, measured in this run;
- peak RSS during the end-to-end run (VmHWM, reset before each image through /proc/self/clear_refs).

With --repeats N each image is timed N times, bare and end-to-end interleaved, and the fastest of
each is kept. Both sides run in this process after restore's set-up (allocator tuned, threads set, channels_last
nets, torch.inference_mode), so the ratio is what restore-infer adds to the network: input
conversion, tiling, quantisation and file handling. Nets are warmed up once on a small input. Zoo
models use their shipped weights; EDSR is EDSR-baseline x2 (64 features, 16 blocks, random weights).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from restore.benchmark.models import latency_ms
from restore.inference.loading import load_model
from restore.inference.runner import Job, Member, Settings, run_jobs
from restore.inference.setup import net_input, prepare_net, prepare_process
from restore.inference.tiling import tile_grid
from restore.inference.zoo import zoo_entries
from restore.utils.flops import count_macs
from restore.utils.img_io import atomic_write_bytes, imread, imwrite, to_float32

PHOTOS = ("astronaut", "coffee", "rocket", "chelsea")
EDSR = {"type": "EDSR", "num_feat": 64, "num_block": 16, "upscale": 2}
TILE_PAD = 16


def make_photos(folder: str, count: int, megapixels: float) -> dict:
    """{'rgb': [paths], 'gray': [paths]}: skimage.data photos resized to about `megapixels`."""
    import skimage.data
    paths = {"rgb": [], "gray": []}
    for name in PHOTOS[:count]:
        img = getattr(skimage.data, name)()
        h, w = img.shape[:2]
        f = (megapixels * 1e6 / (h * w)) ** 0.5
        size = (max(8, round(w * f)), max(8, round(h * f)))
        rgb = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
        for kind, arr in (("rgb", rgb), ("gray", gray)):
            path = os.path.join(folder, kind, f"{name}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            imwrite(path, np.ascontiguousarray(arr))
            paths[kind].append(path)
    return paths


def peak_conv_gflops(size: int = 256, repeats: int = 5) -> float:
    """GFLOP/s of a 3x3 conv, 128 -> 128 channels, 1x128x`size`x`size`, channels_last, inference_mode."""
    conv = prepare_net(torch.nn.Conv2d(128, 128, 3, padding=1), torch.device("cpu"))
    best_ms = latency_ms(conv, (1, 128, size, size), runs=repeats, reduce=min)
    return 2 * 128 * 128 * 9 * size * size / (best_ms / 1000) / 1e9


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_input(img: np.ndarray, channels: int) -> torch.Tensor:
    """The image as the net's input batch (gray nets take the planes of an RGB image as a batch)."""
    x = torch.from_numpy(to_float32(img).transpose(2, 0, 1)).unsqueeze(0)
    if x.shape[1] != channels:
        x = x.permute(1, 0, 2, 3) if channels == 1 else x.expand(1, 3, *x.shape[2:])
    return x


def windows(x: torch.Tensor, net, tile: int) -> list:
    """The inputs the net sees: the whole image, or every tile window, in the net's memory format."""
    if not tile:
        return [net_input(net, x.contiguous())]
    return [net_input(net, x[..., t.wy0:t.wy1, t.wx0:t.wx1].contiguous())
            for t in tile_grid(*x.shape[-2:], tile, TILE_PAD)]


def macs_of(net, inputs: list) -> int:
    shapes = {}
    for w in inputs:
        shapes[tuple(w.shape)] = shapes.get(tuple(w.shape), 0) + 1
    return sum(n * count_macs(net, shape)["macs"] for shape, n in shapes.items())


def timed(fn) -> tuple:
    """(wall seconds, CPU seconds of this process, all threads) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bare_forward(net, inputs: list) -> None:
    with torch.inference_mode():
        for w in inputs:
            net(w)


def png_io(src: str, out: np.ndarray, folder: str) -> None:
    imread(src)
    imwrite(os.path.join(folder, "io_probe.png"), out)


def load(name: str):
    if name == "EDSR":
        torch.manual_seed(0)
        from restore.archs import build_network
        from restore.inference.loading import LoadedModel
        return LoadedModel(prepare_net(build_network(dict(EDSR))), dict(EDSR), None, "EDSR")
    return load_model(model=name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", help="zoo names and/or EDSR (default: every zoo model and EDSR)")
    p.add_argument("--tiles", nargs="+", type=int, default=[0, 512], help="tile sizes, 0 = untiled (default 0 512)")
    p.add_argument("--images", type=int, default=2, help=f"photos (at most {len(PHOTOS)}; default 2)")
    p.add_argument("--megapixels", type=float, default=3.0, help="size of each photo (default 3)")
    p.add_argument("--quick", action="store_true", help="0.25 MP photos (a smoke run)")
    p.add_argument("--repeats", type=int, help="timings per image, the fastest kept (default 2; 3 with --quick; "
                                               "with 1 the bare forward, run first, also pays the heap's first touch)")
    p.add_argument("--threads", type=int, help="torch threads (default: restore's set-up)")
    p.add_argument("--out", help="also write the printed report to this file")
    p.add_argument("--peak-size", type=int, default=256, help=argparse.SUPPRESS)  # tests: a cheaper peak
    args = p.parse_args(argv)
    megapixels = 0.25 if args.quick else args.megapixels
    repeats = args.repeats or (3 if args.quick else 2)
    models = args.models or [*zoo_entries(), "EDSR"]
    process = prepare_process(args.threads)
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    header = (f"{'model':20s} {'tile':>5s} {'image':10s} {'size':>10s} {'e2e s':>7s} {'bare s':>7s} {'io s':>6s} "
              f"{'ratio':>6s} {'cpu r':>6s} {'GFLOP/s':>8s} {'%peak':>6s} {'RSS MB':>7s}")
    peaks, rows = [peak_conv_gflops(args.peak_size)], []
    print(f"peak conv {peaks[0]:.0f} GFLOP/s; rows as they finish (final table below):\n{header}",
          file=sys.stderr, flush=True)

    def row_text(r, peak):
        return (f"{r['model']:20s} {r['tile'] or '-':>5} {r['image']:10s} {r['size']:>10s} {r['e2e']:7.2f} "
                f"{r['bare']:7.2f} {r['io']:6.2f} {r['ratio']:6.3f} {r['cpu_ratio']:6.3f} {r['gflops']:8.1f} "
                f"{100 * r['gflops'] / peak:5.0f}% {r['rss']:7.0f}")

    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        photos = make_photos(os.path.join(tmp, "in"), args.images, megapixels)
        for name in models:
            model = load(name)
            net, channels, scale = model.net, model.in_channels, model.scale
            with torch.inference_mode():  # first-call costs (oneDNN primitives) out of the timings
                net(net_input(net, torch.rand(1, channels, 64, 64)))
            for tile in args.tiles:
                settings = Settings(tile=tile or None, tile_pad=TILE_PAD)
                for src in photos["gray" if channels == 1 else "rgb"]:
                    img = imread(src)
                    inputs = windows(bare_input(img, channels), net, tile)
                    dst = os.path.join(tmp, "out", os.path.basename(src))
                    bare, e2e, io, rss, skipped = [], [], [], 0.0, []
                    for _ in range(repeats):  # interleaved, so drift on a shared machine hits both
                        bare.append(timed(lambda: bare_forward(net, inputs)))
                        reset_peak_rss()
                        job = [Job(src, dst)]
                        e2e.append(timed(lambda: skipped.extend(
                            run_jobs([Member(net, channels, name)], scale, job, settings, progress=False))))
                        rss = max(rss, peak_rss_mb())
                        if skipped:
                            raise SystemExit(f"{name}: {skipped[0][0]}: {skipped[0][1]}")
                        io.append(timed(lambda: png_io(src, imread(dst), tmp)))
                    (bare, bare_cpu), (e2e, e2e_cpu), (io, io_cpu) = (
                        (min(t[0] for t in ts), min(t[1] for t in ts)) for ts in (bare, e2e, io))
                    h, w = img.shape[:2]
                    rows.append({"model": name, "tile": tile, "image": os.path.basename(src)[:-4],
                                 "size": f"{w}x{h}", "e2e": e2e, "bare": bare, "io": io,
                                 "ratio": e2e / (bare + io), "cpu_ratio": e2e_cpu / (bare_cpu + io_cpu),
                                 "gflops": 2 * macs_of(net, inputs) / bare / 1e9, "rss": rss})
                    del inputs
                    print(row_text(rows[-1], max(peaks)), file=sys.stderr, flush=True)
            del model, net
            peaks.append(peak_conv_gflops(args.peak_size))
    peak = max(peaks)
    ratios, cpu_ratios = [r["ratio"] for r in rows], [r["cpu_ratio"] for r in rows]
    say(f"# restore-infer end-to-end vs bare forward: {args.images} photo(s) of ~{megapixels:g} MP, "
        f"torch {torch.__version__}, {process['threads']} threads, allocator tuned: {process['allocator_tuned']}")
    say(f"command: python scripts/bench_infer.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    say(f"peak conv (3x3, 128->128, 1x128x{args.peak_size}x{args.peak_size}, channels_last), measured "
        f"before each model and after the last: {' '.join(f'{p:.0f}' for p in peaks)} GFLOP/s; %peak is of the "
        f"highest, {peak:.0f}")
    say(f"times: fastest of {repeats} interleaved run(s) each; io = PNG read + write alone; cpu r = the "
        f"ratio of process CPU times (all threads), which other processes on the machine disturb less")
    say()
    say(header)
    for r in rows:
        say(row_text(r, peak))
    say()
    say(f"ratio e2e / (bare + io): median {statistics.median(ratios):.3f}, max {max(ratios):.3f} "
        f"({'within' if max(ratios) <= 1.15 else 'above'} the 1.15 goal); of CPU times: median "
        f"{statistics.median(cpu_ratios):.3f}, max {max(cpu_ratios):.3f}")
    if args.out:  # whole or not at all: a killed run leaves the previous report in place
        atomic_write_bytes(args.out, ("\n".join(lines) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
