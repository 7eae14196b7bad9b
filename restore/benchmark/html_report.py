"""The HTML benchmark report: one self-contained folder, `index.html` + `crops/*.png`.

The page holds the model table, the score tables, a PSNR-vs-MACs plot per set and level (inline SVG),
and per set and level the per-image scores and, for the first few images, side-by-side zoomed crops
(input, baseline, each model, GT) of the GT region with the most detail. Crops are stored at their
pixel size and enlarged by the browser without smoothing.
"""
import os
import re
from dataclasses import dataclass, field
from html import escape

import cv2
import numpy as np

from restore.benchmark.evaluate import SetResult
from restore.benchmark.report import model_table, score_tables
from restore.benchmark.svg import scatter_svg
from restore.utils.img_io import atomic_write_bytes, imwrite, tensor2img

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.strip { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 16px; }
figure { margin: 0; text-align: center; font-size: 12px; }
img.crop { image-rendering: pixelated; image-rendering: crisp-edges; border: 1px solid #999; }
"""


def pick_region(gt: np.ndarray, size: int, align: int) -> tuple[int, int, int]:
    """(top, left, size) of the size x size window with the most gradient energy, on an `align` grid."""
    h, w = gt.shape[:2]
    size = max(align, min(size, h, w) // align * align)
    g = gt.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(g)
    energy[:, 1:] += np.diff(g, axis=1) ** 2
    energy[1:, :] += np.diff(g, axis=0) ** 2
    integral = cv2.integral(energy)
    step = max(align, size // 4 // align * align)
    best, where = -1.0, (0, 0)
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            s = (integral[top + size, left + size] - integral[top, left + size]
                 - integral[top + size, left] + integral[top, left])
            if s > best:
                best, where = s, (top, left)
    return where[0], where[1], size


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


@dataclass
class CropRecorder:
    """`on_image` callback of evaluate_set: saves the crops of the first `count` images."""
    folder: str          # the report folder (crops go to <folder>/crops)
    result_key: str      # '<set>_<level>'
    scale: int
    count: int = 3
    size: int = 64
    entries: list = field(default_factory=list)   # [{'name', 'size', 'panels': [(label, relpath)]}]

    def __call__(self, index, item, outputs):
        if index >= self.count:
            return
        gt = tensor2img(item["gt"])
        top, left, size = pick_region(gt, self.size, self.scale)
        lq = tensor2img(item["lq"])
        s = self.scale
        panels = [("Input", lq[top // s:(top + size) // s, left // s:(left + size) // s])]
        # (the denoising / JPEG baseline *is* the input: shown once)
        panels += [(label, out[top:top + size, left:left + size]) for label, out in outputs.items()
                   if label != panels[0][0]]
        panels.append(("GT", gt[top:top + size, left:left + size]))
        saved = []
        for label, crop in panels:
            rel = f"crops/{safe_name(self.result_key)}_{safe_name(item['key'])}_{safe_name(label)}.png"
            imwrite(os.path.join(self.folder, rel), crop)
            saved.append((label, rel))
        self.entries.append({"name": item["key"], "size": size, "box": [top, left, size], "panels": saved})


def _score_cell(scores) -> str:
    return "" if scores is None else f"{scores['psnr']:.2f} / {scores['ssim']:.4f}"


def _per_image_table(r: SetResult) -> list[str]:
    out = ["<table><tr><th>image</th>" + "".join(f"<th>{escape(m)}</th>" for m in r.models) + "</tr>"]
    for row in r.images:
        best = max(r.models, key=lambda m: row[m]["psnr"])
        cells = "".join(f'<td{" class=best" if m == best else ""}>{_score_cell(row[m])}</td>' for m in r.models)
        out.append(f"<tr><td>{escape(row['name'])}</td>{cells}</tr>")
    mean = "".join(f"<td>{r.mean(m, 'psnr'):.2f} / {r.mean(m, 'ssim'):.4f}</td>" for m in r.models)
    out.append(f"<tr><th>mean</th>{mean}</tr></table>")
    return out


def _crop_strips(r: SetResult, entries: list, zoom: int) -> list[str]:
    rows = {row["name"]: row for row in r.images}
    out = []
    for e in entries:
        out.append(f"<h4>{escape(e['name'])} (region {e['box'][2]}px at y={e['box'][0]}, x={e['box'][1]})</h4>"
                   "<div class=strip>")
        display = e["size"] * zoom
        for label, rel in e["panels"]:
            score = rows.get(e["name"], {}).get(label)
            caption = escape(label) + (f"<br>{score['psnr']:.2f} dB" if score else "")
            out.append(f'<figure><img class=crop src="{escape(rel)}" width="{display}" height="{display}" '
                       f'alt="{escape(label)}"><figcaption>{caption}</figcaption></figure>')
        out.append("</div>")
    return out


def _plot(r: SetResult, models: dict) -> str:
    points = [(m, models[m].costs["macs_per_pixel"], r.mean(m, "psnr")) for m in r.models
              if m in models and models[m].costs.get("macs_per_pixel")]
    if not points:
        return ""
    base = r.models[0]
    return scatter_svg(points, f"{r.testset.name} {r.level_name}", "MACs per output pixel", "PSNR (dB)",
                       baseline=(base, r.mean(base, "psnr")))


def _markdown_table_to_html(lines: list[str]) -> list[str]:
    """The markdown tables of report.py, rendered as HTML tables (headings become <h3>)."""
    out, in_table = [], False
    for line in lines:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-:"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("### "):
            out.append(f"<h3>{escape(line[4:])}</h3>")
    if in_table:
        out.append("</table>")
    return out


def write_html(folder: str, results: list[SetResult], models: dict, crops: dict, not_run: list,
               settings: dict, zoom: int = 3) -> str:
    """Write <folder>/index.html (crops already saved by CropRecorder); returns its path."""
    body = ["<h1>Benchmark</h1>",
            f"<p>Settings: {escape(', '.join(f'{k}={v}' for k, v in settings.items()))}</p>"]
    if models:
        body += ["<h2>Models</h2>"] + _markdown_table_to_html(model_table(models))
    body += ["<h2>Scores (PSNR dB / SSIM)</h2>"] + _markdown_table_to_html(score_tables(results))
    plots = [p for p in (_plot(r, models) for r in results) if p]
    if plots:
        body += ["<h2>PSNR against MACs</h2>", "<div class=plots>"] + plots + ["</div>"]
    for r in results:
        key = f"{r.testset.name}_{r.level_name}"
        body += [f'<h2 id="{escape(safe_name(key))}">{escape(r.testset.name)} {escape(r.level_name)}</h2>',
                 f"<p>{escape(r.testset.protocol(r.protocol))}; {len(r.images)} images.</p>"]
        body += [f"<p>{escape(label)}: {escape(note)}.</p>" for label, note in r.notes.items()]
        body += _per_image_table(r)
        body += _crop_strips(r, crops.get(key, []), zoom)
    if not_run:
        body += ["<h2>Not run</h2><ul>"] + [
            f"<li>{escape(n['model'])} on {escape(n['set'])} {escape(n['level'])}: {escape(n['reason'])}</li>"
            for n in not_run] + ["</ul>"]
    page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Benchmark</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = os.path.join(folder, "index.html")
    atomic_write_bytes(path, page.encode("utf-8"))
    return path

