"""The standard benchmark sets by name, each with the protocol the literature evaluates it with.

    SR        Set5 Set14 BSD100 Urban100 Manga109   GT mod-cropped to the scale, LR = MATLAB bicubic,
                                                    PSNR/SSIM on Y (BT.601), crop_border = scale
    denoise   Set12 BSD68 (gray)                    GT + N(0, sigma^2) (not clipped), gray PSNR/SSIM
              CBSD68 Kodak24 McMaster (colour)      RGB PSNR/SSIM
    JPEG      LIVE1 (Y), Classic5 (gray)            Y or gray JPEG (OpenCV) at quality q, PSNR/SSIM
                                                    on that one channel
              LIVE1-RGB (colour, LIVE1's images)    colour JPEG (OpenCV, 4:2:0) at quality q, RGB PSNR/SSIM

A set lives in `<data root>/<Name>` (or one of its aliases, case-insensitively; a folder whose
images are in an `HR` or `GT` subfolder works too). `dataset_options` gives the `datasets.<phase>`
block of the matching dataset class, `metric_options` the `val.metrics` block.
"""
import os
from dataclasses import dataclass
from typing import Literal, Optional

from restore.metrics.protocol import check_protocol
from restore.utils.errors import RestoreError
from restore.utils.img_io import is_image_file
from restore.utils.paths import find_data_root
from restore.utils.registry import did_you_mean

Task = Literal["sr", "denoise", "jpeg"]
LEVEL_KEY = {"sr": "scale", "denoise": "sigma", "jpeg": "quality"}
DEFAULT_LEVELS = {"sr": (2, 3, 4), "denoise": (15, 25, 50), "jpeg": (10, 20, 30, 40)}
DATASET_TYPE = {"sr": "SRImageDataset", "denoise": "DenoiseDataset", "jpeg": "JPEGDataset"}
GT_SUBFOLDERS = ("HR", "GT", "hr", "gt")
DOWNLOAD_HINT = "restore-download-datasets"


@dataclass(frozen=True)
class TestSet:
    name: str
    task: Task
    color: Literal["rgb", "gray", "y"]   # what the network sees
    images: int                          # how many images the standard set has
    aliases: tuple[str, ...] = ()
    note: str = ""
    folder: str = ""                     # the images of another set, under another protocol

    @property
    def folder_names(self) -> tuple[str, ...]:
        return (self.folder,) if self.folder else (self.name, *self.aliases)

    @property
    def channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    @property
    def metric_on_y(self) -> bool:
        """SR nets output RGB; the SR literature scores the Y channel of it."""
        return self.task == "sr"

    def level_name(self, level: int) -> str:
        return {"sr": f"x{level}", "denoise": f"sigma{level}", "jpeg": f"q{level}"}[self.task]

    def protocol(self, scoring: str = "basicsr") -> str:
        if self.task == "sr":
            if check_protocol(scoring) == "literature":
                return ("literature protocol: GT mod-cropped to the scale, LR by MATLAB bicubic (the bicubic "
                        "row from the unquantised LR); PSNR/SSIM on MATLAB's rounded Y, a one-channel GT file "
                        "on its gray values, crop = scale")
            return ("basicsr protocol: GT mod-cropped to the scale, LR by MATLAB bicubic; PSNR/SSIM on Y "
                    "(BT.601, unrounded; a one-channel file as RGB), crop = scale")
        if self.task == "denoise":
            return (f"GT + Gaussian noise of sigma/255 (seeded per image, not clipped); "
                    f"PSNR/SSIM on {'RGB' if self.color == 'rgb' else 'gray'}")
        if self.color == "rgb":
            return "colour JPEG-compressed at quality q (OpenCV, 4:2:0 chroma); PSNR/SSIM on RGB"
        return (f"{'Y channel (BT.601)' if self.color == 'y' else 'gray'} JPEG-compressed at quality q "
                f"(OpenCV); PSNR/SSIM on that channel")

    def dataset_options(self, folder: str, level: int) -> dict:
        """The `datasets.<phase>` block for this set at scale / sigma / quality `level`."""
        opt = {"name": self.name, "type": DATASET_TYPE[self.task], "dataroot_gt": folder, "color": self.color,
               LEVEL_KEY[self.task]: level}
        return opt

    def metric_options(self, level: int, protocol: str = "basicsr") -> dict:
        """The `val.metrics` block; `protocol` (basicsr | literature) as restore/metrics/protocol.py."""
        crop = level if self.task == "sr" else 0
        extra = {"protocol": protocol} if check_protocol(protocol) != "basicsr" else {}
        return {m: {"type": f"calculate_{m}", "crop_border": crop, "test_y_channel": self.metric_on_y, **extra}
                for m in ("psnr", "ssim")}


