"""extract_subimages: cut large training images into overlapping square sub-images (BasicSR's recipe).

The recipe (positions, thresh_size, file names, the temporary folder): restore/data/subimages.py.
"""
import argparse
import os

from restore.cli.common import entry
from restore.data.subimages import extract_subimages


def main(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="extract_subimages",
        description="Cut every image of a folder into overlapping square sub-images <stem>_s001.png, ... "
                    "(BasicSR's extract_subimages recipe: HR crop 480 step 240; for x2/x3/x4 LR folders use "
                    "240/120, 160/80, 120/60). A last crop flush with the right/bottom edge is added when "
                    "the leftover exceeds --thresh-size. Pixels and bit depth are kept (PNG).")
    parser.add_argument("input", help="folder of images")
    parser.add_argument("output", help="folder to create (an existing one must be empty)")
    parser.add_argument("--crop-size", type=int, default=480, help="sub-image side in pixels (default 480)")
    parser.add_argument("--step", type=int, default=240, help="distance between crops (default 240)")
    parser.add_argument("--thresh-size", type=int, default=0,
                        help="add an edge-aligned last crop when more than this many pixels are left (default 0)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="parallel processes (default: CPU count, at most 8)")
    parser.add_argument("--compress-level", type=int, default=3, help="PNG compression 0-9 (default 3)")
    parser.add_argument("--strip-scale-suffix", action="store_true",
                        help="drop a trailing x2/x3/x4 from names (DIV2K LR '0001x2' -> '0001_s001.png')")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    args = parser.parse_args(argv)
    n = extract_subimages(args.input, args.output, args.crop_size, args.step, args.thresh_size,
                          max(1, args.workers), args.compress_level, args.strip_scale_suffix)
    print(f"wrote {n} sub-images to {os.path.abspath(args.output)}")
    return 0


cli = entry(main)
