"""Small things several tests share: a tiny SR net, test images, option files, autograd graph nodes."""
import os

import numpy as np
import torch
from torch import nn

from restore.utils.img_io import imwrite
from restore.utils.registry import ARCH_REGISTRY
from restore.utils.yaml_io import dump_yaml


@ARCH_REGISTRY.register()
class TinyTestSR(nn.Module):
    """conv-relu-conv + pixel shuffle: trains in seconds, enough to see a loss fall."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 8, upscale: int = 2):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(num_feat, num_out_ch * upscale ** 2, 3, padding=1))
        self.up = nn.PixelShuffle(upscale)
        self.upscale = upscale

    def forward(self, x):
        base = torch.nn.functional.interpolate(x, scale_factor=self.upscale, mode="nearest")
        return base + self.up(self.body(x))


def make_images(folder, n=6, size=(40, 48), seed=0, channels=3):
    """Smooth random colour images (sums of gradients and blobs), saved as PNG."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[0:size[0], 0:size[1]] / max(size)
    for i in range(n):
        img = np.zeros((*size, channels))
        for c in range(channels):
            a, b, f = rng.uniform(-1, 1, 3)
            img[:, :, c] = 0.5 + 0.25 * np.sin(6 * f * xx + a) * np.cos(5 * yy + b) + 0.2 * a * xx
        imwrite(os.path.join(folder, f"img{i:02d}.png"), (img.clip(0, 1) * 255).round().astype(np.uint8))
    return folder


def train_options(tmp_path, **over):
    """A complete, valid training option dict on synthetic images in tmp_path."""
    train_dir = make_images(os.path.join(tmp_path, "train"), n=6)
    val_dir = make_images(os.path.join(tmp_path, "val"), n=2, seed=1)
    opt = {
        "name": "tiny", "model_type": "SRModel", "scale": 2, "device": "cpu", "manual_seed": 3,
        "datasets": {
            "train": {"name": "tr", "type": "SRImageDataset", "dataroot_gt": train_dir, "gt_size": 16,
                      "batch_size_per_gpu": 4, "num_worker_per_gpu": 0, "dataset_enlarge_ratio": 2},
            "val": {"name": "va", "type": "SRImageDataset", "dataroot_gt": val_dir},
        },
        "network_g": {"type": "TinyTestSR", "num_feat": 8, "upscale": 2},
        "path": {"experiments_root": os.path.join(tmp_path, "experiments")},
        "train": {"ema_decay": 0.9, "optim_g": {"type": "Adam", "lr": 2e-3},
                  "scheduler": {"type": "MultiStepLR", "milestones": [5], "gamma": 0.5},
                  "total_iter": 8, "pixel_opt": {"type": "L1Loss"}},
        "val": {"val_freq": 4, "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2}}},
        "logger": {"print_freq": 2, "save_checkpoint_freq": 2, "use_tb_logger": False},
    }
    for dotted, value in over.items():
        node = opt
        parts = dotted.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return opt


def write_options(path, opt):
    with open(path, "w") as f:
        f.write(dump_yaml(opt))
    return str(path)


def graph_nodes(fn) -> set:
    """The names of every autograd node reachable from `fn` (an output's grad_fn)."""
    seen, todo = set(), [fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo += [next_fn for next_fn, _ in node.next_functions]
    return {node.name() for node in seen}
