"""Release a trained model into the zoo: weights, checksum, manifest entry, benchmark and model card.

    python scripts/zoo_release.py nsr_sr_x2            # after restore-train -opt options/train/zoo/nsr_sr_x2.yml
    python scripts/zoo_release.py nsr_sr_x2 --stages weights     # only export the weights
    python scripts/zoo_release.py nsr_sr_x2 --stages bench card  # re-run the benchmark, rewrite the card
    python scripts/zoo_release.py nsr_dn_gray_blind --stages entry  # only rewrite its zoo.yml entry
    python scripts/zoo_release.py --zoo-page     # rewrite docs/zoo.md's and README's tables from results/zoo/

Stages (default: all, in this order):
  weights  the final EMA network of experiments/zoo_NAME/models/net_g_latest.pth (refused unless the
           run reached train.total_iter) -> restore/inference/weights/NAME.safetensors (fp32, params
           only), and the run's iterations and wall time (from its training logs) in
           results/zoo/NAME/training.json; then the entry stage;
  entry    the model's entry in restore/inference/weights/zoo.yml (network, weights, SHA256, card,
           option file, family) from the shipped weight file;
  bench    restore-bench on the model's test sets, by name (so it checks the shipped file), into
           results/zoo/NAME/ (SR models also with gate_region=tile, tiles of 48 and 24);
  card     docs/zoo/NAME.md: data, option file, iterations and wall time (from the training log),
           parameters, MACs per pixel, checksum and the benchmark tables, with the commands.
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import torch
import yaml

from restore.cli.benchmark import main as bench_main
from restore.cli.common import run_cli
from restore.inference.zoo import BUILTIN_LIST, WEIGHTS_DIR, sha256_of
from restore.utils.checkpoint import extract_state_dict, load_safely, save_network_file
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes
from restore.utils.yaml_io import load_yaml

# (task, colour) -> restore-bench arguments (the benchmark protocol for each kind of model). A
# colour JPEG model is also scored on gray Classic5 (restore-bench runs it as R=G=B).
BENCH = {
    ("sr", "rgb"): lambda scale: ["--sets", "Set5", "Set14", "BSD100", "--scales", str(scale)],
    ("denoise", "gray"): lambda scale: ["--sets", "Set12", "BSD68", "--sigmas", "15", "25", "50"],
    ("denoise", "rgb"): lambda scale: ["--sets", "CBSD68", "McMaster", "--sigmas", "15", "25", "50"],
    ("jpeg", "y"): lambda scale: ["--sets", "LIVE1", "Classic5", "--qualities", "10", "20", "30", "40"],
    ("jpeg", "rgb"): lambda scale: ["--sets", "LIVE1-RGB", "Classic5", "--qualities", "10", "20", "30", "40"],
}
DESCRIPTIONS = {  # also the order of the zoo tables
    "nsr_sr_x2": "NSR x2 super-resolution (RGB), T91 + BSD200, CPU-trained",
    "nsr_sr_x3": "NSR x3 super-resolution (RGB), T91 + BSD200, CPU-trained",
    "nsr_sr_x4": "NSR x4 super-resolution (RGB), T91 + BSD200, from nsr_sr_x2, CPU-trained",
    "nsr_dn_gray_blind": "NSR gray denoiser, any sigma in [0, 55], Train400 + BSD200 + T91, CPU-trained",
    "nsr_dn_color_blind": "NSR colour (RGB) denoiser, any sigma in [0, 55], BSD200 + T91, CPU-trained",
    "nsr_jpeg_gray_blind": "NSR gray (Y) JPEG deblocker, quality 10-40, T91 + BSD200 + Train400, CPU-trained",
    "nsr_jpeg_color_blind": "NSR colour (RGB) JPEG deblocker, quality 10-40, BSD200 + T91, CPU-trained",
}
# restore-infer --model FAMILY runs gray images through the gray member, colour ones through the other
FAMILIES = {"nsr_dn_gray_blind": "nsr_dn_blind", "nsr_dn_color_blind": "nsr_dn_blind",
            "nsr_jpeg_gray_blind": "nsr_jpeg_blind", "nsr_jpeg_color_blind": "nsr_jpeg_blind"}
# How each zoo run was launched (the wall time on a card means nothing without it): one torch thread
# each beside another run, or both cores alone.
LAUNCH = {
    "nsr_sr_x2": ("", "2 torch threads under bf16 autocast, in three pieces: iterations 1-1,249 beside two "
                      "small test runs, stopped with SIGTERM for a CI run; continued with --auto_resume and "
                      "killed without a word soon after iteration 1,400 when its session ended; the third "
                      "continued from the 1,249 state with --auto_resume 9 minutes later in the next session "
                      "on the same machine, alone but for edits (the steps past 1,249 were done twice; their "
                      "minutes count); trained as the candidate zoo_nsr_sr_x2_xeon, its folder and logs "
                      "renamed at release"),
    "nsr_sr_x2_p128": ("", "2 torch threads under bf16 autocast, alone but for edits, in one piece, started by "
                           "a shell loop the moment run 1 finished; trained as the candidate "
                           "zoo_nsr_sr_x2_xeon_p128, its folder and logs renamed at release"),
    "nsr_dn_gray_blind": ("", "2 torch threads under bf16 autocast, alone but for edits and small tests, in two "
                              "pieces: iterations 1-10,009 as a pilot, stopped with SIGTERM when its session "
                              "ended (2026-12-05 11:11), continued with --auto_resume 23 minutes later in the "
                              "next session on the same machine; trained as the candidate "
                              "zoo_nsr_dn_gray_blind_xeon, its folder and logs renamed at release"),
    "nsr_jpeg_gray_blind": ("", "2 torch threads under bf16 autocast, alone but for edits and small tests and "
                                "two pauses of a few seconds (SIGSTOP) for micro-benchmarks before iteration 660; "
                                "stopped there with SIGTERM to shorten its cosine from 20,000 to 17,000 "
                                "iterations and continued with --auto_resume"),
    "nsr_dn_gray_blind_p128": ("", "2 torch threads under bf16 autocast, alone but for edits, in one piece, "
                                   "started by a shell loop the moment run 1 finished; trained as the candidate "
                                   "zoo_nsr_dn_gray_blind_xeon_p128, its folder and logs renamed at release"),
    "nsr_jpeg_gray_blind_mse": ("", "2 torch threads under bf16 autocast, alone but for edits, in one piece, "
                                    "started by a shell loop the moment the first run finished"),
    "nsr_jpeg_gray_blind_mse2": ("", "2 torch threads under bf16 autocast, alone but for edits, in one piece"),
    "nsr_jpeg_gray_blind_p80": ("", "2 torch threads under bf16 autocast, alone but for edits, in one piece, "
                                    "started by a shell loop the moment nsr_dn_gray_blind_p128 finished"),
    "nsr_sr_x3": ("", "2 torch threads, alone but for edits, in one piece; trained as the candidate "
                      "zoo_nsr_sr_x3_xeon, its folder and logs renamed at release"),
    "nsr_sr_x4": ("", "2 torch threads, alone but for edits and small tests, except iterations 1-994 "
                      "(13 min) at about 0.8 s a step, before the data workers' numpy BLAS was limited to "
                      "one thread, and 4,808-6,454 (17 min) on 1 thread beside a test-suite run"),
    "nsr_dn_color_blind": ("OMP_NUM_THREADS=1 ", "1 torch thread, beside one other training run and "
                                                 "development work (tests, edits)"),
    "nsr_jpeg_color_blind": ("OMP_NUM_THREADS=1 ", "1 torch thread, beside one other training run and "
                                                   "development work (tests, edits)"),
}


# The machine each run trained on, which a wall time means nothing without: the zoo's first runs all
# trained on 2-core AMD EPYC machines; an Intel Xeon with AMX takes shorter steps on every recipe
# (results/bench_train/2026-12-05_intel_e2e_zoo.md).
AMD_EPYC = "a 2-core AMD EPYC"
INTEL_XEON = "the idle 2-core Intel Xeon with AMX"
MACHINE = {"nsr_sr_x2": INTEL_XEON, "nsr_sr_x2_p128": INTEL_XEON, "nsr_sr_x3": INTEL_XEON,
           "nsr_dn_gray_blind": INTEL_XEON, "nsr_dn_gray_blind_p128": INTEL_XEON}


def machine_of(run: str) -> str:
    return MACHINE.get(run, AMD_EPYC)


# A model made by more than one training run (e.g. an L1 run, then an MSE fine-tune of its network)
# names the option file of its last run; training_runs() finds the others.
LAST_RUN = {"nsr_sr_x2": "nsr_sr_x2_p128", "nsr_dn_gray_blind": "nsr_dn_gray_blind_p128",
            "nsr_jpeg_gray_blind": "nsr_jpeg_gray_blind_p80"}


def option_file(name: str) -> str:
    return os.path.join("options", "train", "zoo", f"{name}.yml")


def read_options(name: str) -> dict:
    path = os.path.join(ROOT, option_file(name))
    if not os.path.isfile(path):
        raise RestoreError(f"{path}: no zoo option file for '{name}'")
    with open(path, encoding="utf-8") as f:
        return load_yaml(f.read(), path)


def task_of(opt: dict) -> str:
    kind = opt["datasets"]["train"]["type"]
    return {"SRImageDataset": "sr", "DenoiseDataset": "denoise", "JPEGDataset": "jpeg"}[kind]


def color_of(opt: dict) -> str:
    return opt["datasets"]["train"].get("color", "rgb")


def experiment_dir(opt: dict) -> str:
    return os.path.join(ROOT, "experiments", opt["name"])


def log_minutes(text: str, until: str) -> float:
    """Minutes from a log's first timestamped line to the timestamp `until`."""
    begun = re.search(r"^(\S+ \S+) INFO:", text, re.M).group(1)
    return (datetime.fromisoformat(until) - datetime.fromisoformat(begun)).total_seconds() / 60


