"""Anti-aliased down- and upsampling (blur-pool, Zhang, "Making Convolutional Networks
Shift-Invariant Again", ICML 2019), re-implemented from the paper's formulas, and the `downsample`
option every arch that downsamples can share.

A stride-s layer is only s-periodically shift-equivariant: it keeps one sample in s and aliases the
rest. Blur-pool low-passes with a binomial filter before subsampling. The filter of size f is the
outer product of the normalised binomial row C(f-1, k) / 2^(f-1) (f = 1 is plain subsampling,
3 is [1 2 1] / 4, ...), applied depthwise with padding floor((f-1)/2) before and ceil((f-1)/2) after,
so a stride-s output has ceil(H/s) rows. The filter is a fixed, non-persistent buffer (a function of
the options, not a weight), so checkpoints hold only learned parameters.

Recipes: `MaxBlurPool2d` (max pool at stride 1, then blur-pool), `BlurConv2d` (conv at stride 1,
activation, blur-pool: the blur goes after the nonlinearity), `BlurShortcut` (blur-pool, then the
1x1 projection of a residual shortcut) and `BlurUpsample` / `Blur2d` (blur at the high resolution
after upsampling).

Option spec (validated like any registry entry; errors name `network_g.downsample`):

    downsample: {type: stride, kernel_size: 3, stride: 2}        # conv k x k at stride 2 + act
    downsample: {type: maxpool, kernel_size: 2, stride: 2}       # nn.MaxPool2d
    downsample: {type: blurpool, filter_size: 4, stride: 2, base: max | conv | none,
                 kernel_size: ~, pad_mode: reflect | replicate | zero | circular | ~,
                 max_padding: same | valid}

`blurpool` with `base: max` anti-aliases `maxpool`, `base: conv` anti-aliases `stride` (the same
parameters; `filter_size: 1` gives back exactly the un-blurred layer), `base: none` is a
parameter-free blur + subsample (the replacement of average pooling). `pad_mode: ~` follows the
arch's conv padding (circular when the convs are circular, else reflect). `max_padding: valid`
(base max only) is the reference recipe's unpadded stride-1 max pool (see MaxBlurPool2d).
"""
import math
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from restore.utils.errors import OptionError
from restore.utils.registry import Registry

PadMode = Literal["reflect", "replicate", "zero", "circular"]
MaxPadding = Literal["same", "valid"]
PAD_MODES = ("reflect", "replicate", "zero", "circular")
MAX_FILTER_SIZE = 7
DEFAULT_WHERE = "network_g.downsample"

_TORCH_PAD = {"reflect": "reflect", "replicate": "replicate", "zero": "constant", "circular": "circular"}


def binomial_taps(filter_size: int) -> torch.Tensor:
    """The normalised binomial row of length `filter_size`: C(f-1, k) / 2^(f-1)."""
    _check_filter_size(filter_size)
    n = filter_size - 1
    return torch.tensor([math.comb(n, k) / 2 ** n for k in range(filter_size)], dtype=torch.float32)


def binomial_filter(filter_size: int) -> torch.Tensor:
    """The 2-D filter (outer product of the binomial rows), summing to 1."""
    taps = binomial_taps(filter_size)
    return taps[:, None] * taps[None, :]


def _check_filter_size(filter_size) -> None:
    if isinstance(filter_size, bool) or not isinstance(filter_size, int) \
            or not 1 <= filter_size <= MAX_FILTER_SIZE:
        raise ValueError(f"filter_size must be an integer in 1..{MAX_FILTER_SIZE}, got {filter_size!r}")


def _check_pad_mode(pad_mode) -> None:
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {pad_mode!r}")


def same_pad(x: torch.Tensor, size: int, pad_mode: str, value: float = 0.0) -> torch.Tensor:
    """Pad H and W by floor((size-1)/2) before and ceil((size-1)/2) after, so a size x size window
    at stride 1 keeps the size. Reflect needs the pad to be smaller than the map; tiny maps fall
    back to replicate."""
    before, after = (size - 1) // 2, size // 2
    if before == after == 0:
        return x
    mode = _TORCH_PAD[pad_mode]
    if mode == "reflect" and after >= min(x.shape[-2:]):
        mode = "replicate"
    if mode == "constant":
        return F.pad(x, (before, after, before, after), mode="constant", value=value)
    return F.pad(x, (before, after, before, after), mode=mode)


