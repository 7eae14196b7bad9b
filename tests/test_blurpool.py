"""Blur-pool layers (binomial filters vs OpenCV, recipes vs their un-blurred forms), the shared
`downsample` option and the UNet arch that uses it."""
import glob
import math
import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restore.archs import build_network
from restore.archs.layers.blurpool import (Blur2d, BlurConv2d, BlurPool2d, BlurShortcut, BlurUpsample,
                                           MaxBlurPool2d, binomial_filter, binomial_taps, make_downsample,
                                           sliding_max)
from restore.utils.errors import OptionError
from restore.utils.options import parse_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Pascal's triangle, written out by hand.
BINOMIAL_ROWS = {1: [1], 2: [1, 1], 3: [1, 2, 1], 4: [1, 3, 3, 1], 5: [1, 4, 6, 4, 1],
                 6: [1, 5, 10, 10, 5, 1], 7: [1, 6, 15, 20, 15, 6, 1]}
CV2_BORDER = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "zero": cv2.BORDER_CONSTANT}


@pytest.mark.parametrize("size", sorted(BINOMIAL_ROWS))
def test_filters_are_normalised_binomial_rows(size):
    row = np.array(BINOMIAL_ROWS[size], dtype=np.float64)
    np.testing.assert_allclose(binomial_taps(size).numpy(), row / row.sum(), rtol=1e-7)
    f2 = binomial_filter(size).numpy()
    np.testing.assert_allclose(f2, np.outer(row, row) / row.sum() ** 2, rtol=1e-6)
    layer = BlurPool2d(3, size)
    assert layer.filt.shape == (3, 1, size, size)
    assert torch.equal(layer.filt[2, 0], binomial_filter(size))
    assert "filt" not in layer.state_dict() and not list(layer.parameters())


@pytest.mark.parametrize("size", [0, 8, 2.0, True])
def test_filter_size_out_of_range(size):
    with pytest.raises(ValueError, match="filter_size"):
        BlurPool2d(2, size)


@pytest.mark.parametrize("shape", [(12, 16), (13, 9)])
@pytest.mark.parametrize("stride", [2, 3])
def test_filter_size_1_is_subsampling(shape, stride):
    x = torch.rand(2, 3, *shape)
    out = BlurPool2d(3, 1, stride)(x)
    assert torch.equal(out, x[..., ::stride, ::stride])


