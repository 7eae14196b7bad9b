"""restore-probe-features: how much do training-free random signed features know about an image?

Fits a linear SVM (scikit-learn LinearSVC) and a k-nearest-neighbour classifier (cosine) on the
features of a labeled training folder and reports top-1 and top-2 accuracy on a labeled test folder,
with the same classifiers on raw pixels as the baseline. It also prints the class separation of
each representation: mean between-class distance / mean within-class distance (Euclidean, over all
test pairs; higher = classes further apart relative to their spread).

A labeled folder has one subfolder per class holding that class's images (all of one size within a
run is fastest; the pixel baseline resizes every image to the first image's size).

--make-degradation-task OUT writes such a task from the benchmark data, deterministically:
patches of --train-source (BSD200) for training and of --test-source (BSD100) for testing, each
in 8 classes: clean, Gaussian noise sigma 15 / 25 / 50, JPEG q 10 / 30, bicubic x2 / x4 down-up.
Unless --train/--test are given, the new task is then probed.

--table PATH also writes the accuracies and separations as a results file: its first line names
the command and the machine.
"""
import argparse
import json
import os
import time

from restore.cli.common import entry
from restore.features import RandomSignedFeatures, add_feature_arguments
from restore.features.degradation_task import DEGRADATION_CLASSES, make_degradation_task, resolve_folder
from restore.features.probe import probe_folders, results_table
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes
from restore.utils.machine import made_by
from restore.utils.paths import find_data_root


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="restore-probe-features", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", help="labeled training folder (one subfolder per class)")
    p.add_argument("--test", help="labeled test folder (the same class subfolders)")
    p.add_argument("--make-degradation-task", metavar="OUT", help="write the degradation-recognition task to OUT")
    p.add_argument("--data-root", help="where --train-source/--test-source names are looked up")
    p.add_argument("--train-source", default="BSD200", help="images for the task's training patches (default BSD200)")
    p.add_argument("--test-source", default="BSD100", help="images for the task's test patches (default BSD100)")
    p.add_argument("--patch", type=int, default=48, help="task patch size, a multiple of 8 (default 48)")
    p.add_argument("--patches-per-image", type=int, default=2, help="task patches per source image (default 2)")
    p.add_argument("--task-seed", type=int, default=0, help="seed of the task's patch positions and noise")
    add_feature_arguments(p, default_n=1024)
    p.add_argument("--no-standardize", action="store_true",
                   help="feed [0, 1] pixels (default: zero mean, unit std per image)")
    p.add_argument("--C", type=float, default=0.05, help="LinearSVC C (default 0.05)")
    p.add_argument("--neighbours", type=int, default=5, help="k of the kNN classifier (default 5)")
    p.add_argument("--batch", type=int, default=64, help="images per feature batch (default 64)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--table", metavar="PATH",
                   help="also write a results file (markdown, first line the command and the machine) to PATH")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return p


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    started, cpu_started = time.time(), time.process_time()
    if args.n < 1 or args.kernel_size % 2 == 0 or args.blocks < 0 or args.neighbours < 1 or args.C <= 0:
        raise RestoreError("need --n >= 1, an odd --kernel-size, --blocks >= 0, --neighbours >= 1 and --C > 0")
    if args.make_degradation_task:
        data_root = find_data_root(args.data_root)
        out = args.make_degradation_task
        n_train, n_test = make_degradation_task(out, resolve_folder(args.train_source, data_root, "--train-source"),
                                                resolve_folder(args.test_source, data_root, "--test-source"),
                                                args.patch, args.patches_per_image, args.task_seed)
        print(f"wrote {out}/train ({n_train} x {len(DEGRADATION_CLASSES)} patches) and "
              f"{out}/test ({n_test} x {len(DEGRADATION_CLASSES)})")
        args.train = args.train or os.path.join(out, "train")
        args.test = args.test or os.path.join(out, "test")
    if not args.train or not args.test:
        raise RestoreError("give --train and --test labeled folders, or --make-degradation-task OUT")
    extractor = RandomSignedFeatures(n=args.n, kernel_size=args.kernel_size, blocks=args.blocks,
                                     seed=args.seed, standardize=not args.no_standardize)
    results = probe_folders(args.train, args.test, extractor, args.C, args.neighbours, args.batch)
    classes = results["classes"]
    print(f"{len(classes)} classes, {results['train_images']} train / {results['test_images']} test images; "
          f"features {extractor.config}")
    print(f"{'representation':16s} {'classifier':12s} {'top-1':>7s} {'top-2':>7s}")
    for rep in ("random_signed", "pixels"):
        for clf, acc in results[rep].items():
            print(f"{rep:16s} {clf:12s} {acc['top1']:7.4f} {acc['top2']:7.4f}")
    for rep, sep in results["separation"].items():
        print(f"class separation ({rep}): between {sep['between']:.4f} / within {sep['within']:.4f} "
              f"= {sep['ratio']:.4f}")
    print(f"({results['seconds']:.0f} s)")
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(results, indent=1) + "\n").encode())
    if args.table:
        if os.path.dirname(args.table):
            os.makedirs(os.path.dirname(args.table), exist_ok=True)
        text = results_table(results, made_by("restore-probe-features", *argv), args.C,
                             time.process_time() - cpu_started, time.time() - started)
        atomic_write_bytes(args.table, text.encode("utf-8"))
        print(f"results table: {args.table}")
    return 0


cli = entry(main)
