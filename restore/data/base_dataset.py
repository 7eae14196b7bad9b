"""What every dataset shares: reading through an IO backend, per-sample RNG, tensor output.

A dataset item is a dict `{'lq', 'gt', 'key', 'lq_path', 'gt_path'}` with CHW float tensors in [0, 1].
Subclasses implement `load(index, rng)` and return numpy HWC images; this class turns them into
tensors. Validation items get an RNG seeded from the image name, so validation degradations (noise,
JPEG quality ranges) are identical across runs, processes and machines, and depend only on the
image name.

Decoded images are kept in memory (`cache_mb` per process, training sets only by default): decoding
a PNG costs more than everything else a training sample needs (patch crop, bicubic downscale, noise),
and a data worker takes that time from the cores the training step runs on.
"""
import hashlib

import numpy as np
import torch.utils.data

from restore.data.io_backends import Backend, build_backend
from restore.data.transforms import COLOR_MODES, crop_and_augment, to_color_mode
from restore.utils.errors import RestoreError
from restore.utils.img_io import imdecode, img2tensor


def name_seed(*parts) -> int:
    """A seed from strings that is the same on every machine (Python's hash() is salted per process)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


TRAIN_CACHE_MB = 512  # default cache_mb of a training set; T91 + BSD200 + Train400 decoded fit in it


class BaseDataset(torch.utils.data.Dataset):
    def __init__(self, name: str, phase: str, color: str = "rgb", cache_mb: float | None = None):
        if color not in COLOR_MODES:
            raise RestoreError(f"datasets.{phase}.color: '{color}' is not one of {', '.join(COLOR_MODES)}")
        self.name = name
        self.phase = phase
        self.color = color
        self.is_train = phase == "train"
        if cache_mb is None:
            cache_mb = TRAIN_CACHE_MB if self.is_train else 0
        if cache_mb < 0:
            raise RestoreError(f"datasets.{phase}.cache_mb: must be >= 0, got {cache_mb}")
        self._cache_bytes_left = int(cache_mb * 2 ** 20)
        self._decoded: dict[str, tuple[np.ndarray, int]] = {}  # by the item's name: its file path

    # --- helpers for subclasses -------------------------------------------------------------
    def open(self, location: str | list[str], io_backend: dict | None, key: str) -> Backend:
        """A backend for one folder/LMDB, or for a list of them read as one source."""
        backend = build_backend(io_backend, location, f"datasets.{self.phase}.{key}")
        self.__dict__.setdefault("_backends", []).append(backend)
        return backend

    def verify_files(self) -> None:
        """Check every file this dataset reads (headers and ends, no decoding); a RestoreError names
        the first bad one. Training runs this before it makes the experiment folder."""
        for backend in self.__dict__.get("_backends", []):
            backend.verify()

    @staticmethod
    def read(backend: Backend, key: str, mode: str = "unchanged") -> np.ndarray:
        return imdecode(backend.get(key), backend.name_of(key), mode)

    def image(self, backend: Backend, key: str) -> tuple[np.ndarray, int]:
        """Image `key` of `backend` in the dataset's colour mode, and the channel count of its file.
        Decoded once per process while the images fit the cache (first come, first kept: with
        uniform sampling any subset serves as well); the cached arrays are read-only, so a
        transform that wrote into one would fail loudly instead of changing later samples."""
        name = backend.name_of(key)
        entry = self._decoded.get(name)
        if entry is not None:
            return entry
        raw = self.read(backend, key)
        img = np.ascontiguousarray(to_color_mode(raw, self.color, name))
        entry = (img, raw.shape[2])
        if img.nbytes <= self._cache_bytes_left:
            img.flags.writeable = False
            self._decoded[name] = entry
            self._cache_bytes_left -= img.nbytes
        return entry

    # --- the Dataset protocol ---------------------------------------------------------------
    def keys(self) -> list[str]:
        raise NotImplementedError

    def __len__(self):
        return len(self.keys())

    def load(self, index: int, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def __getitem__(self, item):
        if isinstance(item, tuple):  # (index, seed tuple) from EpochSampler
            index, seed = item
            rng = np.random.default_rng(list(seed))
        else:
            index = item
            rng = np.random.default_rng(name_seed(self.keys()[index]))
        out = self.load(index, rng)
        for k in ("lq", "gt"):
            if k in out:
                out[k] = img2tensor(out[k])
        return out


class GTOnlyDataset(BaseDataset):
    """Datasets that read only GT images and make the LQ from them (SR, denoising, JPEG).

    `load_gt` gives the GT in the dataset's colour mode: a random `gt_size` patch under a random
    dihedral transform in training, the whole image otherwise. `exclude` names images (keys: file
    stems) left out, e.g. training images that overlap a test set (found with restore-leaks);
    `include` keeps only the images it names, e.g. a validation split held back from the training
    folder with the same list as the training set's `exclude`.
    """

    def __init__(self, name: str, phase: str, color: str, dataroot_gt, io_backend: dict | None,
                 gt_size: int | None, use_hflip: bool, use_rot: bool, exclude: list[str] | None = None,
                 include: list[str] | None = None, cache_mb: float | None = None):
        super().__init__(name, phase, color, cache_mb)
        if self.is_train and not gt_size:
            raise RestoreError(f"datasets.{phase}.gt_size: required for training")
        self.gt_size = gt_size
        self.use_hflip, self.use_rot = use_hflip, use_rot
        self.gt_db = self.open(dataroot_gt, io_backend, "dataroot_gt")
        self._keys = self.gt_db.keys()
        for option, names in (("exclude", exclude), ("include", include)):
            missing = sorted(set(names or ()) - set(self._keys))
            if missing:
                raise RestoreError(f"datasets.{phase}.{option}: no image named '{missing[0]}' in {self.gt_db.location}")
        if include is not None:
            self._keys = [k for k in self._keys if k in set(include)]
        self._keys = [k for k in self._keys if k not in set(exclude or ())]
        self.stored_channels: dict[str, int] = {}
        if not self._keys:
            raise RestoreError(f"datasets.{phase}: exclude/include leave no image in {self.gt_db.location}")

    def keys(self):
        return self._keys

    def load_gt(self, index: int, rng: np.random.Generator) -> tuple[str, str, np.ndarray]:
        key = self._keys[index]
        name = self.gt_db.name_of(key)
        # the literature protocol scores a one-channel file on its gray values
        gt, self.stored_channels[key] = self.image(self.gt_db, key)
        if self.is_train:
            gt = crop_and_augment(gt, self.gt_size, self.use_hflip, self.use_rot, rng, name)
        return key, name, gt
