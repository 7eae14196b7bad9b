"""The CUDA path, on a machine with a GPU (CI has none, so every test here skips there; see
docs/reliability.md, "On CUDA", for where and when it last ran). What the CPU suite shows for the CPU,
shown for `device: cuda`: every net and layer variant computes the CPU's function, forward and
backward; training learns in fp32, bf16 and fp16 (with its scaler) and resumes as it would have run;
checkpoints written on the GPU load on a CPU-only machine; restore-infer, restore-test and
restore-bench run on the GPU and write what the CPU writes; DDP trains over NCCL."""
import json
import os

import numpy as np
import pytest
import torch

import tests.tiny  # noqa: F401  registers TinyTestSR
from restore import test as restore_test
from restore.archs import build_network
from restore.archs.layers.sparse_group_conv import FORMULATIONS, SparseGroupConv2d
from restore.cli import benchmark, infer
from restore.cli.common import run_cli
from restore.features.random_signed import RandomSignedFeatures
from restore.train import train
from restore.utils.checkpoint import load_safely, save_network_file
from restore.utils.img_io import imread
from restore.utils.options import parse_options
from tests.test_archs import TINY
from tests.test_sparse_group_formulations import assert_same, grads_of
from tests.tiny import make_images, train_options, write_options

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CUDA = torch.device("cuda")
# the layer variants, each in an arch that uses it
VARIANTS = {
    **{name: {"type": name, **opt} for name, opt in TINY.items()},
    "EDSR+sparse_group": {"type": "EDSR", **TINY["EDSR"], "conv": {"type": "sparse_group", "k": 2, "d": 4}},
    "DnCNN+csc": {"type": "DnCNN", **TINY["DnCNN"], "conv": {"type": "csc", "where": "first", "n_iter": 3}},
    "UNet+blurpool": {"type": "UNet", **TINY["UNet"], "downsample": {"type": "blurpool", "filter_size": 4}},
    "FFDNet": {"type": "FFDNet", "num_feat": 8, "num_layer": 4},
}


