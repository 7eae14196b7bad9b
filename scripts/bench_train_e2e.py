"""restore-train end to end against the bare training step it wraps, for training option files.

End to end is `restore-train -opt FILE` as a user runs it, in its own process: its data loader and
workers, the degradation on the fly, the loop, logging. Its log gives the iterations per second
since the run started at iterations --short and --long; the seconds between the two points over the
iterations between them are the cost of one iteration, with the start (workers starting, the first
batch, the first step's memory-format choice) left out. Checkpoints and validation are pushed past
--long, and the run is stopped (SIGTERM, which restore-train handles) once its log has that line:
they are not steps.

The bare step is the same network and optimiser, built from the same file in its own process with
restore-train's allocator setting, stepping on random batches of the recipe's shapes (no data):
the mean over --long - --short steps after warm-up, so both sides are means.

end to end / bare is what the data pipeline and the loop add to the step. A data worker runs
beside the step on the same cores, so on a 2-core machine a ratio near 1 means the data keeps up
and does not fight the step's threads for the cores. The runs take turns, one at a time; other work
on the machine moves both sides, so the load average before and after is printed.

    python scripts/bench_train_e2e.py                              # the zoo's training recipes
    python scripts/bench_train_e2e.py -opt options/train/zoo/nsr_sr_x4.yml --long 100
    python scripts/bench_train_e2e.py --table results/bench_train/e2e.md
"""
import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from restore.cli.common import run_cli
from restore.utils.errors import RestoreError
from restore.utils.machine import write_results_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO_RECIPES = sorted(glob.glob(os.path.join(ROOT, "options", "train", "zoo", "*.yml")))
NEVER = 10 ** 9  # an iteration a short run never reaches
WARMUP = 5  # bare steps before the timed ones
SPEED = re.compile(r"INFO: iter +(\d+) .*? ([\d.]+) it/s ")  # restore.train.log_progress's line


def last_line(text: str) -> str:
    """A failed run's last line of stderr: restore's one-line error."""
    return (text.strip().splitlines() or ["(no output)"])[-1]


def logged_speeds(work: str) -> dict:
    """{iteration: it/s} from the run's log so far."""
    speeds = {}
    for log in glob.glob(os.path.join(work, "e2e", "train_*.log")):
        with open(log, encoding="utf-8") as f:
            speeds.update((int(m[1]), float(m[2])) for m in SPEED.finditer(f.read()))
    return speeds


def restore_train(option_file: str, short: int, long: int, work: str, data_root: str | None) -> float:
    """Seconds per iteration of `restore-train -opt option_file` between iterations `short` and `long`.

    The run is set to go on past `long` and is stopped (SIGTERM, which restore-train handles) once its
    log has that line, so the final checkpoint and validation cost no time here."""
    cmd = [sys.executable, "-m", "restore.train", "-opt", option_file,
           "--set", "name=e2e", "--set", f"path.experiments_root={work}",
           "--set", f"train.total_iter={long + short}", "--set", f"logger.print_freq={short}",
           "--set", f"logger.save_checkpoint_freq={NEVER}", "--set", f"val.val_freq={NEVER}",
           "--set", "logger.use_tb_logger=false"]
    if data_root:
        cmd += ["--data-root", data_root]
    with tempfile.TemporaryFile("w+") as stderr:
        run = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        while run.poll() is None and long not in logged_speeds(work):
            time.sleep(0.2)
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)
        code = run.wait()
        stderr.seek(0)
        last = last_line(stderr.read())
    speed = logged_speeds(work)
    if short not in speed or long not in speed:
        raise RestoreError(f"{option_file}: restore-train failed (exit {code}): {last}")
    return (long / speed[long] - short / speed[short]) / (long - short)


