"""restore-bench: score models on standard test sets and report quality against cost.

    restore-bench --model runs/nsr_x2.yml --model EDSR:edsr_x2.pth,upscale=2,num_feat=64 \\
                  --sets Set5 Set14 BSD100 --scales 2
    restore-bench --model dncnn=DnCNN:dncnn25.pth --sets Set12 BSD68 --sigmas 15 25 50
    restore-bench --sets Set5 --scales 2 3 4            # the bicubic baseline alone

A --model is `[LABEL=]SOURCE` with SOURCE an option file (.yml: network_g + pretrain_network_g),
`ARCH:CHECKPOINT[,key=value,...]` (arch options after the checkpoint) or a named model (--list-models
of restore-infer). Sets are named (Set5 Set14 BSD100 Urban100 Manga109 | Set12 BSD68 CBSD68 Kodak24
McMaster | LIVE1 Classic5) and found under the data root; each is scored by its own protocol (SR: Y
channel, crop = scale; denoising: gray or RGB; JPEG: LIVE1 on Y, Classic5 gray). Every model runs
where its scale fits, next to the bicubic / noisy-input baseline (one plain pass: --tile and
--ensemble apply to the models only); a gray model on a colour set runs on each of R, G, B, an RGB
model on a gray set on R=G=B, as restore-infer runs such images, and the report says so.

Writes <output>/results.json, results.csv, results.md and, unless --no-html, <output>/report/
(index.html + crops/*.png: per-image scores, zoomed crops of input / baseline / models / GT, and
PSNR-vs-MACs plots). MACs are per output pixel of one forward pass (x8 with --ensemble) for the input
of a 1280x720 output; CPU latency is the median of --latency-runs forwards of a --latency-size input.
"""
import argparse
import os
import sys

import torch

from restore.benchmark.evaluate import Run, evaluate_set, fits
from restore.benchmark.html_report import CropRecorder, write_html
from restore.benchmark.models import measure_costs, parse_model_spec
from restore.benchmark.report import to_csv, to_json, to_markdown
from restore.cli.common import entry
from restore.data.testsets import DEFAULT_LEVELS, resolve_testset
from restore.inference.setup import prepare_net, prepare_process
from restore.models.base_model import select_device
from restore.utils.errors import OptionError
from restore.utils.img_io import atomic_write_bytes
from restore.utils.machine import made_by
from restore.utils.paths import find_data_root


