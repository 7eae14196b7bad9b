"""Pack an image folder into an LMDB in BasicSR's layout, for faster training reads.

Each image is re-encoded as PNG (lossless; gray, RGB, RGBA and 16-bit images keep their channels
and bit depth) and stored under its file stem; `meta_info.txt` lists `<stem>.png (h,w,c) <level>`.
The LMDB is written into a hidden temporary folder beside the output and renamed at the end, so an
interrupted run never leaves a half-written `.lmdb` behind.
"""
import os

import cv2
import lmdb
import numpy as np

from restore.data.lmdb_backend import META_FILE, open_env
from restore.data.staging import parallel_map, staged
from restore.utils.errors import RestoreError
from restore.utils.img_io import imdecode, imencode, imread, list_images

BATCH_BYTES = 256 * 1024 * 1024  # commit at least this often, whatever --batch says
MIN_MAP_SIZE = 16 * 1024 * 1024


def encode_image(job):
    """(key, path, level) -> (key, PNG bytes, (h, w, c)); runs in a worker process."""
    key, path, level = job
    img = imread(path)
    return key, imencode(img, ".png", [cv2.IMWRITE_PNG_COMPRESSION, level]), img.shape


def map_size_for(sizes, page_size: int) -> int:
    """Room for values of these byte sizes: whole pages each (LMDB stores a large value in its own
    overflow pages), plus a margin for the B-tree and the pages a commit rewrites."""
    pages = sum((n + 64) // page_size + 2 for n in sizes)
    return int(pages * page_size * 1.1) + MIN_MAP_SIZE


class LmdbWriter:
    """Puts (key, value) batches into a new LMDB, growing its map to fit what is actually written."""

    def __init__(self, path: str):
        self.env = lmdb.open(path, map_size=MIN_MAP_SIZE, subdir=True, meminit=False)
        self.page_size = self.env.stat()["psize"]
        self.sizes = []

    def put_batch(self, batch: list) -> None:
        self.sizes.extend(len(v) for _, v in batch)
        need = map_size_for(self.sizes, self.page_size)
        if need > self.env.info()["map_size"]:
            self.env.set_mapsize(need)
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in batch:
                        txn.put(key.encode("utf-8"), value)
                return
            except lmdb.MapFullError:  # the estimate was short: the aborted batch is retried with more room
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def close(self) -> None:
        self.env.sync(True)
        self.env.close()


def image_jobs(folder: str, level: int) -> list:
    jobs, seen = [], {}
    for path in list_images(folder):
        key = os.path.splitext(os.path.basename(path))[0]
        if key in seen:
            raise RestoreError(f"{folder}: two images share the name '{key}' ({os.path.basename(seen[key])} "
                               f"and {os.path.basename(path)}); LMDB keys are file names without extension")
        if any(ch.isspace() for ch in key):
            raise RestoreError(f"{path}: file names with spaces cannot be LMDB keys (meta_info.txt is "
                               f"space-separated); rename the file")
        seen[key] = path
        jobs.append((key, path, level))
    return jobs


_verify_envs = {}  # (pid, LMDB path) -> environment, one per verifying process


def verify_image(job):
    """(key, path, lmdb_path) -> None when the stored image equals the source pixels, else a message."""
    key, path, lmdb_path = job
    handle = (os.getpid(), lmdb_path)
    if handle not in _verify_envs:
        _verify_envs[handle] = open_env(lmdb_path)
    with _verify_envs[handle].begin(write=False) as txn:
        value = txn.get(key.encode("utf-8"))
    if value is None:
        return f"{key}: missing from the LMDB"
    stored, source = imdecode(value, key), imread(path)
    if stored.dtype != source.dtype or stored.shape != source.shape:
        return f"{key}: stored {stored.shape} {stored.dtype}, source {source.shape} {source.dtype}"
    if not np.array_equal(stored, source):
        return f"{key}: stored pixels differ from {path}"
    return None


def create_lmdb(folder: str, output: str, level: int = 1, workers: int = 1, batch: int = 1000,
                verify: bool = False) -> int:
    """Write `folder`'s images to the LMDB `output`; returns the number of images."""
    output = os.path.abspath(output.rstrip("/"))
    if not output.endswith(".lmdb"):
        raise RestoreError(f"{output}: the output name must end with .lmdb")
    if os.path.exists(output):
        raise RestoreError(f"{output}: already exists; remove it or choose another name")
    if not 0 <= level <= 9:
        raise RestoreError(f"--compress-level: must be 0..9, got {level}")
    jobs = image_jobs(folder, level)
    with staged(output, workers) as (tmp, pool):
        writer, shapes, pending, pending_bytes = LmdbWriter(tmp), {}, [], 0
        for key, value, shape in parallel_map(pool, encode_image, jobs, "encode"):
            shapes[key] = shape
            pending.append((key, value))
            pending_bytes += len(value)
            if len(pending) >= batch or pending_bytes >= BATCH_BYTES:
                writer.put_batch(pending)
                pending, pending_bytes = [], 0
        if pending:
            writer.put_batch(pending)
        writer.close()
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as f:
            for key in sorted(shapes):
                h, w, c = shapes[key]
                f.write(f"{key}.png ({h},{w},{c}) {level}\n")
        if verify:
            checks = [(key, path, tmp) for key, path, _ in jobs]
            problems = [p for p in parallel_map(pool, verify_image, checks, "verify") if p]
            env = _verify_envs.pop((os.getpid(), tmp), None)
            if env is not None:  # verified in this process (--workers 1)
                env.close()
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise RestoreError(f"verification failed: {problems[0]}{more}")
        if os.path.exists(output):
            raise RestoreError(f"{output}: appeared while the LMDB was being written; not replaced")
        os.rename(tmp, output)
    return len(jobs)
