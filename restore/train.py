"""restore-train: train a model from a BasicSR-style option file.

    restore-train -opt options/train/quickstart_skimage.yml
    restore-train -opt FILE --auto_resume            # continue the newest checkpoint of the experiment
    torchrun --nproc_per_node 2 -m restore.train -opt FILE   # DDP
"""
import argparse
import os
import signal
import time

import torch
from tqdm import tqdm

from restore.cli.common import EXIT_SIGINT, EXIT_SIGTERM, run_cli
from restore.utils.allocator import tune_allocator
from restore.data import build_dataloader, build_dataset
from restore.models import build_model
from restore.models.base_model import runs_on_cuda
from restore.models.preflight import check_data_and_net
from restore.utils.checkpoint import load_safely
from restore.utils.dist import barrier, broadcast_object, close_dist, init_dist
from restore.utils.errors import RestoreError
from restore.utils.experiment import Experiment, get_logger, net_path_for_state
from restore.utils.machine import available_cpus, busy_cores_note
from restore.utils.options import ignored_option_notes, parse_options
from restore.utils.rng import seed_everything

# A progress line says so when the loop waited for batches longer than this part of the time.
DATA_BOUND = 0.5


def build_parser(prog="restore-train"):
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-opt", "--opt", required=True, help="the option YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option, e.g. --set train.total_iter=100 (repeatable)")
    p.add_argument("--force_yml", nargs="+", default=[], metavar="KEY=VALUE",
                   help="BasicSR's override syntax, e.g. train:ema_decay=0.999")
    p.add_argument("--auto_resume", action="store_true",
                   help="resume from the newest readable training state of this experiment")
    p.add_argument("--restart", action="store_true",
                   help="start over on purpose: archive the experiment folder and train from iteration 0 "
                        "(what a run without --auto_resume does; with it, overrides --auto_resume)")
    p.add_argument("--debug", action="store_true",
                   help="8 iterations, log every iteration, tracebacks instead of one-line errors")
    p.add_argument("--data-root", help="folder holding the datasets (default: $RESTORE_DATA_ROOT, "
                                       "else ../shared/datasets when it exists)")
    p.add_argument("--launcher", choices=["none", "pytorch"], default="none",
                   help="accepted for BasicSR habits; torchrun's environment is detected either way")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    return p


def find_resume(opt: dict, exp: Experiment, model, auto_resume: bool):
    """(state, net_path, notes) to resume from, loaded into `model` already; None for a fresh run.

    --auto_resume takes the newest checkpoint that loads into this model (readable, same arch,
    finite weights) and says in `notes` which newer ones it passed over and why.
    """
    def load_into_model(state, net_path):
        if "optimizers" not in state or "iter" not in state:
            raise RestoreError("not a training state of restore or BasicSR")
        model.resume(state, net_path)

    path = opt["path"]["resume_state"]
    if path:
        state = load_safely(path)
        net_path = net_path_for_state(path, state.get("iter", -1))
        try:
            load_into_model(state, net_path)
        except RestoreError as e:
            raise RestoreError(f"path.resume_state: {path}: {e}") from None
        return state, net_path, []
    if auto_resume:
        found = exp.latest_resumable(check=load_into_model)
        if found:
            return found[0], found[2], found[3]
    return None


def validate(model, val_loaders, it, opt, exp, best, logger, tb):
    for name, loader in val_loaders.items():
        save = None
        if opt["val"]["save_img"]:
            def save(key, _name=name):
                return os.path.join(exp.visualization, key, f"{key}_{it}.png")
        result = model.validation(loader, name, opt["val"]["metrics"], save, opt["val"]["pbar"])
        for metric, value in result["mean"].items():
            higher = opt["val"]["metrics"][metric].get("better", "higher") == "higher"
            record = best.setdefault(name, {}).get(metric)
            if record is None or (value > record["val"] if higher else value < record["val"]):
                best[name][metric] = {"val": value, "iter": it}
            logger.info(f"val {name} @ {it}: {metric} {value:.4f} "
                        f"(best {best[name][metric]['val']:.4f} @ {best[name][metric]['iter']})")
            if tb:
                tb.add_scalar(f"metrics/{name}/{metric}", value, it)


