"""Inference: tiling, self-ensemble, model loading (option file, checkpoint + arch, zoo) and restore-infer."""
import os

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from restore.archs import build_network
from restore.cli import infer
from restore.cli.common import run_cli
from restore.inference import inference_forward, self_ensemble, tiled_forward
from restore.inference.ensemble import dihedral, inverse_dihedral
from restore.inference.loading import load_model, parse_arch_options
from restore.inference.tiling import tile_grid
from restore.inference.zoo import ZOO_ENV, register_model, unregister_model
from restore.utils.checkpoint import save_network_file
from restore.utils.errors import RestoreError
from restore.utils.img_io import imread, imwrite, tensor2img
from restore.utils.yaml_io import dump_yaml

EDSR_OPTS = {"type": "EDSR", "num_feat": 8, "num_block": 2, "upscale": 2}
# conv_first + 2 blocks x 2 convs + conv_after_body + upsample conv: 7 LR-resolution 3x3 convs, then a
# 3x3 conv at 2x (half an LR pixel): receptive-field radius 7.5 LR pixels
EDSR_RADIUS = 8


def tiny_edsr(seed=0, **over):
    torch.manual_seed(seed)
    return build_network({**EDSR_OPTS, **over}).eval()


def save_ckpt(folder, net, name="net.pth"):
    path = os.path.join(folder, name)
    save_network_file(path, net.state_dict())
    return path


# --- tiling ----------------------------------------------------------------------------------------
def test_tile_cores_cover_every_pixel_once():
    cover = np.zeros((37, 50), int)
    for t in tile_grid(37, 50, 16, 5):
        cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert t.wy0 == max(t.y0 - 5, 0) and t.wx1 == min(t.x1 + 5, 50)
    assert (cover == 1).all()


@pytest.mark.parametrize("tile", [7, 16, 100])
def test_tiled_equals_untiled_when_the_receptive_field_fits_the_padding(tile):
    net = tiny_edsr()
    x = torch.rand(1, 3, 29, 41)
    with torch.inference_mode():
        whole = net(x)
        tiled = tiled_forward(net, x, tile, tile_pad=EDSR_RADIUS)
    assert tiled.shape == whole.shape == (1, 3, 58, 82)
    assert (tiled - whole).abs().max() < 1e-4


def test_tiles_without_enough_padding_show_seams():
    net = tiny_edsr()
    x = torch.rand(1, 3, 29, 41)
    with torch.inference_mode():
        diff = (tiled_forward(net, x, 8, tile_pad=1) - net(x)).abs().max()
    assert diff > 1e-3  # the equality above is not trivially true


def test_tiled_writer_gets_every_core_in_output_coordinates():
    net = tiny_edsr()
    x = torch.rand(1, 3, 20, 30)
    out = torch.zeros(1, 3, 40, 60)
    boxes = []

    def write(core, box):
        boxes.append(box)
        out[..., box[0]:box[1], box[2]:box[3]] = core

    with torch.inference_mode():
        assert tiled_forward(net, x, 16, EDSR_RADIUS, write=write) is None
        assert (out - net(x)).abs().max() < 1e-4
    assert boxes == [(0, 32, 0, 32), (0, 32, 32, 60), (32, 40, 0, 32), (32, 40, 32, 60)]


# --- self-ensemble -----------------------------------------------------------------------------------
def test_dihedral_inverse_and_all_eight_distinct():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    seen = {tuple(dihedral(x, k).flatten().tolist()) + tuple(dihedral(x, k).shape) for k in range(8)}
    assert len(seen) == 8
    for k in range(8):
        assert torch.equal(inverse_dihedral(dihedral(x, k), k), x)


