"""WDSR-A (Yu et al., "Wide Activation for Efficient and Accurate Image Super-Resolution", 2018) and
NSR (Fan et al., "Neural Sparse Representation for Image Restoration", NeurIPS 2020), as in the NSR
reference code (ychfan/pt_ir `models/wdsr_nsr.py`).

    x - img_mean -> head 3x3 -> blocks [conv 3x3 (C -> C*w), ReLU, conv 3x3 (C*w -> C), + x]
                 -> tail 3x3 (C -> out*s^2)  +  skip 5x5 (in -> out*s^2) -> PixelShuffle(s) + img_mean

With `unshuffle` u > 1 the image is first pixel-unshuffled by u (in -> in*u^2 channels at 1/u of the
size, FFDNet's trick) and the net above runs there with s = upscale*u: a denoiser then sees u^2 times
the image per MAC and has u times the receptive field, at about u^2 fewer MACs per pixel.

Every conv is weight-normalised; g starts at 2 for a block's first conv, 1/sqrt(num_block) for its
second (instead of a residual scale), 1 elsewhere; biases start at 0. With upscale 1 and as many
input as output channels the skip is the identity (residual learning: the NSR denoiser/deblocker).
NSR is WDSR whose block convs are sparse-group convs (restore/archs/layers/sparse_group_conv.py).
"""
import math
from typing import Literal, Optional

from torch import nn
from torch.nn import functional as F

from restore.archs.layers.conv_factory import LayeredVariant, conv_variant, make_conv
from restore.archs.layers.sparse_group_conv import Formulation, GateType
from restore.archs.layers.tiles import image_to_tiles, tile_layout, tiles_to_image
from restore.archs.layers.weight_norm import init_weight_norm
from restore.utils.errors import OptionError
from restore.utils.registry import ARCH_REGISTRY

TILE_PAD = 4       # the reference's tile margin, dropped after the body
TILE_OVERLAP = 8   # overlap of neighbouring tile cores


class WDSRBlock(nn.Module):
    def __init__(self, num_feat: int, width_mult: int, num_block: int, conv=None):
        super().__init__()
        wide = num_feat * width_mult
        self.conv1 = make_conv(conv, num_feat, wide, 3, position="body", weight_norm=True)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = make_conv(conv, wide, num_feat, 3, position="body", weight_norm=True)
        init_weight_norm(self.conv1, 2.0)
        init_weight_norm(self.conv2, 1.0 / math.sqrt(num_block))

    def forward(self, x):
        # conv output first: the sum then keeps its memory layout (see per_sample_conv)
        return self.conv2(self.relu(self.conv1(x))) + x


