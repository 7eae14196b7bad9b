"""restore vs BasicSR 1.4.2 on the CPU: training iterations per second and inference time.

Models: EDSR-baseline x2 (64 features, 16 blocks) and NSR x2 (restore's default: 64 features, 16
blocks, k 4, d 16). Training: batch 16 of 48x48 LR patches (random tensors: the step only, no data
loading), L1 loss, Adam lr 1e-4 betas (0.9, 0.99), MultiStepLR, no EMA -- BasicSR's
options/train/EDSR/train_EDSR_Mx2.yml. Inference: one 256x256 LR image, batch 1, inference_mode,
channels_last, for both sides.

Sides, each in its own process (the allocator setting is process-wide):
  basicsr          BasicSR's EDSR arch file and its SRModel feed_data + optimize_parameters +
                   update_learning_rate, loaded from the installed package files (no torchvision),
                   default allocator, NCHW training: what a BasicSR user gets. BasicSR has no NSR,
                   so for NSR its SRModel step runs restore's NSR arch.
  restore          restore.models.SRModel with restore's defaults (train.channels_last: auto --
                   the faster format on this machine, timed at the first step) and
                   restore-train's allocator tuning (restore.utils.allocator.tune_allocator).
  restore-malloc   the same with the default allocator, to show what the allocator contributes.
  restore-nchw     (--layouts) restore with train.channels_last: false.
  restore-cl       (--layouts) restore with train.channels_last: true.
  restore-compile  (--compile) restore with train.compile: true; its compile time is reported.
  restore-bf16     (--bf16) restore with train.amp: bf16 -- other numerics, so not like for like.
  restore-before   (--ablations) restore with the step's speed-ups of issue 19 undone (LEGACY below),
  restore-loop-adam, restore-res-mul, restore-clip-inf   and with each undone alone.

The processes take turns (one runs at a time, the order rotating each round) and the medians over
all rounds are reported, with ratios from this one run: absolute times drift on shared machines,
ratios much less. The peak is a large channels_last 3x3 conv (1x128x256x256, 128 -> 128) timed in
the same processes as the inference; restore's inference GFLOP/s (2 x MACs from
restore.utils.flops.count_macs, per second) is given as a fraction of it.

Other work on the machine slows everything and widens the spread, so the load average is sampled
every round, and each training step's process CPU time is recorded too: "CPU s/it" (median CPU
seconds per step, all threads) is far less sensitive to other load than wall time, and "share" (CPU
time / wall time / threads) below ~90 % says the side did not get its cores for the whole run.

    python scripts/bench_train.py                 # full run, several minutes on 2 cores
    python scripts/bench_train.py --layouts --bf16  # also both memory formats forced, and bf16
    python scripts/bench_train.py --quick         # tiny sizes, a smoke run (CI)
"""
# The module imports nothing heavy at the top: a worker sets the allocator before torch allocates.
import argparse
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from restore.utils.machine import cpu_name  # no torch: the allocator note above holds

FULL = {"batch": 16, "patch": 48, "scale": 2, "num_feat": 64, "num_block": 16, "nsr_k": 4, "nsr_d": 16,
        "infer_size": 256, "peak_shape": [1, 128, 256, 256], "rounds": 5, "iters": 3, "infer_iters": 3,
        "peak_iters": 5}
QUICK = {"batch": 2, "patch": 12, "scale": 2, "num_feat": 16, "num_block": 2, "nsr_k": 4, "nsr_d": 4,
         "infer_size": 24, "peak_shape": [1, 16, 32, 32], "rounds": 2, "iters": 1, "infer_iters": 1,
         "peak_iters": 1}
