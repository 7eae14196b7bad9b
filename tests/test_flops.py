"""MAC counting (restore/utils/flops.py) against hand counts, and the restore-flops tool."""
import torch
from torch import nn

from restore.archs import build_network
from restore.archs.layers.sparse_group_conv import SparseGroupConv2d
from restore.cli.common import run_cli
from restore.cli.flops import main
from restore.utils.flops import count_macs


def test_hand_counted_net_with_a_sparse_group_conv():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                        SparseGroupConv2d(8, 8, 3, k=2, d=4, weight_norm=True))
    batch, height, width = 2, 10, 12
    pixels = batch * height * width
    conv = pixels * 8 * 3 * 9                 # 3 -> 8, 3x3
    pool = pixels * 8                         # global average of the 8-channel input
    mlp = batch * 8 * (2 * 4)                 # Linear(8, k*d)
    mix_weight = batch * 2 * 8 * 8 * 9        # k candidate kernels summed per sample
    mix_bias = batch * 2 * 8
    dynamic = pixels * 8 * 8 * 9              # the one per-sample conv
    expected = conv + pool + mlp + mix_weight + mix_bias + dynamic
    for device in ("meta", "cpu"):
        r = count_macs(net, (batch, 3, height, width), device=device)
        assert r["macs"] == expected == 194_464
    assert r["params"] == (3 * 8 * 9 + 8) + (2 * 8 * 8 * 9 + 2 * 8 + 2 * 8 + 8 * 8 + 8)
    assert r["macs_per_in_pixel"] == expected / pixels == r["macs_per_out_pixel"]


def test_nsr_x2_macs_per_pixel_formula():
    net = build_network({"type": "NSR", "upscale": 2})
    h, w = 24, 32
    per_pixel = 3 * 64 * 9 + 32 * 64 * 64 * 9 + 64 * 12 * 9 + 3 * 12 * 25 + 32 * 64  # head, blocks, tail, skip, pools
    per_image = 32 * (64 * 64 + 4 * 64 * 64 * 9 + 4 * 64)  # per conv: MLP, kernel and bias mixing
    r = count_macs(net, (1, 3, h, w))
    assert r["macs"] == h * w * per_pixel + per_image
    assert r["out_shape"] == (1, 3, 48, 64)
    assert r["macs_per_out_pixel"] == r["macs"] / (48 * 64)
    assert abs(r["gmacs_720p"] - r["macs_per_out_pixel"] * 1280 * 720 / 1e9) < 1e-9


def test_count_macs_leaves_the_model_untouched():
    net = build_network({"type": "NSR", "num_feat": 8, "num_block": 1, "k": 2, "d": 4, "upscale": 2})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_macs(net, (1, 3, 16, 16))
    assert net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert next(net.parameters()).device.type == "cpu"


def test_cli_single_arch(capsys):
    assert main(["--arch", "NSR", "--set", "upscale=2"]) == 0
    out = capsys.readouterr().out
    assert "params: 4,877,812" in out and "x2, input 1x3x360x640" in out
    # 720p output of the released x2 NSR: ~1.19M MACs per LR pixel -> 274 GMACs
    assert "GMACs for a 1280x720 output: 274.47" in out


def test_cli_option_file_and_overrides(tmp_path, capsys):
    opt = tmp_path / "net.yml"
    opt.write_text("name: x\nscale: 3\nnetwork_g:\n  type: EDSR\n  num_feat: 8\n  num_block: 1\n")
    assert main(["-opt", str(opt), "--set", "upscale=2", "--size", "10", "20"]) == 0
    out = capsys.readouterr().out
    # EDSR 8 feat, 1 block, x2 on 10x20: conv_first, 2 block convs, conv_after_body, upsample, conv_last
    per_in = 3 * 8 * 9 + 3 * 8 * 8 * 9 + 8 * 32 * 9 + 4 * 8 * 3 * 9
    assert f"MACs per input pixel: {per_in:,}" in out and "x2, input 1x3x10x20" in out
    assert main(["-opt", str(opt)]) == 0  # network_g has no upscale: the file's scale (3) is used
    assert "arch: EDSR (x3, input 1x3x240x427)" in capsys.readouterr().out


def test_cli_all_lists_every_arch(capsys):
    from restore.archs import ARCH_REGISTRY
    assert main(["--all"]) == 0
    out = capsys.readouterr().out
    for name in ARCH_REGISTRY.keys():
        assert f"| {name} |" in out
    assert "| NSR | x2 | 4,877,812 |" in out and "| DnCNN | x1 |" in out


def test_cli_all_writes_the_results_file(tmp_path, capsys):
    """--out: the printed table, headed by the command and the machine (the file docs/nsr.md quotes)."""
    path = tmp_path / "flops.md"
    assert main(["--all", "--size", "16", "16", "--out", str(path)]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith(f"Made by `restore-flops --all --size 16 16 --out {path}` on ")
    assert [line for line in text.splitlines() if line.startswith("|")] == printed and len(printed) > 3
    assert run_cli(main, ["--arch", "NSR", "--out", str(tmp_path / "x.md")]) == 2
    assert not (tmp_path / "x.md").exists()


def test_cli_errors_are_one_line(capsys):
    assert run_cli(main, ["--arch", "NSR", "--set", "num_blokc=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: network_g: unknown key 'num_blokc'") and err.count("\n") == 1
    assert run_cli(main, ["--arch", "NSRX"]) == 2
    assert "unknown arch 'NSRX'" in capsys.readouterr().err
    assert run_cli(main, ["--arch", "NSR", "--all"]) == 2
