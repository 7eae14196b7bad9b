"""Building a network with its weights for inference, from any of the three ways to name one:

- an option file (`network_g` + `path.pretrain_network_g`; a training option file without a
  pretrained path falls back to its experiment's `models/net_g_latest.pth`);
- a checkpoint plus an arch name and arch options (`--ckpt net.pth --arch EDSR --arch-opt upscale=2`);
- a named entry of the model zoo (restore/inference/zoo.py);
- a checkpoint alone (`--ckpt X.pth`, `--model X.pth`, `network_g: {type: auto}`): the NSR / WDSR
  reference layout (restore/export/pt_ir.py), else any architecture spandrel recognises (ESRGAN,
  SwinIR, HAT, Real-ESRGAN compact, DnCNN, ... with `pip install 'restore[models]'`;
  docs/published-models.md), scale and channels from the detection.
"""
import inspect
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Sequence

import torch
from torch import nn

from restore.archs import ARCH_REGISTRY, build_network
from restore.inference.setup import net_input, prepare_net
from restore.inference.zoo import check_weights, get_zoo_entry
from restore.utils.checkpoint import load_network, load_safely
from restore.utils.errors import OptionError, RestoreError
from restore.utils.options import load_options, merge, network_overrides

PROBE_SIZE = 16


@dataclass
class LoadedModel:
    net: nn.Module           # in eval mode, on the CPU
    network_g: dict
    weights: Optional[str]   # None for weightless archs (Bicubic)
    label: str

    @cached_property
    def in_channels(self) -> int:
        if "num_in_ch" in self.network_g:
            return int(self.network_g["num_in_ch"])
        param = inspect.signature(ARCH_REGISTRY.get(self.network_g["type"])).parameters.get("num_in_ch")
        return 3 if param is None or param.default is inspect.Parameter.empty else int(param.default)

    @cached_property
    def scale(self) -> int:
        """Output size / input size, measured on a small input (archs name it differently)."""
        device = next(iter(self.net.parameters()), torch.zeros(())).device
        with torch.inference_mode():
            out = self.net(net_input(self.net, torch.zeros(1, self.in_channels, PROBE_SIZE, PROBE_SIZE,
                                                           device=device)))
        return max(1, out.shape[-1] // PROBE_SIZE)


def parse_arch_options(items: Sequence[str], where: str = "--arch-opt") -> dict:
    """['upscale=2', 'conv.type=sparse_group'] -> nested dict, values read as YAML."""
    return network_overrides(items, where)


def _build(network_g: dict, where: str) -> nn.Module:
    if "type" not in network_g:
        raise OptionError(f"{where}: needs a 'type' naming an arch")
    return build_network(network_g, where)


def _load_weights(net: nn.Module, path: Optional[str], param_key: str, strict: bool, what: str) -> None:
    if path is None:
        if any(True for _ in net.parameters()):
            raise RestoreError(f"{what}: has learnable parameters but no weight file was given")
        return
    load_network(net, path, param_key, strict)


def _finish(net: nn.Module, network_g: dict, weights, label) -> LoadedModel:
    prepare_net(net)  # the shared inference set-up (setup.py): eval, no grads, CPU memory format
    return LoadedModel(net, network_g, weights, label)


def model_from_checkpoint(ckpt: Optional[str], arch: str, arch_opts: Sequence[str] = (),
                          param_key: str = "params_ema", strict: bool = True) -> LoadedModel:
    network_g = {"type": arch, **parse_arch_options(arch_opts)}
    net = _build(network_g, "--arch")
    if ckpt is not None:
        ckpt = os.path.abspath(os.path.expanduser(ckpt))
    _load_weights(net, ckpt, param_key, strict, f"--arch {arch}")
    label = os.path.splitext(os.path.basename(ckpt))[0] if ckpt else arch
    return _finish(net, network_g, ckpt, label)


def _default_weights(experiments_root: str, name: str) -> Optional[str]:
    """A training option file's latest network: <experiments_root>/<name>/models/net_g_latest.pth."""
    candidate = os.path.join(experiments_root, name, "models", "net_g_latest.pth")
    return candidate if os.path.isfile(candidate) else None


def model_from_options(opt_path: str, param_key: Optional[str] = None,
                       data_root: Optional[str] = None) -> LoadedModel:
    opt = load_options(opt_path, "network", data_root=data_root)
    path, network_g = opt["path"], dict(opt["network_g"])
    weights = path["pretrain_network_g"] or _default_weights(path["experiments_root"], opt["name"])
    net = _build(dict(network_g), f"{opt_path}: network_g")
    if weights is None and any(True for _ in net.parameters()):
        raise OptionError(f"{opt_path}: no path.pretrain_network_g and no trained network at "
                          f"experiments/{opt['name']}/models/net_g_latest.pth")
    key = param_key or path["param_key_g"] or "params"  # as restore-test reads the same file
    _load_weights(net, weights, key, path["strict_load_g"], opt_path)
    return _finish(net, network_g, weights, opt["name"])


def model_from_zoo(name: str, param_key: str = "params_ema", arch_opts: Sequence[str] = ()) -> LoadedModel:
    """A named model; `arch_opts` (key=value) change options that do not change the weights' shapes,
    e.g. gate_region=tile for NSR."""
    entry = get_zoo_entry(name)
    network_g = merge(entry.network_g, parse_arch_options(arch_opts))
    net = _build(network_g, f"{entry.origin}: {name}.network_g")
    weights = check_weights(entry)
    _load_weights(net, weights, param_key, True, f"--model {name}")
    return _finish(net, network_g, weights, name)


CHECKPOINT_EXTENSIONS = (".pth", ".pt", ".ckpt", ".safetensors")
SPANDREL_HINT = "pip install 'restore[models]' (docs/published-models.md)"


class SpandrelNet(nn.Module):
    """A network spandrel detected, run through spandrel's own call (which pads the input to the
    arch's size requirements and crops the output back), so its outputs are spandrel's."""

    def __init__(self, descriptor):
        super().__init__()
        self.model = descriptor.model
        self.descriptor = descriptor
        self.architecture = descriptor.architecture.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.descriptor(x)


def spandrel_descriptor(state: dict, path: str):
    """spandrel's ImageModelDescriptor for a loaded checkpoint, or a one-line error."""
    try:
        import spandrel
    except ImportError:
        raise RestoreError(f"{path}: also give --arch (a restore checkpoint holds weights, not the network), "
                           f"or install spandrel, which detects published architectures from the weights: "
                           f"{SPANDREL_HINT}") from None
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise RestoreError(f"{path}: spandrel does not recognise this checkpoint's architecture; "
                           f"give --arch for one of restore's") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise RestoreError(f"{path}: spandrel found {descriptor.architecture.name}, which is not an "
                           f"image-to-image model (inpainting/face models need a mask or a face)")
    return descriptor


def auto_network(ckpt: str, param_key: str = "params_ema") -> tuple[nn.Module, dict, str]:
    """(net with its weights, network_g, arch name) from a checkpoint alone: pt_ir's NSR/WDSR layout,
    else whatever spandrel detects. `network_g` describes it (`num_in_ch`, `upscale`)."""
    from restore.export.pt_ir import convert_pt_ir, pt_ir_state_dict

    raw = load_safely(ckpt)
    sd = pt_ir_state_dict(raw)
    if sd is not None:
        params, network_g = convert_pt_ir(sd, ckpt)
        net = _build(dict(network_g), f"{ckpt} (pt_ir layout)")
        net.load_state_dict(params, strict=True)
        return net, {**network_g, "source": "pt_ir"}, f"{network_g['type']} (pt_ir)"
    if isinstance(raw, dict) and param_key == "params" and isinstance(raw.get("params"), dict):
        raw = {"params": raw["params"]}  # spandrel would take params_ema first
    descriptor = spandrel_descriptor(raw, ckpt)
    network_g = {"type": "auto", "arch": descriptor.architecture.name, "num_in_ch": descriptor.input_channels,
                 "num_out_ch": descriptor.output_channels, "upscale": descriptor.scale,
                 "purpose": descriptor.purpose, "size_requirements": str(descriptor.size_requirements)}
    return SpandrelNet(descriptor), network_g, descriptor.architecture.name


def auto_network_g(opt: dict) -> nn.Module:
    """`network_g: {type: auto}` in a test option file: the network of `path.pretrain_network_g`,
    detected from the file (its weights already loaded; BaseModel then skips its own load)."""
    where = opt.get("opt_path", "options")
    extra = sorted(set(opt["network_g"]) - {"type"})
    if extra:
        raise OptionError(f"{where}: network_g: type auto takes everything from the checkpoint; "
                          f"remove {', '.join(extra)}")
    if opt.get("is_train"):
        raise OptionError(f"{where}: network_g: type auto is for restore-test (training needs a restore arch)")
    ckpt = (opt.get("path") or {}).get("pretrain_network_g")
    if not ckpt:
        raise OptionError(f"{where}: network_g: type auto needs path.pretrain_network_g (the checkpoint)")
    net, _, _ = auto_network(ckpt, (opt.get("path") or {}).get("param_key_g") or "params")
    return net


def model_from_checkpoint_alone(ckpt: str, param_key: str = "params_ema") -> LoadedModel:
    ckpt = os.path.abspath(os.path.expanduser(ckpt))
    net, network_g, arch = auto_network(ckpt, param_key)
    loaded = _finish(net, network_g, ckpt, f"{os.path.splitext(os.path.basename(ckpt))[0]} ({arch})")
    loaded.__dict__["in_channels"] = int(network_g["num_in_ch"])  # known: no probe forward needed
    loaded.__dict__["scale"] = int(network_g["upscale"])
    return loaded


def is_checkpoint_file(name: Optional[str]) -> bool:
    return bool(name) and str(name).lower().endswith(CHECKPOINT_EXTENSIONS) and os.path.isfile(
        os.path.expanduser(str(name)))


def load_model(opt: Optional[str] = None, ckpt: Optional[str] = None, arch: Optional[str] = None,
               arch_opts: Sequence[str] = (), model: Optional[str] = None,
               param_key: Optional[str] = None, strict: bool = True,
               data_root: Optional[str] = None) -> LoadedModel:
    """Exactly one of: `opt`; `arch` (+ `ckpt`, `arch_opts`); `model`. Returns an eval-mode CPU net."""
    given = [name for name, value in (("-opt", opt), ("--arch", arch or ckpt), ("--model", model)) if value]
    if len(given) != 1:
        raise OptionError("name the network one way: -opt FILE, --ckpt FILE --arch NAME, or --model NAME"
                          + (f" (got {' and '.join(given)})" if given else ""))
    if arch_opts and not (arch or model):
        raise OptionError("--arch-opt needs --arch or --model")
    if opt:
        return model_from_options(opt, param_key, data_root)
    if model and is_checkpoint_file(model) and not arch_opts:
        return model_from_checkpoint_alone(model, param_key or "params_ema")
    if model:
        return model_from_zoo(model, param_key or "params_ema", arch_opts)
    if not arch:
        if arch_opts:
            raise OptionError(f"--ckpt {ckpt}: --arch-opt needs --arch")
        return model_from_checkpoint_alone(ckpt, param_key or "params_ema")
    return model_from_checkpoint(ckpt, arch, arch_opts, param_key or "params_ema", strict)
