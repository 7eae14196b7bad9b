"""The README's worked example quotes what scripts/readme_example.py kept of a real run: its table
(tests/test_docs_tables.py) and its log lines (here)."""
import os
import re

from restore.utils.scripts import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results", "readme_example", "worked_example.md")

LOG = """\
2026-12-02 10:00:00 INFO: train.channels_last: auto -> timed on the first batch's shape
2026-12-02 10:00:01 INFO: 91 training images, 113 iterations per epoch, 500 iterations, device cpu, 1 process(es)
2026-12-02 10:00:09 INFO: iter     100 epoch 0 lr 5.000e-04 12.00 it/s eta 0.6 min  loss 3.0e-02
2026-12-02 10:00:17 INFO: iter     200 epoch 1 lr 5.000e-04 12.00 it/s eta 0.4 min  loss 2.5e-02
2026-12-02 10:00:30 INFO: val Set5 @ 250: psnr 34.5000 (best 34.5000 @ 250)
2026-12-02 10:00:50 INFO: iter     500 epoch 4 lr 2.500e-04 12.00 it/s eta 0.0 min  loss 1.8e-02
2026-12-02 10:00:52 INFO: done: 500 iterations (500 in this run, 0.9 min wall time); skipped non-finite steps: 0
"""


def test_the_kept_log_lines_are_the_readme_ones_without_timestamps():
    example = load_script("readme_example")
    assert example.log_milestones(LOG) == [
        "INFO: 91 training images, 113 iterations per epoch, 500 iterations, device cpu, 1 process(es)",
        "INFO: iter     100 epoch 0 lr 5.000e-04 12.00 it/s eta 0.6 min  loss 3.0e-02",
        "INFO: val Set5 @ 250: psnr 34.5000 (best 34.5000 @ 250)",
        "INFO: iter     500 epoch 4 lr 2.500e-04 12.00 it/s eta 0.0 min  loss 1.8e-02",
        "INFO: done: 500 iterations (500 in this run, 0.9 min wall time); skipped non-finite steps: 0"]


def test_the_table_rows_come_from_the_results_and_the_bicubic_scores():
    example = load_script("readme_example")
    results = {"Set5": {"images": [{}] * 5, "mean": {"psnr": 35.02301, "ssim": 0.94339}}}
    bicubic = {"Set5": {"mean": {"psnr": 33.67344, "ssim": 0.93031}}}
    text = example.markdown("Made by `x` on y.", ["INFO: done: 1 iterations"], results, bicubic, 28.4)
    assert text.startswith("Made by `x` on y.\n")
    assert "| Set5 | 5 | 35.0230 | 0.9434 | 33.6734 / 0.9303 |" in text.splitlines()
    assert "(28 s)" in text


def test_the_readme_shows_the_log_lines_of_the_kept_run():
    kept = open(RESULTS, encoding="utf-8").read()
    logged = re.search(r"```\n(.*?)```", kept, re.S).group(1).splitlines()
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    shown = [line.strip() for line in readme.splitlines() if line.startswith("    INFO: ")]
    assert shown and all(line in logged for line in shown), "README's log excerpt is not the kept run's"
