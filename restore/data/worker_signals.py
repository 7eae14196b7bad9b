"""DataLoader workers that leave Ctrl-C and SIGTERM to the main process, from their first instruction.

Ctrl-C (SIGINT to the whole process group), `pkill -f` and schedulers (SIGTERM) reach the workers
too. The main process handles both by saving a state and shutting its workers down; a worker that
died of the signal first would turn that graceful stop into a "DataLoader worker exited
unexpectedly" crash. Setting SIG_IGN in `worker_init_fn` alone leaves a window: torch installs its
own SIGTERM handler (which kills the worker) when the worker starts, before `worker_init_fn` runs,
and non-persistent workers start again every epoch. So the loader blocks both signals while it
forks its workers (they inherit the mask), each worker ignores them and only then unblocks, and the
main process unblocks right after the fork and receives whatever arrived meanwhile.

`init_worker` also leaves each worker one thread for torch and for the BLAS behind numpy (the MATLAB
bicubic of the SR datasets is two numpy matmuls): OpenBLAS's own threads, spinning against the
training process's for the same cores, made an x4 sample (a 128x128 GT patch) 10x slower than with
one thread (256 ms against 26 ms) beside a 2-thread training run.
"""
import signal
import threading
import weakref

import torch
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_CAN_MASK = hasattr(signal, "pthread_sigmask")  # not on Windows
_started_workers: "weakref.WeakSet" = weakref.WeakSet()  # every worker process this process started


def init_worker(worker_id: int) -> None:
    # Per-sample RNGs come from the sampler, so nothing is seeded here.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)  # discards a signal that arrived while blocked
    if _CAN_MASK:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    torch.set_num_threads(1)
    threadpool_limits(1)


class StopSafeDataLoader(DataLoader):
    """A DataLoader whose worker processes never die of SIGINT/SIGTERM (see the module docstring);
    pass `worker_init_fn=init_worker`."""

    def __iter__(self):
        if self.num_workers == 0 or not _CAN_MASK:
            return super().__iter__()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            iterator = super().__iter__()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        _started_workers.update(getattr(iterator, "_workers", ()))
        return iterator


def stop_leftover_workers(timeout: float = 5.0) -> list[int]:
    """Kill the DataLoader workers of this process that are still alive (pids returned); called
    when a command ends.

    Workers ignore SIGTERM (above), so multiprocessing's exit handler, which terminates daemonic
    children with SIGTERM and then joins them without a timeout, would wait forever on a worker
    whose iterator was never shut down. By the time a command ends its data is no longer needed.
    """
    alive = [p for p in list(_started_workers) if p.is_alive()]
    if not alive:
        return []
    # torch's SIGCHLD handler raises "DataLoader worker is killed" in this thread when a worker dies,
    # which would cut this loop short and leave the others to hang the exit: hold it off meanwhile.
    in_main = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGCHLD")
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL) if in_main else None
    try:
        for process in alive:
            process.kill()
        for process in alive:
            process.join(timeout)
    finally:
        if in_main and previous is not None:  # None: a handler installed outside Python
            signal.signal(signal.SIGCHLD, previous)
    return [p.pid for p in alive]
