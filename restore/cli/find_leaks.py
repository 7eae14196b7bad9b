"""restore-leaks: find test images that also occur (possibly cropped, shifted, rescaled x2 down-up,
JPEG-compressed or noisy) in the training data, using training-free random signed features.

How it works (features, windows, whitening, the aligned pixel check): restore/features/leaks.py
and docs/features.md.

--calibrate instead measures the method on synthetic positives made from the --test images (crop,
shift, x2 bicubic down-up, JPEG q 30-90, Gaussian noise sigma <= 25), searched among the degraded
copies and the --train images (negatives = pairs of distinct images), and reports precision/recall.

Outputs in --out: leaks.json, leaks.md and leaks.png (each reported pair side by side), or
calibration.json / calibration.md with --calibrate. --table also writes a results file: its first
line names the command and the machine, then the reported pairs as measured at full resolution, or
the calibration's precision and recall.
"""
import argparse
import os
import time

import torch

from restore.cli.common import entry
from restore.features import RandomSignedFeatures, add_feature_arguments
from restore.features.leak_calibration import calibrate_leaks
from restore.features.leak_report import (calibration_table, leak_table, write_calibration_report,
                                          write_leak_report, write_text)
from restore.features.leaks import (DEFAULT_FEATURE_THRESHOLD, DEFAULT_NCC_THRESHOLD, LeakSettings, load_sources,
                                    resolve_source, search_leaks)
from restore.utils.errors import RestoreError
from restore.utils.machine import made_by
from restore.utils.paths import find_data_root


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="restore-leaks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="where bare dataset names are looked up (default: the data-root "
                   "convention: $RESTORE_DATA_ROOT, else ../shared/datasets)")
    p.add_argument("--train", nargs="+", required=True, metavar="NAME_OR_PATH",
                   help="training image folders or LMDBs (a bare name such as T91 means <data-root>/T91)")
    p.add_argument("--test", nargs="+", required=True, metavar="NAME_OR_PATH", help="test image folders or LMDBs")
    p.add_argument("--out", default="results/leaks", help="report folder (default: results/leaks)")
    p.add_argument("--calibrate", action="store_true",
                   help="measure precision/recall on synthetic near-copies of the test images instead")
    add_feature_arguments(p, default_n=512)
    p.add_argument("--scale", type=float, default=0.5, help="rescale every image by this first (default 0.5)")
    p.add_argument("--blur", type=float, default=1.0, help="Gaussian blur sigma after rescaling, px (default 1)")
    p.add_argument("--window", type=int, default=128,
                   help="sliding-window side in original pixels (default 128); images smaller than it "
                        "are compared whole only")
    p.add_argument("--whiten", type=int, default=32,
                   help="PCA-whitened dimensions compared (default 32; 0 = centre only)")
    p.add_argument("--min-window-std", type=float, default=0.03,
                   help="drop windows whose luma std (0-1 scale) is below this (default 0.03)")
    p.add_argument("--top-k", type=int, default=3, help="training images pixel-checked per test image (default 3)")
    p.add_argument("--feature-threshold", type=float, default=DEFAULT_FEATURE_THRESHOLD,
                   help=f"minimum feature score of a candidate (default {DEFAULT_FEATURE_THRESHOLD})")
    p.add_argument("--ncc-threshold", type=float, default=DEFAULT_NCC_THRESHOLD,
                   help=f"minimum NCC of a reported pair (default {DEFAULT_NCC_THRESHOLD})")
    p.add_argument("--table", metavar="PATH",
                   help="also write a results file (markdown, first line the command and the machine) to PATH")
    p.add_argument("--grid-pairs", type=int, default=24, help="pairs drawn in leaks.png (default 24)")
    p.add_argument("--grid-height", type=int, default=128, help="thumbnail height in leaks.png (default 128)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return p


def validate(args) -> None:
    checks = [(args.n >= 1, "--n must be >= 1"), (args.kernel_size % 2 == 1, "--kernel-size must be odd"),
              (args.blocks >= 0, "--blocks must be >= 0"), (0 < args.scale <= 4, "--scale must be in (0, 4]"),
              (args.blur >= 0, "--blur must be >= 0"), (args.window >= 8, "--window must be >= 8"),
              (args.top_k >= 1, "--top-k must be >= 1"),
              (0 <= args.whiten <= args.n, "--whiten must be in [0, --n]"),
              (args.grid_height >= 16, "--grid-height must be >= 16")]
    for ok, message in checks:
        if not ok:
            raise RestoreError(message)


def settings_of(args) -> LeakSettings:
    return LeakSettings(scale=args.scale, blur=args.blur, window=args.window, whiten=args.whiten,
                        min_window_std=args.min_window_std, top_k=args.top_k,
                        feature_threshold=args.feature_threshold, ncc_threshold=args.ncc_threshold)


def write_table(path: str, text: str) -> None:
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    write_text(path, text)
    print(f"results table: {path}")


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    validate(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    started, cpu_started = time.time(), time.process_time()
    data_root = find_data_root(args.data_root)
    train_sources = [resolve_source(s, data_root, f"--train[{i}]") for i, s in enumerate(args.train)]
    test_sources = [resolve_source(s, data_root, f"--test[{i}]") for i, s in enumerate(args.test)]
    extractor = RandomSignedFeatures(n=args.n, kernel_size=args.kernel_size, blocks=args.blocks,
                                     seed=args.seed, standardize=False, padding_mode="zeros")
    settings = settings_of(args)
    train, test = load_sources(train_sources, test_sources, extractor, settings)
    os.makedirs(args.out, exist_ok=True)

    if args.calibrate:
        result = calibrate_leaks(train, test, extractor, settings, seed=args.seed, started=started)
        write_calibration_report(args.out, result)
        if args.table:
            write_table(args.table, calibration_table(result, made_by("restore-leaks", *argv),
                                                      time.process_time() - cpu_started))
        chosen = result["at_chosen_thresholds"]
        print(f"calibration: {result['positives']} synthetic positives, {result['negative_pairs']} negative pairs; "
              f"at feature >= {args.feature_threshold}, NCC >= {args.ncc_threshold}: "
              f"precision {chosen['precision']:.4f}, recall {chosen['recall']:.4f} "
              f"{chosen['recall_by_degradation']}")
        print(f"report: {os.path.join(args.out, 'calibration.md')}")
        return 0

    report = search_leaks(train_sources, test_sources, train, test, extractor, settings, started)
    write_leak_report(args.out, report, test, train, args.grid_pairs, args.grid_height)
    if args.table:
        write_table(args.table, leak_table(report, made_by("restore-leaks", *argv), time.process_time() - cpu_started))
    found = report["pairs"]
    print(f"{len(found)} suspicious pair(s) among {len(test)} test and {len(train)} training images "
          f"({report['candidates_checked']} candidates pixel-checked, {report['seconds']:.0f} s)")
    for p in found:
        print(f"  {p['test']}  ~  {p['train']}  feature {p['feature_score']:.3f}  NCC {p['ncc']:.4f}")
    print(f"report: {os.path.join(args.out, 'leaks.md')}")
    return 0


cli = entry(main)