@ARCH_REGISTRY.register()
class WDSR(nn.Module):
    """WDSR-A. The defaults (32 features, width 4, 16 blocks) are the WDSR baseline: 1,190,100
    parameters at x2. `conv` swaps the block convs for a conv variant. `unshuffle` u > 1 runs the net
    on the image pixel-unshuffled by u (FFDNet's layout): about u^2 fewer MACs per pixel and u times
    the receptive field, for denoisers and deblockers; any image size (odd sides are padded)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 32, num_block: int = 16,
                 upscale: int = 4, width_mult: int = 4, img_mean: float = 0.5, conv: Optional[dict] = None,
                 unshuffle: int = 1):
        super().__init__()
        for key, value in (("upscale", upscale), ("width_mult", width_mult), ("num_feat", num_feat),
                           ("unshuffle", unshuffle)):
            if value < 1:
                raise OptionError(f"network_g.{key}: must be >= 1, got {value}")
        conv = conv_variant(conv)
        self.upscale, self.img_mean, self.unshuffle = upscale, img_mean, unshuffle
        self.tile_size: Optional[int] = None  # NSR's tiled inference; off for plain WDSR
        num_in_ch *= unshuffle * unshuffle
        num_out = num_out_ch * (upscale * unshuffle) ** 2
        self.head = make_conv(conv, num_in_ch, num_feat, 3, position="first", weight_norm=True)
        self.body = nn.Sequential(*[WDSRBlock(num_feat, width_mult, num_block, conv) for _ in range(num_block)])
        self.tail = make_conv(conv, num_feat, num_out, 3, position="tail", weight_norm=True)
        if num_in_ch == num_out:
            self.skip = nn.Identity()
        else:
            self.skip = make_conv(conv, num_in_ch, num_out, 5, position="skip", weight_norm=True)
        for layer in (self.head, self.tail, self.skip):
            init_weight_norm(layer, 1.0)
        self.upsample = nn.PixelShuffle(upscale * unshuffle)

    def features(self, x):
        """head -> blocks -> tail, at the input resolution (what tiled inference runs per tile)."""
        return self.tail(self.body(self.head(x)))

    def uses_tiles(self, x) -> bool:
        return (self.tile_size is not None and not self.training
                and min(x.shape[-2:]) >= 4 * self.tile_size)

    def tiled_features(self, x):
        stride = self.tile_size - 2 * TILE_PAD - TILE_OVERLAP
        layout = tile_layout(x.shape[-2], x.shape[-1], self.tile_size, TILE_PAD, stride)
        tiles = self.features(image_to_tiles(x, layout, self.tile_size, TILE_PAD))
        return tiles_to_image(tiles, layout, x.shape[-2:], TILE_PAD)

    def forward(self, x):
        x = x - self.img_mean
        if self.unshuffle > 1:
            h, w = x.shape[-2:]
            s = self.unshuffle
            # sides that s does not divide: repeat the last rows/columns, cropped off again below
            x = F.pixel_unshuffle(F.pad(x, (0, -w % s, 0, -h % s), mode="replicate"), s)
        body = self.tiled_features(x) if self.uses_tiles(x) else self.features(x)
        out = self.upsample(body + self.skip(x)) + self.img_mean
        if self.unshuffle > 1:
            out = out[..., :h * self.upscale, :w * self.upscale]
        return out


@ARCH_REGISTRY.register()
class NSR(WDSR):
    """WDSR-A with sparse-group block convs (k sparsity groups x d cardinal groups). The defaults are
    the released "EDSR+NSR" small model: 64 features, width 1, 16 blocks, k 4, d 16 (4,877,812
    parameters at x2). gate_region 'tile' reproduces the reference inference: in eval mode, when both
    sides of the input are >= 4 * tile_size, the body runs on tile_size tiles (reflect pad 4,
    stride tile_size - 16), each with its own gates; the 5x5 skip runs on the whole image.
    `formulation` says how the sparse-group convs run (auto: the fastest measured on this machine;
    grouped: the reference; all compute the same, restore/archs/layers/sparse_group_conv.py).
    `conv` lays another conv variant over the sparse-group body at the positions it names:
    `{type: csc, where: first}` makes the head a CSC layer; `where: all` also replaces the body.
    `unshuffle` as for WDSR."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4, width_mult: int = 1, k: int = 4, d: int = 16, gate: GateType = "softmax",
                 temperature: float = 1.0, img_mean: float = 0.5,
                 gate_region: Literal["image", "tile"] = "image", tile_size: int = 48,
                 conv: Optional[dict] = None, formulation: Formulation = "auto", unshuffle: int = 1):
        if tile_size <= 2 * TILE_PAD + TILE_OVERLAP:
            raise OptionError(f"network_g.tile_size: must be > {2 * TILE_PAD + TILE_OVERLAP}, got {tile_size}")
        sparse = conv_variant({"type": "sparse_group", "k": k, "d": d, "gate": gate,
                               "temperature": temperature, "formulation": formulation}, where="network_g")
        if conv is not None:
            sparse = LayeredVariant(conv_variant(conv), sparse)
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale, width_mult, img_mean, conv=sparse,
                         unshuffle=unshuffle)
        self.gate_region = gate_region
        self.tile_size = tile_size if gate_region == "tile" else None
