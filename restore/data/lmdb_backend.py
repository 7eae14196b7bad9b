"""Reading images from an LMDB in BasicSR's layout (`io_backend: {type: lmdb}`).

Layout (what `restore-lmdb` and BasicSR's `make_lmdb_from_imgs` write): a folder `<name>.lmdb` with
`data.mdb`, `lock.mdb` and `meta_info.txt`; each value is the PNG encoding of one image, its key is
the image's file stem, and `meta_info.txt` has one line per image: `<key>.png (<h>,<w>,<c>) <level>`.

Each process opens its own environment (read-only, no lock, no readahead) on first use and re-opens
it when the process id changes: an LMDB handle must not cross a fork, and DataLoader workers or DDP
ranks are forks of the process that built the dataset.
"""
import os

import lmdb

from restore.data.io_backends import Backend
from restore.utils.errors import RestoreError
from restore.utils.registry import BACKEND_REGISTRY

META_FILE = "meta_info.txt"


def key_of_meta_line(line: str) -> str:
    """The key of a meta_info.txt line: its first token without the extension.

    The text before the *last* dot, so `img.v2.png` gives `img.v2` (BasicSR keeps `img`).
    """
    token = line.split()[0]
    stem, dot, _ = token.rpartition(".")
    return stem if dot else token


def read_meta_keys(location: str) -> list[str] | None:
    """Keys listed in `<location>/meta_info.txt`, in file order; None when there is no such file."""
    path = os.path.join(location, META_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise RestoreError(f"{path}: cannot read ({e})") from None
    keys = [key_of_meta_line(line) for line in lines]
    if len(set(keys)) != len(keys):
        seen, dup = set(), None
        for k in keys:
            if k in seen:
                dup = k
                break
            seen.add(k)
        raise RestoreError(f"{path}: the key '{dup}' is listed twice")
    return keys


def open_env(location: str) -> lmdb.Environment:
    """Open an LMDB read-only, without locking or readahead (many readers, random access).

    A data.mdb shorter than the pages its meta page says are in use (a copy cut short, a full disk)
    would be mapped anyway, and the first read past its end kills the process with SIGBUS: compare
    the sizes first.
    """
    try:
        env = lmdb.open(location, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as e:
        raise RestoreError(f"{location}: not a readable LMDB ({e})") from None
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    actual = os.path.getsize(os.path.join(location, "data.mdb"))
    if actual < needed:
        env.close()
        raise RestoreError(f"{location}: truncated LMDB: data.mdb has {actual} bytes but its pages in "
                           f"use need {needed}; copy or rebuild it (restore-lmdb)")
    return env


# real path -> (pid, data.mdb inode, environment). py-lmdb allows one open environment per LMDB and
# process, so every backend on the same LMDB (train and val datasets, say) shares one.
_ENVS: dict[str, tuple[int, int, lmdb.Environment]] = {}


def shared_env(location: str, recheck: bool = False) -> lmdb.Environment:
    """This process's environment for `location`, opened on first use.

    recheck: re-open when the LMDB was replaced (new data.mdb) since it was opened.
    """
    path = os.path.realpath(location)
    pid = os.getpid()
    held = _ENVS.get(path)
    inode = os.stat(os.path.join(path, "data.mdb")).st_ino if recheck or held is None else held[1]
    if held is not None and held[0] == pid and held[1] == inode:
        return held[2]
    if held is not None:
        # inherited through fork (DataLoader worker, DDP rank) it is unusable here; either way it
        # must be closed before py-lmdb lets this process open the same path again
        held[2].close()
    env = open_env(path)
    _ENVS[path] = (pid, inode, env)
    return env


@BACKEND_REGISTRY.register(name="lmdb")
class LmdbBackend(Backend):
    """Images stored in one LMDB folder; keys from its meta_info.txt (or, without one, from the LMDB)."""

    def __init__(self, location: str):
        self.location = location
        if not os.path.isdir(location):
            raise RestoreError(f"{location}: LMDB folder not found")
        if not os.path.isfile(os.path.join(location, "data.mdb")):
            raise RestoreError(f"{location}: not an LMDB (no data.mdb in this folder)")
        keys = read_meta_keys(location)
        env = shared_env(location, recheck=True)  # opened now so a damaged LMDB is reported when the dataset is built
        if keys is None:  # an LMDB written by another tool: take its keys from the LMDB itself
            with env.begin(write=False) as txn:
                keys = [k.decode("utf-8", "replace") for k in txn.cursor().iternext(keys=True, values=False)]
        if not keys:
            raise RestoreError(f"{location}: the LMDB holds no images")
        self._keys = sorted(keys)
        self._key_set = set(keys)

    def keys(self):
        return list(self._keys)

    def verify(self):
        """Every key of meta_info.txt is in the LMDB (values are not read: an LMDB can be large)."""
        with shared_env(self.location).begin(write=False) as txn:
            cursor = txn.cursor()
            for key in self._keys:
                if not cursor.set_key(key.encode("utf-8")):
                    raise RestoreError(f"{self.name_of(key)}: key listed in {META_FILE} but missing "
                                       f"from the LMDB")

    def get(self, key):
        if key not in self._key_set:
            raise RestoreError(f"{self.location}: no image with key '{key}' in this LMDB")
        with shared_env(self.location).begin(write=False) as txn:
            value = txn.get(key.encode("utf-8"))
        if value is None:
            raise RestoreError(f"{self.name_of(key)}: key listed in {META_FILE} but missing from the LMDB")
        return value