@pytest.fixture(autouse=True)
def fp32_convs():
    """cuDNN's TF32 convs differ from the CPU's fp32 by ~1e-3: the comparisons are of fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def forward_backward(net, x):
    net.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    out = net(x)
    out.backward(torch.linspace(-1, 1, out.numel(), device=out.device).reshape(out.shape))
    # copies: Module.to() would move the tensors in place (p.grad.data = ...), CPU results included
    return {"out": out.detach().to("cpu", copy=True), "x": x.grad.to("cpu", copy=True),
            **{name: p.grad.to("cpu", copy=True) for name, p in net.named_parameters() if p.grad is not None}}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_net_computes_on_cuda_what_it_computes_on_the_cpu(variant):
    opt = dict(VARIANTS[variant])
    same_size = opt["type"] in ("DnCNN", "UNet", "FFDNet")
    if not same_size:
        opt["upscale"] = 2
    torch.manual_seed(0)
    net = build_network(opt).train()
    channels = 1 if opt["type"] in ("DnCNN", "FFDNet") else 3
    x = torch.rand(2, channels, 12, 14)
    on_cpu = forward_backward(net, x)
    torch.manual_seed(1)  # gumbel or dropout draws would differ anyway: none of these nets has any
    on_cuda = forward_backward(net.to(CUDA), x.to(CUDA))
    assert on_cuda.keys() == on_cpu.keys()
    for name in on_cpu:
        torch.testing.assert_close(on_cuda[name], on_cpu[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("formulation", FORMULATIONS[1:])
@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_every_sparse_group_formulation_equals_the_reference_on_cuda(formulation, batch, channels_last):
    torch.manual_seed(batch)
    layer = SparseGroupConv2d(5, 8, 3, k=3, d=4, weight_norm=True).to(CUDA)
    x = torch.randn(batch, 5, 7, 9, device=CUDA)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    gates = torch.rand(batch, 3, 4, device=CUDA)
    assert_same(grads_of(formulation, layer, x, gates), grads_of("grouped", layer, x, gates))


def cuda_run(tmp_path, name, auto_resume=False, overrides=(), **over):
    opt = train_options(tmp_path, name=name, device="cuda", **over)
    path = write_options(tmp_path / f"{name}.yml", opt)
    return train(parse_options(path, True, overrides=list(overrides)), auto_resume=auto_resume)


@pytest.mark.parametrize("amp", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("net", ["TinyTestSR", "NSR"])
def test_training_on_cuda_learns_and_its_checkpoints_load_on_the_cpu(tmp_path, amp, net):
    network_g = {"type": "TinyTestSR", "num_feat": 8, "upscale": 2} if net == "TinyTestSR" else \
        {"type": "NSR", **TINY["NSR"], "upscale": 2}
    precision = {} if amp == "fp32" else {"train__amp": amp}
    result = cuda_run(tmp_path, "gpu", network_g=network_g, train__total_iter=60,
                      logger__save_checkpoint_freq=60, val__val_freq=30, **precision)
    h = result["history"]
    assert all(np.isfinite(h)) and sum(h[-10:]) < 0.75 * sum(h[:10]), h
    exp = tmp_path / "experiments" / "gpu"
    weights = load_safely(str(exp / "models" / "net_g_60.pth"))
    assert all(t.device.type == "cpu" for t in weights["params"].values())
    cpu_net = build_network(network_g)
    cpu_net.load_state_dict(weights["params_ema"])  # a CPU-only machine can use what the GPU trained
    state = load_safely(str(exp / "training_states" / "60.state"))
    assert (state["scaler"].get("scale", 0) > 0) == (amp == "fp16")
    log = next(f for f in os.listdir(exp) if f.endswith(".log"))
    assert "device cuda" in (exp / log).read_text()


def test_a_resumed_cuda_run_takes_the_steps_of_an_uninterrupted_one(tmp_path):
    torch.backends.cudnn.deterministic = True  # atomics in cuDNN's backward would add order noise
    try:
        cuda_run(tmp_path / "a", "straight", train__total_iter=8)
        cuda_run(tmp_path / "b", "halves", train__total_iter=4)
        cuda_run(tmp_path / "b", "halves", True, ["train.total_iter=8"], train__total_iter=4)
    finally:
        torch.backends.cudnn.deterministic = False
    a = load_safely(str(tmp_path / "a" / "experiments" / "straight" / "models" / "net_g_8.pth"))
    b = load_safely(str(tmp_path / "b" / "experiments" / "halves" / "models" / "net_g_8.pth"))
    for key in ("params", "params_ema"):
        for name in a[key]:
            torch.testing.assert_close(b[key][name], a[key][name], rtol=0, atol=1e-6, msg=f"{key}.{name}")


def test_restore_infer_on_cuda_writes_what_the_cpu_writes(tmp_path, capsys):
    make_images(tmp_path / "in", n=2, size=(45, 52))
    outputs = {}
    for device in ("cpu", "cuda"):
        for tile in ([], ["--tile", "24"]):
            out = tmp_path / f"{device}{''.join(tile)}"
            code = run_cli(infer.main, ["--model", "nsr_sr_x2", "-i", str(tmp_path / "in"), "-o", str(out),
                                        "--device", device, "--no-progress", *tile])
            assert code == 0
            outputs[out.name] = [imread(str(out / f"img{i:02d}.png")).astype(int) for i in range(2)]
    reference = outputs.pop("cpu")
    for name, images in outputs.items():
        for got, want in zip(images, reference):
            assert got.shape == want.shape == (90, 104, 3)
            assert np.abs(got - want).max() <= 1, name  # the same uint8 image, up to rounding at .5


@pytest.fixture
def tiny_ckpt(tmp_path):
    torch.manual_seed(0)
    net = build_network({"type": "TinyTestSR", "num_feat": 8, "upscale": 2})
    path = str(tmp_path / "tiny.pth")
    save_network_file(path, net.state_dict())
    return path


def test_restore_test_scores_on_cuda_what_it_scores_on_the_cpu(tmp_path, tiny_ckpt):
    folder = make_images(tmp_path / "set", n=3, size=(24, 30))
    scores = {}
    for device in ("cpu", "cuda"):
        opt = {"name": device, "scale": 2, "device": device,
               "network_g": {"type": "TinyTestSR", "num_feat": 8, "upscale": 2},
               "datasets": {"test_1": {"name": "mini", "type": "SRImageDataset", "dataroot_gt": str(folder)}},
               "path": {"pretrain_network_g": tiny_ckpt, "results_root": str(tmp_path / "results")},
               "val": {"metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2},
                                   "ssim": {"type": "calculate_ssim", "crop_border": 2}}}}
        assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / f"{device}.yml", opt)]) == 0
        scores[device] = (tmp_path / "results" / device / "results.json").read_text()
    cpu, cuda = (json.loads(scores[d])["mini"]["mean"] for d in ("cpu", "cuda"))
    assert cuda["psnr"] == pytest.approx(cpu["psnr"], abs=1e-3)
    assert cuda["ssim"] == pytest.approx(cpu["ssim"], abs=1e-5)


def test_restore_bench_scores_on_cuda_what_it_scores_on_the_cpu(tmp_path, tiny_ckpt):
    make_images(tmp_path / "data" / "Set5", n=2, size=(24, 30))
    rows = {}
    for device in ("cpu", "cuda"):
        code = run_cli(benchmark.main, ["--model", f"tiny=TinyTestSR:{tiny_ckpt},num_feat=8", "--sets", "Set5",
                                        "--scales", "2", "--data-root", str(tmp_path / "data"),
                                        "-o", str(tmp_path / device), "--no-html", "--no-progress",
                                        "--device", device, "--latency-runs", "0"])
        assert code == 0
        data = json.loads((tmp_path / device / "results.json").read_text())
        assert data["settings"]["device"] == device
        rows[device] = [r["mean"]["tiny"] for r in data["results"]]
    assert len(rows["cuda"]) == len(rows["cpu"]) == 1
    assert rows["cuda"][0]["psnr"] == pytest.approx(rows["cpu"][0]["psnr"], abs=1e-3)
    assert rows["cuda"][0]["ssim"] == pytest.approx(rows["cpu"][0]["ssim"], abs=1e-5)


def test_random_signed_features_on_cuda_equal_the_cpu_ones():
    images = torch.rand(3, 3, 40, 44, generator=torch.Generator().manual_seed(0))
    extractor = RandomSignedFeatures(n=256, blocks=1)
    want = extractor(images)
    got = extractor.to(CUDA)(images.to(CUDA)).cpu()
    # a sign of a value within rounding of zero may flip: one pixel moves a feature by 2 / (H W)
    assert (got - want).abs().max() <= 4 / (40 * 44)


def test_torchrun_on_a_gpu_machine_trains_on_the_gpu(tmp_path):
    from tests.test_distributed import torchrun
    opt = train_options(tmp_path, name="torchrun", device="auto", train__total_iter=6,
                        logger__save_checkpoint_freq=6, val__val_freq=6)
    torchrun(write_options(tmp_path / "torchrun.yml", opt), 1)
    exp = tmp_path / "experiments" / "torchrun"
    assert (exp / "models" / "net_g_6.pth").is_file()
    log = next(f for f in os.listdir(exp) if f.endswith(".log"))
    assert "device cuda" in (exp / log).read_text()

