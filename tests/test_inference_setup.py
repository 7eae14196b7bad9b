"""The one inference set-up (restore/inference/setup.py): restore-infer, restore-bench, restore-test and
load_model() hand the net its inputs in the memory format chosen for it (channels_last on the CPU),
tiles reuse their input buffers, and the outputs equal a plain NCHW forward to 1e-5."""
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from restore import test as restore_test
from restore.archs import build_network
from restore.cli import benchmark, infer
from restore.cli.common import run_cli
from restore.inference import inference_forward, load_model
from restore.inference.setup import FormattedNet, memory_format_of, prepare_net, prepare_process
from restore.utils.checkpoint import save_network_file
from restore.utils.img_io import imread, imwrite, tensor2img
from restore.utils.registry import ARCH_REGISTRY
from tests.tiny import make_images, write_options

SEEN: list = []  # (shape, channels_last-contiguous?) of every CPU input a LayoutProbeSR was fed


def _record(module, args):
    x = args[0]
    if x.device.type == "cpu":
        SEEN.append((tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last)))


@ARCH_REGISTRY.register()
class LayoutProbeSR(nn.Module):
    """A small x2 conv net that records, in a forward pre-hook, the memory format of its inputs."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 8, upscale: int = 2):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(num_feat, num_in_ch * upscale ** 2, 3, padding=1))
        self.up = nn.PixelShuffle(upscale)
        self.register_forward_pre_hook(_record)

    def forward(self, x):
        return self.up(self.body(x))


PROBE = {"type": "LayoutProbeSR", "num_feat": 8, "upscale": 2}


@pytest.fixture
def probe_ckpt(tmp_path):
    torch.manual_seed(0)
    net = build_network(PROBE)
    path = str(tmp_path / "probe.pth")
    save_network_file(path, net.state_dict())
    SEEN.clear()
    return net.eval(), path


def assert_all_channels_last():
    assert SEEN, "the probe net never ran"
    nchw = [shape for shape, cl in SEEN if not cl]
    assert not nchw, f"fed the net {len(nchw)} non-channels_last CPU tensor(s), e.g. {nchw[0]}"


def test_the_probe_sees_an_nchw_input():
    """The check below is not vacuous: a net used without the set-up records NCHW."""
    SEEN.clear()
    net = build_network(PROBE).eval()
    with torch.inference_mode():
        inference_forward(net, torch.rand(1, 3, 12, 14))
    assert SEEN == [((1, 3, 12, 14), False)]


def test_load_model_prepares_the_net(probe_ckpt):
    _, ckpt = probe_ckpt
    m = load_model(ckpt=ckpt, arch="LayoutProbeSR", arch_opts=["num_feat=8"])
    assert not m.net.training and not any(p.requires_grad for p in m.net.parameters())
    assert memory_format_of(m.net) == torch.channels_last
    assert m.net.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert m.scale == 2  # the size probe, too, goes in channels_last
    assert_all_channels_last()


@pytest.mark.parametrize("tile,ensemble", [(None, False), (7, False), (None, True), (6, True)])
def test_outputs_equal_a_plain_nchw_forward(probe_ckpt, tile, ensemble):
    plain, _ = probe_ckpt
    prepared = prepare_net(build_network(PROBE))
    prepared.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 19, 23)
    with torch.inference_mode():
        want = inference_forward(plain, x, tile, 4, ensemble)
        SEEN.clear()
        got = inference_forward(prepared, x, tile, 4, ensemble)
    assert got.shape == want.shape == (1, 3, 38, 46)
    assert (got - want).abs().max() < 1e-5
    assert_all_channels_last()


def test_tiles_reuse_one_input_buffer_per_shape():
    pointers = []
    net = FormattedNet(lambda t: (pointers.append((tuple(t.shape), t.data_ptr())), t * 2)[1], torch.channels_last)
    x = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        out = inference_forward(net, x, tile=8, tile_pad=2)
    assert (out - 2 * x).abs().max() == 0
    assert len(pointers) == 25
    by_shape = {}
    for shape, ptr in pointers:
        by_shape.setdefault(shape, set()).add(ptr)
    assert all(len(p) == 1 for p in by_shape.values())  # 9 window shapes, one buffer each


def test_a_net_returning_its_input_is_not_overwritten_by_the_next_call():
    x = torch.rand(1, 3, 9, 11)
    with torch.inference_mode():  # identity: the ensemble mean is x itself only if no buffer is reused
        out = inference_forward(prepare_net(nn.Identity()), x, self_ensemble=True)
    assert (out - x).abs().max() < 1e-6


def test_prepare_process_sets_threads_and_the_allocator():
    before = torch.get_num_threads()
    try:
        info = prepare_process(threads=1)
        assert torch.get_num_threads() == 1 and info["threads"] == 1
        assert isinstance(info["allocator_tuned"], bool)
    finally:
        torch.set_num_threads(before)


# --- the three command-line paths --------------------------------------------------------------------
def test_restore_infer_feeds_channels_last(tmp_path, probe_ckpt):
    plain, ckpt = probe_ckpt
    make_images(tmp_path / "in", n=1, size=(21, 26))
    gray = imread(tmp_path / "in" / "img00.png", "gray")
    imwrite(tmp_path / "in" / "gray.png", gray)
    for extra in ([], ["--tile", "8"], ["--ensemble"], ["--tile", "8", "--ensemble"]):
        SEEN.clear()
        out = tmp_path / ("out" + "".join(extra))
        code = run_cli(infer.main, ["--ckpt", ckpt, "--arch", "LayoutProbeSR", "--arch-opt", "num_feat=8",
                                    "-i", str(tmp_path / "in"), "-o", str(out), "--no-progress",
                                    "--tile-pad", "4", "--device", "cpu", *extra])
        assert code == 0
        assert_all_channels_last()
        assert len([s for s in SEEN if s[0][-2:] != (16, 16)]) >= 2  # both images, not just the probe
    rgb = imread(tmp_path / "in" / "img00.png")
    with torch.inference_mode():
        want = tensor2img(plain(torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255)[None]))
    got = imread(tmp_path / "out" / "img00.png")
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_restore_bench_feeds_channels_last(tmp_path, probe_ckpt):
    _, ckpt = probe_ckpt
    make_images(tmp_path / "data" / "Set5", n=2, size=(24, 30))
    code = run_cli(benchmark.main, ["--model", f"probe=LayoutProbeSR:{ckpt},num_feat=8", "--sets", "Set5",
                                    "--scales", "2", "--data-root", str(tmp_path / "data"),
                                    "-o", str(tmp_path / "o"), "--no-html", "--no-progress",
                                    "--latency-size", "16", "20", "--latency-runs", "1"])
    assert code == 0
    assert_all_channels_last()
    assert ((1, 3, 12, 15), True) in SEEN and ((1, 3, 16, 20), True) in SEEN  # the scores and the latency
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["settings"]["threads"] == torch.get_num_threads()


def test_restore_test_feeds_channels_last(tmp_path, probe_ckpt):
    _, ckpt = probe_ckpt
    folder = make_images(tmp_path / "set", n=2, size=(24, 30))
    for name, val in (("whole", {}), ("tiled", {"tile": 6, "tile_pad": 2}), ("ens", {"self_ensemble": True})):
        SEEN.clear()
        opt = {"name": name, "scale": 2, "device": "cpu", "network_g": PROBE,
               "datasets": {"test_1": {"name": "mini", "type": "SRImageDataset", "dataroot_gt": str(folder)}},
               "path": {"pretrain_network_g": ckpt, "results_root": str(tmp_path / "results")},
               "val": {**val, "metrics": {"psnr": {"type": "calculate_psnr"}}}}
        assert run_cli(restore_test.main, ["-opt", write_options(tmp_path / f"{name}.yml", opt)]) == 0
        assert_all_channels_last()
        assert os.path.isfile(tmp_path / "results" / name / "results.json")


def test_bench_infer_script_runs_and_reports_every_row(tmp_path, capsys):
    from restore.utils.scripts import load_script
    bench = load_script("bench_infer")
    out = tmp_path / "report.txt"
    assert bench.main(["--megapixels", "0.01", "--images", "1", "--models", "nsr_dn_gray_blind", "--tiles", "0",
                       "64", "--repeats", "1", "--peak-size", "64", "--out", str(out)]) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.startswith("nsr_dn_gray_blind")]
    assert [(r[1], r[2], r[3]) for r in rows] == [("-", "astronaut", "100x100"), ("64", "astronaut", "100x100")]
    for r in rows:  # e2e, bare, io, ratio = e2e / (bare + io), the same of CPU times, GFLOP/s, %peak, RSS
        e2e, bare, io, ratio = map(float, r[4:8])
        assert e2e > 0 and bare > 0 and float(r[8]) > 0 and float(r[9]) > 0 and float(r[11]) > 100
        assert abs(ratio * (bare + io) - e2e) <= 0.005 * (1 + 2 * ratio) + 1e-9  # times printed to 0.01 s
