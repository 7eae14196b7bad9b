"""scripts/bench_nsr.py --table: the results file docs/nsr.md quotes (a tiny run, 1 round)."""
import os
import re

import pytest

from restore.utils.scripts import load_script


@pytest.mark.slow  # builds about a hundred WDSR-A widths to match NSR's parameter count
@pytest.mark.timeout(180)
def test_bench_nsr_writes_its_results_file(tmp_path):
    bench_nsr = load_script("bench_nsr")
    old = os.umask(0o027)
    try:
        out = tmp_path / "speed.md"
        assert bench_nsr.main(["--size", "16", "--repeats", "1", "--threads", "1", "--table", str(out)]) == 0
    finally:
        os.umask(old)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("Made by `python scripts/bench_nsr.py --size 16 --repeats 1 --threads 1 --table ")
    rows = [line for line in lines if line.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| NSR (64 feat, k4 d16)", "| WDSR-A same width (64 feat)",
                                                "| WDSR-A same params (130 feat)", "| NSR tiled (48px tiles)"]
    assert "| 4,877,812 |" in rows[0] and "| 1,193,460 |" in rows[1]
    ratios = [line for line in lines if line.startswith("- NSR ")]
    assert len(ratios) == 3 and all(re.search(r": \d+\.\d{3}x$", r) for r in ratios)
    assert (out.stat().st_mode & 0o777) == 0o640
