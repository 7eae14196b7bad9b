"""The experiment folder BasicSR users know, plus logging and resume-state discovery.

experiments/<name>/
    <name>.yml                the options as run (resolved)
    train_<name>_<time>.log   the log
    models/net_g_<iter>.pth   networks ({'params', 'params_ema'})
    training_states/<iter>.state
    visualization/<image>/<image>_<iter>.png
    tb_logger/                tensorboard events
"""
import fcntl
import glob
import logging
import os
import sys
import time

from tqdm import tqdm

from restore.utils.checkpoint import load_safely
from restore.utils.errors import RestoreError
from restore.utils.paths import check_name
from restore.utils.yaml_io import dump_yaml

LOGGER_NAME = "restore"


def timestamp() -> str:
    return time.strftime("%Y%m%d_%H%M%S")


def archive_existing(folder: str) -> str | None:
    """Rename an existing folder to <folder>_archived_<time> so nothing is overwritten."""
    if not os.path.exists(folder):
        return None
    target = f"{folder}_archived_{timestamp()}"
    n = 1
    while os.path.exists(target):
        target = f"{folder}_archived_{timestamp()}_{n}"
        n += 1
    os.rename(folder, target)
    return target


class TqdmHandler(logging.StreamHandler):
    """Console log lines that do not break the progress bar."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def get_logger(log_file: str | None = None, rank: int = 0) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    logger.propagate = False
    if rank != 0:
        logger.setLevel(logging.ERROR)
        return logger
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    if not any(isinstance(h, TqdmHandler) for h in logger.handlers):
        h = TqdmHandler()
        h.setFormatter(fmt)
        logger.addHandler(h)
    if log_file:
        for h in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(h)
            h.close()
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


LOCK_FILE = ".lock"


class FolderLock:
    """An exclusive lock on a folder: `flock` on `<folder>/.lock`, which holds the owner's PID.

    The kernel releases a flock when its process dies, so a SIGKILLed run never leaves a stale lock.
    """

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK_FILE)
        self.fd = None

    def acquire(self) -> "FolderLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RestoreError(f"{os.path.dirname(self.path)}: the experiment is in use by another run "
                               f"(PID {holder}); wait for it to end or choose another name") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


class Experiment:
    def __init__(self, root: str, name: str):
        self.dir = os.path.join(root, check_name(name))
        self.name = name
        self.models = os.path.join(self.dir, "models")
        self.states = os.path.join(self.dir, "training_states")
        self.visualization = os.path.join(self.dir, "visualization")
        self.tb = os.path.join(self.dir, "tb_logger")
        self.lock = None

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def create(self, resuming: bool) -> str | None:
        """Lock the folder and make its subfolders; a fresh run archives an existing folder of the same
        name first, and never one that another run holds. The lock lasts as long as this process."""
        archived = None
        if os.path.isdir(self.dir):
            held = FolderLock(self.dir).acquire()  # refuses if another run holds the folder
            if resuming:
                self.lock = held
            else:
                archived = archive_existing(self.dir)  # the lock moves with the folder, then goes
                held.release()
        if self.lock is None:
            os.makedirs(self.dir, exist_ok=True)
            self.lock = FolderLock(self.dir).acquire()
        for d in (self.models, self.states, self.visualization):
            os.makedirs(d, exist_ok=True)
            for stale in glob.glob(os.path.join(d, ".*.tmp")):  # an atomic save cut short by a kill
                os.remove(stale)
        return archived

    def write_options(self, opt: dict) -> None:
        from restore.utils.img_io import atomic_write_bytes
        text = f"# written by restore at {timestamp()}\n" + dump_yaml(
            {k: v for k, v in opt.items() if k not in ("is_train",)})
        atomic_write_bytes(os.path.join(self.dir, f"{self.name}.yml"), text.encode())

    def log_file(self) -> str:
        return os.path.join(self.dir, f"train_{self.name}_{timestamp()}.log")

    def state_candidates(self) -> list[tuple[int, str]]:
        found = []
        for path in glob.glob(os.path.join(self.states, "*.state")):
            stem = os.path.basename(path)[:-6]
            if stem.isdigit():
                found.append((int(stem), path))
        return sorted(found, reverse=True)

    def latest_resumable(self, check=None) -> tuple[dict, str, str, list[str]] | None:
        """The newest (state, state_path, net_path, skipped) whose state AND network file both load
        and pass `check(state, net_path)` (which raises RestoreError, e.g. for NaN weights or
        another arch); `skipped` says why each newer checkpoint was passed over. None when the
        experiment has no state at all; a RestoreError listing every reason when none is usable.

        Atomic saves make a broken newest file unlikely, but a disk that filled up, a copied folder
        or a run that diverged can still leave one; we fall back to the newest good pair.
        """
        candidates = self.state_candidates()
        skipped = []
        for it, path in candidates:
            net_path = os.path.join(self.models, f"net_g_{it}.pth")
            try:
                state = load_safely(path)
                load_safely(net_path)
                if check is not None:
                    check(state, net_path)
            except RestoreError as e:
                skipped.append(f"skipped the checkpoint of iteration {it}: {e}")
                continue
            return state, path, net_path, skipped
        if candidates:
            raise RestoreError(f"{self.states}: no usable training state to resume from; "
                               + "; ".join(skipped) + ". Pass --restart to archive the folder and start over")
        return None


def net_path_for_state(state_path: str, it: int) -> str:
    """models/net_g_<iter>.pth beside the training_states folder of `state_path`."""
    exp_dir = os.path.dirname(os.path.dirname(os.path.abspath(state_path)))
    path = os.path.join(exp_dir, "models", f"net_g_{it}.pth")
    if not os.path.isfile(path):
        raise RestoreError(f"{state_path}: its network file {path} is missing")
    return path