def training_logs(opt: dict) -> list[str]:
    return sorted(glob.glob(os.path.join(experiment_dir(opt), f"train_{opt['name']}_*.log")))


def training_record(opt: dict) -> dict:
    """Iterations reached and wall time, from the 'done:' lines of the experiment's training logs
    (a resumed run adds its pieces)."""
    minutes, runs, last, rates, validation = 0.0, 0, None, [], {}
    for log in training_logs(opt):
        with open(log, encoding="utf-8", errors="replace") as f:
            text = f.read().replace("\r", "\n")
        for m in re.finditer(r"INFO: done: (\d+) iterations \((\d+) in this run, ([\d.]+) min wall time\)", text):
            last, runs, minutes = int(m.group(1)), runs + 1, minutes + float(m.group(3))
        # a piece stopped by a signal (and continued with --auto_resume) adds its time too; logs from
        # before the line stated its minutes give them by the timestamps of the log's first line and it
        stopped = list(re.finditer(r"(\S+ \S+) INFO: SIG\w+: saved the state of iteration (\d+)(?: \((\d+) in "
                                   r"this run, ([\d.]+) min wall time\))?", text))
        for m in stopped:
            runs += 1
            minutes += float(m.group(4)) if m.group(4) else log_minutes(text, m.group(1))
        if not stopped and " INFO: done: " not in text:
            # killed without a word (kill -9, a lost machine): the steps after its last checkpoint
            # were redone by the next piece, but the time was spent, so it counts
            stamps = re.findall(r"^(\S+ \S+) INFO:", text, re.M)
            if stamps:
                runs += 1
                minutes += log_minutes(text, stamps[-1])
        rates += [float(r) for r in re.findall(r"INFO: iter +\d+ epoch \d+ lr \S+ ([\d.]+) it/s", text)]
        # a resumed piece repeats no validation, but a killed one may have run one its successor reruns
        validation.update({int(it): float(v) for it, v in re.findall(r"INFO: val \S+ @ (\d+): psnr ([\d.]+)", text)})
    if last is None:
        raise RestoreError(f"{experiment_dir(opt)}: no finished training log (run restore-train -opt "
                           f"{option_file(opt['name'][4:])} first)")
    record = {"iterations": last, "wall_minutes": minutes, "log_pieces": runs}
    if rates:  # the logged speed of each print interval; the median leaves out validation pauses
        record["median_step_seconds"] = round(1 / statistics.median(rates), 3)
    if validation:  # PSNR on the validation set by iteration: how much a longer run would add
        record["validation_psnr"] = {str(it): validation[it] for it in sorted(validation)}
    return record


