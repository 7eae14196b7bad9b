"""Running a network over image files: modes and bit depths kept, outputs never over inputs.

- Gray, RGB and RGBA images and 8- and 16-bit images come out in the mode and depth they went in.
  A gray image given to an RGB net runs as R=G=B and comes back as the BT.601 luma of the output;
  an RGB image given to a gray net runs channel by channel. The alpha plane of an RGBA image is
  upscaled with bicubic interpolation (OpenCV) or, with alpha='model', run through the net as a gray
  image.
- Outputs are quantised tile by tile into the output array, so a tiled run holds the input, the
  uint8/uint16 output and one tile's activations, never a float copy of the whole output.
- The output folder must not be an input folder and no output may replace an input; files are
  written atomically. A file that cannot be read or written is skipped and reported, the rest run.
- A forward that runs out of memory is retried in tiles, halved until it fits (memory.py); only a
  failure at the smallest tile skips the file. Images above `max_pixels` are tiled from the start.
"""
import glob
import os
import sys
import tempfile
from dataclasses import dataclass, replace
from typing import Callable, Literal, Optional, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from restore.inference.forward import inference_forward
from restore.inference.memory import is_out_of_memory, release_memory, smaller_tile, tile_for_budget
from restore.inference.tiling import count_tiles
from restore.utils.errors import RestoreError
from restore.utils.img_io import IMG_EXTENSIONS, imread, imwrite, is_image_file, to_float32

AlphaMode = Literal["bicubic", "model"]
LUMA = (0.299, 0.587, 0.114)
NO_16BIT = (".jpg", ".jpeg", ".webp", ".bmp")
NO_ALPHA = (".jpg", ".jpeg", ".bmp", ".ppm", ".pgm")


@dataclass
class Settings:
    tile: Optional[int] = None
    tile_pad: int = 16
    ensemble: bool = False
    alpha: AlphaMode = "bicubic"
    device: torch.device = torch.device("cpu")
    max_pixels: Optional[int] = None   # images with more input pixels are tiled up front


def adapt_channels(x: torch.Tensor, net_channels: int):
    """(net input, post-processing of the net output) for an image tensor (1, c, H, W): a gray image
    on an RGB net runs as R=G=B and gives the luma of the output, an RGB image on a gray net runs its
    planes as a batch of three. restore-bench adapts images the same way."""
    channels = x.shape[1]
    if channels == net_channels:
        return x, lambda out: out
    if channels == 1 and net_channels == 3:
        weights = x.new_tensor(LUMA).view(1, 3, 1, 1)
        return x.expand(1, 3, *x.shape[2:]), lambda out: (out * weights.to(out.dtype)).sum(1, keepdim=True)
    if channels == 3 and net_channels == 1:
        return x.permute(1, 0, 2, 3), lambda out: out.permute(1, 0, 2, 3)
    raise RestoreError(f"a {channels}-channel image does not fit a net with {net_channels} input channels")


def quantise_into(target: np.ndarray, core: torch.Tensor) -> None:
    """tensor2img(core) written into the uint8/uint16 HxWxC view `target`: the same clamp, scale and
    round, with one temporary instead of three and no uint copy (this is most of what restore-infer
    adds to the forward of a large image)."""
    peak = 255.0 if target.dtype == np.uint8 else 65535.0
    values = core[0].detach().float().clamp(0, 1).mul_(peak).round_().cpu().numpy()
    np.copyto(target, values.transpose(1, 2, 0), casting="unsafe")  # whole numbers: the cast is exact