LEGACY = {  # what restore's step did before issue 19, each undoable on its own
    "loop-adam": "Adam's per-parameter for-loop (torch's CPU default) instead of the fused kernel",
    "res-mul": "EDSR's residual multiplied by res_scale = 1",
    "clip-inf": "clip_grad_norm_ at inf (rescales every gradient by 1) for the finite check",
}
SIDES = {  # label: (worker spec, the flag that adds it)
    "basicsr": ({"impl": "basicsr", "allocator": "default"}, None),
    "restore": ({"impl": "restore", "allocator": "tuned"}, None),
    "restore-malloc": ({"impl": "restore", "allocator": "default"}, None),
    "restore-nchw": ({"impl": "restore", "allocator": "tuned", "settings": {"channels_last": False}}, "layouts"),
    "restore-cl": ({"impl": "restore", "allocator": "tuned", "settings": {"channels_last": True}}, "layouts"),
    "restore-compile": ({"impl": "restore", "allocator": "tuned", "settings": {"compile": True}}, "compile"),
    "restore-bf16": ({"impl": "restore", "allocator": "tuned", "settings": {"amp": "bf16"}}, "bf16"),
    # --ablations: restore with one (or all) of the step's speed-ups undone, to show what each buys
    "restore-before": ({"impl": "restore", "allocator": "tuned", "legacy": list(LEGACY)}, "ablations"),
    "restore-loop-adam": ({"impl": "restore", "allocator": "tuned", "legacy": ["loop-adam"]}, "ablations"),
    "restore-res-mul": ({"impl": "restore", "allocator": "tuned", "legacy": ["res-mul"]}, "ablations"),
    "restore-clip-inf": ({"impl": "restore", "allocator": "tuned", "legacy": ["clip-inf"]}, "ablations"),
}
DEFAULT_SIDES = ("basicsr", "restore", "restore-malloc")
LEGACY_SIDES = {label for label, (spec, _) in SIDES.items() if spec.get("legacy")}
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")


# --- what each side trains ---------------------------------------------------------------------
def network_opt(arch: str, sizes: dict) -> dict:
    """network_g for `arch` (EDSR or NSR) at `sizes`; the same dict serves both sides."""
    common = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": sizes["num_feat"], "num_block": sizes["num_block"],
              "upscale": sizes["scale"]}
    if arch == "EDSR":
        return {"type": "EDSR", **common, "res_scale": 1, "img_range": 255.0,
                "rgb_mean": [0.4488, 0.4371, 0.4040]}
    if arch == "NSR":
        return {"type": "NSR", **common, "k": sizes["nsr_k"], "d": sizes["nsr_d"]}
    raise ValueError(f"unknown arch {arch!r} (EDSR or NSR)")


def train_opt(ema_decay: float) -> dict:
    """BasicSR's train_EDSR_Mx2.yml training block (EMA only when asked for)."""
    return {"ema_decay": ema_decay,
            "optim_g": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [200000], "gamma": 0.5},
            "total_iter": 300000, "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}}


def random_batches(sizes: dict, count: int = 4, seed: int = 0) -> list:
    import torch
    g = torch.Generator().manual_seed(seed)
    b, p, s = sizes["batch"], sizes["patch"], sizes["scale"]
    return [{"lq": torch.rand(b, 3, p, p, generator=g), "gt": torch.rand(b, 3, p * s, p * s, generator=g)}
            for _ in range(count)]


