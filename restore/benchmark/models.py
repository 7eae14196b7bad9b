"""The models of a benchmark: parsing `--model` specs, the bicubic / noisy-input baseline, and the
cost figures (parameters, MACs per output pixel, CPU latency) reported beside the scores."""
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from restore.archs import ARCH_REGISTRY
from restore.archs.bicubic_arch import Bicubic
from restore.inference.loading import LoadedModel, load_model
from restore.inference.setup import net_input, prepare_net
from restore.utils.errors import OptionError
from restore.utils.flops import OUTPUT_720P, count_macs, count_params, input_shape_for_output

BASELINE_SR = "Bicubic"
BASELINE_INPUT = "Input"


@dataclass
class BenchModel:
    label: str
    source: str
    loaded: LoadedModel
    costs: dict = field(default_factory=dict)

    @property
    def scale(self) -> int:
        return self.loaded.scale

    @property
    def in_channels(self) -> int:
        return self.loaded.in_channels


def parse_model_spec(spec: str, param_key: Optional[str] = None) -> BenchModel:
    """`[LABEL=]SOURCE`; SOURCE is an option file (.yml/.yaml), `ARCH:CHECKPOINT[,key=value,...]`
    (arch options after the checkpoint), or a named model of the zoo `NAME[,key=value,...]`."""
    label, sep, source = spec.partition("=")
    if not sep or os.sep in label or label.endswith((".yml", ".yaml")) or ":" in label:
        label, source = "", spec
    source = source.strip()
    if not source:
        raise OptionError(f"--model {spec!r}: empty model")
    if source.lower().endswith((".yml", ".yaml")):
        loaded = load_model(opt=source, param_key=param_key)
    elif ":" in source and source.split(":", 1)[0] in ARCH_REGISTRY:
        arch, rest = source.split(":", 1)
        ckpt, *opts = rest.split(",")
        loaded = load_model(ckpt=ckpt or None, arch=arch, arch_opts=opts, param_key=param_key)
    else:
        name, *opts = source.split(",")
        loaded = load_model(model=name, arch_opts=opts, param_key=param_key)
    return BenchModel(label or loaded.label, source, loaded)


def baseline(task: str, channels: int, level: int) -> BenchModel:
    """MATLAB bicubic upscaling (SR) or the degraded input itself. The SR baseline is MATLAB's uint8
    imresize (rounded after each pass, as the literature's bicubic rows), the one definition that
    restore-test's options/test/Bicubic/*.yml build too (`uint8_rounding: true`)."""
    scale = level if task == "sr" else 1
    net = prepare_net(Bicubic(channels, channels, scale, uint8_rounding=True))
    label = BASELINE_SR if task == "sr" else BASELINE_INPUT
    loaded = LoadedModel(net, {"type": "Bicubic", "num_in_ch": channels, "num_out_ch": channels,
                               "upscale": scale, "uint8_rounding": True}, None, label)
    return BenchModel(label, "baseline", loaded)


def latency_ms(net, shape, runs: int = 3, warmup: int = 1, reduce=statistics.median) -> float:
    """Wall time of one forward on a random input of `shape`, in milliseconds: the median of `runs`
    (`reduce=min` for the best, as a peak-throughput probe wants)."""
    x = net_input(net, torch.rand(shape))  # as restore-infer feeds it
    with torch.inference_mode():
        for _ in range(warmup):
            net(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    return 1000.0 * reduce(times)


def measure_costs(model: BenchModel, latency_hw: Optional[tuple] = (128, 128), runs: int = 3) -> dict:
    """params, MACs per output pixel (for the input of a 1280x720 output) and CPU latency."""
    net, channels, scale = model.loaded.net, model.in_channels, model.scale
    macs = count_macs(net, input_shape_for_output(OUTPUT_720P, scale, channels))
    costs = {"params": count_params(net), "macs_per_pixel": macs["macs_per_out_pixel"],
             "gmacs_720p": macs["gmacs_720p"], "scale": scale, "in_channels": channels,
             "latency_ms": None, "latency_input": None, "threads": torch.get_num_threads()}
    if latency_hw:
        shape = (1, channels, *latency_hw)
        costs.update(latency_ms=latency_ms(net, shape, runs), latency_input=list(shape))
    model.costs = costs
    return costs
