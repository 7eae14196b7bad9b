"""restore-lmdb: pack an image folder into an LMDB in BasicSR's layout, for faster training reads.

Each image is re-encoded as PNG (lossless; gray, RGB, RGBA and 16-bit images keep their channels
and bit depth) and stored under its file stem; `meta_info.txt` lists `<stem>.png (h,w,c) <level>`.
The LMDB is written into a hidden temporary folder beside the output and renamed at the end, so an
interrupted run never leaves a half-written `.lmdb` behind.
"""
import argparse
import os

from restore.cli.common import entry
from restore.data.lmdb_writer import create_lmdb
from restore.utils.errors import RestoreError


def main(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="restore-lmdb",
        description="Pack the images of a folder into an LMDB (BasicSR layout: key = file name without "
                    "extension, value = PNG bytes, meta_info.txt) for io_backend: {type: lmdb}. "
                    "Pixels, channels and bit depth are kept exactly.")
    parser.add_argument("input", help="folder of images (not searched recursively)")
    parser.add_argument("output", help="LMDB folder to create; must end with .lmdb and must not exist")
    parser.add_argument("--compress-level", type=int, default=1,
                        help="PNG compression level 0-9 (default 1: fast to decode, as BasicSR)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="parallel encoding processes (default: CPU count, at most 8)")
    parser.add_argument("--batch", type=int, default=1000, help="images per LMDB commit (default 1000)")
    parser.add_argument("--verify", action="store_true",
                        help="after writing, decode every image and compare it with its source file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.batch < 1:
        raise RestoreError("--workers and --batch must be >= 1")
    n = create_lmdb(args.input, args.output, args.compress_level, args.workers, args.batch, args.verify)
    output = os.path.abspath(args.output.rstrip("/"))
    size = os.path.getsize(os.path.join(output, "data.mdb"))
    print(f"wrote {n} images ({size / 2**20:.1f} MiB) to {output}" + (", verified" if args.verify else ""))
    return 0


cli = entry(main)
