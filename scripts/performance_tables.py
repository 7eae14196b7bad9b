"""The tables of docs/performance.md, summarised from the benchmark reports in results/bench_train/.

The reports are what bench_train.py, bench_layouts.py and bench_nsr_train.py print (each run's full
output, committed as measured); this script reads them, picks the figures the page quotes and writes
one Markdown results file per table under results/performance/, headed by the commands and the
machine of the reports it read. With --run it first reruns every benchmark on this machine, its
reports going to results/bench_train/latest/ (what `make results` does). On a CPU where oneDNN has
no bf16 kernels (AVX2 without AVX-512) bf16 autocast falls back to a reference path -- EDSR's first
bf16 step took 361 s there against 5 s in fp32 -- so --run leaves the bf16 benchmarks out and the
tables' bf16 cells empty, rather than spend hours timing an emulation no user would train with.

    python scripts/performance_tables.py            # from the committed reports
    python scripts/performance_tables.py --run      # rerun the benchmarks first (77 + 13 min, fp32 only, slow day)
"""
import argparse
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from restore.utils.machine import cpu_name  # noqa: E402  (the repository's package, also uninstalled)

# Each table: the reports it reads (file names under --reports) and the command that wrote each.
REPORTS = {
    "bench_train_layouts_bf16": ("2026-12-02_layouts_bf16.txt",
                          "python scripts/bench_train.py --layouts --bf16 --rounds 8"),
    "layouts_fp32": ("2026-12-02_layouts_fp32.txt", "python scripts/bench_layouts.py --rounds 7"),
    "layouts_bf16": ("2026-12-02_layouts_bf16_autocast.txt",
                           "python scripts/bench_layouts.py --rounds 7 --bf16"),
    "edsr_ablations": ("2026-12-03_amd_idle_edsr_ablations.txt", "python scripts/bench_train.py --archs EDSR --ablations"),
    "nsr_train_2threads": ("2026-12-03_amd_idle_nsr_train_2threads.txt",
                         "python scripts/bench_nsr_train.py --rounds 8 --formulations grouped fused"),
    "nsr_train_1thread_a": ("2026-12-02_amd_loaded_nsr_train_1thread.txt",
                          "python scripts/bench_nsr_train.py --rounds 5 --threads 1 "
                          "--formulations grouped fused loop auto"),
    "nsr_train_1thread_b": ("2026-12-02_amd_loaded_nsr_train_1thread_b.txt",
                          "python scripts/bench_nsr_train.py --rounds 5 --threads 1 "
                          "--formulations grouped fused loop unfold"),
    "nsr_layer": ("2026-12-02_amd_loaded_nsr_layer_fp32_bf16.txt",
                      "python scripts/bench_nsr_train.py --layer --bf16 --rounds 8"),
    # the AMD EPYC with AVX-512 and AVX512-BF16 that issue 19 was measured on
    "amd512_edsr": ("2026-12-04_amd512_edsr.txt",
                    "python scripts/bench_train.py --archs EDSR --layouts --bf16 --ablations --rounds 5"),
    "amd512_nsr_train": ("2026-12-04_amd512_nsr_train.txt", "python scripts/bench_nsr_train.py --bf16 --rounds 6"),
    # the Intel Xeon with AMX, again, after the per-sample conv outputs stopped being views
    "intel_edsr": ("2026-12-05_intel_edsr.txt",
                   "python scripts/bench_train.py --archs EDSR --layouts --bf16 --ablations --rounds 5"),
    "intel_nsr_train": ("2026-12-05_intel_nsr_train.txt",
                        "python scripts/bench_nsr_train.py --bf16 --rounds 6 --formulations grouped loop fused auto"),
    "intel_nsr_own_view": ("2026-12-05_intel_nsr_own_view.txt",
                           "python scripts/bench_nsr_train.py --bf16 --rounds 5 --formulations grouped grouped-view fused"),
}
# The reports that time bf16 (with --bf16 in their command).
BF16_KEYS = [key for key, (_, command) in REPORTS.items() if "--bf16" in command.split()]
# Of those, the ones that time nothing but bf16 (the others keep their fp32 sides without --bf16).
BF16_ONLY = {"layouts_bf16"}
# bench_layouts' report does not name the CPU; the committed runs were made on the Intel machine.
LAYOUTS_MACHINE = "the 2-core Intel Xeon (AVX512-BF16, AMX) of docs/performance.md"
LAYOUT_NETWORKS = {"EDSR": "EDSR x2 (64 x 16)", "WDSR": "WDSR x2 (32 x 8)", "DnCNN": "DnCNN (32 x 8)",
                   "DnCNN-CSC": "DnCNN, CSC first layer", "UNet-blurpool": "U-Net, blur-pool",
                   "NSR-SR": "NSR x2 (64 x 16)", "NSR-DN": "NSR denoiser (32 x 8)"}
