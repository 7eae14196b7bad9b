"""BasicSR 1.4.2 as a test oracle, loaded file by file (`import basicsr` needs torchvision).

`basicsr_oracle()` returns a namespace with BasicSR's `psnr_ssim`, `metric_util`, `color_util` and
`matlab_functions` modules. The four files are loaded by path under their real module names with
stub parent packages placed in sys.modules only while loading, so nothing called `basicsr` is left
behind for other tests. If basicsr is not installed the calling test is skipped, or fails when the
environment variable CI is set (CI must always run the oracle comparisons).
"""
import os
import types
from functools import lru_cache

import pytest

from restore.benchmark.basicsr_reference import basicsr_dir as _find_basicsr, load_by_path

_FILES = {  # module name -> path inside the basicsr package, in load order
    "basicsr.utils.color_util": "utils/color_util.py",
    "basicsr.utils.matlab_functions": "utils/matlab_functions.py",
    "basicsr.metrics.metric_util": "metrics/metric_util.py",
    "basicsr.metrics.psnr_ssim": "metrics/psnr_ssim.py",
}


def basicsr_dir():
    return _find_basicsr(_FILES.values())


class _IdentityRegistry:
    """Stands in for basicsr.utils.registry.METRIC_REGISTRY: `@register()` leaves functions as is."""

    def register(self, obj=None):
        return obj if obj is not None else (lambda o: o)


@lru_cache(maxsize=1)
def _load(folder: str) -> types.SimpleNamespace:
    stubs = {name: types.ModuleType(name) for name in ("basicsr", "basicsr.utils", "basicsr.metrics")}
    for pkg in stubs.values():
        pkg.__path__ = []  # a package, but one that finds nothing on its own
    stubs["basicsr.utils.registry"] = types.ModuleType("basicsr.utils.registry")
    stubs["basicsr.utils.registry"].METRIC_REGISTRY = _IdentityRegistry()

    def on_loaded(name, module):  # metric_util does `from basicsr.utils import bgr2ycbcr`
        if name == "basicsr.utils.color_util":
            stubs["basicsr.utils"].bgr2ycbcr = module.bgr2ycbcr

    loaded = load_by_path(folder, _FILES, stubs, on_loaded)
    return types.SimpleNamespace(**{name.rsplit(".", 1)[1]: module for name, module in loaded.items()})


def basicsr_oracle() -> types.SimpleNamespace:
    """BasicSR's metric/colour/imresize modules; skips the test (fails under CI) if not installed."""
    folder = basicsr_dir()
    if folder is None:
        message = "basicsr 1.4.2 is not installed (pip install --no-deps basicsr==1.4.2) - oracle unavailable"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    return _load(folder)
