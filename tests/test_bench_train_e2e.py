"""scripts/bench_train_e2e.py: restore-train end to end beside the bare step, on a tiny recipe."""
import os
import re
import subprocess
import sys

import pytest

from restore.utils.scripts import load_script
from tests.tiny import train_options, write_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "bench_train_e2e.py")


def tiny_recipe(tmp_path, **over):
    # a registered arch: the runs are fresh processes, which do not see tests/tiny.py's TinyTestSR
    opt = train_options(tmp_path, network_g={"type": "EDSR", "num_feat": 8, "num_block": 1, "upscale": 2},
                        datasets__train__num_worker_per_gpu=1, **over)
    return write_options(tmp_path / "tiny.yml", opt)


@pytest.mark.slow  # six fresh processes, each importing torch
@pytest.mark.timeout(300)
def test_it_times_restore_train_against_the_bare_step_and_writes_its_results_file(tmp_path):
    recipe = tiny_recipe(tmp_path)
    out = tmp_path / "e2e.md"
    old = os.umask(0o027)
    try:
        code = load_script("bench_train_e2e").main(["-opt", recipe, "--short", "2", "--long", "6",
                                                    "--table", str(out)])
    finally:
        os.umask(old)
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("Made by `python scripts/bench_train_e2e.py -opt ")
    row = [line for line in lines if line.startswith("| `")]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[1:4] == ["4", "8x8x3", "1"]  # batch, LR patch (gt 16 / scale 2), workers
    bare, e2e = float(cells[4]), float(cells[5])
    assert cells[0] == f"`{recipe}`" and bare > 0 and e2e > 0
    # Both times are printed to 0.1 ms, so the ratio recomputed from them may be off by the
    # relative rounding of each (large when the bare step takes only a few ms) plus the ratio's own.
    ratio = e2e / bare
    assert abs(float(cells[6].rstrip("x")) - ratio) <= 0.005 + ratio * (0.05 / bare + 0.05 / e2e)
    assert (out.stat().st_mode & 0o777) == 0o640
    assert not os.path.exists(os.path.join(ROOT, "experiments", "e2e_2"))  # the runs train in a temporary folder


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["missing file", "bad option"])
def test_a_bad_recipe_ends_with_one_line_naming_it(tmp_path, case):
    recipe = str(tmp_path / "nope.yml") if case == "missing file" else \
        tiny_recipe(tmp_path, train__total_iterr=5)
    done = subprocess.run([sys.executable, SCRIPT, "-opt", recipe, "--short", "1", "--long", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=110)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {recipe}: ")
    expected = "option file not found" if case == "missing file" else "total_iterr"
    assert re.search(expected, error), error
