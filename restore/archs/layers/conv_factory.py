"""The conv-variant mechanism: archs build every conv a variant may replace through `make_conv`.

An arch takes an option `conv: {type: plain | sparse_group | ..., <variant keys>}` and passes it,
with each conv's `position` in the net, to `make_conv`. The variant decides which positions it
replaces; the others stay plain convs. Positions:

    first  the first conv of the net, the one that sees the image
    body   a conv inside the repeated blocks (feature -> feature)
    tail   convs after the blocks (fusion, upsampler, reconstruction)
    skip   a learned global skip from the input image (WDSR's 5x5)

A new variant is a `ConvVariant` subclass in a module `restore/archs/layers/<name>_conv.py`,
registered with `@CONV_VARIANTS.register(name='<type>')`; its constructor's keyword arguments are
the option keys (validated like any registry entry, so a typo is an OptionError naming
`network_g.conv`). This module imports every `*_conv.py` beside it, so archs need no change.
"""
import importlib
import os

from torch import nn

from restore.archs.layers.weight_norm import WeightNormConv2d
from restore.utils.errors import OptionError
from restore.utils.registry import Registry

POSITIONS = ("first", "body", "tail", "skip")
DEFAULT_WHERE = "network_g.conv"

CONV_VARIANTS = Registry("conv variant")


def plain_conv(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, bias: bool = True,
               weight_norm: bool = False) -> nn.Module:
    """A 'same'-padded nn.Conv2d, or its weight-normalised twin."""
    if weight_norm:
        return WeightNormConv2d(in_ch, out_ch, kernel_size, stride, bias)
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=bias)


class ConvVariant:
    """Base of conv variants. Constructor keyword arguments = the variant's option keys."""

    where = DEFAULT_WHERE  # set by `conv_variant`, for error messages
    positions = frozenset(POSITIONS)

    def replaces(self, position: str) -> bool:
        return position in self.positions

    def build(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, bias: bool,
              weight_norm: bool) -> nn.Module:
        raise NotImplementedError

    def build_at(self, position: str, in_ch: int, out_ch: int, kernel_size: int, stride: int, bias: bool,
                 weight_norm: bool) -> nn.Module:
        """The layer for a conv at `position` (one this variant replaces)."""
        return self.build(in_ch, out_ch, kernel_size, stride, bias, weight_norm)


@CONV_VARIANTS.register(name="plain")
class PlainConv(ConvVariant):
    """Ordinary convolutions everywhere (the default)."""

    def build(self, in_ch, out_ch, kernel_size, stride, bias, weight_norm):
        return plain_conv(in_ch, out_ch, kernel_size, stride, bias, weight_norm)


class LayeredVariant(ConvVariant):
    """`top` where it replaces a position, else `base`: how an arch with a built-in variant (NSR's
    sparse-group body) still takes a user's `conv` option (e.g. a CSC first layer)."""

    def __init__(self, top: ConvVariant, base: ConvVariant):
        self.top, self.base = top, base
        self.where = top.where
        self.positions = top.positions | base.positions

    def build_at(self, position, in_ch, out_ch, kernel_size, stride, bias, weight_norm):
        variant = self.top if self.top.replaces(position) else self.base
        return variant.build_at(position, in_ch, out_ch, kernel_size, stride, bias, weight_norm)


def conv_variant(conv_opt, where: str = DEFAULT_WHERE) -> ConvVariant:
    """Parse an arch's `conv` option (None, a dict with `type`, or an already parsed variant)."""
    if conv_opt is None:
        return PlainConv()
    if isinstance(conv_opt, ConvVariant):
        return conv_opt
    if not isinstance(conv_opt, dict):
        raise OptionError(f"{where}: expected a mapping like {{type: plain}}, got {conv_opt!r}")
    try:
        variant = CONV_VARIANTS.build(conv_opt, where)
    except ValueError as e:
        raise OptionError(f"{where}: {e}") from None
    variant.where = where
    return variant


def make_conv(conv_opt, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1,
              bias: bool = True, position: str = "body", weight_norm: bool = False) -> nn.Module:
    """Build the conv at `position` of an arch: the variant's layer if it replaces that position,
    else a plain conv. `weight_norm` is the arch's choice for its plain convs (variants may follow
    it). Padding is always kernel_size // 2."""
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    variant = conv_variant(conv_opt)
    if not variant.replaces(position):
        return plain_conv(in_ch, out_ch, kernel_size, stride, bias, weight_norm)
    try:
        return variant.build_at(position, in_ch, out_ch, kernel_size, stride, bias, weight_norm)
    except ValueError as e:
        raise OptionError(f"{variant.where}: {e}") from None


def _import_variants():
    here = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(here)):
        if name.endswith("_conv.py"):
            importlib.import_module(f"restore.archs.layers.{name[:-3]}")


_import_variants()
