"""Benchmark results as JSON (everything), CSV (one row per set, level and model) and markdown."""
import csv
import io
import json
import math
import os

from restore.benchmark.evaluate import SetResult
from restore.benchmark.models import BenchModel

CSV_COLUMNS = ["set", "task", "level", "model", "psnr", "ssim", "images", "params", "macs_per_pixel",
               "gmacs_720p", "latency_ms"]


def _num(value, digits):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_params(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.3f}M" if n >= 1e6 else f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def format_macs(m) -> str:
    return "-" if m is None else f"{m / 1e3:.1f}K" if m >= 1e3 else f"{m:.0f}"


def rows(results: list[SetResult], models: dict[str, BenchModel]) -> list[dict]:
    """One flat row per (set, level, model): mean scores and the model's costs."""
    out = []
    for r in results:
        for label in r.models:
            costs = models[label].costs if label in models else {}
            out.append({"set": r.testset.name, "task": r.testset.task, "level": r.level_name, "model": label,
                        "baseline": label not in models, "psnr": r.mean(label, "psnr"),
                        "ssim": r.mean(label, "ssim"), "images": len(r.images),
                        "params": costs.get("params", 0 if label not in models else None),
                        "macs_per_pixel": costs.get("macs_per_pixel"), "gmacs_720p": costs.get("gmacs_720p"),
                        "latency_ms": costs.get("latency_ms")})
    return out


def relative_to(path, folder: str):
    """`path` relative to `folder`, so that results written into a repository hold no machine's paths
    (absolute where no relative path exists, e.g. another drive on Windows)."""
    if not path or not os.path.isabs(path):
        return path
    try:
        return os.path.relpath(path, folder)
    except ValueError:
        return path


def to_json(results, models, not_run, settings, folder: str) -> str:
    """Everything, with file paths relative to `folder` (where results.json goes)."""
    data = {
        "settings": {**settings, "data_root": relative_to(settings.get("data_root"), folder)},
        "paths_relative_to": "this file's folder",
        "models": [{"label": m.label, "source": m.source, "network_g": m.loaded.network_g,
                    "weights": relative_to(m.loaded.weights, folder), **m.costs} for m in models.values()],
        "results": [{"set": r.testset.name, "task": r.testset.task, "level": r.level, "level_name": r.level_name,
                     "protocol": r.testset.protocol(r.protocol), "notes": r.notes,
                     "mean": {label: {"psnr": r.mean(label, "psnr"), "ssim": r.mean(label, "ssim")}
                              for label in r.models},
                     "images": r.images} for r in results],
        "not_run": not_run,
    }
    return json.dumps(data, indent=1, allow_nan=True)


def to_csv(results, models) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows(results, models):
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def model_table(models: dict[str, BenchModel]) -> list[str]:
    lines = ["| model | scale | params | MACs / output px | GMACs @720p | CPU latency (ms) |",
             "|---|---:|---:|---:|---:|---:|"]
    for m in models.values():
        c = m.costs
        lat = _num(c.get("latency_ms"), 1)
        if c.get("latency_input"):
            lat += f" ({'x'.join(map(str, c['latency_input'][2:]))} in, {c['threads']} thr)"
        lines.append(f"| {m.label} | x{c.get('scale', '?')} | {format_params(c.get('params'))} | "
                     f"{format_macs(c.get('macs_per_pixel'))} | {_num(c.get('gmacs_720p'), 2)} | {lat} |")
    return lines


def score_tables(results: list[SetResult]) -> list[str]:
    """Per task level, a table of models x sets with 'PSNR / SSIM' cells."""
    lines = []
    levels = []
    for r in results:
        if (r.testset.task, r.level_name) not in levels:
            levels.append((r.testset.task, r.level_name))
    for task, level in levels:
        group = [r for r in results if r.testset.task == task and r.level_name == level]
        labels = []
        for r in group:
            labels += [m for m in r.models if m not in labels]
        lines += ["", f"### {task} {level}", "",
                  "| model | " + " | ".join(r.testset.name for r in group) + " |",
                  "|---|" + "---:|" * len(group)]
        for label in labels:
            cells = [f"{r.mean(label, 'psnr'):.2f} / {r.mean(label, 'ssim'):.4f}" if label in r.models else ""
                     for r in group]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(results, models, not_run, header: str | None = None) -> str:
    """`header`, when given, is the first line (the command and the machine: restore.utils.machine.made_by)."""
    lines = ([header, ""] if header else []) + ["# Benchmark", "", "PSNR (dB) / SSIM. Protocols:", ""]
    seen = set()
    for r in results:
        if r.testset.name not in seen:
            seen.add(r.testset.name)
            lines.append(f"- {r.testset.name}: {r.testset.protocol(r.protocol)} ({len(r.images)} images)")
    if models:
        lines += ["", "## Models", ""] + model_table(models)
    lines += ["", "## Scores"] + score_tables(results)
    notes = [f"- {label} on {r.testset.name} {r.level_name}: {note}"
             for r in results for label, note in r.notes.items()]
    if notes:
        lines += ["", "## How models were run", ""] + notes
    if not_run:
        lines += ["", "## Not run", ""] + [f"- {n['model']} on {n['set']} {n['level']}: {n['reason']}"
                                           for n in not_run]
    return "\n".join(lines) + "\n"