def build_parser():
    p = argparse.ArgumentParser(prog="restore-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", action="append", default=[], metavar="[LABEL=]SOURCE",
                   help="a model to score (repeatable); see above")
    p.add_argument("--sets", nargs="+", required=True, metavar="NAME", help="test sets by name")
    p.add_argument("--scales", nargs="+", type=int, help="SR scales (default: the models' scales, or 2 3 4)")
    p.add_argument("--sigmas", nargs="+", type=int, help="noise levels for denoising sets (default 15 25 50)")
    p.add_argument("--qualities", nargs="+", type=int, help="JPEG qualities (default 10 20 30 40)")
    p.add_argument("--data-root", help="folder holding the test sets (default: the data-root convention)")
    p.add_argument("-o", "--output", default=os.path.join("results", "benchmark"), help="output folder")
    p.add_argument("--max-images", type=int, help="score only the first N images of each set (quick runs)")
    p.add_argument("--param-key", help="params_ema (default, falls back to params) or params")
    p.add_argument("--tile", type=int, help="run the nets on tiles of this size (input pixels)")
    p.add_argument("--tile-pad", type=int, default=16, help="context pixels around each tile (default 16)")
    p.add_argument("--ensemble", action="store_true", help="x8 self-ensemble")
    p.add_argument("--protocol", choices=["basicsr", "literature"], default="basicsr",
                   help="scoring protocol (docs/protocol.md): basicsr (default) or literature (the MATLAB "
                        "tables: rounded Y, one-channel files on gray)")
    p.add_argument("--device", default="cpu", help="where to run the nets for the scores (latency is CPU)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the CPUs this process may use)")
    p.add_argument("--latency-size", nargs=2, type=int, default=[128, 128], metavar=("H", "W"),
                   help="input size of the CPU latency measurement (default 128 128)")
    p.add_argument("--latency-runs", type=int, default=3, help="timed forwards, median reported (0: skip)")
    p.add_argument("--no-html", action="store_true", help="no HTML report")
    p.add_argument("--crops", type=int, default=3, help="images per set and level with zoomed crops (default 3)")
    p.add_argument("--crop-size", type=int, default=64, help="crop side in output pixels (default 64)")
    p.add_argument("--zoom", type=int, default=3, help="display enlargement of the crops (default 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def levels_for(task: str, args, models) -> list[int]:
    given = {"sr": args.scales, "denoise": args.sigmas, "jpeg": args.qualities}[task]
    if given:
        return given
    if task == "sr":
        scales = sorted({m.scale for m in models if m.scale > 1})
        return scales or list(DEFAULT_LEVELS["sr"])
    return list(DEFAULT_LEVELS[task])


@torch.no_grad()  # inference only; restores the grad mode for callers (tests, notebooks)
def main(argv) -> int:
    args = build_parser().parse_args(argv)
    for name in ("max_images", "tile", "latency_runs", "crops", "crop_size", "zoom", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name in ("latency_runs", "crops") else 1):
            raise OptionError(f"--{name.replace('_', '-')}: out of range: {value}")
    sets = [resolve_testset(name, args.data_root) for name in args.sets]  # fail fast on a missing set
    process = prepare_process(args.threads)
    models = {}
    for spec in args.model:
        m = parse_model_spec(spec, args.param_key)
        if m.label in models:
            raise OptionError(f"--model {spec}: label '{m.label}' is used twice; name one with LABEL=SOURCE")
        models[m.label] = m
    for m in models.values():
        measure_costs(m, tuple(args.latency_size) if args.latency_runs else None, args.latency_runs)
    device = select_device({"device": args.device})
    for m in models.values():
        prepare_net(m.loaded.net, device)
    run = Run(args.tile, args.tile_pad, args.ensemble, device, args.max_images, protocol=args.protocol)
    report_dir = os.path.join(args.output, "report")
    results, not_run, crops = [], [], {}
    for testset, folder in sets:
        for level in levels_for(testset.task, args, models.values()):
            fitting = []
            for m in models.values():
                reason = fits(m, testset, level)
                if reason:
                    not_run.append({"model": m.label, "set": testset.name, "level": testset.level_name(level),
                                    "reason": reason})
                else:
                    fitting.append(m)
            key = f"{testset.name}_{testset.level_name(level)}"
            recorder = None
            if not args.no_html and args.crops:
                recorder = CropRecorder(report_dir, key, level if testset.task == "sr" else 1,
                                        args.crops, args.crop_size)
            r = evaluate_set(testset, folder, level, fitting, run, recorder, not args.no_progress)
            results.append(r)
            if recorder is not None:
                crops[key] = recorder.entries
            print(f"{testset.name} {r.level_name}: " + ", ".join(
                f"{label} {r.mean(label, 'psnr'):.2f}/{r.mean(label, 'ssim'):.4f}" for label in r.models),
                file=sys.stderr)
    settings = {"data_root": find_data_root(args.data_root), "max_images": args.max_images,
                "tile": args.tile, "tile_pad": args.tile_pad if args.tile else None, "ensemble": args.ensemble,
                "device": str(device), "protocol": args.protocol, **process}
    os.makedirs(args.output, exist_ok=True)
    atomic_write_bytes(os.path.join(args.output, "results.json"),
                       to_json(results, models, not_run, settings, args.output).encode())
    atomic_write_bytes(os.path.join(args.output, "results.csv"), to_csv(results, models).encode())
    md = to_markdown(results, models, not_run, made_by("restore-bench", *argv))
    atomic_write_bytes(os.path.join(args.output, "results.md"), md.encode())
    if not args.no_html:
        os.makedirs(report_dir, exist_ok=True)
        write_html(report_dir, results, models, crops, not_run, settings, args.zoom)
    print(md)
    print(f"results written to {args.output}" + ("" if args.no_html else f" (report: {report_dir}/index.html)"),
          file=sys.stderr)
    return 0


cli = entry(main)

if __name__ == "__main__":
    cli()
