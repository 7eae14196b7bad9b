"""scripts/performance_tables.py: the tables of docs/performance.md are what it reads from the
committed benchmark reports (results/bench_train/), and each names the machine of its reports."""
import glob
import re
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import performance_tables  # noqa: E402


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_committed_tables_are_the_reports_summaries(tmp_path):
    assert performance_tables.main(["--out", str(tmp_path)]) == 0
    made = sorted(os.listdir(tmp_path))
    assert made == sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "results", "performance", "*.md")))
    for name in made:
        committed = open(os.path.join(ROOT, "results", "performance", name), encoding="utf-8").read()
        fresh = (tmp_path / name).read_text()
        assert rows(fresh) == rows(committed), f"results/performance/{name}: rerun scripts/performance_tables.py"
        assert fresh.splitlines()[0] == committed.splitlines()[0]


def test_each_table_names_the_machine_of_its_reports(tmp_path):
    performance_tables.main(["--out", str(tmp_path)])
    for name in ("vs_basicsr.md", "intel_vs_basicsr.md", "intel_ablations.md", "intel_nsr_train.md",
                 "intel_nsr_own_view.md"):
        assert "measured on Intel(R) Xeon(R) Processor" in (tmp_path / name).read_text().splitlines()[0]
    assert "Intel Xeon" in (tmp_path / "layouts.md").read_text().splitlines()[0]  # its reports name no CPU
    for name in ("ablations.md", "nsr_train_2threads.md", "nsr_train_1thread.md", "nsr_layer.md",
                 "amd512_vs_basicsr.md", "amd512_ablations.md", "amd512_nsr_train.md"):
        assert "measured on AMD EPYC" in (tmp_path / name).read_text().splitlines()[0]


def test_cpu_ratios_are_to_the_faster_wdsr_side():
    report = """## fp32: ratios
side                           ms median   ms min   CPU ms share  ratio ratio min
WDSR cl fp32                        8572     7185     4000   40%  1.09x     0.99x
WDSR nchw fp32                      7863     7245     5000   38%  1.00x     1.00x
NSR fused nchw fp32 (= fused)       9413     5989     6000   37%  1.20x     0.83x
"""
    parsed = performance_tables.nsr_train(report)["fp32"]
    assert list(parsed) == ["WDSR cl fp32", "WDSR nchw fp32", "NSR fused nchw fp32 (= fused)"]
    assert performance_tables.cpu_ratios(parsed)["NSR fused nchw fp32 (= fused)"] == 1.5
    assert performance_tables.ordered(parsed, "cpu")[0] == "WDSR cl fp32"
    assert performance_tables.side_label("NSR auto cl fp32 (= loop)") == "NSR `auto`, channels_last (chose `loop`)"
    assert performance_tables.side_label("NSR grouped-view nchw bf16") == "NSR `grouped-view`, NCHW"


def test_nsr_table_puts_each_side_in_fp32_and_bf16_beside_its_own_precisions_wdsr(tmp_path):
    report = """# bench_nsr_train
torch 2.13.0+cpu, AMD EPYC (2 logical CPUs), 2 threads, python 3.11.7

## fp32: ratios
side                           ms median   ms min   CPU ms share  ratio ratio min CPU ratio
WDSR cl fp32                        2200     2100     4400  100%  1.10x     1.05x     1.10x
WDSR nchw fp32                      2000     1990     4000  100%  1.00x     1.00x     1.00x
NSR fused nchw fp32                 2100     2090     4200  100%  1.05x     1.05x     1.05x
NSR auto nchw fp32 (= fused)        2090     2080     4180  100%  1.05x     1.04x     1.05x

## bf16: ratios
side                           ms median   ms min   CPU ms share  ratio ratio min CPU ratio
WDSR cl bf16                         800      790     1600  100%  1.00x     1.00x     1.00x
WDSR nchw bf16                      1000      990     2000  100%  1.25x     1.24x     1.25x
NSR fused nchw bf16                 1200     1190     2400  100%  1.50x     1.50x     1.50x
NSR auto nchw bf16 (= grouped)      1190     1180     2380  100%  1.49x     1.48x     1.49x
"""
    path = tmp_path / "r.txt"
    path.write_text(report)
    lines = performance_tables.table_nsr_precisions({"k": (str(path), "python scripts/bench_nsr_train.py --bf16",
                                                           "")}, "k")
    assert "measured on AMD EPYC (2 logical CPUs)" in lines[0]
    assert lines[4:] == ["| WDSR-A, NCHW | 2000 | 1.00x | 1000 | 1.25x |",
                         "| WDSR-A, channels_last | 2200 | 1.10x | 800 | 1.00x |",
                         "| NSR `fused`, NCHW | 2100 | 1.05x | 1200 | 1.50x |",
                         # `auto` may choose differently per precision: the choice goes with each cell
                         "| NSR `auto`, NCHW | 2090 (`fused`) | 1.05x | 1190 (`grouped`) | 1.49x |"]


def fp32_only(text: str) -> str:
    """A committed report as its command without --bf16 prints it: no bf16 section, side or ratio."""
    blocks = re.split(r"(?m)^(?=## )", text)
    return "".join("\n".join(line for line in block.splitlines() if "bf16" not in line) + "\n"
                   for block in blocks if not block.startswith("## bf16"))


def test_run_without_bf16_kernels_leaves_bf16_out(tmp_path, monkeypatch):
    # An AVX2 CPU: oneDNN has no bf16 kernels, so --run must not spend hours timing the emulation.
    committed = {command: os.path.join(ROOT, "results", "bench_train", name)
                 for name, command in performance_tables.REPORTS.values()}
    ran = []

    def fake_run(argv, stdout, check, cwd):
        command = "python " + " ".join(argv[1:])
        ran.append(command)
        source = next(path for c, path in committed.items() if c.replace(" --bf16", "") == command)
        stdout.write(fp32_only(open(source, encoding="utf-8").read()))

    monkeypatch.setattr(performance_tables, "bf16_is_native", lambda: False)
    monkeypatch.setattr(performance_tables.subprocess, "run", fake_run)
    out = tmp_path / "tables"
    assert performance_tables.main(["--run", "--reports", str(tmp_path / "latest"), "--out", str(out)]) == 0
    assert len(ran) == len(performance_tables.REPORTS) - 1  # bench_layouts --bf16 not run at all
    assert not any("--bf16" in command for command in ran)
    assert not (tmp_path / "latest" / "layouts_bf16.txt").exists()
    layouts = (out / "layouts.md").read_text()
    assert "No bf16 runs" in layouts.splitlines()[0] and "--bf16" not in layouts.splitlines()[0]
    assert all(row.split(" | ")[5] == "" for row in rows(layouts)[2:])  # the bf16 speed-up column
    vs_basicsr = (out / "vs_basicsr.md").read_text()
    assert "No bf16 runs" in vs_basicsr.splitlines()[0]
    bf16_row = next(row for row in rows(vs_basicsr) if "amp: bf16" in row)
    assert [cell.strip() for cell in bf16_row.strip("|").split("|")][1:] == ["", ""]  # EDSR, NSR
    assert "bf16" not in rows((out / "nsr_layer.md").read_text())[0]
    assert "No bf16 runs" not in (out / "ablations.md").read_text()  # an fp32 report, unchanged


def test_bf16_is_native_is_what_onednn_says():
    import torch
    assert performance_tables.bf16_is_native() == torch.ops.mkldnn._is_mkldnn_bf16_supported()