TESTSETS = {t.name: t for t in (
    TestSet("Set5", "sr", "rgb", 5),
    TestSet("Set14", "sr", "rgb", 14),
    TestSet("BSD100", "sr", "rgb", 100, ("B100", "BSDS100")),
    TestSet("Urban100", "sr", "rgb", 100),
    TestSet("Manga109", "sr", "rgb", 109),
    TestSet("Set12", "denoise", "gray", 12),
    TestSet("BSD68", "denoise", "gray", 68),
    TestSet("CBSD68", "denoise", "rgb", 68),
    TestSet("Kodak24", "denoise", "rgb", 24, ("Kodak", "Set24"),
            note="full-size 768x512 images (FFDNet's Kodak24 uses 500x500 centre crops)"),
    TestSet("McMaster", "denoise", "rgb", 18, ("McM", "Set18")),
    TestSet("LIVE1", "jpeg", "y", 29),
    TestSet("LIVE1-RGB", "jpeg", "rgb", 29, folder="LIVE1"),
    TestSet("Classic5", "jpeg", "gray", 5),
)}


def get_testset(name: str) -> TestSet:
    """A set by its name or an alias, case-insensitively."""
    wanted = name.lower()
    for t in TESTSETS.values():
        if wanted in (n.lower() for n in (t.name, *t.aliases)):
            return t
    raise RestoreError(f"unknown test set '{name}'{did_you_mean(name, TESTSETS)}; "
                       f"known: {', '.join(TESTSETS)}")


def _has_images(folder: str) -> bool:
    return os.path.isdir(folder) and any(is_image_file(f) for f in os.listdir(folder))


def find_testset(testset: TestSet, data_root: Optional[str]) -> Optional[str]:
    """The folder holding the set's GT images under `data_root`, or None."""
    if not data_root or not os.path.isdir(data_root):
        return None
    wanted = {n.lower() for n in testset.folder_names}
    names = sorted(os.listdir(data_root), key=lambda n: (n != testset.folder_names[0], n))
    for entry in names:
        if entry.lower() not in wanted:
            continue
        folder = os.path.join(data_root, entry)
        for candidate in (folder, *(os.path.join(folder, s) for s in GT_SUBFOLDERS)):
            if _has_images(candidate):
                return candidate
    return None


def resolve_testset(name: str, data_root: Optional[str] = None) -> tuple[TestSet, str]:
    """(set, folder of its GT images); a missing set is a one-line error saying where it looked."""
    testset = get_testset(name)
    root = find_data_root(data_root)
    folder = find_testset(testset, root)
    if folder is None:
        looked = "/".join(testset.folder_names)
        where = root if root else "no data root (pass --data-root or set RESTORE_DATA_ROOT)"
        raise RestoreError(f"{testset.name}: test set not found: looked for {looked} under {where}; "
                           + how_to_get(testset.folder_names[0], root))
    return testset, folder


def how_to_get(name: str, root: Optional[str]) -> str:
    """The downloader's command where it can fetch the set, else the manifest's instructions (it
    would only print them)."""
    from restore.data.dataset_manifest import MANIFEST
    spec = MANIFEST.get(name, {})
    if spec.get("kind") == "manual":
        return spec.get("instructions", "no public source").replace("<data root>", root or "<data root>")
    return f"get it with `{DOWNLOAD_HINT} {name}{' --data-root ' + root if root else ''}`"
