"""The crash-resume soak (scripts/soak_resume.py), CI-sized: 3 SIGKILLs, at least one during a checkpoint write."""
import pytest

from restore.utils.scripts import load_script


@pytest.mark.slow
def test_soak_three_kills_identical_parameters(tmp_path):
    soak = load_script("soak_resume").soak
    r = soak(kills=3, total_iter=12, save_freq=2, work=str(tmp_path), seed=1, log=lambda *_: None)
    assert r["unreadable_newest"] == 0
    assert r["identical_final_parameters"]
    assert sum(e["killed"] for e in r["events"]) >= 2