class BasicSRTrainer:
    """BasicSR 1.4.2's SRModel on the CPU (num_gpu 0), its own step, as its train loop calls it."""

    def __init__(self, arch: str, sizes: dict, ema_decay: float):
        import copy

        import torch
        from restore.benchmark.basicsr_reference import load_basicsr_training

        from restore.archs import ARCH_REGISTRY
        basicsr = load_basicsr_training(extra_archs={"NSR": ARCH_REGISTRY.get("NSR")})
        self.arch_source = "BasicSR edsr_arch.py" if arch == "EDSR" else "restore's NSR in BasicSR's SRModel"
        opt = {"num_gpu": 0, "is_train": True, "dist": False, "path": {}, "network_g": network_opt(arch, sizes),
               "train": copy.deepcopy(train_opt(ema_decay))}
        self.model = basicsr.SRModel(opt)
        self.channels_last = False
        self._infer_net = None
        self._torch = torch

    def step(self, it: int, batch: dict) -> float:
        """One iteration as basicsr/train.py runs it; returns the loss BasicSR logs."""
        self.model.feed_data(batch)
        self.model.optimize_parameters(it)
        self.model.update_learning_rate(it, warmup_iter=-1)
        return self.model.log_dict["l_pix"]

    def net(self):
        return self.model.net_g

    def infer(self, lq):
        torch = self._torch
        if self._infer_net is None:  # a channels_last copy: converting net_g would change the training
            import copy
            self._infer_net = copy.deepcopy(self.model.net_g).eval().to(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._infer_net(lq.contiguous(memory_format=torch.channels_last))


class RestoreTrainer:
    """restore.models.SRModel built from a validated option file, with restore's default settings."""

    def __init__(self, arch: str, sizes: dict, ema_decay: float, settings: dict | None = None):
        """`settings`: train.* options over the defaults, e.g. amp or channels_last."""
        from restore.models import build_model
        from restore.utils.options import parse_options
        from restore.utils.yaml_io import dump_yaml
        self.arch_source = "restore"
        with tempfile.TemporaryDirectory() as tmp:
            train = {**train_opt(ema_decay), **(settings or {})}
            opt = {"name": "bench_train", "model_type": "SRModel", "scale": sizes["scale"], "device": "cpu",
                   "datasets": {"train": {"name": "none", "type": "SRImageDataset", "dataroot_gt": tmp,
                                          "gt_size": sizes["patch"] * sizes["scale"]}},
                   "network_g": network_opt(arch, sizes), "path": {"experiments_root": tmp}, "train": train}
            path = os.path.join(tmp, "bench_train.yml")
            with open(path, "w") as f:
                f.write(dump_yaml(opt))
            self.model = build_model(parse_options(path, is_train=True))

    @property
    def channels_last(self):
        """The format restore trains in (`auto`: decided at the first step)."""
        return self.model.channels_last

    def step(self, it: int, batch: dict) -> float:
        """One iteration as restore/train.py runs it; returns the loss restore logs."""
        self.model.update_learning_rate(it)
        return self.model.optimize_parameters(batch)["loss"]

    def net(self):
        return self.model.net_g

    def infer(self, lq):
        return self.model.test(lq)


def undo_speedups(trainer: "RestoreTrainer", legacy) -> None:
    """Put back the step's behaviour before issue 19's speed-ups named in `legacy` (LEGACY keys)."""
    import types

    from restore.archs.edsr_arch import ResidualBlock
    model = trainer.model
    if "loop-adam" in legacy:
        for group in model.optimizer.param_groups:
            group["fused"] = False
    if "res-mul" in legacy:
        def old_forward(self, x):
            return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale
        for m in model.net_g.modules():
            if isinstance(m, ResidualBlock):
                m.forward = types.MethodType(old_forward, m)
    if "clip-inf" in legacy and not model.grad_clip:
        model.grad_clip = float("inf")


def build_trainer(spec: dict):
    if spec["impl"] == "basicsr":
        return BasicSRTrainer(spec["arch"], spec["sizes"], spec["ema_decay"])
    trainer = RestoreTrainer(spec["arch"], spec["sizes"], spec["ema_decay"], spec.get("settings"))
    undo_speedups(trainer, spec.get("legacy", ()))
    return trainer


# --- measurements inside a worker process ------------------------------------------------------
def peak_conv_op(shape):
    """A function running the peak conv once: a channels_last 3x3 conv C -> C on `shape` (N, C, H, W),
    inference mode."""
    import torch
    n, c, h, w = shape
    conv = torch.nn.Conv2d(c, c, 3, padding=1).to(memory_format=torch.channels_last).eval()
    x = torch.rand(n, c, h, w).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            conv(x)
    return run


def peak_conv_seconds(shape, iters: int) -> list:
    """Times of the peak conv on `shape`, after one warm-up call."""
    run = peak_conv_op(shape)
    times = []
    for i in range(iters + 1):
        t0 = time.perf_counter()
        run()
        if i:
            times.append(time.perf_counter() - t0)
    return times


def peak_conv_flops(shape) -> int:
    n, c, h, w = shape
    return 2 * n * c * c * 9 * h * w


class Worker:
    """The measurements one side answers: train, infer and peak commands, each a list of seconds."""

    def __init__(self, spec: dict):
        import torch
        self.spec, self.sizes = spec, spec["sizes"]
        if spec.get("threads"):
            torch.set_num_threads(spec["threads"])
        torch.manual_seed(0)
        self.batches = random_batches(self.sizes)
        self.trainer = build_trainer(spec)
        self.it = 0
        t0 = time.perf_counter()
        self.train(1)  # the first step builds oneDNN primitives (and compiles with train.compile)
        self.first_step_s = time.perf_counter() - t0
        self.train(1)
        s = self.sizes["infer_size"]
        self.lq = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(1))
        self._macs = None

    def train(self, n: int) -> tuple:
        """Wall and process-CPU seconds of `n` steps."""
        times, cpu = [], []
        for _ in range(n):
            self.it += 1
            batch = self.batches[self.it % len(self.batches)]
            c0, t0 = time.process_time(), time.perf_counter()
            self.trainer.step(self.it, batch)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return times, cpu

    def infer(self, n: int) -> list:
        times = []
        for i in range(n + 1):
            t0 = time.perf_counter()
            self.trainer.infer(self.lq)
            if i:
                times.append(time.perf_counter() - t0)
        return times

    def macs(self) -> int:
        if self._macs is None:
            from restore.utils.flops import count_macs
            self._macs = count_macs(self.trainer.net(), tuple(self.lq.shape))["macs"]
        return self._macs

    def info(self, allocator: str) -> dict:
        import torch
        return {"allocator": allocator, "threads": torch.get_num_threads(), "first_step_s": self.first_step_s,
                "arch_source": self.trainer.arch_source, "channels_last": self.trainer.channels_last,
                "params": sum(p.numel() for p in self.trainer.net().parameters()), "macs": self.macs()}

    def handle(self, cmd: dict) -> dict:
        op, n = cmd["op"], cmd.get("n", 1)
        if op == "train":
            times, cpu = self.train(n)
            return {"times": times, "cpu": cpu}
        if op == "infer":
            return {"times": self.infer(n)}
        if op == "peak":
            return {"times": peak_conv_seconds(self.sizes["peak_shape"], n)}
        raise ValueError(f"unknown command {op!r}")


