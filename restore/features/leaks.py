"""Find test images that also occur (possibly cropped, shifted, rescaled x2 down-up, JPEG-compressed
or noisy) in the training data, using training-free random signed features (restore-leaks).

How it works:
1. Every image is read as luma, rescaled by --scale (INTER_AREA) and blurred a little (--blur),
   so JPEG artefacts and noise do not dominate the sign features.
2. One pass of `RandomSignedFeatures` (no standardisation, so a crop sees the same local pattern
   statistics as its parent) gives the final sign maps; averaging them over the whole image and
   over sliding windows of --window pixels gives one feature vector per image and per window
   (training windows on a grid of window/8, test windows on window/4: a test image that is a crop of
   a training image, or the reverse, then has a window pair misaligned by at most window/16 pixels).
   Low-texture windows (pixel std below --min-window-std) are dropped: all flat skies look alike.
3. Vectors are centred and PCA-whitened to --whiten dimensions (fitted on all of them), then
   compared by cosine; the score of an image pair is the best cosine over their vector pairs. The
   --top-k training images of each test image whose score reaches --feature-threshold are
   candidates.
4. Each candidate is confirmed by an aligned pixel check (`aligned_check.py`); a pair is reported
   when its NCC >= --ncc-threshold.
"""
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from restore.data.io_backends import build_backend
from restore.features.aligned_check import aligned_check
from restore.features.random_signed import RandomSignedFeatures
from restore.utils.errors import RestoreError
from restore.utils.img_io import imdecode, to_float32

# Defaults chosen by `--calibrate` on the benchmark sets (docs/features.md gives the numbers).
DEFAULT_FEATURE_THRESHOLD = 0.9
DEFAULT_NCC_THRESHOLD = 0.85


@dataclass
class LeakSettings:
    """What the search compares and how strictly (the restore-leaks options of the same names)."""
    scale: float = 0.5
    blur: float = 1.0
    window: int = 128
    whiten: int = 32
    min_window_std: float = 0.03
    top_k: int = 3
    feature_threshold: float = DEFAULT_FEATURE_THRESHOLD
    ncc_threshold: float = DEFAULT_NCC_THRESHOLD

    def describe(self, extractor: RandomSignedFeatures) -> dict:
        return {"features": extractor.config, "scale": self.scale, "blur": self.blur, "window": self.window,
                "whiten": self.whiten, "min_window_std": self.min_window_std, "top_k": self.top_k,
                "feature_threshold": self.feature_threshold, "ncc_threshold": self.ncc_threshold}

    @property
    def window_px(self) -> int:
        """The window side in working (rescaled) pixels."""
        return max(1, round(self.window * self.scale))


# ----------------------------------------------------------------------------------------------
# Sources and images

@dataclass
class Source:
    label: str
    location: str
    backend: object


@dataclass
class Item:
    """One image: where it comes from and its rescaled, blurred luma (float32, [0, 1])."""
    source: Source
    key: str
    gray: np.ndarray
    original_size: tuple
    degradation: str = ""  # calibration only: what was done to the source image
    kind: str = ""         # calibration only: which of DEGRADATIONS
    origin: int = -1       # calibration only: index of the source image it was made from

    @property
    def name(self) -> str:
        return f"{self.source.label}/{self.key}" + (f" [{self.degradation}]" if self.degradation else "")


def resolve_source(spec: str, data_root: str | None, where: str) -> Source:
    """A folder or LMDB given as a path, or as a bare dataset name under the data root."""
    candidates = [spec]
    if data_root and not os.path.isabs(spec):
        candidates.append(os.path.join(data_root, spec))
    for path in candidates:
        if os.path.isdir(path):
            path = os.path.abspath(path)
            kind = "lmdb" if os.path.isfile(os.path.join(path, "data.mdb")) else "disk"
            label = os.path.basename(path.rstrip(os.sep))
            label = label[:-5] if label.endswith(".lmdb") else label
            return Source(label, path, build_backend({"type": kind}, path, where))
    looked = " or ".join(candidates)
    raise RestoreError(f"{where}: '{spec}' is not a folder or LMDB (looked for {looked})")


