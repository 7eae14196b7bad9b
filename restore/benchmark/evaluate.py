"""Scoring models on test sets: every model that fits a (set, level) on every image of that set.

A model fits an SR set at scale s when it upscales by s; a denoising / JPEG set when it keeps the
size. A gray model on a colour set runs on each of R, G and B, and an RGB model on a gray set runs
on R=G=B and is scored on the luma of its output, exactly as restore-infer runs such images; the
report says so. Each (set, level) pair builds its degraded inputs once (seeded per image, as in
validation) and runs the baseline and every fitting model on them. The baseline is always one plain
pass (--tile and --ensemble are for the models: a bicubic baseline is neither tiled nor
ensembled in any table it is compared with). Outputs are rounded to the image's bit depth before
PSNR/SSIM, as in validation.
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from tqdm import tqdm

from restore.benchmark.models import BenchModel, baseline
from restore.data import build_dataset
from restore.data.testsets import TestSet
from restore.inference.forward import inference_forward
from restore.inference.runner import adapt_channels
from restore.metrics import calculate_metric
from restore.metrics.protocol import bicubic_output
from restore.utils.img_io import tensor2img


@dataclass
class Run:
    """How to run the nets: tiling, self-ensemble, device, how many images per set."""
    tile: Optional[int] = None
    tile_pad: int = 16
    ensemble: bool = False
    device: torch.device = torch.device("cpu")
    max_images: Optional[int] = None
    protocol: str = "basicsr"  # scoring protocol (restore/metrics/protocol.py, docs/protocol.md)


@dataclass
class SetResult:
    testset: TestSet
    level: int
    models: list[str]                                   # labels, baseline first
    images: list[dict] = field(default_factory=list)    # {'name', model: {'psnr', 'ssim'}}
    notes: dict = field(default_factory=dict)           # label: how the model was run, where unusual
    protocol: str = "basicsr"                           # scoring protocol

    @property
    def level_name(self) -> str:
        return self.testset.level_name(self.level)

    def mean(self, model: str, metric: str) -> float:
        values = [row[model][metric] for row in self.images]
        return float(np.mean(values)) if values else math.nan


def fits(model: BenchModel, testset: TestSet, level: int) -> Optional[str]:
    """None when the model applies to the set at this level, else why not."""
    want_scale = level if testset.task == "sr" else 1
    if model.scale != want_scale:
        return f"model scale x{model.scale}, {testset.name} {testset.level_name(level)} needs x{want_scale}"
    if channel_note(model, testset) is None and model.in_channels != testset.channels:
        return f"model takes {model.in_channels} channel(s), {testset.name} gives {testset.channels}"
    return None


def channel_note(model: BenchModel, testset: TestSet) -> Optional[str]:
    """How a model whose channels differ from the set's is run (None: they agree, or cannot be adapted)."""
    if (model.in_channels, testset.channels) == (1, 3):
        return "gray model: run on each of R, G, B separately, as restore-infer does"
    if (model.in_channels, testset.channels) == (3, 1):
        return "RGB model: run on R=G=B, scored on the luma of its output, as restore-infer does"
    return None


def run_model(model: BenchModel, lq: torch.Tensor, run: Run, baseline: bool = False) -> torch.Tensor:
    """One model's output for `lq` (1, C, H, W), channels adapted as restore-infer does; the baseline
    is one plain pass whatever --tile and --ensemble say."""
    x, post = adapt_channels(lq, model.in_channels)
    with torch.inference_mode():
        if baseline:
            out = inference_forward(model.loaded.net, x)
        else:
            out = inference_forward(model.loaded.net, x, run.tile, run.tile_pad, run.ensemble)
    return post(out)


def evaluate_set(testset: TestSet, folder: str, level: int, models: list[BenchModel], run: Run,
                 on_image: Optional[Callable] = None, progress: bool = True) -> SetResult:
    """Scores of the baseline and `models` (already checked to fit) on one set at one level.

    `on_image(index, item, outputs)` sees each image's degraded input, GT and the uint8 output of
    every model (by label), e.g. to save crops for the report.
    """
    dataset = build_dataset(testset.dataset_options(folder, level), "test")
    metrics = testset.metric_options(level, run.protocol)
    everyone = [baseline(testset.task, testset.channels, level), *models]
    result = SetResult(testset, level, [m.label for m in everyone], protocol=run.protocol)
    result.notes = {m.label: channel_note(m, testset) for m in models if channel_note(m, testset)}
    count = len(dataset) if run.max_images is None else min(run.max_images, len(dataset))
    for index in tqdm(range(count), desc=f"{testset.name} {testset.level_name(level)}", unit="img",
                      leave=False, disable=not progress):
        item = dataset[index]
        gt = tensor2img(item["gt"])
        lq = item["lq"].unsqueeze(0).to(run.device)
        row, outputs = {"name": item["key"]}, {}
        for position, model in enumerate(everyone):
            if position == 0 and testset.task == "sr" and run.protocol == "literature":
                out = bicubic_output(gt, level, "literature")  # the published rows' LR was never quantised
            else:
                out = tensor2img(run_model(model, lq, run, baseline=position == 0).cpu())
            data = {"img": out, "img2": gt, "gt_channels": item.get("gt_channels")}
            row[model.label] = {name: float(calculate_metric(data, opt, f"metric {name}"))
                                for name, opt in metrics.items()}
            outputs[model.label] = out
        result.images.append(row)
        if on_image is not None:
            on_image(index, item, outputs)
    return result
