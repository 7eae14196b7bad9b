"""Registered network architectures: shapes, parameter counts, BasicSR EDSR compatibility, options."""
import math
import os

import pytest
import torch

from restore.archs import ARCH_REGISTRY, build_network
from restore.archs.layers.sparse_group_conv import SparseGroupConv2d
from restore.archs.layers.weight_norm import WeightNormConv2d
from restore.utils.errors import OptionError

from restore.benchmark.basicsr_reference import basicsr_dir, load_basicsr_training  # BasicSR by file path

# Tiny settings per arch, so every forward runs in milliseconds.
TINY = {
    "EDSR": {"num_feat": 8, "num_block": 2},
    "WDSR": {"num_feat": 8, "num_block": 2, "width_mult": 2},
    "NSR": {"num_feat": 8, "num_block": 2, "k": 2, "d": 4},
    "DnCNN": {"num_feat": 8, "num_layer": 4},
    "Bicubic": {},
    "UNet": {"num_feat": 4, "num_level": 2},
}


def test_every_registered_arch_has_a_tiny_config():
    assert set(ARCH_REGISTRY.keys()) >= set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_forward_shapes(name, scale):
    opt = {"type": name, **TINY[name]}
    if name in ("DnCNN", "UNet"):
        if scale != 1:
            pytest.skip(f"{name} is a same-size net")
    else:
        opt["upscale"] = scale
    net = build_network(opt).eval()
    x = torch.rand(2, 1 if name == "DnCNN" else 3, 9, 10)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, x.shape[1], 9 * scale, 10 * scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("scale, params", [(2, 4_877_812), (3, 4_887_637), (4, 4_901_392)])
def test_nsr_parameter_counts_equal_the_released_models(scale, params):
    net = build_network({"type": "NSR", "upscale": scale})  # 16 blocks, 64 feat, width 1, k 4, d 16
    assert sum(p.numel() for p in net.parameters()) == params


def test_wdsr_baseline_parameter_count():
    # ychfan/wdsr README: "WDSR small x2 1,190,100" (32 features, width 4, 16 blocks).
    net = build_network({"type": "WDSR", "upscale": 2})
    assert sum(p.numel() for p in net.parameters()) == 1_190_100


def test_wdsr_weight_norm_initialisation():
    net = build_network({"type": "NSR", "num_feat": 16, "num_block": 4, "k": 2, "d": 4, "upscale": 2})
    block = net.body[1]
    assert isinstance(block.conv1, SparseGroupConv2d) and isinstance(net.head, WeightNormConv2d)
    assert torch.equal(block.conv1.weight_g, torch.full_like(block.conv1.weight_g, 2.0))
    assert torch.equal(block.conv2.weight_g, torch.full_like(block.conv2.weight_g, 1 / math.sqrt(4)))
    for layer in (net.head, net.tail, net.skip):
        assert torch.equal(layer.weight_g, torch.ones_like(layer.weight_g))
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    assert net.skip.kernel_size == 5
    assert torch.equal(block.conv1.bias, torch.zeros_like(block.conv1.bias))


def test_scale1_nsr_is_residual_with_identity_skip():
    net = build_network({"type": "NSR", "num_in_ch": 1, "num_out_ch": 1, "upscale": 1,
                         "num_feat": 8, "num_block": 1, "k": 2, "d": 4})
    assert isinstance(net.skip, torch.nn.Identity)
    with torch.no_grad():
        net.tail.weight_g.zero_()  # body contributes nothing -> output == input
    x = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(net(x), x)


@pytest.mark.parametrize("arch", ["WDSR", "NSR"])
@pytest.mark.parametrize("scale", [1, 2])
def test_unshuffled_net_keeps_any_size_and_is_the_body_at_half_resolution(arch, scale):
    opt = {"type": arch, **TINY[arch], "upscale": scale, "num_in_ch": 1, "num_out_ch": 1}
    net = build_network({**opt, "unshuffle": 2}).eval()
    assert net.head.in_channels == 4 and net.upsample.upscale_factor == 2 * scale
    odd = torch.rand(1, 1, 9, 11)
    even = torch.nn.functional.pad(odd, (0, 1, 0, 1), mode="replicate")  # what an odd side is given
    with torch.no_grad():
        y_odd, y_even = net(odd), net(even)
        # by hand: pixel-unshuffle, the plain net's layers at half size, pixel-shuffle back
        half = torch.nn.functional.pixel_unshuffle(even - 0.5, 2)
        by_hand = torch.nn.functional.pixel_shuffle(net.features(half) + net.skip(half), 2 * scale) + 0.5
    assert y_odd.shape == (1, 1, 9 * scale, 11 * scale)
    torch.testing.assert_close(y_odd, y_even[..., :9 * scale, :11 * scale])
    torch.testing.assert_close(y_even, by_hand)
    if scale == 1:  # residual learning survives: a silent body gives back the input
        assert isinstance(net.skip, torch.nn.Identity)
        with torch.no_grad():
            net.tail.weight_g.zero_()
            torch.testing.assert_close(net(odd), odd)