def restore_planes(net: Callable, planes: np.ndarray, net_channels: int, scale: int, settings: Settings,
                   on_tile: Optional[Callable[[], None]] = None) -> np.ndarray:
    """Run a gray (HxWx1) or RGB (HxWx3) uint8/uint16 array through `net`; same channels and dtype out."""
    height, width, channels = planes.shape
    x = torch.from_numpy(to_float32(planes).transpose(2, 0, 1)).unsqueeze(0).to(settings.device)
    x, post = adapt_channels(x, net_channels)
    try:
        out = np.empty((height * scale, width * scale, channels), dtype=planes.dtype)
    except MemoryError:  # not a forward's failure: smaller tiles would not help
        raise RestoreError(f"the {width * scale}x{height * scale} output image does not fit in memory") from None

    def write(core, box):
        core = post(core)
        if core.shape[1] != channels or box[1] > out.shape[0] or box[3] > out.shape[1]:
            raise RestoreError(f"the net gave a {core.shape[1]}-channel output of an unexpected size "
                               f"for a {channels}-channel input at scale {scale}")
        quantise_into(out[box[0]:box[1], box[2]:box[3]], core)

    with torch.inference_mode():
        inference_forward(net, x, settings.tile, settings.tile_pad, settings.ensemble, write=write,
                          on_tile=on_tile)
    return out


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of an HxWx1 alpha plane, same dtype (OpenCV saturates to its range)."""
    if scale == 1:
        return alpha.copy()
    h, w = alpha.shape[:2]
    return cv2.resize(alpha[:, :, 0], (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)[:, :, None]


def restore_image(net: Callable, img: np.ndarray, net_channels: int, scale: int, settings: Settings,
                  on_tile: Optional[Callable[[], None]] = None) -> np.ndarray:
    """A gray, RGB or RGBA uint8/uint16 HWC image through the net, in its own mode and depth."""
    if img.dtype not in (np.uint8, np.uint16) or img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise RestoreError(f"unsupported image: shape {img.shape}, {img.dtype} (gray, RGB or RGBA, 8/16-bit)")
    colour = img[:, :, :3] if img.shape[2] == 4 else img
    out = restore_planes(net, np.ascontiguousarray(colour), net_channels, scale, settings, on_tile)
    if img.shape[2] == 4:
        alpha = np.ascontiguousarray(img[:, :, 3:])
        if settings.alpha == "model":
            alpha = restore_planes(net, alpha, net_channels, scale, settings, on_tile)
        else:
            alpha = upscale_alpha(alpha, scale)
        out = np.concatenate([out, alpha], axis=2)
    return out


# --- files -----------------------------------------------------------------------------------------
def collect_inputs(specs) -> list[str]:
    """Image files from files, folders (their images, not recursive) and glob patterns, in order, once each."""
    found, seen = [], set()
    for spec in specs:
        spec = os.path.expanduser(spec)
        if os.path.isdir(spec):
            names = sorted(f for f in os.listdir(spec) if is_image_file(f))
            if not names:
                raise RestoreError(f"{spec}: no image files ({', '.join(IMG_EXTENSIONS)}) in this folder")
            paths = [os.path.join(spec, n) for n in names]
        elif os.path.isfile(spec):
            paths = [spec]
        elif glob.has_magic(spec):
            paths = sorted(p for p in glob.glob(spec) if os.path.isfile(p) and is_image_file(p))
            if not paths:
                raise RestoreError(f"{spec}: the pattern matches no image file")
        else:
            raise RestoreError(f"{spec}: no such file or folder")
        for p in paths:
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                found.append(p)
    return found


@dataclass(frozen=True)
class Job:
    src: str
    dst: str


def check_suffix(suffix: str) -> None:
    """A suffix is part of a file name: no separator or '..' that could lead out of the output folder."""
    separators = {"/", os.sep, os.altsep} - {None}
    if any(sep in suffix for sep in separators) or ".." in suffix or "\0" in suffix:
        raise RestoreError(f"--suffix {suffix!r}: must be part of a file name (no path separator or '..')")


def check_output_folder(out_dir: str) -> None:
    """Create the output folder and prove it writable (a probe file) before any image is computed."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RestoreError(f"-o {out_dir}: is a file; the output must be a folder")
    try:
        os.makedirs(out_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".restore-write-probe-", dir=out_dir)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise RestoreError(f"-o {out_dir}: cannot write in this folder ({e.strerror or e})") from None


def plan_jobs(inputs: list[str], out_dir: str, suffix: str = "", ext: str = ".png") -> list[Job]:
    """Output path of every input; refuses an output folder that holds inputs, or clashing outputs."""
    check_suffix(suffix)
    ext = ext if ext.startswith(".") else "." + ext
    if not is_image_file("x" + ext):
        raise RestoreError(f"--ext {ext}: not an image format ({', '.join(IMG_EXTENSIONS)})")
    out_real = os.path.realpath(out_dir)
    in_real = {os.path.realpath(p): p for p in inputs}
    for real, given in in_real.items():
        if os.path.dirname(real) == out_real:
            raise RestoreError(f"output folder {out_dir} is the folder of input {given}: choose another "
                               f"output folder so no input can be overwritten")
    jobs, targets = [], {}
    for src in inputs:
        stem = os.path.splitext(os.path.basename(src))[0]
        dst = os.path.join(out_dir, stem + suffix + ext)
        real = os.path.realpath(dst)
        if real in in_real:
            raise RestoreError(f"output {dst} would overwrite input {in_real[real]}")
        if real in targets:
            raise RestoreError(f"inputs {targets[real]} and {src} would both be written to {dst}; "
                               f"rename one or run them separately")
        targets[real] = src
        jobs.append(Job(src, dst))
    return jobs


