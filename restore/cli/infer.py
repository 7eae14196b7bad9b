"""restore-infer: run a restoration network over image files and write the results.

    restore-infer -opt options/test/EDSR/test_EDSR_SRx2_T91_cpu_tiny.yml -i photos/ -o out/
    restore-infer --ckpt net_g_latest.pth --arch NSR --arch-opt upscale=2 -i 'shots/*.png' -o out/ --tile 256
    restore-infer --model nsr_sr_x4 -i photo.png -o out/ --ensemble --suffix _x4
    restore-infer --model nsr_dn_gray_blind -i scans/ -o clean/      # gray denoiser, any sigma 0-55
    restore-infer --model nsr_dn_blind -i photos/ -o clean/   # gray images: the gray model, RGB: the colour one
    restore-infer --list-models                                      # the shipped models and yours

The network comes from an option file (network_g + path.pretrain_network_g), a checkpoint plus its
arch, or a named model: one shipped with restore (--list-models; cards in docs/zoo/) or yours
($RESTORE_ZOO). A model family (nsr_dn_blind, nsr_jpeg_blind) runs each image through its gray or
its colour member, by the image's channels, and says which. Inputs are files, folders or glob patterns. Gray, RGB and RGBA
images and 16-bit images keep their mode and depth; the alpha plane is upscaled with bicubic (or with
--alpha model). --tile runs the net on tiles with --tile-pad pixels of context each, so huge images
fit in memory; a forward that runs out of memory is retried in tiles (halved until it fits, the tile
used is printed), and --max-pixels tiles large images from the start. --ensemble averages the 8
flips/rotations (x8 self-ensemble, 8 times slower).
Outputs are <stem><suffix>.<ext> in the output folder, which must not be an input folder; no input
is ever overwritten. Files that cannot be read are skipped with a warning and listed at the end,
and the exit status is then 1 (2 for a usage error).
"""
import argparse
import sys

import torch

from restore.cli.common import entry
from restore.inference.loading import load_model
from restore.inference.runner import (Member, Settings, check_output_folder, collect_inputs, plan_jobs,
                                     run_jobs)
from restore.inference.setup import prepare_net, prepare_process
from restore.inference.zoo import ZOO_ENV, family_members, zoo_entries
from restore.models.base_model import select_device
from restore.utils.errors import OptionError

EXIT_SKIPPED = 1


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The three ways to name a network; shared with restore-export."""
    g = p.add_argument_group("network (give one of -opt, --ckpt/--arch, --model)")
    g.add_argument("-opt", "--opt", help="an option YAML file with network_g and path.pretrain_network_g")
    g.add_argument("--ckpt", help="a network checkpoint (.pth or .safetensors); with --arch for restore's own, "
                                  "alone for NSR/WDSR reference files and any arch spandrel detects "
                                  "(docs/published-models.md)")
    g.add_argument("--arch", help="the registered arch of --ckpt, e.g. EDSR, NSR, WDSR, DnCNN")
    g.add_argument("--arch-opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="arch options, e.g. upscale=2 num_feat=32 (values read as YAML); with --model "
                        "only those that keep the weights' shapes, e.g. gate_region=tile")
    g.add_argument("--model", help=f"a named pretrained model (see --list-models; ${ZOO_ENV} adds more)")
    g.add_argument("--param-key", help="which weights of the checkpoint: params_ema (default, falls back "
                                       "to params) or params")
    g.add_argument("--data-root", help="for ${data_root} in an option file's pretrain path")


def build_parser():
    p = argparse.ArgumentParser(prog="restore-infer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("-i", "--input", nargs="+", action="extend", default=[], metavar="PATH",
                   help="image files, folders or glob patterns (quote patterns)")
    p.add_argument("-o", "--output", help="output folder (created if missing; must not hold inputs)")
    p.add_argument("--suffix", default="", help="appended to each output's file name stem, e.g. _x4")
    p.add_argument("--ext", default="png", help="output format: png (default), tif, jpg, webp, bmp")
    p.add_argument("--tile", type=int, help="tile size in input pixels (e.g. 256); default: whole image")
    p.add_argument("--tile-pad", type=int, default=16,
                   help="context pixels around each tile (default 16; at least the net's receptive-field "
                        "radius for results identical to an untiled run)")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help="memory budget: images with more than N input pixels run in tiles of sqrt(N) "
                        "(unless --tile is given). Without it, a forward that runs out of memory is "
                        "retried in tiles, halved until it fits")
    p.add_argument("--ensemble", action="store_true", help="x8 self-ensemble (flips and rotations)")
    p.add_argument("--alpha", choices=["bicubic", "model"], default="bicubic",
                   help="how to upscale the alpha plane of RGBA images (default bicubic)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads (default: the CPUs this process may use)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-models", action="store_true", help="list the named models and exit")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def list_models() -> int:
    entries = zoo_entries()
    if not entries:
        print(f"no named models; list your own in a YAML file named by ${ZOO_ENV}")
    for name, e in entries.items():
        print(f"{name:24s} {e.task:8s} {e.network_g.get('type', '?'):8s} {e.description}")
    for family in sorted({e.family for e in entries.values() if e.family}):
        members = family_members(family)
        print(f"{family:24s} {'family':8s} {'':8s} "
              + ", ".join(f"{'gray' if c == 1 else 'colour'}: {e.name}" for c, e in sorted(members.items())))
    return 0


def load_members(args) -> tuple[list[Member], int]:
    """The network(s) to run: one for every image, or, for a model family, each of its members."""
    members = family_members(args.model) if args.model and args.model not in zoo_entries() else {}
    names = [e.name for _, e in sorted(members.items())] or [None]
    loaded = [load_model(args.opt, args.ckpt, args.arch, args.arch_opt, name or args.model, args.param_key,
                         data_root=args.data_root) for name in names]
    if len({m.scale for m in loaded}) > 1:
        raise OptionError(f"--model {args.model}: its members differ in scale")
    return [Member(m.net, m.in_channels, name or m.label) for m, name in zip(loaded, names)], loaded[0].scale


@torch.no_grad()  # inference only; restores the grad mode for callers (tests, notebooks)
def main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        return list_models()
    if not args.input or not args.output:
        raise OptionError("give the images with -i/--input and the output folder with -o/--output")
    if args.tile is not None and args.tile < 1:
        raise OptionError(f"--tile: must be >= 1, got {args.tile}")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise OptionError(f"--max-pixels: must be >= 1, got {args.max_pixels}")
    if args.threads is not None and args.threads < 1:
        raise OptionError(f"--threads: must be >= 1, got {args.threads}")
    if args.tile_pad < 0:
        raise OptionError(f"--tile-pad: must be >= 0, got {args.tile_pad}")
    jobs = plan_jobs(collect_inputs(args.input), args.output, args.suffix, args.ext)
    check_output_folder(args.output)  # a file, or a folder we cannot write: one error, before any work
    members, scale = load_members(args)
    device = select_device({"device": args.device})
    prepare_process(args.threads)
    for member in members:
        prepare_net(member.net, device)
    settings = Settings(args.tile, args.tile_pad, args.ensemble, args.alpha, device, args.max_pixels)
    skipped = run_jobs(members, scale, jobs, settings, not args.no_progress)
    done = len(jobs) - len(skipped)
    print(f"{done} of {len(jobs)} image(s) written to {args.output}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} file(s):", file=sys.stderr)
        for src, reason in skipped:
            print(f"  {src}: {reason}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


cli = entry(main)


if __name__ == "__main__":
    cli()
