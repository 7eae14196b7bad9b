"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017).

Option names, defaults and state_dict keys follow BasicSR's `EDSR`, so its checkpoints load:
conv_first, body.<i>.conv1/conv2, conv_after_body, upsample.<0,2,..>, conv_last. The input is in
[0, 1]; the forward subtracts the dataset mean and multiplies by img_range (255: the paper's scale).
`conv` swaps the block convs for a conv variant (restore/archs/layers/conv_factory.py).
"""
from typing import Optional

import torch
from torch import nn

from restore.archs.layers.conv_factory import conv_variant, make_conv
from restore.archs.layers.upsample import Upsample
from restore.utils.errors import OptionError
from restore.utils.registry import ARCH_REGISTRY


def channel_mean(rgb_mean, num_ch: int, where: str) -> torch.Tensor:
    """The (1, C, 1, 1) mean for `num_ch` channels; gray nets use the average of an RGB mean."""
    values = [float(v) for v in rgb_mean]
    if len(values) == num_ch:
        return torch.tensor(values).view(1, num_ch, 1, 1)
    if num_ch == 1:
        return torch.tensor([sum(values) / len(values)]).view(1, 1, 1, 1)
    raise OptionError(f"{where}: has {len(values)} values but the net has {num_ch} channels")


class ResidualBlock(nn.Module):
    """conv - ReLU - conv, times res_scale, plus the input (no batch norm)."""

    def __init__(self, num_feat: int, res_scale: float, conv=None):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = make_conv(conv, num_feat, num_feat, 3, position="body")
        self.conv2 = make_conv(conv, num_feat, num_feat, 3, position="body")
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        res = self.conv2(self.relu(self.conv1(x)))
        # x * 1 is exact: skipping it saves a pass over the activations forward and backward
        return x + (res if self.res_scale == 1 else res * self.res_scale)


@ARCH_REGISTRY.register()
class EDSR(nn.Module):
    """EDSR; the baseline is num_feat 64, num_block 16, res_scale 1; the paper's large model is
    num_feat 256, num_block 32, res_scale 0.1. upscale 1 gives a same-size restoration net."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4, res_scale: float = 1.0, img_range: float = 255.0,
                 rgb_mean: tuple[float, ...] = (0.4488, 0.4371, 0.4040), conv: Optional[dict] = None):
        super().__init__()
        conv = conv_variant(conv)
        self.img_range = img_range
        self.register_buffer("mean_in", channel_mean(rgb_mean, num_in_ch, "network_g.rgb_mean"), persistent=False)
        self.register_buffer("mean_out", channel_mean(rgb_mean, num_out_ch, "network_g.rgb_mean"), persistent=False)
        self.conv_first = make_conv(conv, num_in_ch, num_feat, 3, position="first")
        self.body = nn.Sequential(*[ResidualBlock(num_feat, res_scale, conv) for _ in range(num_block)])
        self.conv_after_body = make_conv(conv, num_feat, num_feat, 3, position="tail")
        self.upsample = Upsample(upscale, num_feat, conv)
        self.conv_last = make_conv(conv, num_feat, num_out_ch, 3, position="tail")

    def forward(self, x):
        x = self.conv_first((x - self.mean_in) * self.img_range)
        x = x + self.conv_after_body(self.body(x))
        return self.conv_last(self.upsample(x)) / self.img_range + self.mean_out