def decode(source: Source, key: str, mode: str) -> np.ndarray:
    return imdecode(source.backend.get(key), source.backend.name_of(key), mode)


def working_gray(gray: np.ndarray, scale: float, blur: float) -> np.ndarray:
    """uint8/uint16 HxWx1 luma -> float32 HxW at `scale`, Gaussian-blurred by `blur` (working) px."""
    x = to_float32(gray)[:, :, 0]
    if scale != 1:
        size = (max(1, round(x.shape[1] * scale)), max(1, round(x.shape[0] * scale)))
        x = cv2.resize(x, size, interpolation=cv2.INTER_AREA)
    if blur > 0:
        x = cv2.GaussianBlur(x, (0, 0), blur, borderType=cv2.BORDER_REFLECT)
    return x


def rgb_to_gray(img: np.ndarray) -> np.ndarray:
    if img.shape[2] == 1:
        return img
    return cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)[:, :, None]


def load_items(sources: list[Source], settings: LeakSettings, desc: str) -> list[Item]:
    jobs = [(s, k) for s in sources for k in s.backend.keys()]
    items = []
    for source, key in tqdm(jobs, desc=desc, unit="img", leave=False, disable=None):
        gray = decode(source, key, "gray")
        items.append(Item(source, key, working_gray(gray, settings.scale, settings.blur), gray.shape[:2]))
    return items


# ----------------------------------------------------------------------------------------------
# Features of whole images and windows

@dataclass
class Embedding:
    vectors: torch.Tensor  # (M, n) float32
    owner: torch.Tensor    # (M,) int64: index of the image each vector belongs to
    count: int             # number of images


