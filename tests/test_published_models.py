"""Published checkpoints through spandrel (the `models` lane: `make test-models`, a venv with
torch 2.14.1 + torchvision + spandrel 0.4.2). Each model is randomly initialised through spandrel's own
classes, saved as .pth and .safetensors, loaded back by restore from the file alone (restore-infer
--ckpt, restore-bench --model, restore-test network_g: {type: auto}) and must give spandrel's own
outputs. Without spandrel these tests skip, except in CI's models lane (CI set and `-m models`)."""
import json
import os

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def spandrel(request):
    try:
        import spandrel as module
    except ImportError:
        if os.environ.get("CI") and (request.config.getoption("markexpr") or "").strip() == "models":
            pytest.fail("the models lane needs spandrel: make test-models installs .venv-models")
        pytest.skip("spandrel is not installed (pip install 'restore[models]')")
    return module


def build(name):
    """(spandrel model, scale, in channels, tile pad that covers its receptive field or None)."""
    torch.manual_seed(0)
    if name == "esrgan_x4":
        from spandrel.architectures.ESRGAN import ESRGAN
        return ESRGAN(in_nc=3, out_nc=3, num_filters=16, num_blocks=1, scale=4), 4, 3, None
    if name == "swinir_x2":
        from spandrel.architectures.SwinIR import SwinIR
        return SwinIR(upscale=2, in_chans=3, img_size=16, window_size=8, img_range=1.0, depths=[2, 2],
                      embed_dim=24, num_heads=[2, 2], mlp_ratio=2, upsampler="pixelshuffle",
                      resi_connection="1conv"), 2, 3, None
    if name == "compact_x4":
        from spandrel.architectures.Compact import Compact
        return Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=4, upscale=4), 4, 3, 8
    if name == "hat_x2":
        from spandrel.architectures.HAT import HAT
        return HAT(upscale=2, in_chans=3, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4,
                   conv_scale=0.01, overlap_ratio=0.5, depths=[2], num_heads=[2], embed_dim=24, mlp_ratio=2,
                   upsampler="pixelshuffle", resi_connection="1conv", num_feat=16), 2, 3, None
    if name == "dncnn_gray":
        from spandrel.architectures.DnCNN import DnCNN
        return DnCNN(in_nc=1, out_nc=1, nc=16, nb=8, act_mode="R"), 1, 1, 10
    raise ValueError(name)


MODELS = ["esrgan_x4", "swinir_x2", "compact_x4", "hat_x2", "dncnn_gray"]
ARCH = {"esrgan_x4": "ESRGAN", "swinir_x2": "SwinIR", "compact_x4": "RealESRGAN Compact", "hat_x2": "HAT",
        "dncnn_gray": "DnCNN"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, spandrel):
    """name -> (paths {'pth', 'safetensors'}, spandrel's own descriptor loaded from the .pth)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("published")
    out = {}
    for name in MODELS:
        model, scale, channels, _ = build(name)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        paths = {"pth": str(folder / f"{name}.pth"), "safetensors": str(folder / f"{name}.safetensors")}
        torch.save(sd, paths["pth"])
        save_file({k: v.clone() for k, v in sd.items()}, paths["safetensors"])
        descriptor = spandrel.ModelLoader().load_from_file(paths["pth"])
        assert (descriptor.scale, descriptor.input_channels) == (scale, channels), name
        out[name] = (paths, descriptor, model.eval())
    return out


def image(channels, h=24, w=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, channels, h, w, generator=g)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_checkpoint_alone_loads_and_matches_spandrel(saved, name, fmt):
    from restore.inference.forward import inference_forward
    from restore.inference.loading import load_model

    paths, descriptor, original = saved[name]
    loaded = load_model(ckpt=paths[fmt])
    assert loaded.label == f"{name} ({descriptor.architecture.name})"
    assert ARCH[name] in loaded.label or descriptor.architecture.name in loaded.label
    assert (loaded.scale, loaded.in_channels) == (descriptor.scale, descriptor.input_channels)
    x = image(descriptor.input_channels)
    with torch.inference_mode():
        want = descriptor(x.clone())
        got = inference_forward(loaded.net, x.clone())
        # the detection rebuilt the very network that was saved
        assert (original(x.clone()).clamp(0, 1) - want).abs().max() < 1e-5
    assert got.shape == want.shape == (1, descriptor.output_channels, 24 * descriptor.scale, 20 * descriptor.scale)
    assert (got - want).abs().max() < 1e-5
    tile_pad = build(name)[3]
    if tile_pad is not None:  # tiles with context >= the receptive field: the whole-image result
        with torch.inference_mode():
            tiled = inference_forward(loaded.net, x.clone(), tile=12, tile_pad=tile_pad)
        assert (tiled - want).abs().max() < 1e-5


@pytest.mark.parametrize("name", MODELS)
def test_restore_infer_cli_with_ckpt_alone(saved, tmp_path, name):
    """restore-infer --ckpt FILE (no --arch), whole and tiled: spandrel's output (per tile when tiled)."""
    from restore.cli.infer import main as infer_main
    from restore.inference.tiling import tiled_forward
    from restore.utils.img_io import imread, imwrite, tensor2img

    paths, descriptor, _ = saved[name]
    channels = descriptor.input_channels
    imwrite(str(tmp_path / "in.png"), tensor2img(image(channels, 20, 18)))
    arr = imread(str(tmp_path / "in.png"))
    x = torch.from_numpy(arr.transpose(2, 0, 1)[None].astype(np.float32) / 255)
    for tile in (None, 8):
        out_dir = tmp_path / f"out{tile}"
        args = ["--ckpt", paths["safetensors" if tile else "pth"], "-i", str(tmp_path / "in.png"),
                "-o", str(out_dir), "--no-progress", "--device", "cpu"]
        assert infer_main(args + (["--tile", str(tile), "--tile-pad", "4"] if tile else [])) == 0
        got = imread(str(out_dir / "in.png"))
        with torch.inference_mode():
            out = descriptor(x.clone()) if tile is None else tiled_forward(lambda t: descriptor(t), x.clone(), 8, 4)
        want = tensor2img(out)
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # a rounding tie at most


