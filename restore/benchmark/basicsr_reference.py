"""BasicSR 1.4.2's EDSR and SRModel training step, loaded file by file for benchmarks.

`import basicsr` fails without torchvision (and pulls in every arch, dataset and model module), so
`load_basicsr_training()` loads only the files the SR training step runs -- archs/arch_util.py,
archs/edsr_arch.py, losses/loss_util.py, losses/basic_loss.py, models/lr_scheduler.py,
models/base_model.py, models/sr_model.py, utils/registry.py, utils/dist_util.py -- by path under
their real module names. Stub modules stand in for torchvision, basicsr.ops.dcn, basicsr.utils,
basicsr.archs (build_network), basicsr.losses (build_loss) and basicsr.metrics while loading, and
are removed from sys.modules afterwards: the loaded classes keep working through their own globals,
and nothing called `basicsr` is left behind. Used by scripts/bench_train.py (restore's step beside
BasicSR's) and by the tests, which score restore against these files as an independent oracle.
"""
import importlib.util
import logging
import os
import site
import sys
import types
import warnings

_FILES = {  # module name -> path inside the basicsr package, in load order
    "basicsr.utils.registry": "utils/registry.py",
    "basicsr.utils.dist_util": "utils/dist_util.py",
    "basicsr.archs.arch_util": "archs/arch_util.py",
    "basicsr.archs.edsr_arch": "archs/edsr_arch.py",
    "basicsr.losses.loss_util": "losses/loss_util.py",
    "basicsr.losses.basic_loss": "losses/basic_loss.py",
    "basicsr.models.lr_scheduler": "models/lr_scheduler.py",
    "basicsr.models.base_model": "models/base_model.py",
    "basicsr.models.sr_model": "models/sr_model.py",
}
_PACKAGES = ["basicsr", "basicsr.utils", "basicsr.ops", "basicsr.archs", "basicsr.losses",
             "basicsr.metrics", "basicsr.models"]


def basicsr_dir(files=None):
    """The installed basicsr package folder holding `files` (default: the training files), found
    without importing it; None if absent. tests/oracles.py uses it too."""
    try:
        spec = importlib.util.find_spec("basicsr")
    except (ImportError, ValueError):
        spec = None
    candidates = [os.path.dirname(spec.origin)] if spec is not None and spec.origin else []
    candidates += [os.path.join(p, "basicsr") for p in site.getsitepackages()]
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, f)) for f in (files or _FILES.values())):
            return folder
    return None


def _package(name: str) -> types.ModuleType:
    pkg = types.ModuleType(name)
    pkg.__path__ = []  # a package that finds nothing on its own: only what we place is importable
    return pkg


def _unavailable(what: str):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{what} is not available in the file-by-file BasicSR load")
    return fail


def _stubs(build_network, build_loss) -> dict:
    """Modules that stand in for the parts of BasicSR (and torchvision) the step never runs."""
    mods = {name: _package(name) for name in _PACKAGES}
    torchvision = types.ModuleType("torchvision")
    torchvision.__version__ = "0.0.0"  # arch_util only compares it when running deformable convs
    mods["torchvision"] = torchvision
    dcn = types.ModuleType("basicsr.ops.dcn")
    dcn.ModulatedDeformConvPack = type("ModulatedDeformConvPack", (), {})
    dcn.modulated_deform_conv = _unavailable("modulated_deform_conv")
    mods["basicsr.ops.dcn"] = dcn
    utils = mods["basicsr.utils"]
    utils.get_root_logger = lambda *a, **k: logging.getLogger("basicsr_files")
    utils.imwrite = _unavailable("imwrite")
    utils.tensor2img = _unavailable("tensor2img")
    mods["basicsr.archs"].build_network = build_network
    vgg = types.ModuleType("basicsr.archs.vgg_arch")
    vgg.VGGFeatureExtractor = _unavailable("VGGFeatureExtractor (perceptual loss)")
    mods["basicsr.archs.vgg_arch"] = vgg
    mods["basicsr.losses"].build_loss = build_loss
    mods["basicsr.metrics"].calculate_metric = _unavailable("calculate_metric")
    try:
        import distutils.version  # arch_util imports LooseVersion (gone in Python 3.12)
    except ImportError:
        distutils = _package("distutils")
        version = types.ModuleType("distutils.version")
        version.LooseVersion = _unavailable("LooseVersion")
        mods["distutils"], mods["distutils.version"] = distutils, version
    return mods


def load_by_path(folder: str, files: dict, stubs: dict, on_loaded=None) -> dict:
    """{module name: module} of `files` ({module name: path under folder}), executed in order under
    their real names with `stubs` ({name: module}) standing in for what they import; sys.modules is
    as before afterwards, so nothing called `basicsr` is left behind. `on_loaded(name, module)` runs
    after each file (e.g. to place a function a later file imports from its parent package)."""
    names = list(stubs) + list(files)
    saved = {n: sys.modules.get(n) for n in names}
    loaded = {}
    try:
        sys.modules.update(stubs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # distutils deprecation and the like
            for name, rel in files.items():
                spec = importlib.util.spec_from_file_location(name, os.path.join(folder, rel))
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                loaded[name] = module
                if on_loaded is not None:
                    on_loaded(name, module)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return loaded


def load_basicsr_training(extra_archs: dict | None = None) -> types.SimpleNamespace:
    """BasicSR's EDSR, L1Loss, SRModel, lr_scheduler and the registries, loaded by file path.

    `build_network` inside the loaded SRModel builds BasicSR's own EDSR for `type: EDSR`, or a
    class from `extra_archs` ({type name: class}) for other types, e.g. an architecture BasicSR
    does not have, so BasicSR's training step can be run on it. `build_loss` builds the loaded
    L1Loss / MSELoss / CharbonnierLoss. Raises FileNotFoundError when basicsr is not installed.
    """
    folder = basicsr_dir()
    if folder is None:
        raise FileNotFoundError("basicsr is not installed (pip install --no-deps basicsr==1.4.2)")
    loaded: dict = {}
    archs = dict(extra_archs or {})

    def build_network(opt):
        opt = dict(opt)
        kind = opt.pop("type")
        cls = loaded["basicsr.utils.registry"].ARCH_REGISTRY.get(kind) if kind not in archs else archs[kind]
        return cls(**opt)

    def build_loss(opt):
        opt = dict(opt)
        return loaded["basicsr.utils.registry"].LOSS_REGISTRY.get(opt.pop("type"))(**opt)

    def link(name, module):  # `from basicsr.models import lr_scheduler` finds the loaded module
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)

    loaded.update(load_by_path(folder, _FILES, _stubs(build_network, build_loss), link))
    registry = loaded["basicsr.utils.registry"]
    return types.SimpleNamespace(
        folder=folder,
        EDSR=loaded["basicsr.archs.edsr_arch"].EDSR,
        L1Loss=loaded["basicsr.losses.basic_loss"].L1Loss,
        SRModel=loaded["basicsr.models.sr_model"].SRModel,
        lr_scheduler=loaded["basicsr.models.lr_scheduler"],
        ARCH_REGISTRY=registry.ARCH_REGISTRY,
        LOSS_REGISTRY=registry.LOSS_REGISTRY,
        MODEL_REGISTRY=registry.MODEL_REGISTRY,
    )
