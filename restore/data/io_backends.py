"""Where dataset bytes come from: a folder on disk or an LMDB.

A backend maps *keys* (file stems, as BasicSR's LMDB keys) to encoded image bytes. Datasets only
talk to this interface, so every dataset reads folders and LMDBs alike. Backends open lazily so
each DataLoader worker process gets its own handle after fork.
"""
import os

from restore.utils.errors import RestoreError
from restore.utils.img_io import check_image_file, is_image_file
from restore.utils.registry import BACKEND_REGISTRY


class Backend:
    location: str

    def keys(self) -> list[str]:
        """Sorted keys (file stems) available in this source."""
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def name_of(self, key: str) -> str:
        """A human-readable name of the item, used in error messages."""
        return f"{self.location}[{key}]"

    def verify(self) -> None:
        """Check every item cheaply (no decoding) so a bad one is reported before training starts."""


@BACKEND_REGISTRY.register(name="disk")
class DiskBackend(Backend):
    """Image files directly inside one folder; the key is the file name without extension."""

    def __init__(self, location: str):
        self.location = location
        if not os.path.isdir(location):
            raise RestoreError(f"{location}: folder not found")
        self._files = {}
        for f in sorted(os.listdir(location)):
            if is_image_file(f):
                stem = os.path.splitext(f)[0]
                if stem in self._files:
                    raise RestoreError(f"{location}: two images share the name '{stem}' "
                                       f"({self._files[stem]} and {f})")
                self._files[stem] = f
        if not self._files:
            raise RestoreError(f"{location}: no image files in this folder")

    def keys(self):
        return list(self._files)

    def path_of(self, key: str) -> str:
        if key not in self._files:
            raise RestoreError(f"{self.location}: no image named '{key}'")
        return os.path.join(self.location, self._files[key])

    def name_of(self, key):
        return self.path_of(key)

    def verify(self):
        for key in self._files:
            check_image_file(self.path_of(key))

    def get(self, key):
        path = self.path_of(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise RestoreError(f"{path}: cannot read ({e.strerror})") from None


class ConcatBackend(Backend):
    """Several sources read as one (`dataroot_gt: [a, b]`); a key present in two of them is an error."""

    def __init__(self, parts: list[Backend]):
        self.parts = parts
        self.location = " + ".join(p.location for p in parts)
        self._owner = {}
        for part in parts:
            for key in part.keys():
                if key in self._owner:
                    raise RestoreError(f"the image name '{key}' is in both {self._owner[key].location} "
                                       f"and {part.location}")
                self._owner[key] = part

    def keys(self):
        return list(self._owner)

    def _part(self, key: str) -> Backend:
        if key not in self._owner:
            raise RestoreError(f"{self.location}: no image named '{key}'")
        return self._owner[key]

    def verify(self):
        for part in self.parts:
            part.verify()

    def get(self, key):
        return self._part(key).get(key)

    def name_of(self, key):
        return self._part(key).name_of(key)


def build_backend(io_backend: dict | None, location: str | list[str], where: str) -> Backend:
    """`io_backend: {type: disk}` (default) or `{type: lmdb}` for `location`, or for each of a list of
    locations read as one source."""
    if isinstance(location, (list, tuple)):
        if not location:
            raise RestoreError(f"{where}: empty list of folders")
        return ConcatBackend([build_backend(io_backend, loc, f"{where}[{i}]") for i, loc in enumerate(location)])
    opt = dict(io_backend or {"type": "disk"})
    kind = opt.pop("type", "disk")
    if kind not in BACKEND_REGISTRY:
        raise RestoreError(f"{where}.io_backend.type: unknown backend '{kind}' "
                           f"(available: {', '.join(BACKEND_REGISTRY.keys())})")
    try:
        return BACKEND_REGISTRY.get(kind)(location, **opt)
    except TypeError as e:
        raise RestoreError(f"{where}.io_backend: {e}") from None


from restore.data import lmdb_backend  # noqa: E402,F401  (registers 'lmdb')
