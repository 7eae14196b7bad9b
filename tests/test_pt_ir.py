"""NSR / WDSR checkpoints of the reference code (ychfan/pt_ir) load unchanged: the state dict is built
by hand with the reference's key names, and the mapped restore net must compute what the
reference's forward (re-written here from its formulas) computes with those tensors."""
import pytest
import torch
from torch.nn import functional as F

from restore.archs import build_network
from restore.cli.convert import main as convert_main
from restore.export.pt_ir import convert_pt_ir, pt_ir_state_dict
from restore.utils.checkpoint import load_network
from restore.utils.errors import RestoreError


def conv_entry(sd, prefix, c_out, c_in, k, gen, gates=None):
    sd[prefix + "weight_g"] = torch.rand(c_out, 1, 1, 1, generator=gen) + 0.5
    sd[prefix + "weight_v"] = torch.randn(c_out, c_in, k, k, generator=gen)
    sd[prefix + "bias"] = torch.randn(c_out, generator=gen) * 0.1
    if gates:
        sd[prefix + "mlp.0.weight"] = torch.randn(gates, c_in, generator=gen)
        sd[prefix + "mlp.0.bias"] = torch.randn(gates, generator=gen)


def reference_state_dict(num_feat=16, num_block=3, scale=2, k=4, d=4, width=1, channels=3, sparse=True, seed=0):
    """The keys and shapes pt_ir's MODEL (models/wdsr_nsr.py) has: head, blocks and tail in `body`,
    block convs in `body.<i>.body.<0|2>`, gate Linear in `mlp.0`, skip conv in `skip.0`."""
    gen = torch.Generator().manual_seed(seed)
    kk = k if sparse else 1
    sd = {}
    conv_entry(sd, "body.0.", num_feat, channels, 3, gen)
    for i in range(1, num_block + 1):
        conv_entry(sd, f"body.{i}.body.0.", num_feat * width * kk, num_feat, 3, gen, k * d if sparse else None)
        conv_entry(sd, f"body.{i}.body.2.", num_feat * kk, num_feat * width, 3, gen, k * d if sparse else None)
    out = channels * scale * scale
    conv_entry(sd, f"body.{num_block + 1}.", out, num_feat, 3, gen)
    if out != channels:
        conv_entry(sd, "skip.0.", out, channels, 5, gen)
    return sd


def weight(sd, p):
    v = sd[p + "weight_v"]
    return sd[p + "weight_g"] * v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def ref_conv(x, sd, p, k, d):
    w, b = weight(sd, p), sd[p + "bias"]
    if p + "mlp.0.weight" not in sd:
        return F.conv2d(x, w, b, padding=w.shape[-1] // 2)
    batch = x.shape[0]
    gate = F.linear(x.mean((-1, -2)), sd[p + "mlp.0.weight"], sd[p + "mlp.0.bias"]).view(batch, k, d).softmax(1)
    w = torch.einsum("bkd,kdrchw->bdrchw", gate, w.view(k, d, -1, *w.shape[1:])).reshape(-1, *w.shape[1:])
    b = torch.einsum("bkd,kdr->bdr", gate, b.view(k, d, -1)).reshape(-1)
    out = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w, b, padding=1, groups=batch)
    return out.view(batch, -1, *out.shape[2:])


def reference_forward(sd, x, num_block, scale, k=4, d=4):
    """pt_ir's MODEL.forward, whole-image path: x - 0.5 -> body + skip -> PixelShuffle -> + 0.5."""
    x = x - 0.5
    h = ref_conv(x, sd, "body.0.", k, d)
    for i in range(1, num_block + 1):
        h = ref_conv(F.relu(ref_conv(h, sd, f"body.{i}.body.0.", k, d)), sd, f"body.{i}.body.2.", k, d) + h
    h = ref_conv(h, sd, f"body.{num_block + 1}.", k, d)
    skip = ref_conv(x, sd, "skip.0.", k, d) if "skip.0.weight_v" in sd else x
    return F.pixel_shuffle(h + skip, scale) + 0.5


@pytest.mark.parametrize("sparse,scale,width", [(True, 2, 1), (True, 3, 2), (False, 1, 4)],
                         ids=["nsr_x2", "nsr_x3_wide", "wdsr_denoise"])
