"""scripts/performance_tables.py: the tables of docs/performance.md are what it reads from the
committed benchmark reports (results/bench_train/), and each names the machine of its reports."""
import glob
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
    assert "measured on Intel(R) Xeon(R) Processor" in (tmp_path / "vs_basicsr.md").read_text().splitlines()[0]
    assert "Intel Xeon" in (tmp_path / "layouts.md").read_text().splitlines()[0]  # its reports name no CPU
    for name in ("ablations.md", "nsr_train_2threads.md", "nsr_train_1thread.md", "nsr_layer.md"):
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