class SymmetricNet(nn.Module):
    """Convs with kernels symmetric under flips and transposes, + nearest x2: commutes with all 8."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.c1, self.c2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 3, 3, padding=1)
        with torch.no_grad():
            for conv in (self.c1, self.c2):
                w = conv.weight
                w.copy_((w + w.flip(-1) + w.flip(-2) + w.flip(-1, -2)) / 4)
                w.copy_((w + w.transpose(-2, -1)) / 2)

    def forward(self, x):
        return nn.functional.interpolate(self.c2(torch.relu(self.c1(x))), scale_factor=2, mode="nearest")


def test_self_ensemble_of_an_equivariant_net_equals_one_pass():
    net = SymmetricNet()
    x = torch.rand(1, 3, 13, 18)
    with torch.no_grad():
        assert (self_ensemble(net, x) - net(x)).abs().max() < 1e-5


def test_self_ensemble_matches_rot90_oracle():
    """Against an independent implementation: the group as rotations, with and without a flip."""
    net = tiny_edsr()
    x = torch.rand(1, 3, 11, 14)
    with torch.no_grad():
        outs = []
        for flip in (False, True):
            for k in range(4):
                t = x.flip(-1) if flip else x
                y = torch.rot90(net(torch.rot90(t, k, (-2, -1))), -k, (-2, -1))
                outs.append(y.flip(-1) if flip else y)
        oracle = torch.stack(outs).mean(0)
        got = self_ensemble(net, x)
        assert (got - oracle).abs().max() < 1e-5
        assert (got - net(x)).abs().max() > 1e-3


def test_tiled_ensemble_equals_untiled_ensemble():
    net = tiny_edsr()
    x = torch.rand(1, 3, 21, 26)
    with torch.inference_mode():
        a = inference_forward(net, x, self_ensemble=True)
        b = inference_forward(net, x, tile=9, tile_pad=EDSR_RADIUS, self_ensemble=True)
    assert (a - b).abs().max() < 1e-4


# --- model loading ------------------------------------------------------------------------------------
def test_arch_options_parse_nested_yaml_values():
    assert parse_arch_options(["upscale=2", "conv.type=sparse_group", "conv.k=4", "img_range=1.0"]) == \
        {"upscale": 2, "conv": {"type": "sparse_group", "k": 4}, "img_range": 1.0}
    with pytest.raises(RestoreError, match="KEY=VALUE"):
        parse_arch_options(["upscale"])


def test_checkpoint_option_file_and_zoo_load_the_same_weights(tmp_path, monkeypatch):
    net = tiny_edsr(seed=3)
    ckpt = save_ckpt(tmp_path, net)
    x = torch.rand(1, 3, 10, 12)
    expected = net(x)
    a = load_model(ckpt=ckpt, arch="EDSR", arch_opts=["num_feat=8", "num_block=2", "upscale=2"])
    (tmp_path / "options").mkdir()
    opt = tmp_path / "options" / "t.yml"
    opt.write_text(dump_yaml({"name": "t", "network_g": EDSR_OPTS, "path": {"pretrain_network_g": "net.pth"}}))
    b = load_model(opt=str(opt))  # relative to the folder holding options/
    zoo = tmp_path / "zoo.yml"
    zoo.write_text(dump_yaml({"tiny-x2": {"network_g": EDSR_OPTS, "weights": "net.pth", "task": "sr"}}))
    monkeypatch.setenv(ZOO_ENV, str(zoo))
    c = load_model(model="tiny-x2")
    for m in (a, b, c):  # loaded nets are channels_last (setup.py): same sums, another order
        assert (m.net(x) - expected).abs().max() < 1e-5
        assert m.scale == 2 and m.in_channels == 3
    zoo.write_text(dump_yaml({"tiny-x2": {"network_g": EDSR_OPTS, "weights": "net.pth", "sha256": "0" * 64}}))
    with pytest.raises(RestoreError, match="does not match its SHA256"):
        load_model(model="tiny-x2")
    with pytest.raises(RestoreError, match="tiny-x3: unknown model .did you mean 'tiny-x2'"):
        load_model(model="tiny-x3")


def test_registered_model_runs_through_restore_infer(tmp_path, capsys):
    ckpt = save_ckpt(tmp_path, tiny_edsr())
    register_model("tiny-registered", EDSR_OPTS, ckpt, task="sr", description="test model")
    try:
        imwrite(tmp_path / "in" / "a.png", np.full((8, 9, 3), 100, np.uint8))
        assert run_cli(infer.main, ["--list-models"]) == 0
        assert "tiny-registered" in capsys.readouterr().out
        assert run_cli(infer.main, ["--model", "tiny-registered", "-i", str(tmp_path / "in"),
                                    "-o", str(tmp_path / "out"), "--no-progress"]) == 0
        assert imread(tmp_path / "out" / "a.png").shape == (16, 18, 3)
    finally:
        unregister_model("tiny-registered")


def test_model_family_runs_gray_images_on_the_gray_member_and_rgb_on_the_colour_one(tmp_path, capsys):
    gray_net, colour_net = tiny_edsr(1, num_in_ch=1, num_out_ch=1), tiny_edsr(2)
    register_model("tiny-gray", {**EDSR_OPTS, "num_in_ch": 1, "num_out_ch": 1},
                   save_ckpt(tmp_path, gray_net, "g.pth"), family="tiny-pair")
    register_model("tiny-colour", EDSR_OPTS, save_ckpt(tmp_path, colour_net, "c.pth"), family="tiny-pair")
    try:
        rng = np.random.default_rng(0)
        gray, rgb = rng.integers(0, 256, (8, 9, 1), np.uint8), rng.integers(0, 256, (8, 9, 3), np.uint8)
        imwrite(tmp_path / "in" / "g.png", gray)
        imwrite(tmp_path / "in" / "c.png", rgb)
        assert run_cli(infer.main, ["--list-models"]) == 0
        assert "gray: tiny-gray, colour: tiny-colour" in capsys.readouterr().out
        assert run_cli(infer.main, ["--model", "tiny-pair", "-i", str(tmp_path / "in"),
                                    "-o", str(tmp_path / "out"), "--no-progress"]) == 0
        err = capsys.readouterr().err
        assert f"{tmp_path / 'in' / 'g.png'}: gray image, tiny-gray" in err
        assert f"{tmp_path / 'in' / 'c.png'}: colour image, tiny-colour" in err
        assert_same_image(imread(tmp_path / "out" / "g.png"), expected_output(gray_net, gray, np.uint8))
        assert_same_image(imread(tmp_path / "out" / "c.png"), expected_output(colour_net, rgb, np.uint8))
        register_model("tiny-gray-2", {**EDSR_OPTS, "num_in_ch": 1, "num_out_ch": 1},
                       str(tmp_path / "g.pth"), family="tiny-pair")
        assert run_cli(infer.main, ["--model", "tiny-pair", "-i", str(tmp_path / "in"),
                                    "-o", str(tmp_path / "out2")]) == 2
        assert "tiny-gray and tiny-gray-2 both take 1-channel input" in capsys.readouterr().err
    finally:
        for name in ("tiny-gray", "tiny-colour", "tiny-gray-2"):
            unregister_model(name)


def test_ckpt_without_arch_and_two_sources_are_errors(tmp_path):
    ckpt = save_ckpt(tmp_path, tiny_edsr())
    with pytest.raises(RestoreError, match="also give --arch"):
        load_model(ckpt=ckpt)
    with pytest.raises(RestoreError, match="one way"):
        load_model(ckpt=ckpt, arch="EDSR", model="x")
    with pytest.raises(RestoreError, match="does not fit the network"):
        load_model(ckpt=ckpt, arch="EDSR", arch_opts=["num_feat=16", "num_block=2", "upscale=2"])


# --- restore-infer on files ---------------------------------------------------------------------------
def infer_cli(tmp_path, net_opts, *extra):
    ckpt = str(tmp_path / "net.pth")
    opts = [f"{k}={v}" for k, v in net_opts.items() if k != "type"]
    return run_cli(infer.main, ["--ckpt", ckpt, "--arch", net_opts["type"], "--arch-opt", *opts,
                                "--no-progress", *extra])


def assert_same_image(out, expected):
    """Equal up to one step of the bit depth: restore-infer's channels_last forward sums in another
    order than the NCHW oracle (<= 1e-6), which can move a value across a rounding boundary."""
    assert out.dtype == expected.dtype and out.shape == expected.shape
    assert np.abs(out.astype(np.int64) - expected.astype(np.int64)).max() <= 1


def expected_output(net, img, dtype):
    peak = 255.0 if dtype == np.uint8 else 65535.0
    x = torch.from_numpy(img.astype(np.float32).transpose(2, 0, 1) / peak)[None]
    with torch.no_grad():
        return tensor2img(net(x), dtype)


def test_16bit_rgb_and_gray_keep_mode_and_depth(tmp_path):
    net = tiny_edsr()
    save_ckpt(tmp_path, net)
    rng = np.random.default_rng(0)
    rgb16 = rng.integers(0, 65536, (12, 15, 3), dtype=np.uint16)
    gray16 = rng.integers(0, 65536, (12, 15, 1), dtype=np.uint16)
    imwrite(tmp_path / "in" / "rgb16.png", rgb16)
    imwrite(tmp_path / "in" / "gray16.png", gray16)
    assert infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                     "--suffix", "_x2") == 0
    out_rgb = imread(tmp_path / "out" / "rgb16_x2.png")
    out_gray = imread(tmp_path / "out" / "gray16_x2.png")
    assert out_rgb.dtype == out_gray.dtype == np.uint16
    assert out_rgb.shape == (24, 30, 3) and out_gray.shape == (24, 30, 1)
    assert_same_image(out_rgb, expected_output(net, rgb16, np.uint16))
    # gray on an RGB net: R=G=B in, BT.601 luma of the output out
    x = torch.from_numpy(gray16.astype(np.float32).transpose(2, 0, 1) / 65535)[None].expand(1, 3, 12, 15)
    with torch.no_grad():
        y = net(x)
    luma = 0.299 * y[:, :1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:]
    assert np.abs(out_gray.astype(int) - tensor2img(luma, np.uint16).astype(int)).max() <= 1


def test_rgba_alpha_bicubic_or_model(tmp_path):
    net = tiny_edsr()
    save_ckpt(tmp_path, net)
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (10, 14, 4), dtype=np.uint8)
    imwrite(tmp_path / "in" / "rgba.png", rgba)
    assert infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "in" / "rgba.png"), "-o", str(tmp_path / "o1")) == 0
    out = imread(tmp_path / "o1" / "rgba.png")
    assert out.shape == (20, 28, 4) and out.dtype == np.uint8
    assert_same_image(out[:, :, :3], expected_output(net, rgba[:, :, :3], np.uint8))
    assert np.array_equal(out[:, :, 3], cv2.resize(rgba[:, :, 3], (28, 20), interpolation=cv2.INTER_CUBIC))
    assert infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "in" / "rgba.png"), "-o", str(tmp_path / "o2"),
                     "--alpha", "model") == 0
    out2 = imread(tmp_path / "o2" / "rgba.png")
    assert np.array_equal(out2[:, :, :3], out[:, :, :3])
    assert not np.array_equal(out2[:, :, 3], out[:, :, 3])


def test_gray_net_runs_rgb_images_channel_by_channel(tmp_path):
    torch.manual_seed(0)
    net_opts = {"type": "DnCNN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 4, "num_layer": 3}
    net = build_network(net_opts).eval()
    save_ckpt(tmp_path, net)
    img = np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    imwrite(tmp_path / "in" / "c.png", img)
    assert infer_cli(tmp_path, net_opts, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")) == 0
    out = imread(tmp_path / "out" / "c.png")
    for c in range(3):
        assert_same_image(out[:, :, c:c + 1], expected_output(net, img[:, :, c:c + 1], np.uint8))


def test_tiled_and_ensemble_cli_match_the_untiled_run(tmp_path):
    save_ckpt(tmp_path, tiny_edsr())
    img = np.random.default_rng(3).integers(0, 256, (23, 31, 3), dtype=np.uint8)
    imwrite(tmp_path / "in" / "a.png", img)
    common = ["-i", str(tmp_path / "in" / "a.png")]
    assert infer_cli(tmp_path, EDSR_OPTS, *common, "-o", str(tmp_path / "whole")) == 0
    assert infer_cli(tmp_path, EDSR_OPTS, *common, "-o", str(tmp_path / "tiled"), "--tile", "10",
                     "--tile-pad", str(EDSR_RADIUS)) == 0
    whole, tiled = imread(tmp_path / "whole" / "a.png"), imread(tmp_path / "tiled" / "a.png")
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    assert infer_cli(tmp_path, EDSR_OPTS, *common, "-o", str(tmp_path / "ens"), "--ensemble") == 0
    assert not np.array_equal(imread(tmp_path / "ens" / "a.png"), whole)


def test_unreadable_file_is_skipped_and_listed_with_nonzero_exit(tmp_path, capsys):
    save_ckpt(tmp_path, tiny_edsr())
    imwrite(tmp_path / "in" / "good.png", np.zeros((6, 7, 3), np.uint8))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "in" / "empty.jpg").write_bytes(b"")
    code = infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == infer.EXIT_SKIPPED
    assert "skipped 2 file(s)" in err
    assert f"\n  {tmp_path / 'in' / 'broken.png'}: " in err  # the reader's reason (damaged, cannot decode)
    assert f"  {tmp_path / 'in' / 'empty.jpg'}: empty image file" in err
    assert sorted(os.listdir(tmp_path / "out")) == ["good.png"]  # nothing partial left behind


def test_output_folder_equal_to_input_folder_is_refused(tmp_path, capsys):
    save_ckpt(tmp_path, tiny_edsr())
    imwrite(tmp_path / "in" / "a.png", np.zeros((6, 7, 3), np.uint8))
    before = (tmp_path / "in" / "a.png").read_bytes()
    code = infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "."),
                     "--suffix", "_x2")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: output folder") and "is the folder of input" in err
    assert os.listdir(tmp_path / "in") == ["a.png"] and (tmp_path / "in" / "a.png").read_bytes() == before


def test_two_inputs_with_one_output_name_and_glob_inputs(tmp_path, capsys):
    save_ckpt(tmp_path, tiny_edsr())
    imwrite(tmp_path / "in" / "a.png", np.zeros((6, 7, 3), np.uint8))
    imwrite(tmp_path / "in" / "a.bmp", np.zeros((6, 7, 3), np.uint8))
    imwrite(tmp_path / "in" / "b.png", np.zeros((6, 7, 3), np.uint8))
    code = infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert code == 2 and "would both be written to" in capsys.readouterr().err
    code = infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "in" / "*.png"), "-o", str(tmp_path / "out"))
    assert code == 0 and sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png"]
    code = infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "nothing*.png"), "-o", str(tmp_path / "o"))
    assert code == 2 and "matches no image file" in capsys.readouterr().err


def test_16bit_to_jpeg_is_skipped_not_truncated(tmp_path, capsys):
    save_ckpt(tmp_path, tiny_edsr())
    imwrite(tmp_path / "in" / "deep.png", np.zeros((6, 7, 3), np.uint16))
    code = infer_cli(tmp_path, EDSR_OPTS, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--ext", "jpg")
    assert code == infer.EXIT_SKIPPED and "16-bit image cannot be saved as .jpg" in capsys.readouterr().err