def check_format(img: np.ndarray, dst: str) -> None:
    ext = os.path.splitext(dst)[1].lower()
    if img.dtype == np.uint16 and ext in NO_16BIT:
        raise RestoreError(f"a 16-bit image cannot be saved as {ext} without losing depth; use --ext png or tif")
    if img.shape[2] == 4 and ext in NO_ALPHA:
        raise RestoreError(f"an image with alpha cannot be saved as {ext}; use --ext png, tif or webp")


def _tiling(tile: Optional[int]) -> str:
    return "the whole image" if tile is None else f"{tile}-pixel tiles"


def restore_fitting(net: Callable, img: np.ndarray, net_channels: int, scale: int, settings: Settings,
                    progress: bool = False, note: Callable[[str], None] = print) -> np.ndarray:
    """`restore_image`, tiled up front above `settings.max_pixels` and retried in tiles halved until
    the forward fits in memory; `note` gets one line for each change of tiling."""
    height, width = img.shape[:2]
    tile = settings.tile
    budget_tile = tile_for_budget(settings.max_pixels) if settings.max_pixels else None
    if tile is None and budget_tile and height * width > settings.max_pixels and budget_tile < max(height, width):
        tile = budget_tile
        note(f"{width}x{height} is above --max-pixels {settings.max_pixels}: running in {tile}-pixel tiles")
    while True:
        tiles = count_tiles(height, width, tile) if tile else 1
        tiles *= 2 if img.shape[2] == 4 and settings.alpha == "model" else 1
        try:
            with tqdm(total=tiles, unit="tile", leave=False, file=sys.stderr,
                      disable=not progress or tiles < 2) as tile_bar:
                return restore_image(net, img, net_channels, scale, replace(settings, tile=tile),
                                     on_tile=tile_bar.update)
        except (RuntimeError, MemoryError) as e:
            if not is_out_of_memory(e):
                raise
        # outside the except block, so the traceback (and the failed forward's tensors) are freed
        release_memory(settings.device)
        smaller = smaller_tile(tile, height, width)
        if smaller is None:
            raise RestoreError(f"out of memory even with {_tiling(tile)}")
        note(f"out of memory with {_tiling(tile)}; retrying with {smaller}-pixel tiles")
        tile = smaller


@dataclass(frozen=True)
class Member:
    """A network restore-infer may run: the net, the channels it takes, its name for messages."""
    net: Callable
    channels: int
    label: str


def pick_member(members: Sequence[Member], img: np.ndarray) -> Member:
    """The member taking the image's channels (gray: 1; RGB and RGBA: 3), else the first one (its
    channels are then adapted as `adapt_channels` says)."""
    channels = 1 if img.ndim == 2 or img.shape[2] == 1 else 3
    return next((m for m in members if m.channels == channels), members[0])


def run_jobs(members: Sequence[Member], scale: int, jobs: list[Job], settings: Settings,
             progress: bool = True) -> list[tuple[str, str]]:
    """Process every job, each image through `pick_member`'s network (with more than one member,
    each image's line says which); returns [(input, reason)] for the files that were skipped."""
    skipped = []
    bar = tqdm(jobs, unit="img", desc="restore", disable=not progress, file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(os.path.basename(job.src), refresh=False)
        try:
            img = imread(job.src)
            check_format(img, job.dst)
            member = pick_member(members, img)
            if len(members) > 1:
                kind = "gray" if member.channels == 1 else "colour"
                tqdm.write(f"{job.src}: {kind} image, {member.label}", file=sys.stderr)
            out = restore_fitting(member.net, img, member.channels, scale, settings, progress,
                                  note=lambda line: tqdm.write(f"{job.src}: {line}", file=sys.stderr))
            imwrite(job.dst, out)
        except (RestoreError, MemoryError, torch.OutOfMemoryError) as e:
            reason = str(e) if isinstance(e, RestoreError) else f"out of memory ({type(e).__name__})"
            reason = reason[len(job.src) + 2:] if reason.startswith(job.src + ": ") else reason
            tqdm.write(f"warning: skipped {job.src}: {reason}", file=sys.stderr)
            skipped.append((job.src, reason))
    return skipped