# bench_train's --ablations sides: what each undoes (the sides themselves: bench_train.SIDES).
ABLATIONS = {
    "restore-loop-adam": "fused Adam on the CPU (`fused: true` by default for Adam/AdamW; "
                         "`train.optim_g.fused: false` for the for-loop)",
    "restore-res-mul": "EDSR residual without `* res_scale` when res_scale = 1 (one full-size multiply "
                       "forward and backward per block)",
    "restore-clip-inf": "gradient norm without `clip_grad_norm_(inf)`'s multiply-by-1 when `grad_clip` is off",
    "restore-before": "all three undone (`restore-before`)",
}


def bf16_is_native() -> bool:
    """Whether oneDNN runs bf16 convolutions with its own kernels (AVX-512 and up) on this CPU."""
    import torch
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def without_bf16(reports: dict) -> dict:
    """The --run reports for a CPU without bf16 kernels: the bf16-only report dropped (its path None),
    the mixed ones' commands without --bf16."""
    out = {}
    for key, (path, command, machine) in reports.items():
        words = command.split()
        if "--bf16" in words:
            words.remove("--bf16")
            path = None if key in BF16_ONLY else path
        out[key] = (path, " ".join(words), machine)
    return out


def read(path: str | None) -> str:
    if path is None:
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


def machine_of(text: str) -> str:
    """The CPU named on a bench_train / bench_nsr_train report's second line."""
    m = re.search(r"^torch \S+, (.+?), \d+ threads?,", text, re.M)
    if not m:
        raise SystemExit("a report without its 'torch ..., CPU, N threads' line")
    return m.group(1)


def header(reports: dict, keys: list[str], machine: str) -> str:
    commands = "; ".join(f"`{reports[k][1]}` ({os.path.relpath(reports[k][0], ROOT)})"
                         for k in keys if reports[k][0] is not None)
    dropped = any(k in BF16_KEYS and "--bf16" not in reports[k][1].split() for k in keys)
    note = " No bf16 runs: this CPU has no oneDNN bf16 kernels." if dropped else ""
    return (f"Made by `python scripts/performance_tables.py` from the reports of {commands}, "
            f"measured on {machine}.{note}")


def bench_train_sections(text: str) -> dict:
    """{arch: {"rows": {side: {column: value}}, "ratios": {name: value}}} of a bench_train report."""
    out = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        arch = block.split()[0]
        rows, ratios = {}, {}
        lines = block.splitlines()
        for line in lines[2:]:
            ratio = re.match(r"\s+(.+): ([\d.]+)(x|%)$", line)
            if ratio:
                ratios[ratio.group(1)] = float(ratio.group(2)) / (100 if ratio.group(3) == "%" else 1)
            elif line and not line.startswith(" "):
                cells = line.split()
                rows[cells[0]] = {"it_s": cells[1], "cpu_s": cells[2], "gflops": cells[5], "peak": cells[6]}
        out[arch] = {"rows": rows, "ratios": ratios}
    return out