@pytest.mark.parametrize("size", range(1, 8))
@pytest.mark.parametrize("pad_mode", ["reflect", "replicate", "circular", "zero"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_constant_image_stays_constant_and_size_is_ceil(size, pad_mode, stride):
    x = torch.full((1, 2, 11, 14), 0.37)
    out = BlurPool2d(2, size, stride, pad_mode)(x)
    assert out.shape[-2:] == (math.ceil(11 / stride), math.ceil(14 / stride))
    if pad_mode == "zero":  # zeros darken the border only: the interior stays constant
        m = (size + stride - 1) // stride
        out = out[..., m:-m or None, m:-m or None]
    torch.testing.assert_close(out, torch.full_like(out, 0.37), rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", range(2, 8))
@pytest.mark.parametrize("pad_mode", ["reflect", "replicate", "zero", "circular"])
def test_blur_matches_opencv(size, pad_mode):
    """Blur at stride 1 vs cv2.sepFilter2D with the anchor at floor((f-1)/2), then subsampled."""
    rng = np.random.default_rng(size)
    img = rng.random((17, 20)).astype(np.float32)
    taps = np.array(BINOMIAL_ROWS[size], np.float32) / 2 ** (size - 1)
    anchor = ((size - 1) // 2, (size - 1) // 2)
    if pad_mode == "circular":  # OpenCV filters do not wrap: pad with numpy, filter, keep the middle
        before, after = (size - 1) // 2, size // 2
        padded = np.pad(img, ((before, after), (before, after)), mode="wrap")
        ref = cv2.sepFilter2D(padded, -1, taps, taps, anchor=anchor, borderType=cv2.BORDER_REFLECT_101)
        ref = ref[before:before + 17, before:before + 20]
    else:
        ref = cv2.sepFilter2D(img, -1, taps, taps, anchor=anchor, borderType=CV2_BORDER[pad_mode])
    x = torch.from_numpy(img)[None, None]
    np.testing.assert_allclose(Blur2d(1, size, pad_mode)(x)[0, 0].numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(BlurPool2d(1, size, 2, pad_mode)(x)[0, 0].numpy(), ref[::2, ::2], atol=1e-6)


@pytest.mark.parametrize("shape,pad_mode", [((12, 16), "reflect"), ((12, 16), "circular"), ((13, 9), "zero")])
def test_maxblurpool_with_filter_1_is_maxpool(shape, pad_mode):
    x = torch.randn(2, 4, *shape)
    ours = MaxBlurPool2d(4, kernel_size=2, filter_size=1, pad_mode=pad_mode)(x)
    assert torch.equal(ours, F.max_pool2d(x, 2, 2, ceil_mode=True))


@pytest.mark.parametrize("k", [2, 3])
def test_sliding_max_equals_maxpool_with_gradients(k):
    x = torch.randn(2, 3, 11, 14, requires_grad=True)
    y = torch.randn(2, 3, 11, 14, requires_grad=True)
    with torch.no_grad():
        y.copy_(x)
    ours, ref = sliding_max(x, k), F.max_pool2d(y, k, 1)
    assert torch.equal(ours, ref)
    g = torch.randn_like(ref)
    ours.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, y.grad)


def test_blurconv_with_filter_1_is_the_strided_conv_and_loads_its_weights():
    torch.manual_seed(0)
    strided = make_downsample({"type": "stride"}, 6)
    blur1 = make_downsample({"type": "blurpool", "base": "conv", "filter_size": 1}, 6)
    blur5 = make_downsample({"type": "blurpool", "base": "conv", "filter_size": 5}, 6)
    blur1.load_state_dict(strided.state_dict())
    blur5.load_state_dict(strided.state_dict())  # same parameters: fine-tune from a strided net
    x = torch.randn(1, 6, 14, 10)
    conv = strided[0]
    expected = F.relu(F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1))
    torch.testing.assert_close(blur1(x), expected)
    torch.testing.assert_close(strided(x), expected)
    assert blur5(x).shape == expected.shape and not torch.allclose(blur5(x), expected)


def test_blur_shortcut_equals_projection_then_blur():
    torch.manual_seed(1)
    shortcut = BlurShortcut(4, 6, stride=2, filter_size=3)
    x = torch.randn(1, 4, 12, 12)
    proj = F.conv2d(x, shortcut[1].weight)
    torch.testing.assert_close(shortcut(x), BlurPool2d(6, 3, 2)(proj), atol=1e-5, rtol=1e-5)


def test_blur_upsample():
    x = torch.full((1, 3, 5, 7), 0.6)
    up = BlurUpsample(3, 2, 3)
    torch.testing.assert_close(up(x), torch.full((1, 3, 10, 14), 0.6))
    # nearest x2 + [1 2 1]/4 on a step gives the half-way values of linear interpolation
    step = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(4, 1)[None, None]
    row = BlurUpsample(1, 2, 3, "replicate")(step)[0, 0, 0]
    torch.testing.assert_close(row, torch.tensor([0, 0, 0, 0.25, 0.75, 1, 1, 1.0]))


def test_blurconv_applies_the_activation_before_the_blur():
    layer = BlurConv2d(2, 2, 3, 2, 3)
    assert [type(m) for m in layer] == [nn.Conv2d, nn.ReLU, BlurPool2d]


def test_make_downsample_errors():
    with pytest.raises(OptionError, match=r"network_g\.downsample\.type: unknown downsample type 'blurpol'"):
        make_downsample({"type": "blurpol"}, 4)
    with pytest.raises(OptionError, match=r"network_g\.downsample: unknown key 'filter'"):
        make_downsample({"type": "blurpool", "filter": 3}, 4)
    with pytest.raises(OptionError, match=r"network_g\.downsample: filter_size must be"):
        make_downsample({"type": "blurpool", "filter_size": 9}, 4)
    with pytest.raises(OptionError, match=r"network_g\.downsample\.pad_mode"):
        make_downsample({"type": "blurpool", "pad_mode": "mirror"}, 4)
    with pytest.raises(OptionError, match=r"network_g\.downsample: stride must be >= 2"):
        make_downsample({"type": "maxpool", "stride": 1}, 4)
    with pytest.raises(OptionError, match=r"network_g\.enc\.down"):
        make_downsample("blurpool", 4, where="network_g.enc.down")
    assert make_downsample(None, 4).factor == 2 and make_downsample({"type": "maxpool", "stride": 3}, 4).factor == 3


def test_circular_arch_padding_makes_the_blur_circular():
    layer = make_downsample({"type": "blurpool", "base": "none"}, 2, padding_mode="circular")
    assert layer.pad_mode == "circular"
    assert make_downsample({"type": "blurpool", "base": "none"}, 2).pad_mode == "reflect"


DOWNSAMPLES = [{"type": "stride"}, {"type": "maxpool"}, {"type": "blurpool", "filter_size": 3},
               {"type": "blurpool", "base": "conv", "filter_size": 5, "pad_mode": "replicate"},
               {"type": "blurpool", "base": "none", "filter_size": 7}]


@pytest.mark.parametrize("downsample", DOWNSAMPLES, ids=lambda d: f"{d['type']}-{d.get('base', '')}")
@pytest.mark.parametrize("up", [{"up_mode": "transposed", "up_blur": False}, {"up_mode": "nearest", "up_blur": 5}])
def test_unet_builds_with_each_downsample(downsample, up):
    net = build_network({"type": "UNet", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 4, "num_level": 3,
                         "downsample": downsample, **up})
    assert net.shift_period == 4
    x = torch.rand(2, 1, 37, 30)  # not a multiple of 4: padded and cropped back
    assert net(x).shape == x.shape
    n_params = sum(p.numel() for p in net.parameters())
    learned_down = downsample["type"] == "stride" or downsample.get("base") == "conv"
    base = build_network({"type": "UNet", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 4, "num_level": 3,
                          "downsample": {"type": "stride" if learned_down else "maxpool"}, **up})
    assert n_params == sum(p.numel() for p in base.parameters())


def test_unet_residual_and_levels():
    net = build_network({"type": "UNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_level": 4,
                         "residual": True})
    assert net.shift_period == 8
    torch.nn.init.zeros_(net.tail.weight)
    torch.nn.init.zeros_(net.tail.bias)
    x = torch.rand(1, 3, 20, 27)
    assert torch.equal(net(x), x)
    one = build_network({"type": "UNet", "num_feat": 4, "num_level": 1})
    assert one.shift_period == 1 and one(x).shape == x.shape


def test_unet_option_errors():
    with pytest.raises(OptionError, match=r"network_g\.downsample\.type: unknown downsample type 'avgpool'"):
        build_network({"type": "UNet", "downsample": {"type": "avgpool"}})
    with pytest.raises(OptionError, match=r"network_g\.padding_mode"):
        build_network({"type": "UNet", "padding_mode": "reflect"})
    with pytest.raises(OptionError, match=r"network_g\.padding_mode: circular padding needs plain convs"):
        build_network({"type": "UNet", "padding_mode": "circular", "conv": {"type": "sparse_group"}})
    with pytest.raises(OptionError, match=r"network_g\.up_blur"):
        build_network({"type": "UNet", "up_blur": 9})
    with pytest.raises(OptionError, match=r"network_g\.residual"):
        build_network({"type": "UNet", "num_in_ch": 1, "num_out_ch": 3})


def test_unet_circular_padding_reaches_every_conv():
    net = build_network({"type": "UNet", "num_feat": 4, "padding_mode": "circular",
                         "downsample": {"type": "blurpool", "base": "conv"}, "up_blur": True})
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.padding != (0, 0)]
    blurs = [m for m in net.modules() if isinstance(m, BlurPool2d)]
    assert convs and all(m.padding_mode == "circular" for m in convs)
    assert blurs and all(m.pad_mode == "circular" for m in blurs)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "options", "train", "UNet", "*.yml"))),
                         ids=os.path.basename)