BENCH = {"esrgan_x4": ("Set5", "--scales", "4"), "swinir_x2": ("Set5", "--scales", "2"),
         "compact_x4": ("Set5", "--scales", "4"), "hat_x2": ("Set5", "--scales", "2"),
         "dncnn_gray": ("Set12", "--sigmas", "25")}


@pytest.mark.parametrize("name", MODELS)
def test_restore_bench_model_checkpoint(saved, tmp_path, data_root, name):
    """restore-bench --model FILE beside the baseline: its score is spandrel's output scored by
    restore's metric on the same degraded input."""
    from restore.cli.benchmark import main as bench_main
    from restore.data import build_dataset
    from restore.data.testsets import get_testset
    from restore.metrics import calculate_metric
    from restore.utils.img_io import tensor2img

    paths, descriptor, _ = saved[name]
    set_name, flag, level = BENCH[name]
    out = tmp_path / "bench"
    assert bench_main(["--model", paths["pth"], "--sets", set_name, flag, level, "--max-images", "1",
                       "--data-root", data_root, "--latency-runs", "0", "-o", str(out), "--no-html"]) == 0
    results = json.loads((out / "results.json").read_text())
    label = f"{name} ({descriptor.architecture.name})"
    assert [m["label"] for m in results["models"]] == [label]
    assert results["models"][0]["network_g"]["arch"] == descriptor.architecture.name
    got = results["results"][0]["mean"][label]["psnr"]
    testset = get_testset(set_name)
    item = build_dataset(testset.dataset_options(os.path.join(data_root, set_name), int(level)), "test")[0]
    with torch.inference_mode():
        restored = tensor2img(descriptor(item["lq"][None]))
    want = calculate_metric({"img": restored, "img2": tensor2img(item["gt"])},
                            testset.metric_options(int(level))["psnr"])
    assert got == pytest.approx(want, abs=1e-6)


def test_restore_test_network_type_auto(saved, tmp_path):
    from restore.test import main as test_main
    from restore.utils.img_io import imwrite, tensor2img
    from restore.utils.yaml_io import dump_yaml

    paths, descriptor, _ = saved["dncnn_gray"]
    folder = tmp_path / "gt"
    folder.mkdir()
    imwrite(str(folder / "a.png"), tensor2img(image(1, 32, 32)))
    opt_file = tmp_path / "t.yml"
    opt_file.write_text(dump_yaml({
        "name": "auto", "scale": 1, "device": "cpu",
        "datasets": {"test_1": {"name": "G", "type": "DenoiseDataset", "dataroot_gt": str(folder),
                                "sigma": 25, "color": "gray"}},
        "network_g": {"type": "auto"},
        "path": {"pretrain_network_g": paths["pth"], "results_root": str(tmp_path / "results")},
        "val": {"pbar": False, "metrics": {"psnr": {"type": "calculate_psnr"}}}}))
    assert test_main(["-opt", str(opt_file)]) == 0
    got = json.loads((tmp_path / "results" / "auto" / "results.json").read_text())["G"]["mean"]["psnr"]
    from restore.data import build_dataset
    from restore.metrics.psnr_ssim import calculate_psnr
    item = build_dataset({"type": "DenoiseDataset", "dataroot_gt": str(folder), "sigma": 25, "color": "gray",
                          "name": "G"}, "test")[0]
    with torch.inference_mode():
        want = calculate_psnr(tensor2img(descriptor(item["lq"][None])), tensor2img(item["gt"]))
    assert got == pytest.approx(want, abs=1e-6)