def bare_steps(option_file: str, warmup: int, steps: int, data_root: str | None) -> dict:
    """Mean seconds of `steps` bare training steps, timed in a fresh process (see --bare)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--bare", option_file, "--warmup", str(warmup),
           "--steps", str(steps)] + (["--data-root", data_root] if data_root else [])
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RestoreError(f"{option_file}: the bare step failed (exit {done.returncode}): {last_line(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_bare_steps(option_file: str, warmup: int, steps: int, data_root: str | None) -> dict:
    """In this process: restore-train's allocator, the file's model, random batches of its shapes."""
    from restore.utils.allocator import tune_allocator
    tune_allocator()
    import torch
    from restore.models import build_model
    from restore.utils.options import load_options

    opt = load_options(option_file, mode="train", data_root=data_root)
    model = build_model(opt)
    train, net = opt["datasets"]["train"], opt["network_g"]
    batch, gt_size, scale = train["batch_size_per_gpu"], train["gt_size"], opt["scale"]
    torch.manual_seed(0)
    shape = (batch, net.get("num_in_ch", 3), gt_size // scale, gt_size // scale)
    batches = [{"lq": torch.rand(shape), "gt": torch.rand(batch, net.get("num_out_ch", 3), gt_size, gt_size)}
               for _ in range(4)]
    for it in range(1, warmup + 1):
        model.update_learning_rate(it)
        model.optimize_parameters(batches[it % 4])
    start = time.perf_counter()
    for it in range(warmup + 1, warmup + steps + 1):
        model.update_learning_rate(it)
        model.optimize_parameters(batches[it % 4])
    return {"mean_s": (time.perf_counter() - start) / steps, "batch": batch, "lq": f"{shape[2]}x{shape[3]}x{shape[1]}",
            "workers": train.get("num_worker_per_gpu", 0)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-opt", "--opt", action="append", dest="opts",
                   help="a training option file (repeatable; default: every options/train/zoo/*.yml)")
    p.add_argument("--short", type=int, default=20,
                   help="the logged iteration timed from (default 20)")
    p.add_argument("--long", type=int, default=80,
                   help="the logged iteration timed to, a multiple of --short (default 80)")
    p.add_argument("--data-root", help="datasets folder (default: $RESTORE_DATA_ROOT, else ../shared/datasets)")
    p.add_argument("--table", help="also write the report to this results file (markdown)")
    p.add_argument("--bare", metavar="FILE", help=argparse.SUPPRESS)  # the bare-step worker process
    p.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=60, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.bare:
        print(json.dumps(time_bare_steps(args.bare, args.warmup, args.steps, args.data_root)))
        return 0
    if not 0 < args.short < args.long or args.long % args.short:
        raise RestoreError(f"--short {args.short} and --long {args.long}: need 0 < short < long, "
                           f"long a multiple of short (the log's print interval)")
    files = args.opts or ZOO_RECIPES
    from restore.utils.options import load_options
    for path in files:  # a bad file fails here, in one line naming it and the key, before any timing
        if not os.path.isfile(path):
            raise RestoreError(f"{path}: option file not found")
        load_options(path, mode="train", data_root=args.data_root)

    report = [f"load average before: {os.getloadavg()[0]:.2f} (other processes share this CPU)",
              f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; end to end: iterations "
              f"{args.short + 1}-{args.long} of one restore-train run; bare: {args.long - args.short} steps after {WARMUP}"]
    print("\n".join(report))
    rows = ["| option file | batch | LR patch | workers | bare step (ms) | restore-train (ms/it) | ratio |",
            "|---|---:|---|---:|---:|---:|---:|"]
    for path in files:
        bare = bare_steps(path, WARMUP, args.long - args.short, args.data_root)
        with tempfile.TemporaryDirectory(prefix="bench_e2e_") as work:
            e2e = restore_train(path, args.short, args.long, work, args.data_root)
        name = os.path.relpath(os.path.abspath(path), ROOT)
        name = path if name.startswith("..") else name
        rows.append(f"| `{name}` | {bare['batch']} | {bare['lq']} | {bare['workers']} | "
                    f"{bare['mean_s'] * 1e3:.1f} | {e2e * 1e3:.1f} | {e2e / bare['mean_s']:.2f}x |")
        print(rows[-1], flush=True)
    report.append(f"load average after: {os.getloadavg()[0]:.2f}")
    print(report[-1])
    if args.table:
        write_results_file(args.table, ["python", "scripts/bench_train_e2e.py",
                                        *(argv if argv is not None else sys.argv[1:])],
                           [*(f"- {line}" for line in report), "", *rows])
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
