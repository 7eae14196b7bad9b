"""What the tools that write a dataset folder share (restore-lmdb, sub-image extraction): the
folder is built under a hidden temporary name beside its destination and renamed at the end, so an
interrupted run leaves nothing that looks finished, and the images are processed by a worker pool."""
import contextlib
import multiprocessing
import os
import shutil
import tempfile

from tqdm import tqdm

from restore.utils.img_io import current_umask


def staging_folder(output: str) -> str:
    """A new empty folder `.<name>.<random>.tmp` beside `output` (whose parent is created)."""
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.", suffix=".tmp", dir=parent)
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; the result should not be
    return tmp


def worker_pool(workers: int):
    """A process pool, or None for one worker (work then runs in this process)."""
    return multiprocessing.Pool(workers) if workers > 1 else None


def parallel_map(pool, fn, jobs: list, desc: str, chunksize: int = 4):
    """fn over jobs, results as they complete, with a progress bar."""
    results = pool.imap_unordered(fn, jobs, chunksize=chunksize) if pool else map(fn, jobs)
    yield from tqdm(results, total=len(jobs), desc=desc, unit="img", dynamic_ncols=True)


@contextlib.contextmanager
def staged(output: str, workers: int):
    """(staging folder, worker pool or None) for building `output`; the caller renames the folder
    into place at the end of the block. An error removes the folder; the pool always ends."""
    tmp = staging_folder(output)
    pool = worker_pool(workers)
    try:
        yield tmp, pool
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if pool:
            pool.terminate()
            pool.join()
