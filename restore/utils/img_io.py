"""Reading and writing images, with errors that name the file.

Convention used everywhere in restore: numpy images are HWC, **RGB** channel order (gray is HxWx1),
dtype uint8 or uint16 as stored; tensors are NCHW float in [0, 1]. (BasicSR keeps BGR numpy images;
we convert once at the file boundary so no other module has to remember.)
"""
import os
import tempfile

import cv2
import numpy as np
import torch

from restore.utils.errors import RestoreError
from restore.utils.image_header import HEAD_BYTES, probe, truncation

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# A decoded image larger than this is refused before decoding (decompression-bomb guard);
# RESTORE_MAX_PIXELS raises or lowers it, read at each call.
MAX_PIXELS_ENV = "RESTORE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 200_000_000
# OpenCV would print its own warnings for broken files; we report them as one-line errors instead.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def is_image_file(path) -> bool:
    return str(path).lower().endswith(IMG_EXTENSIONS)


def max_pixels() -> int:
    text = os.environ.get(MAX_PIXELS_ENV)
    if text is None:
        return DEFAULT_MAX_PIXELS
    try:
        return int(float(text))
    except ValueError:
        raise RestoreError(f"{MAX_PIXELS_ENV}: expected a number of pixels, got '{text}'") from None


def check_header(data: bytes, name: str, whole: bool) -> tuple[str, int, int]:
    """(format, width, height) of encoded image bytes, refusing a size over the pixel limit and,
    when `data` is the whole file, a file that was cut short."""
    fmt, width, height = probe(data, name)
    limit = max_pixels()
    if width * height > limit:
        raise RestoreError(f"{name}: the {fmt} header claims {width}x{height} pixels, more than the "
                           f"limit of {limit} (set {MAX_PIXELS_ENV} to raise it)")
    missing = truncation(data, fmt) if whole else None
    if missing:
        raise RestoreError(f"{name}: truncated {fmt} file ({missing})")
    return fmt, width, height


def check_image_file(path) -> tuple[str, int, int]:
    """Header and end of an image file, without decoding it: what a dataset checks for every file
    before training starts. Reads the first 64 KiB (up to 1 MiB for a JPEG with large metadata)
    and the last KiB; a TIFF or a small file whole."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise RestoreError(f"{path}: empty image file (0 bytes)")
            head = f.read(1 << 16)
            if head[:2] in (b"II", b"MM") or size <= HEAD_BYTES:
                return check_header(head + f.read(), path, whole=True)
            try:
                fmt, width, height = check_header(head, path, whole=False)
            except RestoreError:  # a JPEG frame header can sit behind large EXIF/ICC segments
                head += f.read(HEAD_BYTES - len(head))
                fmt, width, height = check_header(head, path, whole=False)
            f.seek(-1024, os.SEEK_END)
            tail = f.read()
    except OSError as e:
        raise RestoreError(f"{path}: cannot read ({e.strerror})") from None
    if fmt in ("PNG", "JPEG", "GIF"):  # their end marks are in the last bytes
        missing = truncation(tail, fmt)
        if missing:
            raise RestoreError(f"{path}: truncated {fmt} file ({missing})")
    return fmt, width, height


def imdecode(data: bytes, name: str, mode: str = "unchanged") -> np.ndarray:
    """Decode encoded image bytes to an RGB (or gray) HWC array.

    mode: 'unchanged' keeps channels (gray, RGB, RGBA) and bit depth; 'rgb' gives 3 channels;
    'gray' gives 1 channel (BT.601 luma as OpenCV computes it). `name` is only used in errors.
    """
    if not data:
        raise RestoreError(f"{name}: empty image file (0 bytes)")
    check_header(data, name, whole=True)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # e.g. OpenCV's own size limit (OPENCV_IO_MAX_IMAGE_PIXELS)
        img = None
    if img is None:
        raise RestoreError(f"{name}: cannot decode image (truncated, corrupted or not an image)")
    if img.ndim == 2:
        img = img[:, :, None]
    elif img.shape[2] == 3:
        img = img[:, :, ::-1]
    elif img.shape[2] == 4:
        img = img[:, :, [2, 1, 0, 3]]
    if img.dtype not in (np.uint8, np.uint16):
        raise RestoreError(f"{name}: unsupported pixel type {img.dtype} (8- or 16-bit images only)")
    return convert_mode(np.ascontiguousarray(img), mode, name)


def convert_mode(img: np.ndarray, mode: str, name: str = "image") -> np.ndarray:
    channels = img.shape[2]
    if mode == "unchanged":
        return img
    if mode == "rgb":
        if channels == 1:
            return np.repeat(img, 3, axis=2)
        return img[:, :, :3] if channels == 4 else img
    if mode == "gray":
        if channels == 1:
            return img
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)[:, :, None]
    raise RestoreError(f"{name}: unknown colour mode '{mode}' (use unchanged, rgb or gray)")


def imread(path, mode: str = "unchanged") -> np.ndarray:
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RestoreError(f"{path}: image file not found") from None
    except IsADirectoryError:
        raise RestoreError(f"{path}: is a folder, expected an image file") from None
    except OSError as e:
        raise RestoreError(f"{path}: cannot read ({e.strerror})") from None
    return imdecode(data, path, mode)


def imencode(img: np.ndarray, ext: str = ".png", params=None) -> bytes:
    """Encode an RGB/gray HWC array (uint8 or uint16) to bytes in the format named by `ext`."""
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[:, :, ::-1]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, [2, 1, 0, 3]]
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), params or [])
    if not ok:
        raise RestoreError(f"cannot encode image as {ext}")
    return buf.tobytes()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (/proc), else set and reset."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
    """Write a file so that it is either complete or absent: temp file in the same folder + rename."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a file should follow the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def imwrite(path, img: np.ndarray, params=None) -> None:
    """Write an image atomically; the format comes from the file extension."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower() or ".png"
    try:
        atomic_write_bytes(path, imencode(img, ext, params))
    except OSError as e:
        raise RestoreError(f"{path}: cannot write image ({e.strerror})") from None


def to_float32(img: np.ndarray) -> np.ndarray:
    """uint8 / uint16 -> float32 in [0, 1]."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return img.astype(np.float32)


def img2tensor(img: np.ndarray) -> torch.Tensor:
    """HWC numpy (uint or float in [0, 1]) -> CHW float32 tensor."""
    if img.dtype != np.float32:
        img = to_float32(img)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def tensor2img(tensor: torch.Tensor, dtype=np.uint8) -> np.ndarray:
    """CHW (or 1xCHW) float tensor in [0, 1] -> HWC uint8/uint16, clamped and rounded as BasicSR does."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError("tensor2img takes one image, got a batch of %d" % tensor.shape[0])
        tensor = tensor[0]
    peak = 255.0 if dtype == np.uint8 else 65535.0
    arr = tensor.detach().float().clamp(0, 1).mul(peak).round().cpu().numpy()
    return arr.transpose(1, 2, 0).astype(dtype)


def list_images(folder) -> list[str]:
    """Sorted image files directly inside `folder`, or a one-line error naming the folder."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise RestoreError(f"{folder}: folder not found")
    files = sorted(f for f in os.listdir(folder) if is_image_file(f))
    if not files:
        raise RestoreError(f"{folder}: no image files ({', '.join(IMG_EXTENSIONS)}) in this folder")
    return [os.path.join(folder, f) for f in files]
