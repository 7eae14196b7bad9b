"""The pixel check of restore-leaks: is one image (a crop, shift or rescaled copy of) part of another?

Templates from the smaller image (its central 80%, and a 3x3 grid of parts 2/3 that size, for
partial overlaps) are matched in the other (normalised cross-correlation, OpenCV TM_CCOEFF_NORMED)
on the detail (band-pass: the luma minus its Gaussian blur of sigma 4, so smooth shading cannot
match). The pair's NCC is the second-best NCC among templates that agree on the offset of the best
one (one template can match an unrelated edge by chance, two at one offset do not).
"""
import cv2
import numpy as np

TEMPLATE_MARGIN = 0.1  # the template is the smaller image minus 10% per side: room for shifts
# The pixel check correlates detail (image minus its Gaussian blur of this sigma, working px): on raw
# luma, smooth unrelated images (a sky over a dark ground) reach NCC 0.93 somewhere in a large image.
DETAIL_SIGMA = 4.0
# Templates with less detail than this (std, luma 0-1) are skipped: faint texture in dark or flat
# areas (sensor noise, JPEG ringing) matches unrelated faint texture with NCC up to 0.98.
MIN_TEMPLATE_DETAIL = 0.015
AGREE_PX = 2  # templates "agree" when their offsets differ by at most this (working px)

def detail(x: np.ndarray, sigma: float = DETAIL_SIGMA) -> np.ndarray:
    return x - cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def template_boxes(small_shape, big_shape, margin: float = TEMPLATE_MARGIN) -> list[tuple[str, list]]:
    """Boxes (y, x, h, w) of the smaller image to look for in the other: its centre minus `margin`
    per side (whole-image copies, crops, shifts), then a 3x3 grid of parts 2/3 that size (partial
    overlaps, e.g. two crops of one photo; smaller parts match single edges by chance)."""
    hs, ws = small_shape
    th = max(1, int(min(hs, big_shape[0]) * (1 - 2 * margin)))
    tw = max(1, int(min(ws, big_shape[1]) * (1 - 2 * margin)))
    boxes = [("centre", [(hs - th) // 2, (ws - tw) // 2, th, tw])]
    ph, pw = max(1, th * 2 // 3), max(1, tw * 2 // 3)
    for y in np.linspace(0, hs - ph, 3).astype(int):
        for x in np.linspace(0, ws - pw, 3).astype(int):
            boxes.append(("part", [int(y), int(x), ph, pw]))
    return boxes


def aligned_check(a: np.ndarray, b: np.ndarray, margin: float = TEMPLATE_MARGIN) -> dict:
    """Template-match parts of the smaller image's detail in the other's detail.

    A single template can match unrelated content by chance (one strong edge, faint texture), but
    not two templates at the same offset: the score `ncc` is the second-best NCC among templates
    that agree (within AGREE_PX) with the offset of the best one. Also returned: that best NCC,
    which template it was, the PSNR of the luma there, and where it sits: boxes (y, x, h, w) in
    working px of a and of b.
    """
    swap = a.shape[0] * a.shape[1] > b.shape[0] * b.shape[1]
    small, big = (b, a) if swap else (a, b)
    small_detail, big_detail = detail(small), detail(big)
    matches = []  # (ncc, kind, small box, big box)
    for kind, (ty, tx, th, tw) in template_boxes(small.shape, big.shape, margin):
        template = small_detail[ty:ty + th, tx:tx + tw]
        if template.std() < MIN_TEMPLATE_DETAIL:
            continue
        _, ncc, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(big_detail, template, cv2.TM_CCOEFF_NORMED))
        matches.append((float(ncc), kind, [int(ty), int(tx), th, tw], [int(y), int(x), th, tw]))
    result = {"ncc": 0.0, "ncc_best": 0.0, "psnr": 0.0, "template": None, "box_a": None, "box_b": None}
    if not matches:
        return result
    best_score, best = -1.0, None
    for m in matches:
        offset = (m[3][0] - m[2][0], m[3][1] - m[2][1])
        agreeing = sorted((n[0] for n in matches if n is not m
                           and abs(n[3][0] - n[2][0] - offset[0]) <= AGREE_PX
                           and abs(n[3][1] - n[2][1] - offset[1]) <= AGREE_PX), reverse=True)
        score = min(m[0], agreeing[0]) if agreeing else 0.0
        if score > best_score or (score == best_score and best is not None and m[0] > best[0]):
            best_score, best = score, m
    ncc, kind, (ty, tx, th, tw), (y, x, _, _) = best
    diff = (small[ty:ty + th, tx:tx + tw] - big[y:y + th, x:x + tw]).astype(np.float64)
    mse = float(np.mean(diff * diff))
    result.update(ncc=best_score, ncc_best=ncc, template=kind,
                  psnr=float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse)),
                  box_a=best[3] if swap else best[2], box_b=best[2] if swap else best[3])
    return result
