"""Cut large training images into overlapping square sub-images (BasicSR's recipe).

Reading a 480x480 tile is much cheaper than decoding a 2K image to crop a 96x96 patch from it, so
DIV2K-style training sets are usually pre-cut. Positions along each side are 0, step, 2*step, ...
while a whole crop fits, plus one crop flush with the far edge when the leftover is larger than
`thresh_size` (BasicSR defaults: crop 480, step 240, thresh 0). Outputs `<stem>_s001.png`, ... in
row-major order, always lossless PNG; the folder is written under a temporary name and renamed at the
end, so an interrupted run leaves nothing that looks finished.
"""
import os
import re

import cv2

from restore.data.staging import parallel_map, staged
from restore.utils.errors import RestoreError
from restore.utils.img_io import imencode, imread, list_images

SCALE_SUFFIX = re.compile(r"x\d+$")


def crop_positions(length: int, crop: int, step: int, thresh: int) -> list[int]:
    """Start offsets along one side; a side shorter than the crop gives one (shorter) crop at 0."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, step))
    if length - (starts[-1] + crop) > thresh:
        starts.append(length - crop)
    return starts


def output_stem(path: str, strip_scale_suffix: bool) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    # only a trailing x2/x3/x4 (DIV2K's '0001x2'); BasicSR removes these anywhere in the name
    return SCALE_SUFFIX.sub("", stem) if strip_scale_suffix else stem


def cut_image(job) -> int:
    """(path, stem, out_dir, crop, step, thresh, level) -> number of sub-images written."""
    path, stem, out_dir, crop, step, thresh, level = job
    img = imread(path)
    h, w = img.shape[:2]
    index = 0
    for top in crop_positions(h, crop, step, thresh):
        for left in crop_positions(w, crop, step, thresh):
            index += 1
            tile = img[top: top + crop, left: left + crop]
            # no per-file fsync (img_io.imwrite): the whole folder is renamed into place at the end
            out = os.path.join(out_dir, f"{stem}_s{index:03d}.png")
            try:
                with open(out, "wb") as f:
                    f.write(imencode(tile, ".png", [cv2.IMWRITE_PNG_COMPRESSION, level]))
            except OSError as e:
                raise RestoreError(f"{out}: cannot write ({e.strerror})") from None
    return index


def extract_subimages(input_folder: str, output_folder: str, crop_size: int = 480, step: int = 240,
                      thresh_size: int = 0, workers: int = 1, compress_level: int = 3,
                      strip_scale_suffix: bool = False) -> int:
    """Cut every image of `input_folder` into `output_folder`; returns the number of sub-images."""
    if crop_size < 1 or step < 1 or thresh_size < 0:
        raise RestoreError("crop size and step must be >= 1 and thresh size >= 0")
    if not 0 <= compress_level <= 9:
        raise RestoreError(f"--compress-level: must be 0..9, got {compress_level}")
    output_folder = os.path.abspath(output_folder.rstrip("/"))
    if os.path.isdir(output_folder) and os.listdir(output_folder):
        raise RestoreError(f"{output_folder}: output folder exists and is not empty; remove it or choose another")
    if os.path.exists(output_folder) and not os.path.isdir(output_folder):
        raise RestoreError(f"{output_folder}: exists and is not a folder")
    paths = list_images(input_folder)
    stems = {}
    for path in paths:
        stem = output_stem(path, strip_scale_suffix)
        if stem in stems:
            raise RestoreError(f"{input_folder}: {os.path.basename(stems[stem])} and {os.path.basename(path)} "
                               f"would both write {stem}_s001.png")
        stems[stem] = path
    with staged(output_folder, workers) as (tmp, pool):
        jobs = [(path, stem, tmp, crop_size, step, thresh_size, compress_level) for stem, path in stems.items()]
        # one image per task: images differ in size, and each is a lot of work
        counts = list(parallel_map(pool, cut_image, jobs, "extract", chunksize=1))
        if os.path.isdir(output_folder):
            os.rmdir(output_folder)  # empty (checked above); fails, and keeps it, if something appeared
        os.rename(tmp, output_folder)
    return sum(counts)