def training_json(name: str) -> str:
    return os.path.join(ROOT, "results", "zoo", name, "training.json")


def recorded_training(name: str) -> dict:
    """What the weights stage recorded of the run (so cards and tables need no experiment folder)."""
    path = training_json(name)
    if not os.path.isfile(path):
        raise RestoreError(f"{path}: run python scripts/zoo_release.py {name} --stages weights first")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def training_runs(name: str) -> list[str]:
    """The option files (X of options/train/zoo/X.yml) of the runs that make model `name`, first
    run first: its last run (LAST_RUN, else NAME.yml), preceded by the run whose experiment folder
    (experiments/zoo_X) its path.pretrain_network_g points into, and so on."""
    runs = [LAST_RUN.get(name, name)]
    while True:
        pretrain = str((read_options(runs[0]).get("path") or {}).get("pretrain_network_g", ""))
        earlier = re.search(r"experiments/zoo_([\w.-]+)/", pretrain)
        if not earlier:
            return runs
        if earlier.group(1) in runs:
            raise RestoreError(f"{option_file(runs[0])}: path.pretrain_network_g starts a circle of runs")
        runs.insert(0, earlier.group(1))


def model_record(name: str) -> dict:
    """The training record of model `name`: its run's training_record, or for a model made by
    several runs their records under "runs" and the sums (iterations, wall time, log pieces) with
    the validation PSNR by the model's own iteration count (a later run's iterations follow the
    earlier runs'). A run whose experiment folder holds no log (the folder of a machine that kept
    only the repository) keeps its record from results/zoo/NAME/training.json."""
    runs = training_runs(name)
    if len(runs) == 1:
        return training_record(read_options(name))
    kept = {}
    if os.path.isfile(training_json(name)):
        recorded = recorded_training(name)
        # a model released from one run kept that run's record whole (a second run may follow it later)
        kept = {r["options"]: r for r in recorded.get("runs", [{"options": option_file(runs[0]), **recorded}])}
    total = {"iterations": 0, "wall_minutes": 0.0, "log_pieces": 0, "validation_psnr": {}, "runs": []}
    for run in runs:
        opt = read_options(run)
        if training_logs(opt) or option_file(run) not in kept:
            record = {"options": option_file(run), **training_record(opt)}
        else:
            record = kept[option_file(run)]
            print(f"{option_file(run)}: no training log in {experiment_dir(opt)}; its record is the one "
                  f"{os.path.relpath(training_json(name), ROOT)} keeps")
        for it, psnr in record.get("validation_psnr", {}).items():
            total["validation_psnr"][str(total["iterations"] + int(it))] = psnr
        total["iterations"] += record["iterations"]
        total["wall_minutes"] += record["wall_minutes"]
        total["log_pieces"] += record["log_pieces"]
        total["runs"].append(record)
    return total