def whole(value) -> int:
    """A report's one-decimal figure to the nearest whole number, halves up (230.5 -> 231)."""
    return int(float(value) + 0.5)


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def table_vs_basicsr(reports, key: str = "bench_train_layouts_bf16") -> list[str]:
    text = read(reports[key][0])
    arch = bench_train_sections(text)
    names = {"EDSR": "EDSR-baseline x2", "NSR": "NSR x2"}
    size = re.search(r"^inference: 1x3x(\d+)x(\d+) LR", text, re.M).groups()
    archs = [a for a in names if a in arch]
    lines = [header(reports, [key], machine_of(text)), "",
             "| | " + " | ".join(names[a] for a in archs) + " |", "|---|" + "---|" * len(archs)]

    def row(label, cell):
        lines.append(f"| {label} | " + " | ".join(cell(arch[a]) for a in archs) + " |")

    row("training it/s, restore (defaults) / BasicSR, fp32",
        lambda s: f"{ratio(s['ratios']['train it/s restore / basicsr'])} "
                  f"(CPU time {ratio(s['ratios']['train CPU time basicsr / restore'])})")
    for side, what in (("restore-malloc", "the default allocator"), ("restore-nchw", "`channels_last: false`"),
                       ("restore-cl", "`channels_last: true`"), ("restore-bf16", "`amp: bf16`")):
        row(f"same, restore with {what}", lambda s, side=side: ratio(s["ratios"][f"train it/s {side} / basicsr"])
            if f"train it/s {side} / basicsr" in s["ratios"] else "")
    row(f"inference speed, restore / BasicSR ({size[0]}x{size[1]}, batch 1)",
        lambda s: ratio(s["ratios"]["inference speed restore / basicsr"]))
    row("restore inference / peak conv",
        lambda s: f"{s['ratios']['restore inference / peak conv']:.0%}".replace("%", " %")
                  + f" ({whole(s['rows']['restore']['gflops'])} of {whole(s['rows']['restore']['peak'])} GFLOP/s)")
    return lines


def layouts(text: str) -> dict:
    rows = {}
    for line in text.splitlines()[2:]:
        m = re.match(r"(\S+)\s+(\d+ x \d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+[\d.]+x\s+(\S+)$", line)
        if m:
            rows[m.group(1)] = {"batch": m.group(2), "nchw": float(m.group(3)), "cl": float(m.group(4)),
                                "speedup": float(m.group(5)), "auto": m.group(6)}
    return rows


def ms(value: float) -> str:
    return f"{value:.1f}" if value < 200 else str(whole(value))


def table_layouts(reports) -> list[str]:
    fp32 = layouts(read(reports["layouts_fp32"][0]))
    bf16 = layouts(read(reports["layouts_bf16"][0]))
    lines = [header(reports, ["layouts_fp32", "layouts_bf16"], reports["layouts_fp32"][2]), "",
             "| network | batch x LR | fp32 NCHW | fp32 channels_last | speed-up | bf16 speed-up | `auto` picks |",
             "|---|---|---|---|---|---|---|"]
    for name, r in fp32.items():
        bf = ratio(bf16[name]["speedup"]) if name in bf16 else ""
        lines.append(f"| {LAYOUT_NETWORKS.get(name, name)} | {r['batch']} | {ms(r['nchw'])} | {ms(r['cl'])} | "
                     f"{ratio(r['speedup'])} | {bf} | {r['auto']} |")
    return lines


def table_ablations(reports, key: str = "edsr_ablations") -> list[str]:
    text = read(reports[key][0])
    ratios = bench_train_sections(text)["EDSR"]["ratios"]
    lines = [header(reports, [key], machine_of(text)), "",
             "| change | undone: restore's it/s / the side's |", "|---|---:|"]
    for side, what in ABLATIONS.items():
        lines.append(f"| {what} | {ratio(ratios[f'train it/s restore / {side}'])} |")
    return lines


def nsr_train(text: str) -> dict:
    """{precision: {side: {"median": ms, "cpu": CPU ms, "ratio": x, "cpu_ratio": x or None}}}."""
    out = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        precision = block.split(":")[0]
        rows = {}
        for line in block.splitlines()[2:]:
            m = re.match(r"(\S.*?)\s{2,}(\d+)\s+(\d+)\s+(\d+)\s+\d+%\s+([\d.]+)x\s+[\d.]+x(?:\s+([\d.]+)x)?$", line)
            if m:
                rows[m.group(1)] = {"median": int(m.group(2)), "cpu": int(m.group(4)), "ratio": float(m.group(5)),
                                    "cpu_ratio": float(m.group(6)) if m.group(6) else None}
        out[precision] = rows
    return out


