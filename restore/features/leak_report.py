"""The reports of restore-leaks: leaks.json, leaks.md and leaks.png (each reported pair side by side,
the matched region boxed), or calibration.json and calibration.md with --calibrate."""
import json
import os

import cv2
import numpy as np

from restore.features.leak_calibration import DEGRADATIONS
from restore.features.leaks import Item, Source, decode
from restore.utils.img_io import atomic_write_bytes, imwrite, to_float32


def thumbnail(source: Source, key: str, height: int, box, work_shape) -> np.ndarray:
    img = decode(source, key, "rgb")
    if img.dtype != np.uint8:
        img = (to_float32(img) * 255).round().astype(np.uint8)
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    thumb = np.ascontiguousarray(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    if box:
        fy, fx = height / work_shape[0], width / work_shape[1]
        y, x, h, w = box
        cv2.rectangle(thumb, (int(x * fx), int(y * fy)), (int((x + w) * fx) - 1, int((y + h) * fy) - 1),
                      (255, 0, 0), 1)
    return thumb


def pairs_grid(pairs: list[dict], test: list[Item], train: list[Item], height: int) -> np.ndarray:
    """One row per pair: a caption, then the test image and the training image side by side, the
    matched region boxed in red on both."""
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    rows = []
    for p in pairs:
        ti, tr = test[p["test_index"]], train[p["train_index"]]
        left = thumbnail(ti.source, ti.key, height, p["box_test"], ti.gray.shape)
        right = thumbnail(tr.source, tr.key, height, p["box_train"], tr.gray.shape)
        body = np.concatenate([left, np.full((height, 6, 3), 255, np.uint8), right], axis=1)
        text = f"{p['test']} ~ {p['train']}  feature {p['feature_score']:.3f}  NCC {p['ncc']:.3f}"
        (text_w, text_h), _ = cv2.getTextSize(text, font, font_scale, 1)
        width = max(body.shape[1], text_w + 4)
        caption = np.full((text_h + 8, width, 3), 255, np.uint8)
        cv2.putText(caption, text, (2, text_h + 3), font, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
        body = np.pad(body, ((0, 8), (0, width - body.shape[1]), (0, 0)), constant_values=255)
        rows.append(np.concatenate([caption, body]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows)


def write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def markdown_report(report: dict) -> str:
    cfg, found = report["settings"], report["pairs"]
    lines = ["# Train/test leak search (restore-leaks)", "",
             f"- training sources: {', '.join(f'{s} ({n})' for s, n in report['train_counts'].items())}",
             f"- test sources: {', '.join(f'{s} ({n})' for s, n in report['test_counts'].items())}",
             f"- features: {cfg['features']}; scale {cfg['scale']}, blur {cfg['blur']}, "
             f"window {cfg['window']} px, min window std {cfg['min_window_std']}, whitened to {cfg['whiten']}",
             f"- candidates: top {cfg['top_k']} per test image with feature score >= "
             f"{cfg['feature_threshold']}: {report['candidates_checked']} pixel-checked; reported when "
             f"NCC >= {cfg['ncc_threshold']}",
             f"- time: {report['seconds']:.0f} s", "",
             f"## Reported pairs: {len(found)}", ""]
    if found:
        lines += ["| test | train | feature score | NCC | PSNR (working scale, dB) |", "|---|---|---|---|---|"]
        lines += [f"| {p['test']} | {p['train']} | {p['feature_score']:.3f} | {p['ncc']:.4f} | "
                  f"{p['psnr_working']:.1f} |" for p in found]
    else:
        lines.append("No test image matched a training image.")
    near = report["closest_rejected"]
    if near:
        lines += ["", "## Closest candidates that failed the pixel check", "",
                  "| test | train | feature score | NCC |", "|---|---|---|---|"]
        lines += [f"| {p['test']} | {p['train']} | {p['feature_score']:.3f} | {p['ncc']:.4f} |" for p in near]
    return "\n".join(lines) + "\n"


def ratio(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def ratio3(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def recall_columns(row: dict) -> str:
    return " / ".join(ratio(row["recall_by_degradation"][k]) for k in DEGRADATIONS)


def calibration_table(result: dict, header: str, cpu_seconds: float | None) -> str:
    """The results file of a --calibrate run (--table): `header` (the command and the machine), the
    result at the chosen thresholds, the threshold sweep, the separation and the misses."""
    chosen = result["at_chosen_thresholds"]
    pos, neg = result["ncc_checked_positives"], result["ncc_checked_negatives"]
    lines = [header, "", f"Thresholds: feature score >= {chosen['feature_threshold']}, "
             f"NCC >= {chosen['ncc_threshold']}.", "",
             "| positives | negative pairs | precision | recall | recall: crop / shift / x2 down-up / JPEG / noise |",
             "|---|---|---|---|---|",
             f"| {result['positives']} | {result['negative_pairs']:,} | {chosen['precision']:.3f} | "
             f"{chosen['recall']:.3f} | {recall_columns(chosen)} |", "",
             "| feature threshold | NCC threshold | precision | recall | "
             "recall: crop / shift / x2 down-up / JPEG / noise |", "|---|---|---|---|---|"]
    lines += [f"| {row['feature_threshold']} | {row['ncc_threshold']} | {row['precision']:.3f} | "
              f"{row['recall']:.3f} | {recall_columns(row)} |" for row in result["sweep"]]
    lines += ["", f"- NCC of the pixel-checked positives: min {ratio3(pos['min'])} ({pos['count']} checked).",
              f"- NCC of the pixel-checked negatives: max {ratio3(neg['max'])} ({neg['count']} checked).",
              f"- Missed at the chosen thresholds: {len(result['missed'])}."]
    lines += [f"  - {m['copy']}: feature score {m['feature_score']:.3f}, "
              + (f"NCC {m['ncc']:.3f}" if isinstance(m["ncc"], float) else "never a candidate")
              for m in result["missed"]]
    lines += [f"- Images embedded: {result['images_embedded']:,}.",
              "- Time: " + ("" if cpu_seconds is None else f"{cpu_seconds / 60:.1f} CPU-minutes (user + sys), ")
              + f"{result['seconds'] / 60:.1f} min wall."]
    return "\n".join(lines) + "\n"


def calibration_markdown(result: dict) -> str:
    """calibration.md: the results table of calibration_table under the run's settings, then the
    hardest negatives, which show how close unrelated images come to the NCC threshold."""
    header = f"# restore-leaks calibration on synthetic near-copies\n\n- settings: {result['settings']}"
    lines = ["", "Negatives with the highest NCC among the pixel-checked candidates:", "",
             "| test image | other image | feature score | NCC |", "|---|---|---|---|"]
    lines += [f"| {h['test']} | {h['other']} | {h['feature_score']:.3f} | {h['ncc']:.4f} |"
              for h in result["hardest_negatives"]]
    return calibration_table(result, header, None) + "\n".join(lines) + "\n"


def region(y0: int, x0: int, h: int, w: int) -> str:
    return f"x {x0}-{x0 + w - 1}, y {y0}-{y0 + h - 1}"


def leak_table(report: dict, header: str, cpu_seconds: float) -> str:
    """The results file of a search (--table): `header` (the command and the machine), what was
    searched, then each reported pair as measured at full resolution (restore.features.leaks.
    full_resolution_match): where the overlap lies in each image, how much of each it covers, and
    how equal the luma is there."""
    found, near = report["pairs"], report["closest_rejected"]
    lines = [header, "",
             f"Searched {sum(report['test_counts'].values())} test images "
             f"({', '.join(report['test_counts'])}) against {sum(report['train_counts'].values())} training "
             f"images ({', '.join(report['train_counts'])}); {report['candidates_checked']:,} candidates "
             f"pixel-checked; {len(found)} pair(s) reported at NCC >= {report['settings']['ncc_threshold']}.", ""]
    if found:
        lines += ["| test image | training image | NCC (search) | test region | training region | share of test / "
                  "training image | NCC (full res.) | mean abs. difference (grey levels) | PSNR (dB) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for p in found:
            m = p["full_resolution"]
            (ty, tx), (ry, rx), (h, w) = m["test_origin"], m["train_origin"], m["size"]
            psnr = "inf" if m["psnr"] is None else f"{m['psnr']:.1f}"
            lines.append(f"| {p['test']} | {p['train']} | {p['ncc']:.4f} | {region(ty, tx, h, w)} | "
                         f"{region(ry, rx, h, w)} | {m['share_test']:.0%} / {m['share_train']:.0%} | "
                         f"{m['ncc']:.5f} | {m['mean_abs_diff']:.2f} | {psnr} |")
        lines.append("")
    closest = f"{near[0]['ncc']:.3f} ({near[0]['test']} ~ {near[0]['train']})" if near else "none"
    lines += [f"- Closest rejected candidate: NCC {closest}.",
              f"- Time: {cpu_seconds / 60:.1f} CPU-minutes (user + sys), {report['seconds'] / 60:.1f} min wall."]
    return "\n".join(lines) + "\n"


def write_leak_report(out: str, report: dict, test: list[Item], train: list[Item], grid_pairs: int,
                      grid_height: int) -> None:
    """leaks.json, leaks.md and, when pairs were found, leaks.png in the folder `out`."""
    os.makedirs(out, exist_ok=True)
    write_text(os.path.join(out, "leaks.json"), json.dumps(report, indent=1) + "\n")
    write_text(os.path.join(out, "leaks.md"), markdown_report(report))
    grid_path = os.path.join(out, "leaks.png")
    if report["pairs"]:
        imwrite(grid_path, pairs_grid(report["pairs"][:grid_pairs], test, train, grid_height))
    elif os.path.exists(grid_path):
        os.remove(grid_path)  # a stale picture from an earlier run would contradict the report


def write_calibration_report(out: str, result: dict) -> None:
    """calibration.json and calibration.md in the folder `out`."""
    os.makedirs(out, exist_ok=True)
    write_text(os.path.join(out, "calibration.json"), json.dumps(result, indent=1) + "\n")
    write_text(os.path.join(out, "calibration.md"), calibration_markdown(result))
