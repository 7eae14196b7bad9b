"""How much do training-free random signed features know about an image? (restore-probe-features)

A linear SVM (scikit-learn LinearSVC) and a k-nearest-neighbour classifier (cosine) are fitted on
the features of a labeled training folder and scored (top-1, top-2 accuracy) on a labeled test
folder, with the same classifiers on raw pixels as the baseline; the class separation of each
representation is mean between-class distance / mean within-class distance (Euclidean, over all
test pairs; higher = classes further apart relative to their spread).

A labeled folder has one subfolder per class holding that class's images (all of one size within a
run is fastest; the pixel baseline resizes every image to the first image's size).
"""
import os
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from restore.features.random_signed import RandomSignedFeatures
from restore.utils.errors import RestoreError
from restore.utils.img_io import imread, list_images, to_float32


def read_labeled(folder: str, where: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(image paths, integer labels, class names) of a class-per-subfolder folder."""
    if not os.path.isdir(folder):
        raise RestoreError(f"{where}: {folder}: folder not found")
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if len(classes) < 2:
        raise RestoreError(f"{where}: {folder}: needs one subfolder per class (at least 2), found {len(classes)}")
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = list_images(os.path.join(folder, name))
        paths += files
        labels += [index] * len(files)
    return paths, np.array(labels), classes


def load_images(paths: list[str], desc: str) -> list[np.ndarray]:
    return [to_float32(imread(p, "rgb")) for p in tqdm(paths, desc=desc, unit="img", leave=False, disable=None)]


def extract(images: list[np.ndarray], extractor: RandomSignedFeatures, batch: int, desc: str) -> np.ndarray:
    """Features of every image, batching consecutive images of one size."""
    out = np.zeros((len(images), extractor.n), np.float32)
    start = 0
    with tqdm(total=len(images), desc=desc, unit="img", leave=False, disable=None) as bar:
        while start < len(images):
            stop = start + 1
            while stop < len(images) and stop - start < batch and images[stop].shape == images[start].shape:
                stop += 1
            x = torch.from_numpy(np.stack(images[start:stop]).transpose(0, 3, 1, 2))
            out[start:stop] = extractor(x).numpy()
            bar.update(stop - start)
            start = stop
    return out


def pixels(images: list[np.ndarray]) -> np.ndarray:
    h, w = images[0].shape[:2]
    return np.stack([(img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
                     .reshape(-1) for img in images])


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, classes: np.ndarray, k: int) -> float:
    """Share of samples whose label is among the k highest-scoring classes (ties: lower index first)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean((classes[order] == labels[:, None]).any(axis=1)))


def class_separation(x: np.ndarray, labels: np.ndarray) -> dict:
    """Mean Euclidean distance between samples of different classes / within the same class."""
    from sklearn.metrics import pairwise_distances
    d = pairwise_distances(x.astype(np.float64))
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    within, between = d[same & off_diagonal].mean(), d[~same].mean()
    return {"within": float(within), "between": float(between), "ratio": float(between / within)}


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
          c: float, neighbours: int) -> dict:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import LinearSVC
    svm = LinearSVC(C=c, dual=False, max_iter=5000).fit(train_x, train_y)
    knn = KNeighborsClassifier(n_neighbors=neighbours, metric="cosine").fit(train_x, train_y)
    svm_scores, knn_scores = svm.decision_function(test_x), knn.predict_proba(test_x)
    if svm_scores.ndim == 1:  # two classes: sklearn gives one score, positive for classes_[1]
        svm_scores = np.stack([-svm_scores, svm_scores], axis=1)
    return {"linear_svm": {"top1": topk_accuracy(svm_scores, test_y, svm.classes_, 1),
                           "top2": topk_accuracy(svm_scores, test_y, svm.classes_, 2)},
            f"knn{neighbours}": {"top1": topk_accuracy(knn_scores, test_y, knn.classes_, 1),
                                 "top2": topk_accuracy(knn_scores, test_y, knn.classes_, 2)}}


def probe_folders(train: str, test: str, extractor: RandomSignedFeatures, c: float, neighbours: int,
                  batch: int) -> dict:
    """Accuracies and class separations of the features and of raw pixels on labeled folders."""
    started = time.time()
    train_paths, train_y, classes = read_labeled(train, "--train")
    test_paths, test_y, test_classes = read_labeled(test, "--test")
    if test_classes != classes:
        raise RestoreError(f"--test classes {test_classes} differ from --train classes {classes}")
    train_img, test_img = load_images(train_paths, "read train"), load_images(test_paths, "read test")
    train_f = extract(train_img, extractor, batch, "features train")
    test_f = extract(test_img, extractor, batch, "features test")
    train_px, test_px = pixels(train_img), pixels(test_img)
    if train_px.shape[1] != test_px.shape[1]:
        test_px = pixels([cv2.resize(i, train_img[0].shape[1::-1], interpolation=cv2.INTER_AREA) for i in test_img])
    results = {"features": extractor.config, "classes": classes,
               "train_images": len(train_paths), "test_images": len(test_paths), "pixel_values": train_px.shape[1],
               "random_signed": probe(train_f, train_y, test_f, test_y, c, neighbours),
               "pixels": probe(train_px, train_y, test_px, test_y, c, neighbours),
               "separation": {"pixels": class_separation(test_px, test_y),
                              "random_signed": class_separation(test_f, test_y)}}
    results["seconds"] = round(time.time() - started, 1)
    return results


def feature_label(config: dict) -> str:
    return "random signed, " + ("standardised" if config["standardize"] else "raw [0, 1] (`--no-standardize`)")


def classifier_label(name: str, c: float) -> str:
    return f"LinearSVC, C = {c:g}" if name == "linear_svm" else f"{name[3:]}-NN"


def results_table(results: dict, header: str, c: float, cpu_seconds: float, wall_seconds: float) -> str:
    """The results file of a probe (restore-probe-features --table): `header` (the command and the
    machine), what was probed, the accuracies of the features and of the pixels, and the class
    separations."""
    cfg = results["features"]
    pixels_label = f"pixels ({results['pixel_values']:,} values)"
    lines = [header, "",
             f"{len(results['classes'])} classes, {results['train_images']:,} training and "
             f"{results['test_images']:,} test images; features n {cfg['n']}, k {cfg['kernel_size']}, "
             f"B {cfg['blocks']}, seed {cfg['seed']}, padding {cfg['padding_mode']}.", "",
             "| features | classifier | top-1 | top-2 |", "|---|---|---|---|"]
    for rep, label in (("random_signed", feature_label(cfg)), ("pixels", pixels_label)):
        for name, acc in results[rep].items():
            lines.append(f"| {label} | {classifier_label(name, c)} | {acc['top1']:.3f} | {acc['top2']:.3f} |")
    lines += ["", "| representation | mean between-class distance | mean within-class distance | between / within |",
              "|---|---|---|---|"]
    for rep, label in (("pixels", pixels_label), ("random_signed", feature_label(cfg))):
        sep = results["separation"][rep]
        lines.append(f"| {label} | {sep['between']:.4g} | {sep['within']:.4g} | {sep['ratio']:.3f} |")
    lines += ["", f"- Time: {cpu_seconds / 60:.1f} CPU-minutes (user + sys), {wall_seconds / 60:.1f} min wall."]
    return "\n".join(lines) + "\n"