def side_label(side: str) -> str:
    """'NSR fused nchw fp32' -> 'NSR `fused`, NCHW'; 'WDSR cl fp32' -> 'WDSR-A, channels_last'."""
    m = re.match(r"(WDSR|NSR) (?:([\w-]+) )?(nchw|cl) \w+(?: \(= (\w+)\))?$", side)
    if not m:
        return side
    layout = "NCHW" if m.group(3) == "nchw" else "channels_last"
    if m.group(1) == "WDSR":
        return f"WDSR-A, {layout}"
    return f"NSR `{m.group(2)}`, {layout}" + (f" (chose `{m.group(4)}`)" if m.group(4) else "")


def ordered(rows: dict, key) -> list[str]:
    """The WDSR sides, faster first, then the NSR sides in the report's order."""
    wdsr = sorted((s for s in rows if s.startswith("WDSR")), key=lambda s: rows[s][key])
    return wdsr + [s for s in rows if not s.startswith("WDSR")]


def table_nsr_2threads(reports) -> list[str]:
    text = read(reports["nsr_train_2threads"][0])
    rows = nsr_train(text)["fp32"]
    lines = [header(reports, ["nsr_train_2threads"], machine_of(text)), "",
             "| side | ms / step | / faster WDSR (NCHW) | CPU time ratio |", "|---|---:|---:|---:|"]
    for side in ordered(rows, "median"):
        r = rows[side]
        lines.append(f"| {side_label(side)} | {r['median']} | {ratio(r['ratio'])} | {ratio(r['cpu_ratio'])} |")
    return lines


def table_nsr_precisions(reports, key: str) -> list[str]:
    """Each side's step in fp32 and, where the report has it, under bf16 autocast, with its ratio to
    the faster WDSR-A side of the same precision."""
    text = read(reports[key][0])
    runs = nsr_train(text)
    precisions = [p for p in ("fp32", "bf16") if p in runs]
    lines = [header(reports, [key], machine_of(text)), "",
             "| side | " + " | ".join(f"{p} ms / step | / faster WDSR-A" for p in precisions) + " |",
             "|---|" + "---:|---:|" * len(precisions)]

    def split(side):  # 'NSR auto nchw bf16 (= grouped)' -> ('NSR auto nchw', 'grouped')
        m = re.match(r"(.+) (?:fp32|bf16)(?: \(= (\w+)\))?$", side)
        return (m.group(1), m.group(2)) if m else (side, None)

    by_name = {p: {split(side)[0]: (split(side)[1], r) for side, r in runs[p].items()} for p in precisions}
    for side in ordered(runs["fp32"], "median"):
        name = split(side)[0]
        cells = []
        for p in precisions:
            chose, r = by_name[p].get(name, (None, None))
            cells += [f"{r['median']}" + (f" (`{chose}`)" if chose else ""), ratio(r["ratio"])] if r else ["", ""]
        lines.append(f"| {side_label(name + ' fp32')} | " + " | ".join(cells) + " |")
    return lines


def cpu_ratios(rows: dict) -> dict:
    """CPU ms per step over the faster WDSR side's: steadier than wall time when sides get a share."""
    best = min(r["cpu"] for side, r in rows.items() if side.startswith("WDSR"))
    return {side: r["cpu"] / best for side, r in rows.items()}


def table_nsr_1thread(reports) -> list[str]:
    texts = [read(reports[k][0]) for k in ("nsr_train_1thread_a", "nsr_train_1thread_b")]
    runs = [nsr_train(t)["fp32"] for t in texts]
    sides = ordered(runs[0], "cpu") + [s for s in runs[1] if s not in runs[0]]
    ratios = [cpu_ratios(r) for r in runs]
    lines = [header(reports, ["nsr_train_1thread_a", "nsr_train_1thread_b"], machine_of(texts[0])), "",
             "| side | A: CPU ms / step | A: / faster WDSR | B: CPU ms / step | B: / faster WDSR |",
             "|---|---:|---:|---:|---:|"]
    for side in sides:
        cells = []
        for run, r in zip(runs, ratios):
            cells += [str(run[side]["cpu"]), ratio(r[side])] if side in run else ["", ""]
        lines.append(f"| {side_label(side)} | " + " | ".join(cells) + " |")
    return lines


