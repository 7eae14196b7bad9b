"""Crash-resume soak: kill a training run with SIGKILL again and again, resume it each time with
--auto_resume, and check that it ends with exactly the parameters of an uninterrupted run.

    python scripts/soak_resume.py --kills 10

Some kills are aimed at checkpoint writes (the script watches for the temporary file of an atomic
save and kills while it exists). After every kill it checks that the newest state and network files
of the experiment load. A report (markdown + JSON) goes to --out.
"""
import argparse
import glob
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from restore.cli.common import entry
from restore.utils.checkpoint import load_safely
from restore.utils.errors import RestoreError
from restore.utils.img_io import imwrite
from restore.utils.yaml_io import dump_yaml


def make_data(folder: str, n: int = 8, size: int = 64) -> str:
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        a = rng.uniform(1, 8, 3)
        img = 0.5 + 0.4 * np.sin(a[0] * xx[..., None] * np.arange(1, 4) + a[1] * yy[..., None]) * np.cos(a[2] * yy[..., None])
        imwrite(os.path.join(folder, f"s{i:02d}.png"), (img.clip(0, 1) * 255).round().astype(np.uint8))
    return folder


def options(name: str, work: str, data: str, total_iter: int, save_freq: int) -> dict:
    return {
        "name": name, "scale": 2, "device": "cpu", "manual_seed": 7,
        "datasets": {"train": {"type": "SRImageDataset", "dataroot_gt": data, "gt_size": 32,
                               "batch_size_per_gpu": 4, "dataset_enlarge_ratio": 3}},
        "network_g": {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 4,
                      "upscale": 2},
        "path": {"experiments_root": os.path.join(work, "experiments")},
        "train": {"ema_decay": 0.99, "optim_g": {"type": "Adam", "lr": 1e-3},
                  "scheduler": {"type": "MultiStepLR", "milestones": [total_iter // 2], "gamma": 0.5},
                  "total_iter": total_iter, "pixel_opt": {"type": "L1Loss"}},
        "logger": {"print_freq": 10, "save_checkpoint_freq": save_freq, "use_tb_logger": False},
    }


def train_cmd(opt_path: str, resume: bool) -> list[str]:
    return [sys.executable, "-m", "restore.train", "-opt", opt_path] + (["--auto_resume"] if resume else [])


def newest_files_load(exp: str) -> tuple[bool, str]:
    states = sorted(glob.glob(os.path.join(exp, "training_states", "*.state")),
                    key=lambda p: int(os.path.basename(p)[:-6]))
    if not states:
        return True, "no state yet"
    it = os.path.basename(states[-1])[:-6]
    try:
        load_safely(states[-1])
        load_safely(os.path.join(exp, "models", f"net_g_{it}.pth"))
    except RestoreError as e:
        return False, str(e)
    return True, f"newest state {it} loads"


def states_of(exp: str) -> list:
    return glob.glob(os.path.join(exp, "training_states", "*.state"))


def temp_files(exp: str) -> set:
    return set(glob.glob(os.path.join(exp, "*", ".*.tmp")))


def soak(kills: int, total_iter: int, save_freq: int, work: str, seed: int = 0, log=print) -> dict:
    rnd = random.Random(seed)
    data = make_data(os.path.join(work, "data"))
    paths = {}
    for name in ("reference", "soaked"):
        paths[name] = os.path.join(work, f"{name}.yml")
        with open(paths[name], "w") as f:
            f.write(dump_yaml(options(name, work, data, total_iter, save_freq)))
    subprocess.run(train_cmd(paths["reference"], False), check=True, capture_output=True)
    exp = os.path.join(work, "experiments", "soaked")
    events = []
    for k in range(kills):
        proc = subprocess.Popen(train_cmd(paths["soaked"], True),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stale = temp_files(exp)  # left by an earlier kill; a resumed run removes them

        def writing_now():
            return bool(temp_files(exp) - stale)

        aim_at_write = k % 2 == 0
        # progress-driven kill times: wait for 1-2 new checkpoints, then kill either the moment the
        # next atomic save starts writing, or at a random moment up to half a second later
        target = len(states_of(exp)) + rnd.randint(1, 2)
        during_write = False
        while proc.poll() is None and len(states_of(exp)) < target:
            time.sleep(0.002)
        if aim_at_write:
            give_up = time.time() + 30
            while proc.poll() is None and not writing_now() and time.time() < give_up:
                time.sleep(0.0005)
            during_write = writing_now()
        else:
            time.sleep(rnd.uniform(0.0, 0.5))
        finished = proc.poll() is not None
        if not finished:
            during_write = during_write or writing_now()
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        ok, detail = newest_files_load(exp)
        events.append({"kill": k + 1, "killed": not finished, "during_write": during_write,
                       "newest_loads": ok, "detail": detail})
        log(f"kill {k + 1}/{kills}: {'killed' if not finished else 'had already finished'}"
            f"{' during a checkpoint write' if during_write else ''}; {detail}")
    subprocess.run(train_cmd(paths["soaked"], True), check=True, capture_output=True)
    a = load_safely(os.path.join(work, "experiments", "reference", "models", f"net_g_{total_iter}.pth"))
    b = load_safely(os.path.join(exp, "models", f"net_g_{total_iter}.pth"))
    identical = all(torch.equal(a[g][n], b[g][n]) for g in ("params", "params_ema") for n in a[g])
    return {"kills": kills, "total_iter": total_iter, "save_every": save_freq,
            "kills_during_write": sum(e["during_write"] for e in events),
            "unreadable_newest": sum(not e["newest_loads"] for e in events),
            "identical_final_parameters": identical, "events": events}


def report_markdown(r: dict) -> str:
    lines = [f"kills: {r['kills']} (during a checkpoint write: {r['kills_during_write']}), "
             f"iterations: {r['total_iter']}, checkpoint every {r['save_every']}",
             f"unreadable newest checkpoint after a kill: {r['unreadable_newest']}",
             f"final parameters identical to the uninterrupted run: {r['identical_final_parameters']}"]
    return "\n".join(lines) + "\n"


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="soak_resume", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=10, help="number of SIGKILLs (default 10)")
    p.add_argument("--iters", type=int, default=90, help="training iterations (default 90)")
    p.add_argument("--save-every", type=int, default=3, help="checkpoint frequency (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    p.add_argument("--out", help="folder for report.md / report.json (default: a temp folder)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        r = soak(args.kills, args.iters, args.save_every, work, args.seed)
    text = report_markdown(r)
    print(text, end="")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "report.json"), "w") as f:
            json.dump(r, f, indent=1)
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(text)
    return 0 if r["identical_final_parameters"] and r["unreadable_newest"] == 0 else 1


if __name__ == "__main__":
    entry(main)()
