"""restore-infer when memory or paths fail: out-of-memory forwards retried in halved tiles, --max-pixels,
and suffixes / output folders that are refused with one line before any image is computed."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from restore.archs import build_network
from restore.cli import infer
from restore.cli.common import run_cli
from restore.inference.memory import is_out_of_memory, smaller_tile, tile_for_budget
from restore.utils.checkpoint import save_network_file
from restore.utils.img_io import imread, imwrite, tensor2img
from restore.utils.registry import ARCH_REGISTRY

CALLS: list = []   # (H, W, raised?) of every forward of an OOMAboveSR


@ARCH_REGISTRY.register()
class OOMAboveSR(nn.Module):
    """A small x2 conv net (receptive-field radius 2) that fails as an exhausted allocator would when
    its input has more than `limit` pixels: `kind` cpu / cuda / numpy gives torch's CPU RuntimeError,
    torch.OutOfMemoryError or MemoryError, `other` a RuntimeError that is not about memory."""

    def __init__(self, limit: int = 10 ** 9, kind: str = "cpu"):
        super().__init__()
        self.limit, self.kind = limit, kind
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1))
        self.up = nn.PixelShuffle(2)

    def forward(self, x):
        h, w = x.shape[-2:]
        too_big = h * w > self.limit and h * w != 16 * 16  # the 16x16 size probe always fits
        CALLS.append((h, w, too_big))
        if too_big:
            if self.kind == "cuda":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            if self.kind == "numpy":
                raise MemoryError("Unable to allocate 1.2 GiB for an array")
            if self.kind == "other":
                raise RuntimeError("Given groups=1, weight of size [8, 3, 3, 3], expected input to have 3 channels")
            raise RuntimeError(f"[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                               f"memory: you tried to allocate {h * w * 4 * 64} bytes. Error code 12")
        return self.up(self.body(x))


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    net = build_network({"type": "OOMAboveSR"}).eval()
    ckpt = str(tmp_path / "net.pth")
    save_network_file(ckpt, net.state_dict())
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    imwrite(tmp_path / "in" / "big.png", rng.integers(0, 256, (150, 200, 3), dtype=np.uint8))
    imwrite(tmp_path / "in" / "small.png", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    CALLS.clear()
    return net, ckpt


def run(tmp_path, ckpt, *extra, limit=10 ** 9, kind="cpu", inputs=None, out="out"):
    return run_cli(infer.main, ["--ckpt", ckpt, "--arch", "OOMAboveSR", "--arch-opt", f"limit={limit}",
                                f"kind={kind}", "-i", *(inputs or [str(tmp_path / "in")]),
                                "-o", str(tmp_path / out), "--no-progress", *extra])


def oracle(net, path):
    img = imread(path)
    with torch.inference_mode():
        return tensor2img(net(torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)[None]))


def lines(err):
    return [line for line in err.splitlines() if line.strip()]


def test_oom_messages_are_recognised():
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("expected input to have 3 channels"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_tiles_halve_from_below_the_longer_side_to_the_smallest():
    assert [smaller_tile(None, 150, 200), smaller_tile(128, 150, 200), smaller_tile(64, 1, 1),
            smaller_tile(40, 1, 1), smaller_tile(32, 1, 1), smaller_tile(None, 20, 30)] == [128, 64, 32, 32, None, None]
    assert smaller_tile(None, 100, 256) == 128 and smaller_tile(None, 100, 257) == 256
    assert tile_for_budget(4096) == 64 and tile_for_budget(10) == 32


@pytest.mark.parametrize("kind", ["cpu", "cuda", "numpy"])
def test_out_of_memory_is_retried_in_halved_tiles(tmp_path, capsys, setup, kind):
    net, ckpt = setup
    # windows of 128-pixel tiles (+16 context) have > 9216 pixels; 64-pixel ones (96x96 at most) fit
    assert run(tmp_path, ckpt, limit=96 * 96, kind=kind) == 0
    err = capsys.readouterr().err
    big = str(tmp_path / "in" / "big.png")
    assert f"{big}: out of memory with the whole image; retrying with 128-pixel tiles" in err
    assert f"{big}: out of memory with 128-pixel tiles; retrying with 64-pixel tiles" in err
    assert "Traceback" not in err and "2 of 2 image(s) written" in err
    assert max(h * w for h, w, raised in CALLS if not raised) <= 96 * 96
    for name in ("big", "small"):  # the receptive field (2 px) fits the 16-pixel context: same output
        out, want = imread(tmp_path / "out" / f"{name}.png"), oracle(net, tmp_path / "in" / f"{name}.png")
        assert out.shape == want.shape and np.abs(out.astype(int) - want.astype(int)).max() <= 1


def test_out_of_memory_at_the_smallest_tile_skips_only_that_file(tmp_path, capsys, setup):
    _, ckpt = setup
    assert run(tmp_path, ckpt, limit=10 * 12) == 1  # small.png (10x12) fits, no window of big.png does
    err = capsys.readouterr().err
    big = str(tmp_path / "in" / "big.png")
    assert f"warning: skipped {big}: out of memory even with 32-pixel tiles" in err
    assert "1 of 2 image(s) written" in err and "Traceback" not in err
    assert (tmp_path / "out" / "small.png").is_file() and not (tmp_path / "out" / "big.png").exists()
    assert err.count("retrying with") == 3  # whole image -> 128 -> 64 -> 32


def test_an_error_that_is_not_about_memory_is_not_retried(tmp_path, setup):
    _, ckpt = setup
    with pytest.raises(RuntimeError, match="expected input to have 3 channels"):
        run(tmp_path, ckpt, "--debug", limit=10 * 12, kind="other", inputs=[str(tmp_path / "in" / "big.png")])
    assert len([c for c in CALLS if c[2]]) == 1


def test_max_pixels_tiles_large_inputs_up_front(tmp_path, capsys, setup):
    net, ckpt = setup
    assert run(tmp_path, ckpt, "--max-pixels", "4096", limit=96 * 96) == 0
    err = capsys.readouterr().err
    assert "big.png: 200x150 is above --max-pixels 4096: running in 64-pixel tiles" in err
    assert "retrying" not in err and not any(raised for _, _, raised in CALLS)
    assert (10, 12, False) in CALLS  # small.png (120 pixels) is run whole
    out, want = imread(tmp_path / "out" / "big.png"), oracle(net, tmp_path / "in" / "big.png")
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1


# --- paths ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["/../../x", "_a/b", "..", "_x..y", "\\..\\x" if os.sep == "\\" else "a/"])
def test_a_suffix_that_is_not_part_of_a_name_is_refused(tmp_path, capsys, setup, suffix):
    _, ckpt = setup
    assert run(tmp_path, ckpt, "--suffix", suffix) == 2
    err = capsys.readouterr().err
    assert lines(err) == [f"error: --suffix {suffix!r}: must be part of a file name (no path separator or '..')"]
    assert CALLS == [] and not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == ["in", "net.pth"]


def test_output_naming_an_existing_file_is_one_usage_error(tmp_path, capsys, setup):
    _, ckpt = setup
    (tmp_path / "taken.txt").write_text("keep me")
    assert run(tmp_path, ckpt, out="taken.txt") == 2
    err = capsys.readouterr().err
    assert lines(err) == [f"error: -o {tmp_path / 'taken.txt'}: is a file; the output must be a folder"]
    assert (tmp_path / "taken.txt").read_text() == "keep me" and CALLS == []


def test_unwritable_output_folder_fails_before_any_image_is_computed(tmp_path, capsys, setup, monkeypatch):
    _, ckpt = setup
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() == 0:  # root writes through a 0555 mode: make the write itself fail instead
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr("restore.inference.runner.tempfile.mkstemp", refuse)
    else:
        out.chmod(0o555)
    try:
        assert run(tmp_path, ckpt, out="ro") == 2
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert lines(err) == [f"error: -o {out}: cannot write in this folder (Permission denied)"]
    assert CALLS == [] and os.listdir(out) == []