def table_nsr_layer(reports) -> list[str]:
    text = read(reports["nsr_layer"][0])
    runs = nsr_train(text)
    precisions = [p for p in ("fp32", "bf16") if p in runs]
    ratios = {p: cpu_ratios(runs[p]) for p in precisions}
    lines = [header(reports, ["nsr_layer"], machine_of(text)), "",
             "| conv | " + " | ".join(f"{p} | ratio" for p in precisions) + " |",
             "|---|" + "---:|---:|" * len(precisions)]
    base = runs[precisions[0]]
    for side in ordered(base, "cpu"):
        if side.startswith("WDSR"):
            label = "WDSR plain conv, " + side_label(side).split(", ")[1]
            cells = [c for p in precisions for c in (str(runs[p][side.replace("fp32", p)]["cpu"]),
                                                     ratio(ratios[p][side.replace("fp32", p)]))]
        elif " nchw " in side and "(=" not in side:
            pair = [side, side.replace(" nchw ", " cl ")]
            label = f"NSR `{side.split()[1]}`, NCHW / channels_last"
            cells = []
            for p in precisions:
                names = [s.replace("fp32", p) for s in pair]
                cells += [" / ".join(str(runs[p][n]["cpu"]) for n in names),
                          " / ".join(ratio(ratios[p][n]) for n in names)]
        else:
            continue  # the cl half of a pair, or `auto` (which picks one of the rows above)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


TABLES = {"vs_basicsr.md": table_vs_basicsr, "layouts.md": table_layouts, "ablations.md": table_ablations,
          "nsr_train_2threads.md": table_nsr_2threads, "nsr_train_1thread.md": table_nsr_1thread,
          "nsr_layer.md": table_nsr_layer,
          "amd512_vs_basicsr.md": lambda reports: table_vs_basicsr(reports, "amd512_edsr"),
          "amd512_ablations.md": lambda reports: table_ablations(reports, "amd512_edsr"),
          "amd512_nsr_train.md": lambda reports: table_nsr_precisions(reports, "amd512_nsr_train"),
          "intel_vs_basicsr.md": lambda reports: table_vs_basicsr(reports, "intel_edsr"),
          "intel_ablations.md": lambda reports: table_ablations(reports, "intel_edsr"),
          "intel_nsr_train.md": lambda reports: table_nsr_precisions(reports, "intel_nsr_train"),
          "intel_nsr_own_view.md": lambda reports: table_nsr_precisions(reports, "intel_nsr_own_view")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reports", help="folder of the reports (default: results/bench_train, the committed "
                                      "ones; with --run: results/bench_train/latest)")
    p.add_argument("--run", action="store_true",
                   help="first rerun every benchmark (about 90 min without bf16 on a slow day), each report to REPORTS/<name>.txt")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "performance"))
    args = p.parse_args(argv)
    folder = args.reports or os.path.join(ROOT, "results", "bench_train", *(["latest"] if args.run else []))
    if args.run:
        # bench_layouts' report names no CPU: a fresh one was made here
        reports = {key: (os.path.join(folder, f"{key}.txt"), command, cpu_name())
                   for key, (_, command) in REPORTS.items()}
        if not bf16_is_native():
            print("no oneDNN bf16 kernels on this CPU: the bf16 benchmarks are left out", flush=True)
            reports = without_bf16(reports)
        os.makedirs(folder, exist_ok=True)
        for key, (path, command, _) in reports.items():
            if path is None:
                continue
            print(f"{command} > {path}", flush=True)
            with open(path + ".tmp", "w", encoding="utf-8") as out:
                subprocess.run([sys.executable, *shlex.split(command)[1:]], stdout=out, check=True, cwd=ROOT)
            os.replace(path + ".tmp", path)  # a failed run leaves the previous report
    else:
        reports = {key: (os.path.join(folder, name), command, LAYOUTS_MACHINE)
                   for key, (name, command) in REPORTS.items()}
    os.makedirs(args.out, exist_ok=True)
    for name, make in TABLES.items():
        text = "\n".join(make(reports)) + "\n"
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
