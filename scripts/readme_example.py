"""The README's worked example, run as the README says, and what it printed kept for the README to
quote: results/readme_example/worked_example.md.

    python scripts/readme_example.py [--data-root DIR] [--out results/readme_example]

Trains options/train/EDSR/train_EDSR_SRx2_T91_cpu_tiny.yml (an earlier run of that experiment is
archived, as restore-train does), tests it with options/test/EDSR/test_EDSR_SRx2_T91_cpu_tiny.yml, and
writes the training log's milestones (timestamps dropped) and the mean table of restore-test beside
the bicubic baseline restore-test and restore-bench share (protocol `basicsr`, x2).
"""
import argparse
import json
import os
import re
import sys
import time

from restore import test as restore_test
from restore import train as restore_train
from restore.data.testsets import find_testset, get_testset
from restore.metrics.protocol import bicubic_scores
from restore.utils.img_io import atomic_write_bytes
from restore.utils.machine import made_by
from restore.utils.paths import find_data_root

TRAIN_OPT = os.path.join("options", "train", "EDSR", "train_EDSR_SRx2_T91_cpu_tiny.yml")
TEST_OPT = os.path.join("options", "test", "EDSR", "test_EDSR_SRx2_T91_cpu_tiny.yml")
NAME = "EDSR_SRx2_T91_cpu_tiny"
# the log lines the README shows: the set-up line, the first print, every validation and the end
MILESTONES = re.compile(r"INFO: (\d+ training images|iter +100 |iter +500 |val |done: )")


def log_milestones(log_text: str) -> list[str]:
    """The README's lines of a training log, without the timestamps (which no rerun reproduces)."""
    lines = []
    for line in log_text.splitlines():
        m = MILESTONES.search(line)
        if m:
            lines.append(line[m.start():])
    return lines


def markdown(header: str, log_lines: list[str], results: dict, bicubic: dict, test_seconds: float) -> str:
    lines = [header, "", "# The README's worked example", "",
             f"`restore-train -opt {TRAIN_OPT}`, what its log said:", "", "```", *log_lines, "```", "",
             f"`restore-test -opt {TEST_OPT}` ({test_seconds:.0f} s), mean per dataset (EMA weights, Y, crop 2, "
             "protocol `basicsr`), beside the bicubic baseline of the same protocol:", "",
             "| dataset | images | psnr | ssim | bicubic psnr / ssim |", "|---|---:|---:|---:|---:|"]
    for dataset, r in results.items():
        b = bicubic[dataset]["mean"]
        lines.append(f"| {dataset} | {len(r['images'])} | {r['mean']['psnr']:.4f} | {r['mean']['ssim']:.4f} | "
                     f"{b['psnr']:.4f} / {b['ssim']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="folder holding T91, Set5, Set14, BSD100 (default: the usual search)")
    p.add_argument("--out", default=os.path.join("results", "readme_example"))
    args = p.parse_args()
    root = find_data_root(args.data_root)
    data = ["--data-root", root]
    if restore_train.main(["-opt", TRAIN_OPT, *data]) != 0:
        return 2
    experiment = os.path.join("experiments", NAME)
    logs = sorted(f for f in os.listdir(experiment) if f.startswith(f"train_{NAME}_") and f.endswith(".log"))
    with open(os.path.join(experiment, logs[-1]), encoding="utf-8") as f:
        log_lines = log_milestones(f.read())
    start = time.time()
    if restore_test.main(["-opt", TEST_OPT, *data]) != 0:
        return 2
    test_seconds = time.time() - start
    with open(os.path.join("results", NAME, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    bicubic = {name: bicubic_scores(find_testset(get_testset(name), root), 2, "basicsr") for name in results}
    text = markdown(made_by("python", "scripts/readme_example.py", *sys.argv[1:]), log_lines, results, bicubic,
                    test_seconds)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_bytes(os.path.join(args.out, "worked_example.md"), text.encode())
    atomic_write_bytes(os.path.join(args.out, "worked_example.json"),
                       json.dumps({"log": log_lines, "means": {k: r["mean"] for k, r in results.items()}},
                                  indent=1).encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