def allocator_setting(tuned: bool, applied: bool) -> str:
    preload = os.environ.get("LD_PRELOAD", "")
    for lib in ("jemalloc", "tcmalloc", "mimalloc"):
        if lib in preload:
            return f"{lib} (LD_PRELOAD)"
    if tuned:
        return "glibc, tuned (tune_allocator)" if applied else "tune_allocator had no effect (not glibc?)"
    return "glibc default"


def worker_main(spec: dict) -> int:
    """A worker process: replies on the original stdout, one JSON line per command read on stdin."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # anything else printed must not corrupt the protocol
    applied = False
    if spec["allocator"] == "tuned":
        from restore.utils.allocator import tune_allocator
        applied = tune_allocator()  # before torch allocates anything
    try:
        worker = Worker(spec)
        reply.write(json.dumps({"ok": True, "info": worker.info(allocator_setting(spec["allocator"] == "tuned",
                                                                                   applied))}) + "\n")
    except Exception as e:  # noqa: BLE001  any failure is this side's result, reported to the parent
        reply.write(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
        return 1
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        try:
            reply.write(json.dumps({"ok": True, **worker.handle(cmd)}) + "\n")
        except Exception as e:  # noqa: BLE001
            reply.write(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
    return 0


# --- the parent: start workers, take turns, summarise ------------------------------------------
class WorkerError(RuntimeError):
    pass


class WorkerProcess:
    """One side in its own Python process, driven over a pipe."""

    def __init__(self, spec: dict, timeout: float):
        self.spec, self.label, self.timeout = spec, spec["label"], timeout
        env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
        env["RESTORE_DEFAULT_MALLOC"] = "0" if spec["allocator"] == "tuned" else "1"
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.info = self._read()

    def _read(self) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            self.close()
            raise WorkerError(f"no answer within {self.timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"the process exited (code {self.proc.wait()})")
        msg = json.loads(line)
        if not msg["ok"]:
            raise WorkerError(msg["error"])
        return msg.get("info", msg)

    def ask(self, op: str, n: int) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, "n": n}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def worker_specs(arch: str, sizes: dict, args) -> list:
    """The sides to run: --sides, else the three default ones plus those the flags add."""
    wanted = args.sides or [label for label, (_, flag) in SIDES.items()
                            if label in DEFAULT_SIDES or (flag and getattr(args, flag))]
    base = {"arch": arch, "sizes": sizes, "ema_decay": args.ema_decay, "threads": args.threads}
    return [{**base, "label": label, **SIDES[label][0]} for label in wanted]


def bench_arch(arch: str, sizes: dict, args, log=print) -> dict:
    """Start the sides for `arch`, take turns for sizes['rounds'] rounds, return the raw times."""
    workers, failed = [], {}
    for spec in worker_specs(arch, sizes, args):
        t0 = time.perf_counter()
        try:
            workers.append(WorkerProcess(spec, args.timeout))
            log(f"  {arch} {spec['label']}: ready in {time.perf_counter() - t0:.0f} s "
                f"(first step {workers[-1].info['first_step_s']:.1f} s)")
        except WorkerError as e:
            failed[spec["label"]] = str(e)
            log(f"  {arch} {spec['label']}: FAILED: {e}")
    times = {w.label: {"train": [], "train_cpu": [], "infer": [], "peak": []} for w in workers}
    loads = []
    try:
        for r in range(sizes["rounds"]):
            loads.append(os.getloadavg()[0])
            order = workers[r % len(workers):] + workers[:r % len(workers)] if workers else []
            for w in order:
                answer = w.ask("train", sizes["iters"])
                times[w.label]["train"] += answer["times"]
                times[w.label]["train_cpu"] += answer["cpu"]
            for w in order:
                if w.spec.get("settings") or w.spec.get("legacy"):  # sides that change training only
                    continue
                times[w.label]["infer"] += w.ask("infer", sizes["infer_iters"])["times"]
                if w.spec["impl"] == "restore":
                    times[w.label]["peak"] += w.ask("peak", sizes["peak_iters"])["times"]
            log(f"  {arch} round {r + 1}/{sizes['rounds']} done, load average {loads[-1]:.2f}")
        loads.append(os.getloadavg()[0])
    finally:
        for w in workers:
            w.close()
    return {"arch": arch, "times": times, "info": {w.label: w.info for w in workers}, "failed": failed,
            "loads": loads, "specs": {w.label: w.spec for w in workers}}


def summarise(result: dict, sizes: dict) -> dict:
    """Medians, it/s, ms, GFLOP/s and the ratios the README quotes."""
    rows = {}
    peak_flops = peak_conv_flops(sizes["peak_shape"])
    for label, t in result["times"].items():
        info = result["info"][label]
        row = {"it_s": 1.0 / statistics.median(t["train"]), "cpu_s": statistics.median(t["train_cpu"]),
               # < 1: the process did not get its threads' worth of CPU (other work on the machine)
               "cpu_share": sum(t["train_cpu"]) / sum(t["train"]) / info["threads"]}
        if t["infer"]:
            sec = statistics.median(t["infer"])
            row.update(infer_ms=1e3 * sec, infer_gflops=2 * info["macs"] / sec / 1e9)
        if t["peak"]:
            row["peak_gflops"] = peak_flops / statistics.median(t["peak"]) / 1e9
            row["peak_fraction"] = row["infer_gflops"] / row["peak_gflops"]
        rows[label] = row
    ratios = {}
    base = rows.get("basicsr")
    others = [label for label in rows if label != "basicsr"] if base else []
    for label in others:  # speed-ups over BasicSR: > 1 means restore is faster
        ratios[f"train it/s {label} / basicsr"] = rows[label]["it_s"] / base["it_s"]
    for label in others:
        ratios[f"train CPU time basicsr / {label}"] = base["cpu_s"] / rows[label]["cpu_s"]
    for label in others:
        if "infer_ms" in rows[label]:
            ratios[f"inference speed {label} / basicsr"] = base["infer_ms"] / rows[label]["infer_ms"]
    if "restore" in rows and "restore-malloc" in rows:
        ratios["train it/s restore / restore-malloc (allocator)"] = rows["restore"]["it_s"] / rows["restore-malloc"]["it_s"]
    for label in rows:  # what each undone speed-up costs: > 1 means the speed-up helps
        if label.startswith("restore-") and label in LEGACY_SIDES and "restore" in rows:
            ratios[f"train it/s restore / {label}"] = rows["restore"]["it_s"] / rows[label]["it_s"]
    if "restore" in rows and "peak_fraction" in rows["restore"]:
        ratios["restore inference / peak conv"] = rows["restore"]["peak_fraction"]
    return {"rows": rows, "ratios": ratios}


COLUMNS = [("it_s", ".3f", 10), ("cpu_s", ".3f", 8), ("cpu_share", ".0%", 5), ("infer_ms", ".1f", 9),
           ("infer_gflops", ".1f", 8), ("peak_gflops", ".1f", 7), ("peak_fraction", ".0%", 6)]


def _cell(row: dict, key: str, fmt: str, width: int) -> str:
    return format(row[key], fmt).rjust(width) if key in row else "-".rjust(width)


def format_report(results: list, sizes: dict, header: dict) -> str:
    lines = [f"# bench_train  {header['when']}",
             f"torch {header['torch']}, {header['cpu']}, {header['threads']} threads, python {header['python']}",
             (f"training: batch {sizes['batch']}, {sizes['patch']}x{sizes['patch']} LR patches, x{sizes['scale']}, "
              f"L1 + Adam(1e-4, betas 0.9/0.99) + MultiStepLR, EMA {header['ema_decay']}; random tensors (no data "
              f"loading); {sizes['rounds']} rounds x {sizes['iters']} steps per side, medians"),
             (f"inference: 1x3x{sizes['infer_size']}x{sizes['infer_size']} LR, inference_mode, channels_last; "
              f"peak: channels_last 3x3 conv {'x'.join(map(str, sizes['peak_shape']))}, {sizes['peak_shape'][1]}->"
              f"{sizes['peak_shape'][1]}"), ""]
    for res in results:
        summary = res["summary"]
        lines.append(f"## {res['arch']} x{sizes['scale']} ({sizes['num_feat']} feats, {sizes['num_block']} blocks)"
                     f"  load average during the run: {min(res['loads']):.2f}-{max(res['loads']):.2f}")
        lines.append(f"{'side':<16} {'train it/s':>10} {'CPU s/it':>8} {'share':>5} {'infer ms':>9} {'GFLOP/s':>8} "
                     f"{'peak':>7} {'frac':>6}  {'first step':>10}  setting")
        for label, row in summary["rows"].items():
            info = res["info"][label]
            setting = (f"{info['arch_source']}, {'channels_last' if info['channels_last'] else 'NCHW'} training, "
                       f"{info['allocator']}, {info['params']:,} params")
            setting += "".join(f", train.{k}: {v}" for k, v in res["specs"][label].get("settings", {}).items()
                               if k != "channels_last")
            setting += "".join(f", undone: {name}" for name in res["specs"][label].get("legacy", ()))
            cells = " ".join(_cell(row, key, fmt, width) for key, fmt, width in COLUMNS)
            lines.append(f"{label:<16} {cells}  {info['first_step_s']:>9.1f}s  {setting}")
        for label, err in res["failed"].items():
            lines.append(f"{label:<16} FAILED: {err}")
        for name, value in summary["ratios"].items():
            lines.append(f"  {name}: " + (f"{value:.0%}" if "peak" in name else f"{value:.2f}x"))
        lines.append("")
    return "\n".join(lines)


def run(args, log=print) -> tuple:
    """The whole benchmark; returns (results, report text)."""
    import torch
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("rounds", "iters"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    header = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__, "cpu": cpu_name(),
              "threads": args.threads or torch.get_num_threads(), "python": platform.python_version(),
              "ema_decay": args.ema_decay}
    results = []
    for arch in args.archs:
        res = bench_arch(arch, sizes, args, log)
        res["summary"] = summarise(res, sizes)
        results.append(res)
    return results, format_report(results, sizes, header)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds: a smoke run")
    p.add_argument("--archs", nargs="+", default=["EDSR", "NSR"], choices=["EDSR", "NSR"])
    p.add_argument("--compile", action="store_true", help="also time restore with train.compile: true")
    p.add_argument("--layouts", action="store_true",
                   help="also time restore with train.channels_last forced to false and to true")
    p.add_argument("--bf16", action="store_true",
                   help="also time restore with train.amp: bf16 (different numerics: not a like-for-like side)")
    p.add_argument("--ablations", action="store_true",
                   help="also time restore with its step's speed-ups undone, all together and one at a time")
    p.add_argument("--sides", nargs="+", choices=SIDES, help="run exactly these sides (default: basicsr, restore, restore-malloc + the flags above)")
    p.add_argument("--rounds", type=int, help="rounds of turns (default 5, --quick 2)")
    p.add_argument("--iters", type=int, help="training steps per side per round (default 3, --quick 1)")
    p.add_argument("--ema-decay", type=float, default=0.0,
                   help="EMA decay for both sides (default 0: train_EDSR_Mx2.yml has no EMA)")
    p.add_argument("--threads", type=int, help="torch threads in every side (default: torch's choice)")
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds a side may take to start (incl. compiling) or to answer (default 900)")
    p.add_argument("--json", help="also write the raw times and the summary to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return worker_main(json.loads(args.worker))
    from restore.benchmark.basicsr_reference import basicsr_dir
    if basicsr_dir() is None:
        print("error: basicsr is not installed (pip install --no-deps --no-build-isolation basicsr==1.4.2)",
              file=sys.stderr)
        return 2
    results, report = run(args, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
