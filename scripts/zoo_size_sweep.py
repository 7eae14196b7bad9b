"""How big should a CPU-trained zoo model be? Equal wall-time training of NSR x2 sizes, then Set5/Set14.

    python scripts/zoo_size_sweep.py                    # 8 configurations, 240 s each, two at a time (~20 min)
    python scripts/zoo_size_sweep.py --seconds 60 --configs A B
    python scripts/zoo_size_sweep.py --score-only --configs E   # re-score an earlier sweep's checkpoints

Each configuration trains options/train/zoo/nsr_sr_x2.yml (its data, patches, batch and lr, with a
constant lr: the cosine period is pushed past the end) for the same wall time on one torch thread,
two configurations at a time (one per core), is stopped by SIGTERM (restore-train saves the state of
the iteration it reached), and its EMA network is scored by restore-bench on Set5 and Set14 x2.
Equal time rather than equal iterations is the question a fixed CPU budget asks: a bigger net does
more per step but takes fewer steps. Experiments go to experiments/sweep_<config>/, scores to
results/zoo/sweep_<config>/, and the table (every configuration scored so far) to results/zoo/size_sweep.md.
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from restore.cli.benchmark import main as bench_main
from restore.cli.common import run_cli
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes

OPTIONS = os.path.join("options", "train", "zoo", "nsr_sr_x2.yml")
BASE = {"num_feat": 32, "num_block": 8, "width_mult": 1, "k": 4, "d": 8}
CONFIGS = {  # label: changes to BASE (the x2 option file's network)
    "A": {},
    "B": {"width_mult": 4},
    "C": {"num_feat": 48},
    "D": {"num_block": 16},
    "E": {"k": 2},
    "F": {"k": 8},
    "G": {"d": 4},
    "H": {"d": 16},
}
NO_SCHEDULE = ["train.total_iter=100000", "train.scheduler.periods=[100000]", "val.val_freq=100000",
               "logger.save_checkpoint_freq=100000", "logger.use_tb_logger=false"]


def train_for(label: str, seconds: float) -> subprocess.Popen:
    sets = NO_SCHEDULE + [f"name=sweep_{label}"] + [f"network_g.{k}={v}" for k, v in CONFIGS[label].items()]
    cmd = [sys.executable, "-m", "restore.train", "-opt", OPTIONS] + [a for s in sets for a in ("--set", s)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log = open(os.path.join(ROOT, "results", "zoo", f"sweep_{label}.log"), "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.deadline = time.time() + seconds
    return proc


def checkpoint_of(label: str) -> str:
    found = glob.glob(os.path.join(ROOT, "experiments", f"sweep_{label}", "models", "net_g_*.pth"))
    found = [f for f in found if not f.endswith("latest.pth")]
    if not found:
        raise RestoreError(f"sweep {label}: no checkpoint (see results/zoo/sweep_{label}.log)")
    return os.path.relpath(max(found, key=lambda f: int(f.rsplit("_", 1)[1].split(".")[0])), ROOT)


def bench(label: str) -> None:
    """Score the configuration's last checkpoint on Set5 and Set14 x2 into results/zoo/sweep_<label>/."""
    net = dict(BASE, **CONFIGS[label])
    spec = f"{label}=NSR:{checkpoint_of(label)},upscale=2," + ",".join(f"{k}={v}" for k, v in net.items())
    code = run_cli(bench_main, ["--model", spec, "--sets", "Set5", "Set14", "--scales", "2", "--no-html",
                                "--latency-runs", "0", "--no-progress", "-o", scores_dir(label)])
    if code:
        raise RestoreError(f"restore-bench failed for sweep {label}")


def scores_dir(label: str) -> str:
    return os.path.join(ROOT, "results", "zoo", f"sweep_{label}")


def row(label: str) -> dict:
    """The table row, from the scores alone (the experiment folder may be gone by now)."""
    with open(os.path.join(scores_dir(label), "results.json"), encoding="utf-8") as f:
        scored = json.load(f)
    model = scored["models"][0]
    out = {"label": label, "network": model["network_g"], "params": model["params"],
           "iterations": int(os.path.basename(model["weights"]).rsplit("_", 1)[1].split(".")[0])}
    for r in scored["results"]:
        out[r["set"]] = r["mean"][label]["psnr"]
    return out


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=240, help="wall time per configuration (default 240)")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--score-only", action="store_true", help="no training: score experiments/sweep_*")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # checkpoints are named relative to the checkout, in the results too
    os.makedirs(os.path.join(ROOT, "results", "zoo"), exist_ok=True)
    for i in range(0, 0 if args.score_only else len(args.configs), 2):  # two at a time: one per core
        procs = [train_for(label, args.seconds) for label in args.configs[i:i + 2]]
        for proc in procs:
            time.sleep(max(0.0, proc.deadline - time.time()))
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()
    for label in args.configs:
        bench(label)
    # the table lists every configuration scored so far; those not asked for keep their earlier scores
    rows = [row(c) for c in CONFIGS if os.path.isfile(os.path.join(scores_dir(c), "results.json"))]
    lines = [f"Equal wall time: {args.seconds:g} s per configuration, 1 thread, two at a time "
             f"(`python scripts/zoo_size_sweep.py --seconds {args.seconds:g}`); PSNR on Y, EMA weights.", "",
             "| config | num_feat | num_block | width_mult | k | d | params | iterations reached | Set5 x2 | Set14 x2 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        n = r["network"]
        lines.append(f"| {r['label']} | {n['num_feat']} | {n['num_block']} | {n['width_mult']} | {n['k']} | {n['d']} | "
                     f"{r['params']:,} | {r['iterations']} | {r['Set5']:.2f} | {r['Set14']:.2f} |")
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(os.path.join(ROOT, "results", "zoo", "size_sweep.md"), text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
