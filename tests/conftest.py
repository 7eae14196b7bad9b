import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from restore.utils.paths import find_data_root  # noqa: E402

# Measured choices (NSR's `formulation: auto`, `train.channels_last: auto`) are cached in
# ~/.cache/restore; tests keep theirs in temporary files (inherited by the processes they start) so
# a test run writes nothing in the home folder and starts from no cached choice.
_CACHES = {"RESTORE_SPARSE_GROUP_CACHE": "sparse_group_formulations.json",
           "RESTORE_MEMORY_FORMAT_CACHE": "memory_formats.json"}
if any(env not in os.environ for env in _CACHES):
    import tempfile
    _folder = tempfile.mkdtemp(prefix="restore-tests-")
    for _env, _file in _CACHES.items():
        os.environ.setdefault(_env, os.path.join(_folder, _file))


@pytest.fixture(scope="session")
def data_root():
    """The shared benchmark datasets. On a user's clone they may be absent (skip); in CI never (fail)."""
    root = find_data_root(root=ROOT)
    if root is None or not os.path.isdir(os.path.join(root, "Set5")):
        if os.environ.get("CI"):
            pytest.fail("CI is set but the datasets are missing: set RESTORE_DATA_ROOT or put "
                        "../shared/datasets beside the checkout")
        pytest.skip("benchmark datasets not found (set RESTORE_DATA_ROOT)")
    return root


def pytest_configure(config):
    config.addinivalue_line("markers", "models: published checkpoints through spandrel (make test-models)")


@pytest.fixture(autouse=True)
def grad_mode_is_left_on():
    """No test or tool may leave autograd switched off: every later test in the process would then
    train nothing, whatever order the tests run in. The culprit fails at teardown."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("this test left autograd switched off (torch.is_grad_enabled() is False)")
