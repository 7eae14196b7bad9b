"""Training-loader throughput (patches per second) from image folders, sub-image folders and LMDBs.

Builds sub-images and LMDBs of the training sets into a temporary folder, then times restore's
training DataLoader (EpochSampler, `build_dataloader`) on each source with 0, 1 and 2 workers.
Timing starts after the first batch, so worker start-up is excluded; files are read once before
timing, so the numbers are for a warm page cache (decode + crop + degradation cost, not disk).
Those three sources decode every patch's image (`cache_mb: 0`); the last row is the folders with
the decoded images kept in memory (a training set's default, `cache_mb`), timed after enough
batches that every worker holds nearly every image.

    python scripts/bench_data.py                       # T91 + BSD200 from the data root
    python scripts/bench_data.py --dataset sr --batches 20
    python scripts/bench_data.py --table results/data/loading_speed.md   # the table docs/data.md quotes
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import torch

from restore.data import build_dataloader, build_dataset
from restore.data.lmdb_writer import create_lmdb
from restore.data.subimages import extract_subimages
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes
from restore.utils.machine import made_by
from restore.utils.paths import find_data_root

SUBIMAGE_PNG_LEVEL = 3  # extract_subimages' default
LMDB_PNG_LEVEL = 1
CACHED = "folders, cached"


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def prepare(data_root: str, sets: list[str], work: str, crop: int, step: int, workers: int) -> dict:
    """{source name: (list of locations, io_backend type, bytes)} for the three layouts."""
    originals = [os.path.join(data_root, s) for s in sets]
    for path in originals:
        if not os.path.isdir(path):
            raise RestoreError(f"{path}: dataset folder not found")
    subs, dbs = [], []
    t0 = time.perf_counter()
    for name, path in zip(sets, originals):
        sub = os.path.join(work, f"{name}_sub")
        extract_subimages(path, sub, crop, step, workers=workers, compress_level=SUBIMAGE_PNG_LEVEL)
        subs.append(sub)
    t1 = time.perf_counter()
    for name, sub in zip(sets, subs):
        db = os.path.join(work, f"{name}_sub.lmdb")
        create_lmdb(sub, db, level=LMDB_PNG_LEVEL, workers=workers)
        dbs.append(db)
    t2 = time.perf_counter()
    print(f"prepared sub-images in {t1 - t0:.1f} s and LMDBs in {t2 - t1:.1f} s under {work}")
    return {
        "folders": (originals, "disk", sum(map(folder_bytes, originals))),
        "sub-images": (subs, "disk", sum(map(folder_bytes, subs))),
        "lmdb (sub-images)": (dbs, "lmdb", sum(os.path.getsize(os.path.join(d, "data.mdb")) for d in dbs)),
        CACHED: (originals, "disk", sum(map(folder_bytes, originals))),
    }


def describe_sources(data_root: str, sets: list[str]) -> dict:
    """The table's words for each source, e.g. 'folders (T91 BMP + BSD200 PNG)'."""
    formats = []
    for name in sets:
        files = sorted(os.listdir(os.path.join(data_root, name)))
        formats.append(f"{name} {os.path.splitext(files[0])[1].lstrip('.').upper()}" if files else name)
    return {"folders": f"folders ({' + '.join(formats)})",
            "sub-images": f"sub-images (PNG level {SUBIMAGE_PNG_LEVEL})",
            "lmdb (sub-images)": f"LMDB of the sub-images (PNG level {LMDB_PNG_LEVEL})",
            CACHED: "folders, decoded images kept in memory (`cache_mb`, the default)"}


def markdown(header: str, note: str, sources: dict, labels: dict, results: dict, workers: list[int]) -> str:
    lines = [header, "", note, "",
             "| source | MiB | " + " | ".join(f"{w} worker{'' if w == 1 else 's'}" for w in workers) + " |",
             "|---|---|" + "---|" * len(workers)]
    for name, (_, _, size) in sources.items():
        lines.append(f"| {labels[name]} | {size / 2**20:.1f} | "
                     + " | ".join(f"{results[name, w]:.0f}" for w in workers) + " |")
    return "\n".join(lines) + "\n"


