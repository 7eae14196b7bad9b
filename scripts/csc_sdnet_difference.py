"""How far CSCConv2d's defaults are from SDNet's own settings: max |difference| / max |code| of the raw
codes of `CSCConv2d(3, 16, n_iter=n, scale_output=False)` at 1 to 5 steps, each variant against
`step: sdnet, momentum: sdnet` built from the same seed, on one 48 x 48 RGB crop of scikit-image's
astronaut. Writes results/csc/sdnet_difference.md (the table docs/csc.md quotes).

    python scripts/csc_sdnet_difference.py [--seed 0] [--out results/csc/sdnet_difference.md]

Everything is seeded (the weights by --seed, SDNet's power iteration by the layer itself), so a rerun
on the same torch gives the same table.
"""
import argparse
import os
import sys

import numpy as np
import torch

from restore.archs.layers.csc_conv import CSCConv2d
from restore.utils.img_io import atomic_write_bytes
from restore.utils.machine import made_by

SDNET = ("sdnet", "sdnet")
# (step, momentum) -> column header
VARIANTS = {("sdnet", "fista"): "`step: sdnet`, `momentum: fista`",
            ("bound", "sdnet"): "`step: bound`, `momentum: sdnet`",
            ("bound", "fista"): "defaults (`bound`, `fista`)"}
STEPS = (1, 2, 3, 4, 5)
ATOMS = 16
LAMBDA = 0.1
CROP = (slice(100, 148), slice(180, 228))  # rows, columns of astronaut(): hair, skin and suit edges


def astronaut_crop() -> torch.Tensor:
    """The input: a [1, 3, 48, 48] float32 crop in [0, 1]."""
    import skimage.data

    img = np.asarray(skimage.data.astronaut())[CROP]
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


@torch.no_grad()
def codes(x: torch.Tensor, n_iter: int, step: str, momentum: str, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # the same dictionary for every variant
    layer = CSCConv2d(x.shape[1], ATOMS, n_iter=n_iter, lmbda=LAMBDA, scale_output=False,
                      step=step, momentum=momentum).eval()
    return layer(x)


def relative_differences(x: torch.Tensor, seed: int) -> dict:
    """{steps: {(step, momentum): max |z - z_sdnet| / max |z_sdnet|}} for every variant."""
    table = {}
    for n in STEPS:
        reference = codes(x, n, *SDNET, seed)
        scale = float(reference.abs().max())
        table[n] = {v: float((codes(x, n, *v, seed) - reference).abs().max()) / scale for v in VARIANTS}
    return table


def short(value: float) -> str:
    """0 when exactly zero, else two significant digits as the page writes them (1.8e-2)."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def markdown(table: dict, header: str, seed: int) -> str:
    lines = [header, "", "# CSCConv2d against SDNet's settings", "",
             f"max |difference| / max |code| against `step: sdnet`, `momentum: sdnet`: 3 -> {ATOMS} atoms, "
             f"kernel 3, lambda {LAMBDA:g}, raw codes (`scale_output=False`), eval mode, weights seeded "
             f"{seed}; input: scikit-image's astronaut, rows {CROP[0].start}-{CROP[0].stop - 1}, columns "
             f"{CROP[1].start}-{CROP[1].stop - 1}, RGB / 255.", "",
             "| steps | " + " | ".join(VARIANTS.values()) + " |", "|---|" + "---|" * len(VARIANTS)]
    for n, row in table.items():
        lines.append(f"| {n} | " + " | ".join(short(row[v]) for v in VARIANTS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="torch seed of the dictionary (default 0)")
    p.add_argument("--out", default=os.path.join("results", "csc", "sdnet_difference.md"))
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    # the layers are tiny (16 x 48 x 48 codes): one thread is ~100x faster than two that spin-wait on
    # a shared CPU (the table came out the same with two)
    torch.set_num_threads(1)
    table = relative_differences(astronaut_crop(), args.seed)
    text = markdown(table, made_by("python", "scripts/csc_sdnet_difference.py", *argv), args.seed)
    atomic_write_bytes(args.out, text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