def test_unshuffle_divides_the_macs_per_pixel_by_its_square():
    from restore.utils.flops import count_macs
    opt = {"type": "NSR", "num_in_ch": 1, "num_out_ch": 1, "upscale": 1, "num_feat": 16, "num_block": 2,
           "k": 2, "d": 4}
    plain = count_macs(build_network(opt), (1, 1, 64, 64))["macs"]
    half = count_macs(build_network({**opt, "unshuffle": 2}), (1, 1, 64, 64))["macs"]
    # the same layers on a quarter of the positions; only head and tail see 4x the channels
    extra = (4 - 1) * 16 * 9 * 32 * 32 * 2  # head: 3 more input channels; tail: 3 more outputs
    assert half == pytest.approx(plain / 4 + extra, rel=0.01)
    with pytest.raises(OptionError, match="network_g.unshuffle: must be >= 1, got 0"):
        build_network({**opt, "unshuffle": 0})


def test_nsr_tile_mode_only_in_eval_on_large_inputs():
    net = build_network({"type": "NSR", "num_feat": 8, "num_block": 1, "k": 2, "d": 4, "upscale": 2,
                         "gate_region": "tile", "tile_size": 24})
    big, small = torch.rand(1, 3, 96, 100), torch.rand(1, 3, 95, 100)
    assert not net.uses_tiles(big)  # training mode
    net.eval()
    assert net.uses_tiles(big) and not net.uses_tiles(small)
    with torch.no_grad():
        tiled = net(big)
        net.tile_size = None
        whole = net(big)
    assert tiled.shape == whole.shape == (1, 3, 192, 200)
    assert not torch.allclose(tiled, whole)  # each tile has its own gates: a different function


def test_gumbel_nsr_eval_is_deterministic():
    net = build_network({"type": "NSR", "num_feat": 8, "num_block": 1, "k": 2, "d": 4, "upscale": 2,
                         "gate": "gumbel"}).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_unknown_network_key_names_the_key():
    with pytest.raises(OptionError, match=r"network_g: unknown key 'num_blokc' for arch NSR.*num_block"):
        ARCH_REGISTRY.build({"type": "NSR", "num_blokc": 2}, "network_g")
    with pytest.raises(OptionError, match=r"network_g\.gate_region"):
        ARCH_REGISTRY.build({"type": "NSR", "gate_region": "patch"}, "network_g")
    with pytest.raises(OptionError, match=r"network_g: d=5"):
        ARCH_REGISTRY.build({"type": "NSR", "d": 5}, "network_g")
    with pytest.raises(OptionError, match=r"network_g\.upscale"):
        ARCH_REGISTRY.build({"type": "EDSR", "upscale": 5}, "network_g")
    with pytest.raises(OptionError, match=r"network_g\.conv: unknown key 'kk'"):
        ARCH_REGISTRY.build({"type": "EDSR", "conv": {"type": "sparse_group", "kk": 1}}, "network_g")


def test_edsr_sparse_group_variant_replaces_block_convs_only():
    net = build_network({"type": "EDSR", "num_feat": 16, "num_block": 2, "upscale": 2,
                         "conv": {"type": "sparse_group", "k": 2, "d": 4}})
    assert isinstance(net.body[0].conv1, SparseGroupConv2d) and isinstance(net.body[1].conv2, SparseGroupConv2d)
    assert type(net.conv_first) is torch.nn.Conv2d and type(net.upsample[0]) is torch.nn.Conv2d
    assert net(torch.rand(2, 3, 6, 6)).shape == (2, 3, 12, 12)


def test_dncnn_is_residual():
    net = build_network({"type": "DnCNN", "num_feat": 8, "num_layer": 3}).eval()
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        noise = net.tail(net.body(net.relu(net.head(x))))
        torch.testing.assert_close(net(x), x - noise)
    assert sum(p.numel() for p in build_network({"type": "DnCNN"}).parameters()) == 556_097


def test_bicubic_equals_imresize():
    from restore.utils.imresize import imresize
    x = torch.rand(1, 3, 11, 13)
    net = build_network({"type": "Bicubic", "upscale": 3})
    torch.testing.assert_close(net(x), imresize(x.double(), 3).float())
    assert torch.equal(build_network({"type": "Bicubic", "upscale": 1})(x), x)
    as_uint8 = (x * 255).round().to(torch.uint8)
    rounded = build_network({"type": "Bicubic", "upscale": 2, "uint8_rounding": True})(x)
    torch.testing.assert_close(rounded * 255, imresize(as_uint8, 2).float(), rtol=0, atol=1e-4)


# --- BasicSR's EDSR as an oracle, loaded by file path (import basicsr needs torchvision) ---------

@pytest.fixture(scope="module")
def basicsr_edsr():
    """BasicSR 1.4.2's own EDSR, loaded by file path (restore/benchmark/basicsr_reference.py)."""
    if basicsr_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but basicsr (the EDSR oracle) is not installed")
        pytest.skip("basicsr not installed")
    return load_basicsr_training().EDSR


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_state_dict_matches_basicsr(basicsr_edsr, scale):
    theirs = basicsr_edsr(num_in_ch=3, num_out_ch=3, num_feat=16, num_block=3, upscale=scale, res_scale=0.5)
    ours = build_network({"type": "EDSR", "num_feat": 16, "num_block": 3, "upscale": scale, "res_scale": 0.5})
    want = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == want
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.rand(1, 3, 7, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gate_region", ["image", "tile"])
def test_nsr_channels_last_matches_nchw(gate_region):
    torch.manual_seed(0)
    net = build_network({"type": "NSR", "num_feat": 8, "num_block": 2, "k": 2, "d": 4, "upscale": 2,
                         "gate_region": gate_region, "tile_size": 20}).eval()
    x = torch.rand(2, 3, 80, 84)
    with torch.no_grad():
        ref = net(x)
        out = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