def test_mapped_net_computes_the_reference_forward(sparse, scale, width):
    sd = reference_state_dict(num_block=3, scale=scale, width=width, sparse=sparse)
    mapped, network_g = convert_pt_ir(pt_ir_state_dict({"model_state_dict": sd, "epoch": 30}))
    assert len(mapped) == len(sd)
    want_type = {"type": "NSR", "k": 4, "d": 4} if sparse else {"type": "WDSR"}
    assert network_g == {**want_type, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 3,
                         "upscale": scale, "width_mult": width}
    net = build_network(network_g).eval()
    net.load_state_dict(mapped, strict=True)
    x = torch.rand(2, 3, 20, 18, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = reference_forward(sd, x, 3, scale)
        got = net(x)
    assert got.shape == (2, 3, 20 * scale, 18 * scale)
    assert (got - want).abs().max() < 1e-5


def test_released_nsr_layout_maps_169_keys_to_169():
    """The released EDSR+NSR small model: 16 blocks, 64 features, k 4, d 16 (4,877,812 parameters at x2)."""
    sd = reference_state_dict(num_feat=64, num_block=16, scale=2, k=4, d=16)
    mapped, network_g = convert_pt_ir(sd)
    assert len(sd) == len(mapped) == 169
    net = build_network(network_g)
    assert set(net.state_dict()) == set(mapped)
    assert sum(v.numel() for v in mapped.values()) == 4_877_812
    assert network_g["k"] == 4 and network_g["d"] == 16 and network_g["num_block"] == 16


def test_restore_convert_writes_a_loadable_checkpoint(tmp_path, capsys):
    sd = reference_state_dict(num_block=2, scale=2)
    src = tmp_path / "epoch_30.pth"
    torch.save({"model_state_dict": sd, "optimizer_state_dict": {}, "epoch": 30}, src)
    for ext in ("pth", "safetensors"):
        dst = tmp_path / f"nsr.{ext}"
        assert convert_main(["--from", "pt_ir", str(src), str(dst)]) == 0
        line = capsys.readouterr().out.strip()
        assert line.startswith('network_g: {"type": "NSR"')
        net = build_network(convert_pt_ir(sd)[1])
        load_network(net, str(dst), "params")
        x = torch.rand(1, 3, 12, 12)
        with torch.no_grad():
            assert (net.eval()(x) - reference_forward(sd, x, 2, 2)).abs().max() < 1e-5


def test_not_a_pt_ir_checkpoint_is_a_one_line_error(tmp_path):
    net = build_network({"type": "NSR", "num_feat": 16, "num_block": 1, "d": 4, "upscale": 2})
    assert pt_ir_state_dict({"params": net.state_dict()}) is None
    src = tmp_path / "restore.pth"
    torch.save({"params": net.state_dict()}, src)
    with pytest.raises(RestoreError, match="not a pt_ir checkpoint"):
        convert_main(["--from", "pt_ir", str(src), str(tmp_path / "out.pth")])
    bad = reference_state_dict(num_block=2)
    bad["body.2.body.1.weight"] = torch.zeros(1)
    with pytest.raises(RestoreError, match="unexpected key 'body.2.body.1.weight'"):
        convert_pt_ir(bad)


def test_restore_infer_reads_a_pt_ir_checkpoint_without_arch(tmp_path):
    from restore.inference.forward import inference_forward
    from restore.inference.loading import load_model

    sd = reference_state_dict(num_block=2, scale=3)
    src = tmp_path / "epoch_7.pth"
    torch.save({"model_state_dict": sd, "epoch": 7}, src)
    loaded = load_model(ckpt=str(src))
    assert loaded.label == "epoch_7 (NSR (pt_ir))" and (loaded.scale, loaded.in_channels) == (3, 3)
    x = torch.rand(1, 3, 10, 11)
    with torch.inference_mode():
        assert (inference_forward(loaded.net, x) - reference_forward(sd, x, 2, 3)).abs().max() < 1e-5
    assert load_model(model=str(src)).label == loaded.label  # restore-bench --model FILE


def test_ckpt_without_arch_and_without_spandrel_says_what_to_do(tmp_path, monkeypatch):
    import builtins

    from restore.inference.loading import load_model

    real_import = builtins.__import__

    def no_spandrel(name, *args, **kwargs):
        if name == "spandrel":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spandrel)
    src = tmp_path / "esrgan.pth"
    torch.save({"conv_first.weight": torch.zeros(4, 3, 3, 3)}, src)
    with pytest.raises(RestoreError,
                       match=r"also give --arch .* or install spandrel, .*: pip install 'restore\[models\]'"):
        load_model(ckpt=str(src))
