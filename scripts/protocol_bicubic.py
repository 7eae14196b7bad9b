"""The bicubic rows of Set5 / Set14 / BSD100 (and Urban100 when present) under both scoring
protocols, beside the published (MATLAB) numbers: results/protocol/bicubic.json and bicubic.md.

    python scripts/protocol_bicubic.py [--data-root DIR] [--out results/protocol]

See docs/protocol.md for what the two protocols are and why Set14 differs.
"""
import argparse
import json
import os
import sys
import time


from restore.data.testsets import find_testset, get_testset
from restore.metrics.protocol import PROTOCOLS, PUBLISHED_BICUBIC_PSNR, bicubic_scores
from restore.utils.img_io import atomic_write_bytes
from restore.utils.machine import made_by
from restore.utils.paths import find_data_root

SETS = ("Set5", "Set14", "BSD100", "Urban100")
SCALES = (2, 3, 4)


def markdown(table: dict, header: str) -> str:
    lines = [header, "", "# Bicubic baseline under the two scoring protocols", "",
             "PSNR (dB) / SSIM on Y, crop = scale, GT mod-cropped. `basicsr`: BasicSR's unrounded Y of every",
             "file read as RGB, LR rounded to 8 bits. `literature`: MATLAB's rounded Y, one-channel files",
             "on their gray values, LR not quantised (the SRCNN/VDSR scripts). Published: the MATLAB PSNR",
             "rows every SR paper quotes. Regenerate with `python scripts/protocol_bicubic.py`.", ""]
    sets = [s for s in SETS if s in table["results"]]
    lines += ["| protocol | scale | " + " | ".join(sets) + " |", "|---|---|" + "---|" * len(sets)]
    for protocol in (*PROTOCOLS, "published"):
        for scale in SCALES:
            cells = []
            for s in sets:
                if protocol == "published":
                    cells.append(f"{PUBLISHED_BICUBIC_PSNR[s][scale]:.2f}")
                else:
                    m = table["results"][s][protocol][str(scale)]["mean"]
                    cells.append(f"{m['psnr']:.4f} / {m['ssim']:.4f}")
            lines.append(f"| {protocol} | x{scale} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(table: dict, out: str, header: str) -> str:
    """bicubic.json and bicubic.md in `out`, each complete or not there (a temp file, then a rename):
    docs/protocol.md quotes the .md, and an interrupted run must not leave half a table. Returns the .md."""
    text = markdown(table, header)
    atomic_write_bytes(os.path.join(out, "bicubic.json"), json.dumps(table, indent=1).encode())
    atomic_write_bytes(os.path.join(out, "bicubic.md"), text.encode())
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="folder holding Set5, Set14, BSD100 (default: the usual search)")
    p.add_argument("--out", default=os.path.join("results", "protocol"))
    args = p.parse_args()
    root = find_data_root(args.data_root)
    table = {"published_psnr": PUBLISHED_BICUBIC_PSNR, "results": {}}
    for name in SETS:
        folder = find_testset(get_testset(name), root)
        if folder is None:
            print(f"{name}: not found under {root}, skipped")
            continue
        table["results"][name] = {}
        for protocol in PROTOCOLS:
            table["results"][name][protocol] = {}
            for scale in SCALES:
                start = time.time()
                r = bicubic_scores(folder, scale, protocol)
                table["results"][name][protocol][str(scale)] = r
                print(f"{name} x{scale} {protocol}: {r['mean']['psnr']:.4f} / {r['mean']['ssim']:.4f} "
                      f"({time.time() - start:.1f} s)", flush=True)
    text = write_results(table, args.out, made_by("python", "scripts/protocol_bicubic.py", *sys.argv[1:]))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