def stage_weights(name: str, opt: dict) -> dict:
    record = model_record(name)
    last = read_options(training_runs(name)[-1])
    reached = record["runs"][-1]["iterations"] if "runs" in record else record["iterations"]
    if reached != last["train"]["total_iter"]:
        raise RestoreError(f"{name}: the run stopped at iteration {reached}, not at "
                           f"train.total_iter {last['train']['total_iter']}")
    ckpt = os.path.join(experiment_dir(last), "models", "net_g_latest.pth")
    ema = extract_state_dict(load_safely(ckpt), "params_ema", ckpt)
    os.makedirs(WEIGHTS_DIR, exist_ok=True)
    weights = os.path.join(WEIGHTS_DIR, f"{name}.safetensors")
    save_network_file(weights, {k: v.float() for k, v in ema.items()})
    os.makedirs(os.path.dirname(training_json(name)), exist_ok=True)
    atomic_write_bytes(training_json(name), json.dumps(record, indent=2).encode())
    stage_entry(name, opt)
    return record


def stage_entry(name: str, opt: dict) -> None:
    weights = os.path.join(WEIGHTS_DIR, f"{name}.safetensors")
    if not os.path.isfile(weights):
        raise RestoreError(f"{weights}: run the weights stage first")
    entries = {}
    if os.path.isfile(BUILTIN_LIST):
        with open(BUILTIN_LIST, encoding="utf-8") as f:
            entries = load_yaml(f.read(), BUILTIN_LIST) or {}
    entries[name] = {"task": task_of(opt), "description": DESCRIPTIONS.get(name, name),
                     "network_g": dict(opt["network_g"]), "weights": f"{name}.safetensors",
                     "sha256": sha256_of(weights), "card": f"docs/zoo/{name}.md",
                     "options": option_file(training_runs(name)[-1]),
                     **({"family": FAMILIES[name]} if name in FAMILIES else {})}
    text = ("# The models shipped with restore (written by scripts/zoo_release.py; do not edit by hand).\n"
            + yaml.safe_dump(dict(sorted(entries.items())), sort_keys=False, width=120))
    atomic_write_bytes(BUILTIN_LIST, text.encode())
    print(f"{weights}: {os.path.getsize(weights) / 1e6:.2f} MB, sha256 {entries[name]['sha256']}")


