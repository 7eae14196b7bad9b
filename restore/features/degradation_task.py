"""The degradation-recognition task of restore-probe-features: labeled patch folders made from the
benchmark data, deterministically. Patches of a training source (BSD200) and a test source (BSD100),
each written once per class: clean, Gaussian noise sigma 15 / 25 / 50, JPEG q 10 / 30, bicubic x2 /
x4 down-up, under <out>/train/<class>/ and <out>/test/<class>/, with <out>/task.json.
"""
import json
import os

import cv2
import numpy as np
from tqdm import tqdm

from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes, imdecode, imencode, imread, imwrite, list_images, to_float32

DEGRADATION_CLASSES = ("clean", "noise15", "noise25", "noise50", "jpeg10", "jpeg30", "bicubic_x2", "bicubic_x4")


def degrade_patch(patch: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 HxWxC patch -> the same patch with degradation `name` (one of DEGRADATION_CLASSES)."""
    if name == "clean":
        return patch
    if name.startswith("noise"):
        sigma = float(name[len("noise"):])
        noisy = patch.astype(np.float64) + rng.normal(0.0, sigma, patch.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    if name.startswith("jpeg"):
        data = imencode(patch, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(name[len("jpeg"):])])
        return imdecode(data, name, "unchanged").reshape(patch.shape)
    if name.startswith("bicubic_x"):
        factor = int(name[len("bicubic_x"):])
        h, w = patch.shape[:2]
        small = cv2.resize(patch, (w // factor, h // factor), interpolation=cv2.INTER_CUBIC)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(patch.shape)
    raise ValueError(f"unknown degradation '{name}'")


def write_split(folder: str, out: str, patch: int, per_image: int, seed: int, desc: str) -> int:
    """Patches of every image in `folder`, each written once per class under out/<class>/."""
    rng = np.random.default_rng(seed)
    count = 0
    for path in tqdm(list_images(folder), desc=desc, unit="img", leave=False, disable=None):
        img = imread(path, "rgb")
        if img.dtype != np.uint8:
            img = (to_float32(img) * 255).round().astype(np.uint8)
        h, w = img.shape[:2]
        if h < patch or w < patch:
            raise RestoreError(f"{path}: {w}x{h} is smaller than --patch {patch}")
        stem = os.path.splitext(os.path.basename(path))[0]
        for p in range(per_image):
            # JPEG blocks aligned with the patch, as when a whole image is compressed.
            y = int(rng.integers(0, (h - patch) // 8 + 1)) * 8
            x = int(rng.integers(0, (w - patch) // 8 + 1)) * 8
            crop = img[y:y + patch, x:x + patch]
            for name in DEGRADATION_CLASSES:
                imwrite(os.path.join(out, name, f"{stem}_{p}.png"), degrade_patch(crop, name, rng))
            count += 1
    return count


def resolve_folder(spec: str, data_root: str | None, where: str) -> str:
    for path in [spec] + ([os.path.join(data_root, spec)] if data_root and not os.path.isabs(spec) else []):
        if os.path.isdir(path):
            return path
    raise RestoreError(f"{where}: '{spec}' is not a folder (nor under the data root {data_root})")



def make_degradation_task(out: str, train_folder: str, test_folder: str, patch: int, per_image: int,
                          seed: int) -> tuple[int, int]:
    """Write the task to `out`; returns the number of (training, test) patches per class."""
    if patch % 8:
        raise RestoreError(f"--patch must be a multiple of 8 (JPEG blocks, x4 down-up), got {patch}")
    n_train = write_split(train_folder, os.path.join(out, "train"), patch, per_image, seed, "make train")
    n_test = write_split(test_folder, os.path.join(out, "test"), patch, per_image, seed + 1, "make test")
    info = {"classes": list(DEGRADATION_CLASSES), "train_source": train_folder, "test_source": test_folder,
            "patch": patch, "patches_per_image": per_image, "seed": seed,
            "train_patches_per_class": n_train, "test_patches_per_class": n_test}
    atomic_write_bytes(os.path.join(out, "task.json"), (json.dumps(info, indent=1) + "\n").encode())
    return n_train, n_test