def log_progress(logger, tb, model, logs, it, total_iter, iters_per_epoch, speed, data_share):
    """data_share: the part of the wall time since the last line that the loop waited for batches."""
    eta = (total_iter - it) / max(speed, 1e-9)
    skipped = f"  skipped(non-finite) {model.nonfinite_total}" if model.nonfinite_total else ""
    starved = ("  (the step waits for batches: raise datasets.train.num_worker_per_gpu or decode less per "
               "patch, docs/data.md)") if data_share > DATA_BOUND else ""
    logger.info(f"iter {it:>7d} epoch {it // iters_per_epoch} lr {model.current_lr():.3e} {speed:.2f} it/s "
                f"data {100 * data_share:.0f}% eta {eta / 60:.1f} min  "
                + "  ".join(f"{k} {v:.4e}" for k, v in logs.items()) + skipped + starved)
    if tb:
        for k, v in logs.items():
            tb.add_scalar(f"losses/{k}", v, it)
        tb.add_scalar("time/data_share", data_share, it)
        tb.add_scalar("lr", model.current_lr(), it)


def train(opt: dict, auto_resume: bool = False, restart: bool = False) -> dict:
    rank, world = init_dist(opt["dist_params"]["backend"], runs_on_cuda(opt))
    # Build everything that can fail on bad input BEFORE touching the experiment folder.
    seed = opt["manual_seed"]
    seed_everything(seed)
    train_set = build_dataset(opt["datasets"]["train"], "train")
    train_loader = build_dataloader(train_set, opt["datasets"]["train"], "train", seed, rank, world)
    val_sets, val_loaders = {}, {}
    for phase, ds_opt in opt["datasets"].items():
        if phase.startswith("val"):
            val_sets[phase] = build_dataset(ds_opt, phase)
            val_loaders[val_sets[phase].name] = build_dataloader(val_sets[phase], ds_opt, phase, seed, rank, world)
    sampler = train_loader.sampler
    iters_per_epoch = sampler.num_batches
    if iters_per_epoch == 0:
        raise RestoreError(f"datasets.train: {len(train_set)} images x enlarge ratio give no full batch "
                           f"of {sampler.batch_size} per process; lower batch_size_per_gpu")
    model = build_model(opt)
    if rank == 0:
        check_data_and_net(model, train_set, sampler, val_sets, opt["scale"])
    exp = Experiment(opt["path"]["experiments_root"], opt["name"])
    resume = find_resume(opt, exp, model, auto_resume and not restart) if rank == 0 else None
    if world > 1:  # rank 0 chose; every rank loads the same state and network
        chosen = broadcast_object(resume[:2] if resume else None)
        if rank != 0 and chosen:
            model.resume(*chosen)
            resume = (*chosen, [])

    # Nothing on disk changes before this line: every check above raises first. The folder stays
    # locked against a second run of the same experiment until this run ends.
    with exp:
        archived = exp.create(resuming=resume is not None) if rank == 0 else None
        if rank == 0:
            exp.write_options(opt)
        barrier()
        logger = get_logger(exp.log_file() if rank == 0 else None, rank)
        if archived:
            logger.info(f"archived the previous experiment folder to {archived}")
        for note in (resume[2] if resume else []):
            logger.warning(note)
        for note in model.notes + ignored_option_notes(opt):
            logger.info(note)
        if rank == 0 and model.device.type == "cpu" and hasattr(os, "getloadavg"):
            busy = busy_cores_note(torch.get_num_threads(), os.getloadavg()[0], available_cpus())
            if busy:
                logger.warning(busy)
        tb = None
        if rank == 0 and opt["logger"]["use_tb_logger"]:
            from torch.utils.tensorboard import SummaryWriter
            tb = SummaryWriter(exp.tb)

        total_iter, t = opt["train"]["total_iter"], opt["train"]
        it, best, history = 0, {}, []
        if resume:
            state, net_path, _ = resume
            it, best = state["iter"], state.get("best", {})
            model.nonfinite_total = state.get("nonfinite_total", 0)
            logger.info(f"resumed from iteration {it} ({net_path})")
        logger.info(f"{len(train_set)} training images, {iters_per_epoch} iterations per epoch, "
                    f"{total_iter} iterations, device {model.device}, {world} process(es)")

        stop = {"signal": None}

        def request_stop(signum, _frame):
            stop["signal"] = signal.Signals(signum).name

        old_handlers = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}

        def save_state():
            if rank == 0:
                model.save(exp.models, exp.states, it, it // iters_per_epoch,
                           {"best": best, "nonfinite_total": model.nonfinite_total})

        print_freq, save_freq = opt["logger"]["print_freq"], opt["logger"]["save_checkpoint_freq"]
        val_freq = opt["val"]["val_freq"]
        bar = tqdm(total=total_iter, initial=it, unit="it", dynamic_ncols=True, disable=rank != 0)
        start, start_it = time.time(), it
        waited, since = 0.0, time.perf_counter()  # waiting for batches since the last progress line
        try:
            # ------------------------------------------------------------------ the training loop
            while it < total_iter and not stop["signal"]:
                sampler.set_epoch(it // iters_per_epoch, skip_batches=it % iters_per_epoch)
                asked = time.perf_counter()
                for batch in train_loader:
                    waited += time.perf_counter() - asked
                    it += 1
                    model.update_learning_rate(it)
                    logs = model.optimize_parameters(batch, it)
                    history.append(logs["loss"])
                    if model.nonfinite_in_a_row >= t["max_nonfinite"]:
                        raise RestoreError(f"{t['max_nonfinite']} steps in a row had a non-finite loss or "
                                           f"gradient (iteration {it}); stopped. The last good checkpoint "
                                           f"is in {exp.models}; lower the lr or enable grad_clip")
                    bar.update(1)
                    bar.set_postfix(loss=f"{logs['loss']:.4g}", lr=f"{model.current_lr():.2e}")
                    if it % print_freq == 0 or it == total_iter:
                        now = time.perf_counter()
                        log_progress(logger, tb, model, logs, it, total_iter, iters_per_epoch,
                                     (it - start_it) / max(time.time() - start, 1e-9),
                                     waited / max(now - since, 1e-9))
                        waited, since = 0.0, now
                    if it % save_freq == 0:
                        save_state()
                    if val_loaders and it % val_freq == 0:
                        validate(model, val_loaders, it, opt, exp, best, logger, tb)
                    if it >= total_iter or stop["signal"]:
                        break
                    asked = time.perf_counter()
            # ----------------------------------------------------------------------------------------
        finally:
            bar.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
        if stop["signal"]:
            save_state()
            logger.info(f"{stop['signal']}: saved the state of iteration {it} ({it - start_it} in this run, "
                        f"{(time.time() - start) / 60:.1f} min wall time); continue with --auto_resume")
            return {"iter": it, "best": best, "stopped": stop["signal"], "history": history}
        save_state()
        if rank == 0:
            model.save_latest(exp.models)
        if val_loaders and it % val_freq != 0:
            validate(model, val_loaders, it, opt, exp, best, logger, tb)
        if tb:
            tb.close()
        logger.info(f"done: {it} iterations ({it - start_it} in this run, {(time.time() - start) / 60:.1f} min "
                    f"wall time); skipped non-finite steps: {model.nonfinite_total}")
        return {"iter": it, "best": best, "experiment": exp.dir, "history": history}


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()
    opt = parse_options(args.opt, is_train=True, overrides=args.set + args.force_yml,
                        data_root=args.data_root, debug=args.debug)
    ok = False
    try:
        result = train(opt, auto_resume=args.auto_resume, restart=args.restart)
        ok = True
    finally:
        close_dist(ok)
    stopped = result.get("stopped")
    return (EXIT_SIGTERM if stopped == "SIGTERM" else EXIT_SIGINT) if stopped else 0


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
