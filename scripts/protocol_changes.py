"""What each difference between the two scoring protocols is worth: the bicubic Y-PSNR of Set5 x2 and
Set14 x2 under `literature` with one component changed at a time. Writes results/protocol/changes.md
(the table docs/protocol.md quotes).

    python scripts/protocol_changes.py [--data-root DIR] [--out results/protocol/changes.md]
"""
import argparse
import os
import sys

import numpy as np

from restore.data.testsets import find_testset, get_testset
from restore.metrics.protocol import bicubic_output, stored_channels
from restore.utils.img_io import atomic_write_bytes
from restore.utils.machine import made_by
from restore.utils.paths import find_data_root

SETS = ("Set5", "Set14")
SCALE = 2
# key -> the table's words for it; each changes one component of `literature`
CHANGES = {"none": "none",
           "lr_rounded": "LR rounded to 8 bits first",
           "y_unrounded": "Y unrounded (BasicSR's)",
           "gray_as_rgb": "bridge.png as RGB -> studio Y"}


def image_psnrs(raw: np.ndarray, scale: int) -> dict:
    """{change: Y-PSNR} of the bicubic baseline for one image as read unchanged (crop = scale)."""
    from restore.data.transforms import modcrop
    from restore.metrics.psnr_ssim import calculate_psnr

    channels = stored_channels(raw)
    gt = modcrop(raw if raw.ndim == 3 else raw[:, :, None], scale)
    rgb = np.repeat(gt, 3, axis=2) if channels == 1 else gt[:, :, :3]
    unquantised = bicubic_output(rgb, scale, "literature")

    def psnr(out, protocol="literature", gt_channels=channels):
        return calculate_psnr(out, rgb, crop_border=scale, test_y_channel=True, protocol=protocol,
                              gt_channels=gt_channels)

    return {"none": psnr(unquantised),
            # `basicsr`'s bicubic output: LR written as an 8-bit file, then upscaled
            "lr_rounded": psnr(bicubic_output(rgb, scale, "basicsr")),
            # a gray file is scored on its gray values under `literature`: no Y to round; for an RGB
            # file the two protocols differ only in rounding Y
            "y_unrounded": psnr(unquantised, "basicsr" if channels != 1 else "literature"),
            "gray_as_rgb": psnr(unquantised, gt_channels=3)}


def set_means(folder: str, scale: int) -> dict:
    """{change: mean Y-PSNR over the set's images}."""
    from restore.utils.img_io import imread, list_images

    rows = [image_psnrs(imread(path), scale) for path in list_images(folder)]
    return {change: float(np.mean([r[change] for r in rows])) for change in CHANGES}


def markdown(table: dict, header: str, scale: int = SCALE) -> str:
    """`table`: {set: {change: mean PSNR}}."""
    sets = list(table)
    lines = [header, "", "# One component of the `literature` protocol changed at a time", "",
             "Bicubic baseline, mean PSNR (dB) on Y, crop = scale, GT mod-cropped. `LR rounded`: the LR "
             "quantised to 8 bits before upscaling (`basicsr`'s bicubic); `Y unrounded`: BasicSR's float Y "
             "of every RGB file; `bridge.png as RGB`: Set14's one one-channel file replicated to RGB and "
             "scored on its (rounded) studio-swing Y. See docs/protocol.md.", "",
             "| change from `literature` | " + " | ".join(f"{s} x{scale}" for s in sets) + " |",
             "|---|" + "---|" * len(sets)]
    for change, words in CHANGES.items():
        lines.append(f"| {words} | " + " | ".join(f"{table[s][change]:.3f}" for s in sets) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="folder holding Set5 and Set14 (default: the usual search)")
    p.add_argument("--out", default=os.path.join("results", "protocol", "changes.md"))
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    root = find_data_root(args.data_root)
    table = {}
    for name in SETS:
        folder = find_testset(get_testset(name), root)
        if folder is None:
            print(f"error: {name} not found under {root} (use --data-root)", file=sys.stderr)
            return 2
        table[name] = set_means(folder, SCALE)
    text = markdown(table, made_by("python", "scripts/protocol_changes.py", *argv))
    atomic_write_bytes(args.out, text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