class BlurPool2d(nn.Module):
    """Depthwise binomial blur of size `filter_size`, then subsampling by `stride` (output ceil(H/s))."""

    def __init__(self, channels: int, filter_size: int = 4, stride: int = 2, pad_mode: PadMode = "reflect"):
        super().__init__()
        _check_filter_size(filter_size)
        _check_pad_mode(pad_mode)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        self.channels, self.filter_size, self.stride, self.pad_mode = channels, filter_size, stride, pad_mode
        kernel = binomial_filter(filter_size)[None, None].repeat(channels, 1, 1, 1)
        self.register_buffer("filt", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.filter_size == 1:
            return x[..., ::self.stride, ::self.stride]
        x = same_pad(x, self.filter_size, self.pad_mode)
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, filter_size={self.filter_size}, stride={self.stride}, pad_mode={self.pad_mode}"


class Blur2d(BlurPool2d):
    """The binomial blur alone (stride 1): the anti-aliasing step after upsampling. An even
    `filter_size` moves the image by half a pixel; use an odd one here."""

    def __init__(self, channels: int, filter_size: int = 3, pad_mode: PadMode = "reflect"):
        super().__init__(channels, filter_size, 1, pad_mode)


def sliding_max(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Max over every kernel_size x kernel_size window at stride 1 (no padding), as separable running
    maxima of shifted views: the same values as F.max_pool2d(x, k, 1), many times faster on CPU."""
    h, w = x.shape[-2] - kernel_size + 1, x.shape[-1] - kernel_size + 1
    rows = x[..., :h, :]
    for i in range(1, kernel_size):
        rows = torch.maximum(rows, x[..., i:i + h, :])
    out = rows[..., :w]
    for i in range(1, kernel_size):
        out = torch.maximum(out, rows[..., i:i + w])
    return out


class MaxBlurPool2d(nn.Module):
    """MaxPool(kernel_size, stride 1), then BlurPool2d(stride): the anti-aliased MaxPool(k, stride).
    With filter_size 1 and kernel_size 2 it equals nn.MaxPool2d(2, 2, ceil_mode=True).

    max_padding 'same' (the default) pads the stride-1 max pool so that the blur-pool sees an H x W
    map (output ceil(H / stride), every input pixel in kernel_size windows); 'valid' is the reference
    recipe (antialiased-cnns: nn.MaxPool2d(kernel_size, stride=1) unpadded, H - kernel_size + 1 rows
    into the blur-pool): the same values inside, other border values, and for odd sizes one row or
    column fewer (7 -> 3 instead of 4 at kernel 2, stride 2). Use 'valid' to reproduce that
    recipe's numbers or load its networks; see docs/blurpool.md."""

    def __init__(self, channels: int, kernel_size: int = 2, filter_size: int = 4, stride: int = 2,
                 pad_mode: PadMode = "reflect", max_padding: MaxPadding = "same"):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        if max_padding not in ("same", "valid"):
            raise ValueError(f"max_padding must be same or valid, got {max_padding!r}")
        self.kernel_size, self.pad_mode, self.max_padding = kernel_size, pad_mode, max_padding
        self.blurpool = BlurPool2d(channels, filter_size, stride, pad_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_padding == "same":
            # padding for the max: -inf under 'zero' so the border never wins, like nn.MaxPool2d's padding
            x = same_pad(x, self.kernel_size, self.pad_mode, value=-math.inf)
        elif min(x.shape[-2:]) < self.kernel_size:
            raise ValueError(f"MaxBlurPool2d(max_padding='valid'): a {x.shape[-2]}x{x.shape[-1]} map is "
                             f"smaller than the {self.kernel_size}x{self.kernel_size} max pool")
        return self.blurpool(sliding_max(x, self.kernel_size))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, max_padding={self.max_padding}"


class BlurConv2d(nn.Sequential):
    """conv (stride 1) -> activation -> BlurPool2d(stride): the anti-aliased strided conv + activation.
    With filter_size 1 it is the strided conv (same weights) followed by the activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 2, filter_size: int = 4,
                 pad_mode: PadMode = "reflect", padding_mode: str = "zeros", act: Optional[nn.Module] = None,
                 bias: bool = True):
        conv = nn.Conv2d(in_ch, out_ch, kernel_size, 1, kernel_size // 2, bias=bias, padding_mode=padding_mode)
        super().__init__(conv, act if act is not None else nn.ReLU(inplace=True),
                         BlurPool2d(out_ch, filter_size, stride, pad_mode))


class BlurShortcut(nn.Sequential):
    """BlurPool2d, then the 1x1 projection of a strided residual shortcut (both linear, so blurring
    first is equivalent and cheaper)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 2, filter_size: int = 4,
                 pad_mode: PadMode = "reflect", bias: bool = False):
        super().__init__(BlurPool2d(in_ch, filter_size, stride, pad_mode), nn.Conv2d(in_ch, out_ch, 1, bias=bias))


class BlurUpsample(nn.Sequential):
    """Nearest-neighbour upsampling by `scale`, then a binomial blur at the high resolution
    (filter_size 3 after x2 nearest gives a bilinear-like interpolation)."""

    def __init__(self, channels: int, scale: int = 2, filter_size: int = 3, pad_mode: PadMode = "reflect"):
        super().__init__(nn.Upsample(scale_factor=scale, mode="nearest"), Blur2d(channels, filter_size, pad_mode))


# --- the `downsample` option -------------------------------------------------------------------

DOWNSAMPLE_TYPES = Registry("downsample type")


def _default_act() -> nn.Module:
    return nn.ReLU(inplace=True)


def _conv_padding(kernel_size: int, stride: int) -> int:
    """Padding that gives ceil(H / stride) rows for even H (kernel 2/stride 2: 0, kernel 3: 1)."""
    return (kernel_size - stride + 1) // 2


@DOWNSAMPLE_TYPES.register(name="stride")
class StrideDown:
    """A learned k x k conv at `stride`, followed by the activation."""

    def __init__(self, kernel_size: int = 3, stride: int = 2):
        if kernel_size < stride:
            raise ValueError(f"kernel_size {kernel_size} is smaller than the stride {stride}")
        self.kernel_size, self.stride = kernel_size, stride

    def build(self, channels, padding_mode, act):
        return nn.Sequential(nn.Conv2d(channels, channels, self.kernel_size, self.stride,
                                       _conv_padding(self.kernel_size, self.stride), padding_mode=padding_mode),
                             act())


@DOWNSAMPLE_TYPES.register(name="maxpool")
class MaxPoolDown:
    """nn.MaxPool2d(kernel_size, stride), rounding the output size up."""

    def __init__(self, kernel_size: int = 2, stride: int = 2):
        self.kernel_size, self.stride = kernel_size, stride

    def build(self, channels, padding_mode, act):
        return nn.MaxPool2d(self.kernel_size, self.stride, ceil_mode=True)


@DOWNSAMPLE_TYPES.register(name="blurpool")
class BlurPoolDown:
    """Blur-pool: `base: max` (MaxBlurPool2d), `conv` (BlurConv2d) or `none` (BlurPool2d)."""

    def __init__(self, filter_size: int = 4, stride: int = 2, base: Literal["max", "conv", "none"] = "max",
                 kernel_size: Optional[int] = None, pad_mode: Optional[PadMode] = None,
                 max_padding: MaxPadding = "same"):
        _check_filter_size(filter_size)
        if max_padding != "same" and base != "max":
            raise ValueError("max_padding: only base 'max' has a max pool to pad")
        self.max_padding = max_padding
        self.filter_size, self.stride, self.base, self.pad_mode = filter_size, stride, base, pad_mode
        self.kernel_size = kernel_size if kernel_size is not None else {"max": 2, "conv": 3, "none": None}[base]
        if base == "none" and kernel_size is not None:
            raise ValueError("kernel_size: base 'none' has no kernel (it is a plain blur + subsample)")

    def build(self, channels, padding_mode, act):
        pad = self.pad_mode or ("circular" if padding_mode == "circular" else "reflect")
        if self.base == "max":
            return MaxBlurPool2d(channels, self.kernel_size, self.filter_size, self.stride, pad, self.max_padding)
        if self.base == "conv":
            return BlurConv2d(channels, channels, self.kernel_size, self.stride, self.filter_size, pad,
                              padding_mode, act())
        return BlurPool2d(channels, self.filter_size, self.stride, pad)


def make_downsample(opt: Optional[dict], channels: int, padding_mode: str = "zeros", act=_default_act,
                    where: str = DEFAULT_WHERE) -> nn.Module:
    """Build the downsampling layer an arch's `downsample` option names (None: a stride-2 conv).

    `padding_mode` is the arch's conv padding ('zeros' or 'circular'); `act` makes the activation
    of the conv-based types. The returned module has an attribute `factor` (its stride).
    """
    if opt is None:
        opt = {"type": "stride"}
    if not isinstance(opt, dict):
        raise OptionError(f"{where}: expected a mapping like {{type: blurpool, filter_size: 4}}, got {opt!r}")
    try:
        spec = DOWNSAMPLE_TYPES.build(opt, where)
        if isinstance(spec.stride, bool) or spec.stride < 2:
            raise ValueError(f"stride must be >= 2 to downsample, got {spec.stride}")
        layer = spec.build(channels, padding_mode, act)
    except ValueError as e:
        raise OptionError(f"{where}: {e}") from None
    layer.factor = spec.stride
    return layer