def bench_args(name: str, opt: dict) -> list[str]:
    task = task_of(opt)
    models = ["--model", name]
    if task == "sr":
        # the reference's tiles (48) engage only on LR images with both sides >= 192; 24 engages on most
        models += ["--model", f"{name}_tile48={name},gate_region=tile",
                   "--model", f"{name}_tile24={name},gate_region=tile,tile_size=24"]
    return models + BENCH[task, color_of(opt)](opt.get("scale", 1)) + ["-o", os.path.join("results", "zoo", name),
                                                        "--no-html", "--latency-runs", "3", "--no-progress"]


def stage_bench(name: str, opt: dict) -> None:
    code = run_cli(bench_main, bench_args(name, opt))
    if code:
        raise RestoreError(f"restore-bench failed for {name} (exit {code})")


def validation_curve(record: dict) -> str:
    """'; PSNR 30.04 @ 1000, ...' from a training record, at most six points (evenly picked, the last kept)."""
    points = list(record.get("validation_psnr", {}).items())
    if not points:
        return ""
    step = max(1, -(-len(points) // 6))
    shown = points[::-1][::step][::-1]
    return "; PSNR " + ", ".join(f"{float(v):.2f} @ {it}" for it, v in shown)


def scheduler_text(scheduler: dict) -> str:
    """'CosineAnnealingRestartLR (periods [7000, 3900], restart_weights [1, 0.25], eta_min 1e-06)'."""
    settings = ", ".join(f"{k} {v}" for k, v in scheduler.items() if k != "type")
    return f"{scheduler['type']} ({settings})" if settings else scheduler["type"]


def losses_text(train: dict) -> str:
    """'L1Loss', or with start_iter / end_iter 'L1Loss (iterations 1-10,900), MSELoss (iterations 10,901-15,900)'."""
    blocks = sorted((b.get("start_iter", 0), b.get("end_iter", train["total_iter"]), b["type"])
                    for k, b in train.items() if k.endswith("_opt"))
    if all(start == 0 and end >= train["total_iter"] for start, end, _ in blocks):
        return " + ".join(kind for _, _, kind in blocks)
    return ", ".join(f"{kind} (iterations {start + 1:,}-{min(end, train['total_iter']):,})"
                     for start, end, kind in blocks)


def optimiser_text(opt: dict) -> str:
    train = opt["train"]
    return (f"{train['optim_g']['type']} lr {train['optim_g']['lr']}, {scheduler_text(train['scheduler'])}, "
            f"{losses_text(train)}")


def run_rows(name: str, record: dict) -> list[str]:
    """The card's optimiser, iterations, wall time and step time rows: of the one run, or run by run."""
    runs = training_runs(name)
    opts = [read_options(run) for run in runs]
    ema = f", EMA {opts[-1]['train']['ema_decay']}"
    if len(runs) == 1:
        opt = opts[0]
        return [f"| optimiser | {optimiser_text(opt)}{ema} |",
                f"| iterations | {record['iterations']} (seed {opt['manual_seed']}) |",
                f"| wall time | {record['wall_minutes']:.1f} min on {machine_of(name)}, {LAUNCH[name][1]} |",
                *([f"| step time | {record['median_step_seconds']:.2f} s per iteration (median of the logged "
                   f"intervals) |"] if "median_step_seconds" in record else [])]
    parts = list(zip(runs, opts, record["runs"]))
    machines = {machine_of(run) for run in runs}
    shared = machines.pop() if len(machines) == 1 else None  # named once when every run shares it

    def on_machine(run: str) -> str:
        return "" if shared else f" on {machine_of(run)}"
    return [
        "| optimiser | " + "; ".join(f"run {i} ({run}): {optimiser_text(opt)}"
                                     for i, (run, opt, _) in enumerate(parts, 1)) + f"{ema} (each run's own) |",
        f"| iterations | {record['iterations']:,} = " + " + ".join(f"{r['iterations']:,}" for _, _, r in parts)
        + " (seeds " + ", ".join(str(opt["manual_seed"]) for _, opt, _ in parts) + "); every run after the "
        "first starts from the final EMA network of the run before it |",
        f"| wall time | {record['wall_minutes']:.1f} min{' on ' + shared if shared else ''}: "
        + "; ".join(f"run {i} {r['wall_minutes']:.1f} min{on_machine(run)}, {LAUNCH[run][1]}"
                    for i, (run, _, r) in enumerate(parts, 1))
        + " |",
        "| step time | " + ", ".join(f"run {i} {r['median_step_seconds']:.2f} s" for i, (_, _, r) in enumerate(parts, 1)
                                     if "median_step_seconds" in r) + " per iteration (median of the logged intervals) |",
    ]


def data_text(train: dict) -> str:
    """'Train400, BSD200 (sigma_range: [0, 55], color: gray, exclude: [...])' of a training set's options."""
    data = train["dataroot_gt"] if isinstance(train["dataroot_gt"], list) else [train["dataroot_gt"]]
    degradation = {k: train[k] for k in ("sigma_range", "sigma", "quality_range", "quality", "color", "exclude")
                   if k in train}
    return (", ".join(os.path.basename(d) for d in data)
            + (" (" + ", ".join(f"{k}: {v}" for k, v in degradation.items()) + ")" if degradation else ""))


def patches_text(train: dict) -> str:
    """'40x40 GT, batch 16, flips + rotations' (the augmentations as the options set them; both default on)."""
    augment = [a for a, key in (("flips", "use_hflip"), ("rotations", "use_rot")) if train.get(key, True)]
    return (f"{train['gt_size']}x{train['gt_size']} GT, batch {train['batch_size_per_gpu']}, "
            f"{' + '.join(augment) or 'no flips or rotations'}")


def by_run(texts: list[str]) -> str:
    """One text when every run of a model shares it, else 'runs 1-3: A; run 4: B' (runs in a row that
    share a text named together)."""
    if len(set(texts)) == 1:
        return texts[0]
    groups = []  # [first run, last run, text]
    for i, text in enumerate(texts, 1):
        if groups and groups[-1][2] == text:
            groups[-1][1] = i
        else:
            groups.append([i, i, text])
    return "; ".join(f"run {a}: {t}" if a == b else f"runs {a}-{b}: {t}" for a, b, t in groups)


def card_text(name: str, opt: dict) -> str:
    """The card docs/zoo/NAME.md, from the committed results, zoo.yml entry, training record and option files."""
    results = os.path.join(ROOT, "results", "zoo", name, "results.md")
    if not os.path.isfile(results):
        raise RestoreError(f"{results}: run the bench stage first")
    with open(results, encoding="utf-8") as f:
        bench = f.read().split("\n", 1)[1].strip()  # drop its '# Benchmark' title
    with open(BUILTIN_LIST, encoding="utf-8") as f:
        entry = load_yaml(f.read(), BUILTIN_LIST)[name]
    record = recorded_training(name)
    runs = training_runs(name)
    run_trains = [read_options(run)["datasets"]["train"] for run in runs]
    weights = os.path.join(WEIGHTS_DIR, f"{name}.safetensors")
    lines = [
        f"# {name}", "", entry["description"] + ".", "",
        "| | |", "|---|---|",
        f"| task | {entry['task']}{' x' + str(opt['scale']) if entry['task'] == 'sr' else ''} |",
        f"| network_g | `{yaml.safe_dump(opt['network_g'], default_flow_style=True, width=1000).strip()}` |",
        f"| training data | {by_run([data_text(train) for train in run_trains])} |",
        f"| patches | {by_run([patches_text(train) for train in run_trains])} |",
        *run_rows(name, record),
        f"| validation | {opt['datasets']['val']['name']}: watched during training only; the shipped weights "
        f"are the final EMA network{' of the last run' if len(runs) > 1 else ''}{validation_curve(record)} |",
        f"| weights | `restore/inference/weights/{name}.safetensors` ({os.path.getsize(weights) / 1e6:.2f} MB, "
        f"fp32 EMA weights) |",
        f"| sha256 | `{entry['sha256']}` |",
        f"| option file{'s' if len(runs) > 1 else ''} | " + ", then ".join(f"`{option_file(run)}`" for run in runs) + " |",
        "", "Reproduce, check and use:", "",
        *[f"    {LAUNCH[run][0]}restore-train -opt {option_file(run)}" for run in runs],
        f"    python scripts/zoo_release.py {name}",
        f"    restore-infer --model {name} -i INPUT -o OUTPUT/",
        f"    restore-bench {' '.join(a if ' ' not in a else repr(a) for a in bench_args(name, opt))}", "",
        bench, "",
    ]
    return "\n".join(lines)


def stage_card(name: str, opt: dict) -> None:
    os.makedirs(os.path.join(ROOT, "docs", "zoo"), exist_ok=True)
    atomic_write_bytes(os.path.join(ROOT, "docs", "zoo", f"{name}.md"), card_text(name, opt).encode())
    print(f"docs/zoo/{name}.md written")


def _score(result: dict, label: str) -> str:
    m = result["mean"].get(label)
    return f"{m['psnr']:.2f} / {m['ssim']:.4f}" if m else "-"


def bench_results(name: str) -> dict:
    """A released model's results/zoo/NAME/results.json (what the bench stage wrote)."""
    path = os.path.join(ROOT, "results", "zoo", name, "results.json")
    if not os.path.isfile(path):
        raise RestoreError(f"{path}: run python scripts/zoo_release.py {name} first")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def zoo_tables(names: list[str]) -> str:
    """The models table, then one table per model: its mean PSNR / SSIM per set and level beside the
    baseline (bicubic, or the degraded input), and for SR models their gate_region=tile scores.
    Card links are relative to docs/, where the tables live (docs/zoo.md)."""
    benches = {name: bench_results(name) for name in names}
    lines = ["| model | task | params | MACs / output px | iterations | wall time | weights | card |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for name in names:
        model = benches[name]["models"][0]
        opt, record = read_options(name), recorded_training(name)
        task = task_of(opt) + (f" x{opt['scale']}" if task_of(opt) == "sr" else "")
        size = os.path.getsize(os.path.join(WEIGHTS_DIR, f"{name}.safetensors")) / 1e6
        lines.append(f"| `{name}` | {task} | {model['params']:,} | {model['macs_per_pixel'] / 1e3:.1f}K | "
                     f"{record['iterations']:,} | {record['wall_minutes']:.0f} min | {size:.2f} MB | "
                     f"[zoo/{name}.md](zoo/{name}.md) |")
    lines.append("")
    for name in names:
        bench = benches[name]
        results = bench["results"]
        columns = [f"{r['set']} {r['level_name']}" for r in results]
        baseline = "Bicubic" if results[0]["task"] == "sr" else "Input"
        labels = [baseline] + [m["label"] for m in bench["models"]]
        lines += [f"**{name}** (`restore-bench {' '.join(bench_args(name, read_options(name)))}`)", "",
                  "| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for label in labels:
            lines.append(f"| {label} | " + " | ".join(_score(r, label) for r in results) + " |")
        lines.append("")
    return "\n".join(lines)


ZOO_PAGE = os.path.join(ROOT, "docs", "zoo.md")
README = os.path.join(ROOT, "README.md")
SIZE_SWEEP = os.path.join(ROOT, "results", "zoo", "size_sweep.md")
TARGETS = os.path.join(ROOT, "results", "zoo", "targets.json")


def shipped() -> list[str]:
    """The released models (in zoo.yml), in the tables' order."""
    with open(BUILTIN_LIST, encoding="utf-8") as f:
        entries = load_yaml(f.read(), BUILTIN_LIST) or {}
    return [name for name in DESCRIPTIONS if name in entries]


def target_verdict(ours: float, target: float) -> str:
    """'met'; 'met at two decimals (...)' where only the rounding the literature prints meets it; or
    'missed by X dB'."""
    if ours >= target:
        return "met"
    if round(ours, 2) >= round(target, 2):
        return f"met at two decimals ({ours:.3f}, {target - ours:.3f} dB under unrounded)"
    return f"missed by {target - ours:.2f} dB"


def targets_table() -> str:
    """Each target of results/zoo/targets.json beside the shipped model's score and the classic
    model's published one: met, missed by how much, or not trained yet."""
    with open(TARGETS, encoding="utf-8") as f:
        targets = json.load(f)["targets"]
    released = set(shipped())
    lines = ["| model | test set | ours (PSNR) | classic model | target | |", "|---|---|---:|---|---:|---|"]
    for t in targets:
        name, where = t["model"], f"{t['set']} {t['level']}"
        classic = t["classic"] if "input_plus" in t else f"{t['classic']} {t['classic_psnr']:.2f}"
        if name not in released:
            target = "-" if "input_plus" in t else f"{t['target']:.2f}"
            lines.append(f"| `{name}` | {where} | - | {classic} | {target} | not trained yet |")
            continue
        result = next(r for r in bench_results(name)["results"]
                      if (r["set"], r["level_name"]) == (t["set"], t["level"]))
        ours = result["mean"][name]["psnr"]
        target = result["mean"]["Input"]["psnr"] + t["input_plus"] if "input_plus" in t else t["target"]
        verdict = target_verdict(ours, target)
        lines.append(f"| `{name}` | {where} | {ours:.2f} | {classic} | {target:.2f} | {verdict} |")
    return "\n".join(lines)


GATE_REGION_HEADER = ["| model | tiles | images that change (per set) | change of the means (dB) | largest drop, "
                      "one image (dB) | largest SSIM change | MACs vs whole image |", "|---|---|---|---|---|---:|---:|"]


def gate_region_rows(name: str, bench: dict) -> list[str]:
    """One row per `_tileN` model of an SR model's benchmark (results.json) against its whole-image
    row `name`: on how many images the score moves at all (the tiling engages only on LR sides >= 4
    tiles), the change of each set's mean, the largest drop on one image, the largest SSIM change,
    and the MACs against the whole-image pass (for a 1280x720 output)."""
    macs = {m["label"]: m["macs_per_pixel"] for m in bench["models"]}
    rows = []
    for label in [m["label"] for m in bench["models"] if m["label"] != name]:
        changed, means, drops, ssim = [], [], [], []
        for r in bench["results"]:
            pairs = [(im["name"], im[name], im[label]) for im in r["images"]]
            changed.append(f"{sum(a['psnr'] != b['psnr'] for _, a, b in pairs)} of {len(pairs)}")
            means.append(f"{r['mean'][label]['psnr'] - r['mean'][name]['psnr']:+.2f}")
            drops += [(a["psnr"] - b["psnr"], f"{r['set']} {n}") for n, a, b in pairs]
            ssim += [abs(a["ssim"] - b["ssim"]) for _, a, b in pairs]
        drop, where = max(drops)
        sets = " / ".join(r["set"] for r in bench["results"])
        rows.append(f"| `{name}` | {label.rsplit('_tile', 1)[1]} px | {' / '.join(changed)} ({sets}) | "
                    f"{' / '.join(means)} | " + (f"{drop:.2f} ({where})" if drop > 0 else "none")
                    + f" | {max(ssim):.4f} | {macs[label] / macs[name]:.1f}x |")
    return rows


def gate_region_table() -> str:
    """gate_region_rows of every shipped SR model (docs/zoo.md, "Gate region")."""
    lines = list(GATE_REGION_HEADER)
    for name in shipped():
        if task_of(read_options(name)) == "sr":
            lines += gate_region_rows(name, bench_results(name))
    return "\n".join(lines)


def size_sweep_table() -> str:
    with open(SIZE_SWEEP, encoding="utf-8") as f:
        return f.read().split("\n\n", 1)[1].strip()  # drop the line saying how it was run


def generated_blocks() -> dict[str, str]:
    """The generated parts of docs/zoo.md and README.md, by marker name; each is everything between
    `<!-- NAME: begin ... -->` and `<!-- NAME: end -->` in the page."""
    return {"zoo-tables": zoo_tables(shipped()).strip(), "size-sweep": size_sweep_table(),
            "zoo-targets": targets_table(), "zoo-gate-region": gate_region_table()}


PAGE_BLOCKS = {ZOO_PAGE: ("zoo-tables", "zoo-targets", "zoo-gate-region", "size-sweep"), README: ("zoo-targets",)}


def render_zoo_page(page: str, path: str = ZOO_PAGE) -> str:
    """The page with every generated block replaced by its current text from results/zoo/."""
    blocks = generated_blocks()
    for marker in PAGE_BLOCKS[path]:
        found = re.search(rf"(<!-- {marker}: begin[^>]*-->\n)(.*?)(\n<!-- {marker}: end -->)", page, re.S)
        if not found:
            raise RestoreError(f"{path}: no '<!-- {marker}: begin -->' ... '<!-- {marker}: end -->' block")
        page = page[:found.start(2)] + blocks[marker] + page[found.end(2):]
    return page


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="the zoo model: options/train/zoo/NAME.yml")
    p.add_argument("--zoo-page", action="store_true",
                   help="rewrite the tables of docs/zoo.md from results/zoo/ and exit")
    p.add_argument("--stages", nargs="+", choices=["weights", "entry", "bench", "card"], default=["weights", "bench", "card"])
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    args = p.parse_args(argv)
    os.chdir(ROOT)
    if args.zoo_page:
        for path in PAGE_BLOCKS:
            with open(path, encoding="utf-8") as f:
                page = f.read()
            atomic_write_bytes(path, render_zoo_page(page, path).encode())
            print(f"{os.path.relpath(path, ROOT)} written")
        return 0
    if not args.name:
        raise RestoreError("name a zoo model (options/train/zoo/NAME.yml) or give --zoo-page")
    opt = read_options(args.name)
    for stage in args.stages:
        {"weights": stage_weights, "entry": stage_entry, "bench": stage_bench, "card": stage_card}[stage](args.name, opt)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
