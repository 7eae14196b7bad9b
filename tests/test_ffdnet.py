"""FFDNet: KAIR's checkpoint layout loads unchanged and the net computes KAIR's forward (issue 18
item 2: spandrel 0.4.2 does not detect FFDNet, so restore has the arch)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore.cli.common import run_cli
from restore.cli.infer import main as infer_main
from restore.inference.loading import load_model
from restore.utils.img_io import imread, imwrite


def kair_state_dict(in_ch, feat, layers, seed=0):
    """A state dict with KAIR's key names: model.0, model.2, ... (ReLUs at the odd indices)."""
    g = torch.Generator().manual_seed(seed)
    widths = [in_ch * 4 + 1] + [feat] * (layers - 1) + [in_ch * 4]
    sd = {}
    for i in range(layers):
        sd[f"model.{2 * i}.weight"] = torch.randn(widths[i + 1], widths[i], 3, 3, generator=g) * 0.1
        sd[f"model.{2 * i}.bias"] = torch.randn(widths[i + 1], generator=g) * 0.01
    return sd


def unshuffle(x, s=2):
    """Space-to-depth written out: channel c*s*s + dy*s + dx holds x[c, s*i + dy, s*j + dx]."""
    b, c, h, w = x.shape
    return x.view(b, c, h // s, s, w // s, s).permute(0, 1, 3, 5, 2, 4).reshape(b, c * s * s, h // s, w // s)


def reference_forward(sd, x, sigma, layers):
    """The published forward, from the formulas: replicate-pad to even, unshuffle, append the
    noise-level map sigma/255, conv-ReLU stack, shuffle, crop."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    x = unshuffle(x)
    x = torch.cat([x, torch.full((x.shape[0], 1, *x.shape[-2:]), sigma / 255.0)], 1)
    for i in range(layers):
        x = F.conv2d(x, sd[f"model.{2 * i}.weight"], sd[f"model.{2 * i}.bias"], padding=1)
        if i < layers - 1:
            x = torch.relu(x)
    return F.pixel_shuffle(x, 2)[..., :h, :w]


@pytest.mark.parametrize("in_ch,feat,layers", [(1, 16, 5), (3, 24, 4)])
def test_kair_layout_loads_and_computes_the_reference_forward(tmp_path, in_ch, feat, layers):
    sd = kair_state_dict(in_ch, feat, layers)
    torch.save(sd, tmp_path / "ffdnet.pth")  # KAIR saves a bare state dict
    model = load_model(ckpt=str(tmp_path / "ffdnet.pth"), arch="FFDNet",
                       arch_opts=[f"num_in_ch={in_ch}", f"num_out_ch={in_ch}", f"num_feat={feat}",
                                  f"num_layer={layers}", "sigma=15"])
    x = torch.rand(2, in_ch, 21, 30)  # odd height: the replicate padding path
    with torch.inference_mode():
        out = model.net(x.contiguous(memory_format=torch.channels_last))
        per_image = model.net(x, torch.tensor([15.0, 50.0]))
    assert torch.allclose(out, reference_forward(sd, x, 15, layers), atol=1e-5)
    assert torch.allclose(per_image[1:], reference_forward(sd, x[1:], 50, layers), atol=1e-5)


def test_restore_infer_runs_a_kair_ffdnet(tmp_path):
    sd = kair_state_dict(1, 8, 3, seed=1)
    torch.save(sd, tmp_path / "ffdnet_gray.pth")
    img = (np.random.default_rng(0).random((17, 26, 1)) * 255).astype(np.uint8)
    imwrite(tmp_path / "in" / "noisy.png", img)
    code = run_cli(infer_main, ["--ckpt", str(tmp_path / "ffdnet_gray.pth"), "--arch", "FFDNet", "--arch-opt",
                                "num_feat=8", "num_layer=3", "sigma=25", "-i", str(tmp_path / "in"),
                                "-o", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    expected = reference_forward(sd, torch.from_numpy(img.transpose(2, 0, 1)[None] / 255.0).float(), 25, 3)
    expected = (expected.clamp(0, 1) * 255).round().byte()[0, 0].numpy()
    got = imread(tmp_path / "out" / "noisy.png")[:, :, 0]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # channels_last sums in another order