def test_unet_option_files_parse_and_build(path, data_root):
    opt = parse_options(path, is_train=True, data_root=data_root)
    net = build_network(opt["network_g"])
    x = torch.rand(1, opt["network_g"]["num_in_ch"], 24, 20)
    assert net(x).shape == x.shape


def reference_maxblurpool(x, filter_size=4, stride=2):
    """antialiased-cnns' recipe from its description: nn.MaxPool2d(2, stride=1) unpadded, then a
    reflect pad of floor/ceil((f-1)/2) and the depthwise binomial filter at `stride`."""
    x = torch.nn.MaxPool2d(2, stride=1)(x)
    row = torch.tensor([math.comb(filter_size - 1, i) for i in range(filter_size)], dtype=x.dtype)
    filt = (row[:, None] * row[None, :]) / row.sum() ** 2
    before, after = (filter_size - 1) // 2, math.ceil((filter_size - 1) / 2)
    x = F.pad(x, (before, after, before, after), mode="reflect")
    return F.conv2d(x, filt[None, None].repeat(x.shape[1], 1, 1, 1), stride=stride, groups=x.shape[1])


@pytest.mark.parametrize("shape", [(16, 12), (15, 9), (7, 8)])
@pytest.mark.parametrize("filter_size", [3, 4, 5])
def test_maxblurpool_valid_is_the_reference_recipe(shape, filter_size):
    x = torch.randn(2, 5, *shape)
    ours = MaxBlurPool2d(5, 2, filter_size, 2, "reflect", max_padding="valid")(x)
    want = reference_maxblurpool(x, filter_size)
    assert ours.shape == want.shape
    assert torch.allclose(ours, want, atol=1e-6, rtol=0)
    same = MaxBlurPool2d(5, 2, filter_size, 2, "reflect")(x)
    h, w = shape
    assert same.shape[-2:] == (math.ceil(h / 2), math.ceil(w / 2))
    assert want.shape[-2:] == (math.ceil((h - 1) / 2), math.ceil((w - 1) / 2))  # odd sizes lose a row
    if h % 2 == 0 and w % 2 == 0:  # same size: the interior agrees, the last row and column differ
        assert torch.allclose(same[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1], atol=1e-6)
        assert not torch.allclose(same, want, atol=1e-6)


def test_max_padding_option_in_downsample_spec():
    layer = make_downsample({"type": "blurpool", "max_padding": "valid"}, 4)
    assert isinstance(layer, MaxBlurPool2d) and layer.max_padding == "valid"
    assert layer(torch.randn(1, 4, 9, 9)).shape[-2:] == (4, 4)
    with pytest.raises(OptionError, match="max_padding: only base 'max'"):
        make_downsample({"type": "blurpool", "base": "conv", "max_padding": "valid"}, 4)
