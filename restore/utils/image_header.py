"""Image size and completeness from the file's own bytes, without decoding a pixel.

Why: a 629-byte JPEG whose header claims 20000x15000 pixels decodes to 4.7 GB, and OpenCV decodes a
truncated PNG or JPEG into an image with a gray or black lower part, silently. Reading the header
first lets every reader refuse a decompression bomb and a cut-off file with a one-line error.

`probe(data)` takes the first bytes of a file (the whole file where a format needs it) and returns
(format, width, height); `truncation(data, fmt)` says what is missing at the end of a whole file.
The formats are those restore reads: PNG, JPEG, WebP, TIFF, BMP, PNM/PAM/PFM and GIF. Anything else
is refused, so no other OpenCV decoder ever runs on user data.
"""
import re
import struct
import zlib

from restore.utils.errors import RestoreError

FORMATS = ("PNG", "JPEG", "WebP", "TIFF", "BMP", "PNM", "GIF")
# How many leading bytes `probe` needs at most for any format but TIFF (whose directory can be
# anywhere): EXIF and ICC segments can push a JPEG's frame header this far.
HEAD_BYTES = 1 << 20

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: markers without a length field


def format_of(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    if len(data) >= 2 and data[0:1] == b"P" and data[1:2] in b"1234567fF":
        return "PNM"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def probe(data: bytes, name: str) -> tuple[str, int, int]:
    """(format, width, height) from a file's leading bytes; a RestoreError naming `name` otherwise."""
    fmt = format_of(data)
    if fmt is None:
        raise RestoreError(f"{name}: not an image restore reads (expected one of {', '.join(FORMATS)})")
    try:
        width, height = _SIZE_READERS[fmt](data)
    except (struct.error, IndexError, ValueError):
        width = height = None
    if not width or not height or width < 0 or height < 0:
        raise RestoreError(f"{name}: damaged {fmt} header (no valid image size)")
    return fmt, width, height


def truncation(data: bytes, fmt: str) -> str | None:
    """What shows that a whole file was cut short, or None when it looks complete."""
    if fmt == "PNG" and not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        return "no IEND chunk at the end"
    if fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
        return "no end-of-image marker"
    if fmt == "WebP" and len(data) < struct.unpack_from("<I", data, 4)[0] + 8:
        return "shorter than its RIFF size"
    if fmt == "GIF" and not data.rstrip(b"\x00").endswith(b"\x3b"):
        return "no GIF trailer"
    if fmt == "PNM" and data[1:2] in b"56":  # binary gray / RGB: the pixel bytes follow the header
        header = re.match(rb"P[56](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)"
                          rb"(?:\s+|#[^\n]*\n)+(\d+)\s", data)
        if header:
            width, height, maxval = map(int, header.groups())
            need = header.end() + width * height * (3 if data[1:2] == b"6" else 1) * (2 if maxval > 255 else 1)
            if len(data) < need:
                return "shorter than its pixels"
    if fmt == "BMP":
        declared = struct.unpack_from("<I", data, 2)[0]
        if declared and len(data) < declared:
            return "shorter than its declared size"
    return None


def _png(d):
    if d[12:16] != b"IHDR" or zlib.crc32(d[12:29]) != struct.unpack(">I", d[29:33])[0]:
        raise ValueError  # libpng would report a bad IHDR checksum on stderr itself
    return struct.unpack(">II", d[16:24])


def _jpeg(d):
    i = 2
    while i + 9 < len(d):
        if d[i] != 0xFF:
            raise ValueError  # not at a marker: damaged
        marker = d[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            i += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", d[i + 5:i + 9])
            return width, height
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise ValueError
        i += 2 + struct.unpack(">H", d[i + 2:i + 4])[0]
    raise ValueError


def _webp(d):
    chunk = d[12:16]
    if chunk == b"VP8 ":
        if d[23:26] != b"\x9d\x01\x2a":
            raise ValueError
        w, h = struct.unpack("<HH", d[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        if d[20] != 0x2F:
            raise ValueError
        bits = struct.unpack("<I", d[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(d[24:27], "little") + 1, int.from_bytes(d[27:30], "little") + 1
    raise ValueError


def _tiff(d):
    endian = "<" if d[:2] == b"II" else ">"
    if d[2:4] in (b"+\x00", b"\x00+"):  # BigTIFF: 8-byte offsets, 20-byte entries
        offset, = struct.unpack(endian + "Q", d[8:16])
        count, = struct.unpack(endian + "Q", d[offset:offset + 8])
        entries, size, head = offset + 8, 20, "HHQ"
    else:
        offset, = struct.unpack(endian + "I", d[4:8])
        count, = struct.unpack(endian + "H", d[offset:offset + 2])
        entries, size, head = offset + 2, 12, "HHI"
    found = {}
    for k in range(count):
        at = entries + k * size
        tag, kind, _ = struct.unpack(endian + head, d[at:at + struct.calcsize(head)])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4) or LONG8 (16)
            value_at = at + struct.calcsize(head)
            code = {3: "H", 4: "I", 16: "Q"}[kind]
            found[tag], = struct.unpack(endian + code, d[value_at:value_at + struct.calcsize(code)])
    return found[256], found[257]


def _bmp(d):
    header = struct.unpack("<I", d[14:18])[0]
    if header == 12:
        return struct.unpack("<HH", d[18:22])
    w, h = struct.unpack("<ii", d[18:26])
    return w, abs(h)


def _pnm(d):
    text = d[:4096].decode("latin-1")
    if text[1] == "7":  # PAM: WIDTH/HEIGHT lines
        w = re.search(r"^WIDTH\s+(\d+)", text, re.M)
        h = re.search(r"^HEIGHT\s+(\d+)", text, re.M)
        return int(w.group(1)), int(h.group(1))
    tokens = re.sub(r"#[^\n]*", " ", text[2:]).split()
    return int(tokens[0]), int(tokens[1])


def _gif(d):
    return struct.unpack("<HH", d[6:10])


_SIZE_READERS = {"PNG": _png, "JPEG": _jpeg, "WebP": _webp, "TIFF": _tiff, "BMP": _bmp, "PNM": _pnm,
                 "GIF": _gif}