def dataset_options(kind: str, locations: list[str], backend: str, gt_size: int, cache: bool) -> dict:
    common = {"dataroot_gt": locations, "io_backend": {"type": backend}, "gt_size": gt_size}
    if not cache:
        common["cache_mb"] = 0
    if kind == "sr":
        return {"type": "SRImageDataset", "scale": 2, **common}
    return {"type": "DenoiseDataset", "sigma": 25, "color": "rgb", **common}


def patches_per_second(opt: dict, workers: int, batch: int, batches: int, warm_draws: int = 0) -> float:
    """Patches per second over `batches` batches, after worker start-up, the first fill of the
    prefetch queue and `warm_draws` samples per image per worker (each makes every workers-th batch;
    with uniform sampling 4 draws leave about 2 % of the images unseen by a worker): not timed."""
    loader_opt = dict(opt, batch_size_per_gpu=batch, num_worker_per_gpu=workers, dataset_enlarge_ratio=100)
    dataset = build_dataset(loader_opt, "train")
    loader = build_dataloader(dataset, loader_opt, "train", seed=0)
    it = iter(loader)
    for _ in range(1 + -(-warm_draws * len(dataset) * max(workers, 1) // batch)):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - t0
    del it
    return batches * batch / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="datasets folder (default: the restore data-root convention)")
    parser.add_argument("--sets", nargs="+", default=["T91", "BSD200"], help="training sets (default T91 BSD200)")
    parser.add_argument("--dataset", choices=["denoise", "sr"], default="denoise",
                        help="DenoiseDataset (sigma 25) or SRImageDataset (x2, MATLAB bicubic)")
    parser.add_argument("--gt-size", type=int, default=64,
                        help="GT patch size (default 64: T91 has 78x78 images)")
    parser.add_argument("--batch", type=int, default=16, help="patches per batch (default 16)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per run (default 40)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader workers to try")
    parser.add_argument("--crop-size", type=int, default=240, help="sub-image size (default 240)")
    parser.add_argument("--step", type=int, default=120, help="sub-image step (default 120)")
    parser.add_argument("--table", metavar="FILE",
                        help="also write the patches/s table here, headed by the command and the machine")
    args = parser.parse_args()
    data_root = find_data_root(args.data_root)
    if data_root is None:
        print("error: no data root (use --data-root or RESTORE_DATA_ROOT)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="restore-bench-data-")
    try:
        sources = prepare(data_root, args.sets, work, args.crop_size, args.step, max(args.workers))
        note = (f"{args.dataset} patches {args.gt_size}x{args.gt_size}, batch {args.batch}, {args.batches} timed "
                f"batches, {os.cpu_count()} CPUs, sets {' + '.join(args.sets)}")
        print(note)
        results = {}
        for name, (locations, backend, _) in sources.items():
            opt = dataset_options(args.dataset, locations, backend, args.gt_size, cache=name == CACHED)
            for w in args.workers:
                results[name, w] = patches_per_second(opt, w, args.batch, args.batches, 4 if name == CACHED else 0)
        header = f"{'source':<20}{'MiB':>8}" + "".join(f"{f'{w} workers':>12}" for w in args.workers)
        print(header + "   (patches/s)")
        for name, (_, _, size) in sources.items():
            print(f"{name:<20}{size / 2**20:>8.1f}" + "".join(f"{results[name, w]:>12.1f}" for w in args.workers))
        print("ratio to folders:")
        for name in list(sources)[1:]:
            print(f"{name:<28}" + "".join(f"{results[name, w] / results['folders', w]:>12.2f}x"
                                          for w in args.workers))
        if args.table:
            os.makedirs(os.path.dirname(os.path.abspath(args.table)), exist_ok=True)
            header = made_by("python", "scripts/bench_data.py", *sys.argv[1:])
            text = markdown(header, note + "; patches per second, warm page cache", sources,
                            describe_sources(data_root, args.sets), results, args.workers)
            atomic_write_bytes(args.table, text.encode())
        base = args.workers[0]
        for name in sources:
            print(f"{name:<20} workers speed-up vs {base}: "
                  + ", ".join(f"{w}: {results[name, w] / results[name, base]:.2f}x" for w in args.workers))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
