"""A small U-Net for same-size restoration (denoising, JPEG deblocking), with a choice of
downsampling (strided conv, max pool or blur-pool) and of blurring after upsampling.

Level i (0 = full resolution) has num_feat * 2^i channels and two conv3x3-ReLU; between levels a
`downsample` layer (see restore/archs/layers/blurpool.py) halves the size and the next level's
first conv doubles the channels; the decoder upsamples with a transposed conv (kernel = stride) or
nearest + conv3x3, optionally blurs (`up_blur`), adds the encoder features of that level and runs
two conv3x3-ReLU. With `residual` the output is input + net(input).

Sizes that are not a multiple of `shift_period` = factor^(num_level-1) are padded at the bottom and
right (reflect, or circular with `padding_mode: circular`) and the output cropped back. With
`padding_mode: circular` every conv, pool and blur wraps around, so for sizes that are multiples of
`shift_period` the net commutes exactly with circular shifts by multiples of `shift_period`; other
shifts measure aliasing (restore/evaluation/shift_equivariance.py).
"""
from typing import Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs.layers.blurpool import Blur2d, make_downsample
from restore.archs.layers.conv_factory import PlainConv, conv_variant, make_conv
from restore.utils.errors import OptionError
from restore.utils.registry import ARCH_REGISTRY

DEFAULT_UP_BLUR = 3  # filter size used by `up_blur: true`


def _up_blur_size(up_blur) -> int:
    if up_blur is True:
        return DEFAULT_UP_BLUR
    if up_blur is False or up_blur in (0, 1):
        return 1
    if not 2 <= up_blur <= 7:
        raise OptionError(f"network_g.up_blur: expected true/false or a filter size in 2..7, got {up_blur!r}")
    return up_blur


@ARCH_REGISTRY.register()
class UNet(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 32, num_level: int = 3,
                 residual: bool = True, downsample: Optional[dict] = None,
                 up_mode: Literal["transposed", "nearest"] = "transposed", up_blur: Union[bool, int] = False,
                 padding_mode: Literal["zeros", "circular"] = "zeros", conv: Optional[dict] = None):
        super().__init__()
        if not 1 <= num_level <= 6:
            raise OptionError(f"network_g.num_level: expected 1..6, got {num_level}")
        if residual and num_in_ch != num_out_ch:
            raise OptionError(f"network_g.residual: needs num_in_ch == num_out_ch, got {num_in_ch} and {num_out_ch}")
        self.conv_opt = conv_variant(conv)
        if padding_mode != "zeros" and not isinstance(self.conv_opt, PlainConv):
            raise OptionError(f"network_g.padding_mode: {padding_mode} padding needs plain convs "
                              f"(network_g.conv.type: plain); conv variants pad with zeros")
        self.residual, self.padding_mode, self.up_mode = residual, padding_mode, up_mode
        blur = _up_blur_size(up_blur)
        chans = [num_feat * 2 ** i for i in range(num_level)]

        self.head = nn.Sequential(self._conv(num_in_ch, chans[0], "first"), nn.ReLU(inplace=True))
        self.encoders = nn.ModuleList([self._block(chans[0], chans[0])])
        self.downs = nn.ModuleList()
        for i in range(1, num_level):
            self.downs.append(make_downsample(downsample, chans[i - 1], padding_mode))
            self.encoders.append(self._block(chans[i - 1], chans[i]))
        self.factor = self.downs[0].factor if self.downs else make_downsample(downsample, 1).factor
        self.shift_period = self.factor ** (num_level - 1)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(num_level - 1)):
            self.ups.append(self._up(chans[i + 1], chans[i], blur))
            self.decoders.append(self._block(chans[i], chans[i]))
        self.tail = self._conv(chans[0], num_out_ch, "tail")

    def _conv(self, in_ch, out_ch, position, kernel_size=3):
        if self.padding_mode == "zeros":
            return make_conv(self.conv_opt, in_ch, out_ch, kernel_size, position=position)
        return nn.Conv2d(in_ch, out_ch, kernel_size, 1, kernel_size // 2, padding_mode=self.padding_mode)

    def _block(self, in_ch, out_ch):
        return nn.Sequential(self._conv(in_ch, out_ch, "body"), nn.ReLU(inplace=True),
                             self._conv(out_ch, out_ch, "body"), nn.ReLU(inplace=True))

    def _up(self, in_ch, out_ch, blur):
        pad = "circular" if self.padding_mode == "circular" else "reflect"
        if self.up_mode == "transposed":
            layers = [nn.ConvTranspose2d(in_ch, out_ch, self.factor, self.factor)]
            if blur > 1:
                layers.append(Blur2d(out_ch, blur, pad))
        else:
            layers = [nn.Upsample(scale_factor=self.factor, mode="nearest")]
            if blur > 1:
                layers.append(Blur2d(in_ch, blur, pad))
            layers.append(self._conv(in_ch, out_ch, "body"))
        return nn.Sequential(*layers)

    def _pad_to_period(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.shift_period, -w % self.shift_period
        if not ph and not pw:
            return x
        if self.padding_mode == "circular":
            return F.pad(x, (0, pw, 0, ph), mode="circular")
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feat = self.encoders[0](self.head(self._pad_to_period(x)))
        skips = [feat]
        for down, encoder in zip(self.downs, self.encoders[1:]):
            feat = encoder(down(feat))
            skips.append(feat)
        skips.pop()
        for up, decoder in zip(self.ups, self.decoders):
            feat = decoder(up(feat) + skips.pop())
        out = self.tail(feat)[..., :h, :w]
        return x + out if self.residual else out