def embed(items: list[Item], extractor: RandomSignedFeatures, window_px: int, stride_px: int,
          min_std: float, desc: str) -> Embedding:
    """Whole-image and sliding-window feature vectors of every item (one network pass per image)."""
    s = extractor.stride
    win, step = max(1, round(window_px / s)), max(1, round(stride_px / s))
    vectors, owners = [], []
    for index, item in enumerate(tqdm(items, desc=desc, unit="img", leave=False, disable=None)):
        x = torch.from_numpy(item.gray)[None, None]
        prepared = extractor.prepare(x)
        # Texture of each window, on the same pixel grid as the map windows.
        px = x[:, :, :(x.shape[2] // s) * s, :(x.shape[3] // s) * s].double()
        if min(px.shape[2:]) >= win * s:
            mean = F.avg_pool2d(px, win * s, step * s)
            var = F.avg_pool2d(px * px, win * s, step * s) - mean * mean
            textured = (var.clamp_min(0).sqrt() >= min_std).flatten()
        else:
            textured = torch.zeros(0, dtype=torch.bool)
        parts = []
        for a, b in extractor.chunks(prepared):
            maps = extractor.final_maps(prepared, a, b)
            whole = maps.mean(dim=(2, 3))                       # (1, m)
            if textured.numel():
                windows = F.avg_pool2d(maps, win, step).flatten(2)[0].T[textured]  # (w, m)
                parts.append(torch.cat([whole, windows]))
            else:
                parts.append(whole)
        v = torch.cat(parts, dim=1)
        vectors.append(v)
        owners.append(torch.full((v.shape[0],), index, dtype=torch.long))
    return Embedding(torch.cat(vectors), torch.cat(owners), len(items))


def whiten_and_normalise(embeddings: list[Embedding], dims: int, rows: int = 8192) -> None:
    """Centre all vectors on their common mean, PCA-whiten them to `dims` dimensions (0: centre
    only), then scale each to unit length, so cosine similarity is not dominated by the few
    directions that every natural image shares. Statistics in float64, a block of rows at a time."""
    blocks = [e.vectors[i:i + rows].double() for e in embeddings for i in range(0, len(e.vectors), rows)]
    count = sum(len(b) for b in blocks)
    mean = sum(b.sum(dim=0, keepdim=True) for b in blocks) / count
    projection = None
    if dims:
        covariance = sum((b - mean).T @ (b - mean) for b in blocks) / count
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        eigenvalues, eigenvectors = eigenvalues.flip(0)[:dims], eigenvectors.flip(1)[:, :dims]
        projection = eigenvectors / (eigenvalues + 1e-6 * eigenvalues[0]).clamp_min(1e-12).sqrt()
    for e in embeddings:
        out = []
        for i in range(0, len(e.vectors), rows):
            v = e.vectors[i:i + rows].double() - mean
            out.append(F.normalize(v @ projection if projection is not None else v, dim=1).float())
        e.vectors = torch.cat(out)


def pair_scores(query: Embedding, db: Embedding, block: int = 512, desc: str = "search") -> torch.Tensor:
    """(query images, db images): the best cosine between any vector of one and any of the other."""
    out = torch.full((query.count, db.count), -2.0)
    db_owner = db.owner[None, :]
    for start in tqdm(range(0, len(query.vectors), block), desc=desc, unit="blk", leave=False, disable=None):
        q = query.vectors[start:start + block]
        sims = q @ db.vectors.T
        per_db = torch.full((len(q), db.count), -2.0).scatter_reduce_(
            1, db_owner.expand(len(q), -1), sims, reduce="amax")
        owner = query.owner[start:start + block, None].expand(-1, db.count)
        out.scatter_reduce_(0, owner, per_db, reduce="amax")
    return out


# ----------------------------------------------------------------------------------------------
# Candidates and the whole search

def check_candidates(test: list[Item], train: list[Item], scores: torch.Tensor, top_k: int,
                     threshold: float) -> list[dict]:
    """Pixel-check the top-k training images of each test image whose feature score >= threshold."""
    jobs = []
    k = min(top_k, scores.shape[1])
    values, indices = scores.topk(k, dim=1)
    for i in range(len(test)):
        for score, j in zip(values[i].tolist(), indices[i].tolist()):
            if score >= threshold:
                jobs.append((i, j, score))
    pairs = []
    for i, j, score in tqdm(jobs, desc="pixel check", unit="pair", leave=False, disable=None):
        check = aligned_check(test[i].gray, train[j].gray)
        pairs.append({"test_index": i, "train_index": j, "test": test[i].name, "train": train[j].name,
                      "feature_score": round(score, 4), "ncc": round(check["ncc"], 4),
                      "ncc_best_template": round(check["ncc_best"], 4), "template": check["template"],
                      "psnr_working": round(check["psnr"], 2),
                      "box_test": check["box_a"], "box_train": check["box_b"]})
    return pairs


def full_resolution_match(test: Item, train: Item, box_test, box_train, scale: float) -> dict:
    """Where a reported pair overlaps at full resolution, and how equal the luma is there.

    The search aligns the pair in working pixels, so the full-resolution offset is known to within
    about 1/scale px: the offset within that radius whose overlap has the least mean absolute
    difference is taken. Returned: the overlap's origin in each image (y, x) and size (h, w), its
    share of each image, and on the overlap's luma (grey levels 0-255) the NCC, the mean absolute
    difference and the PSNR (None when identical)."""
    a = to_float32(decode(test.source, test.key, "gray"))[:, :, 0].astype(np.float64) * 255
    b = to_float32(decode(train.source, train.key, "gray"))[:, :, 0].astype(np.float64) * 255
    centre = [round((box_train[i] - box_test[i]) / scale) for i in (0, 1)]  # train px = test px + offset
    radius = int(np.ceil(1 / scale)) + 2
    best = None
    for dy in range(centre[0] - radius, centre[0] + radius + 1):
        for dx in range(centre[1] - radius, centre[1] + radius + 1):
            y0, x0 = max(0, -dy), max(0, -dx)
            y1, x1 = min(a.shape[0], b.shape[0] - dy), min(a.shape[1], b.shape[1] - dx)
            if y1 - y0 < 8 or x1 - x0 < 8:
                continue
            mad = float(np.abs(a[y0:y1, x0:x1] - b[y0 + dy:y1 + dy, x0 + dx:x1 + dx]).mean())
            if best is None or mad < best[0]:
                best = (mad, dy, dx, y0, x0, y1, x1)
    if best is None:
        return {}
    mad, dy, dx, y0, x0, y1, x1 = best
    pa, pb = a[y0:y1, x0:x1], b[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
    # Not restore.metrics.calculate_psnr: features sits below metrics (docs/architecture.md), and
    # the luma here is float (a 16-bit source is not rounded to 8 bits), which calculate_psnr refuses.
    mse = float(np.mean((pa - pb) ** 2))
    ncc = float(np.corrcoef(pa.ravel(), pb.ravel())[0, 1]) if pa.std() > 0 and pb.std() > 0 else 0.0
    h, w = y1 - y0, x1 - x0
    return {"test_origin": [y0, x0], "train_origin": [y0 + dy, x0 + dx], "size": [h, w],
            "share_test": h * w / (a.shape[0] * a.shape[1]), "share_train": h * w / (b.shape[0] * b.shape[1]),
            "ncc": round(ncc, 6), "mean_abs_diff": round(mad, 4),
            "psnr": None if mse == 0 else round(10 * float(np.log10(255 ** 2 / mse)), 2)}


def load_sources(train_sources: list[Source], test_sources: list[Source], extractor: RandomSignedFeatures,
                 settings: LeakSettings) -> tuple[list[Item], list[Item]]:
    """(training items, test items), refusing images too small for the feature network."""
    train = load_items(train_sources, settings, "read train")
    test = load_items(test_sources, settings, "read test")
    too_small = [it.name for it in train + test if min(it.gray.shape) < extractor.stride]
    if too_small:
        raise RestoreError(f"{too_small[0]}: too small for --blocks {extractor.blocks} at --scale {settings.scale}")
    return train, test


def search_leaks(train_sources: list[Source], test_sources: list[Source], train: list[Item], test: list[Item],
                 extractor: RandomSignedFeatures, settings: LeakSettings, started: float) -> dict:
    """The leak report: pairs whose pixel check reaches the NCC threshold (`pairs`, best first), the
    closest rejected candidates, every candidate checked, and what was searched."""
    window_px = settings.window_px
    train_emb = embed(train, extractor, window_px, max(1, window_px // 8), settings.min_window_std, "embed train")
    test_emb = embed(test, extractor, window_px, max(1, window_px // 4), settings.min_window_std, "embed test")
    whiten_and_normalise([train_emb, test_emb], settings.whiten)
    scores = pair_scores(test_emb, train_emb)
    checked = check_candidates(test, train, scores, settings.top_k, settings.feature_threshold)
    found = sorted((p for p in checked if p["ncc"] >= settings.ncc_threshold),
                   key=lambda p: (-p["ncc"], p["test"], p["train"]))
    rejected = sorted((p for p in checked if p["ncc"] < settings.ncc_threshold), key=lambda p: -p["ncc"])[:10]
    for p in found:
        p["full_resolution"] = full_resolution_match(test[p["test_index"]], train[p["train_index"]],
                                                     p["box_test"], p["box_train"], settings.scale)
    return {"settings": settings.describe(extractor),
            "train_counts": {s.label: len(s.backend.keys()) for s in train_sources},
            "test_counts": {s.label: len(s.backend.keys()) for s in test_sources},
            "vectors": {"train": len(train_emb.vectors), "test": len(test_emb.vectors)},
            "candidates_checked": len(checked), "pairs": found, "closest_rejected": rejected,
            "all_candidates": checked,
            "seconds": round(time.time() - started, 1)}
