"""restore-leaks --calibrate: precision and recall of the leak search on synthetic near-copies.

Each test image is degraded five ways (crop, shift, x2 bicubic down-up, JPEG q 30-90, Gaussian noise
sigma <= 25); the copies are searched among themselves and the training images (negatives = pairs
of distinct images), and the result says how many copies each stage finds at which thresholds.
"""
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from restore.features.aligned_check import aligned_check
from restore.features.leaks import (Item, LeakSettings, decode, embed, pair_scores, rgb_to_gray,
                                    whiten_and_normalise, working_gray)
from restore.features.random_signed import RandomSignedFeatures
from restore.utils.img_io import imdecode, imencode, to_float32

DEGRADATIONS = ("crop", "shift", "downup_x2", "jpeg", "noise")


def degrade(img: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A synthetic near-copy of an RGB/gray uint8 image, and a description of what was done."""
    h, w = img.shape[:2]
    if kind == "crop":
        f = rng.uniform(0.5, 0.9)
        ch, cw = max(8, int(h * f)), max(8, int(w * f))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return img[y:y + ch, x:x + cw], f"crop {cw}x{ch}+{x}+{y}"
    if kind == "shift":
        dy, dx = (int(v) for v in rng.integers(3, 17, size=2) * rng.choice([-1, 1], size=2))
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        out = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        return out.reshape(img.shape), f"shift {dx},{dy}"
    if kind == "downup_x2":
        small = cv2.resize(img, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_CUBIC)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(img.shape), "bicubic x2 down-up"
    if kind == "jpeg":
        q = int(rng.integers(30, 91))
        data = imencode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, q])
        return imdecode(data, "jpeg", "unchanged").reshape(img.shape), f"jpeg q{q}"
    if kind == "noise":
        sigma = float(rng.uniform(5, 25))
        noisy = img.astype(np.float64) + rng.normal(0, sigma, img.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8), f"noise sigma {sigma:.1f}"
    raise ValueError(kind)


def synthetic_positives(sources_items: list[Item], settings: LeakSettings, seed: int) -> list[Item]:
    rng = np.random.default_rng(seed)
    out = []
    for index, item in enumerate(tqdm(sources_items, desc="degrade", unit="img", leave=False, disable=None)):
        img = decode(item.source, item.key, "rgb")
        if img.dtype != np.uint8:
            img = (to_float32(img) * 255).round().astype(np.uint8)
        for kind in DEGRADATIONS:
            copy, what = degrade(img, kind, rng)
            gray = rgb_to_gray(copy)
            out.append(Item(item.source, item.key, working_gray(gray, settings.scale, settings.blur), gray.shape[:2],
                            degradation=what, kind=kind, origin=index))
    return out


def precision_recall(pred: set, truth: set) -> tuple[float, float]:
    tp = len(pred & truth)
    return (tp / len(pred) if pred else 1.0), (tp / len(truth) if truth else 1.0)


def calibrate(sources: list[Item], copies: list[Item], distractors: list[Item], scores: torch.Tensor,
              settings: LeakSettings) -> dict:
    """Precision/recall of (candidate stage, pixel check) on synthetic positives among distractors.

    `scores` is (sources, copies + distractors); copies are the first len(copies) columns.
    """
    truth = {(c.origin, j) for j, c in enumerate(copies)}
    k = min(len(DEGRADATIONS) + settings.top_k, scores.shape[1])
    values, indices = scores.topk(k, dim=1)
    checked = []
    for i in tqdm(range(len(sources)), desc="pixel check", unit="img", leave=False, disable=None):
        for score, j in zip(values[i].tolist(), indices[i].tolist()):
            other = copies[j].gray if j < len(copies) else distractors[j - len(copies)].gray
            ncc = aligned_check(sources[i].gray, other)["ncc"]
            checked.append((i, j, score, ncc))
    pos_scores = np.array([scores[i, j].item() for i, j in truth])
    neg_mask = torch.ones_like(scores, dtype=torch.bool)
    for i, j in truth:
        neg_mask[i, j] = False
    neg_scores = scores[neg_mask].numpy()

    def predicted(feature_t, ncc_t):
        return {(i, j) for i, j, s, n in checked if s >= feature_t and n >= ncc_t}

    def at(feature_t, ncc_t):
        pred = predicted(feature_t, ncc_t)
        p, r = precision_recall(pred, truth)
        per_kind = {}
        for kind in DEGRADATIONS:
            t = {(i, j) for i, j in truth if copies[j].kind == kind}
            per_kind[kind] = round(precision_recall(pred & t, t)[1], 4) if t else None
        return {"feature_threshold": feature_t, "ncc_threshold": ncc_t, "precision": round(p, 4),
                "recall": round(r, 4), "recall_by_degradation": per_kind}

    pos_ncc = [n for i, j, s, n in checked if (i, j) in truth]
    neg_ncc = [n for i, j, s, n in checked if (i, j) not in truth]
    sweep = [at(ft, nt) for ft in (0.5, 0.9, 0.95) for nt in (0.7, 0.75, 0.8, 0.85, 0.9, 0.95)]
    found = predicted(settings.feature_threshold, settings.ncc_threshold)
    ncc_of = {(i, j): n for i, j, s, n in checked}
    db_items = copies + distractors
    hardest = sorted(((n, s, i, j) for i, j, s, n in checked if (i, j) not in truth), reverse=True)[:10]
    return {
        "positives": len(truth), "negative_pairs": int(neg_mask.sum()),
        "feature_score_positives": {"min": float(pos_scores.min()), "p01": float(np.percentile(pos_scores, 1)),
                                    "median": float(np.median(pos_scores))},
        "feature_score_negatives": {"max": float(neg_scores.max()), "p999": float(np.percentile(neg_scores, 99.9)),
                                    "median": float(np.median(neg_scores))},
        "ncc_checked_positives": {"min": float(min(pos_ncc)) if pos_ncc else None,
                                  "count": len(pos_ncc)},
        "ncc_checked_negatives": {"max": float(max(neg_ncc)) if neg_ncc else None,
                                  "p99": float(np.percentile(neg_ncc, 99)) if neg_ncc else None,
                                  "count": len(neg_ncc)},
        "at_chosen_thresholds": at(settings.feature_threshold, settings.ncc_threshold),
        "sweep": sweep,
        "missed": [{"source": sources[copies[j].origin].name, "copy": copies[j].name,
                    "feature_score": round(scores[copies[j].origin, j].item(), 4),
                    "ncc": (round(ncc_of[copies[j].origin, j], 4) if (copies[j].origin, j) in ncc_of
                            else "not among the candidates")}
                   for j in range(len(copies)) if (copies[j].origin, j) not in found],
        "hardest_negatives": [{"test": sources[i].name, "other": db_items[j].name, "feature_score": round(s, 4),
                               "ncc": round(n, 4)} for n, s, i, j in hardest],
    }


def calibrate_leaks(train: list[Item], test: list[Item], extractor: RandomSignedFeatures, settings: LeakSettings,
                    seed: int, started: float) -> dict:
    """The calibration result of the search on degraded copies of `test` among `train`."""
    copies = synthetic_positives(test, settings, seed=seed)
    window_px = settings.window_px
    db = embed(copies + train, extractor, window_px, max(1, window_px // 8), settings.min_window_std,
               "embed copies+train")
    query = embed(test, extractor, window_px, max(1, window_px // 4), settings.min_window_std, "embed test")
    whiten_and_normalise([db, query], settings.whiten)
    scores = pair_scores(query, db)
    result = calibrate(test, copies, train, scores, settings)
    result["settings"], result["seconds"] = settings.describe(extractor), round(time.time() - started, 1)
    result["images_embedded"] = len(copies) + len(train) + len(test)
    return result
