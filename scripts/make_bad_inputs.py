"""Write a corpus of hostile and awkward inputs for restore's readers (issue 16).

    python scripts/make_bad_inputs.py OUT_DIR

OUT_DIR/images/  image files, each either refused with one line or read correctly:
                 every format truncated, empty, garbage, a header bomb (a few hundred bytes whose header
                 claims 20000x15000 pixels), wrong extensions, 1x1, 16-bit, CMYK and EXIF-rotated JPEGs,
                 animated GIF/WebP, palette and gray+alpha PNGs, a folder named like an image, ...
OUT_DIR/lmdb/    LMDBs in BasicSR's layout that are broken: data.mdb truncated or garbage, a key listed
                 in meta_info.txt but missing, a meta_info.txt that is not UTF-8, an empty LMDB.
(Every file has its own stem, so restore-infer can write all of them to one output folder.)
OUT_DIR/manifest.json  what each file is and whether a reader must refuse it ("bad") or read it ("ok").

The test tests/test_bad_inputs.py runs restore-infer, restore-test and restore-train over the corpus:
no hang, no traceback, nothing written outside the output folder.
"""
import argparse
import io
import json
import os
import struct
import zlib

import lmdb
import numpy as np
from PIL import Image

from restore.utils.img_io import imencode

BOMB = (20000, 15000)  # width, height: 300 MP, 900 MB decoded as RGB


def photo(h=24, w=32, channels=3, dtype=np.uint8):
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(xx * 7 + yy * 3 + 40 * c) % 256 for c in range(channels)]
    img = np.stack(planes, axis=2).astype(np.float64) / 255
    peak = 65535 if dtype == np.uint16 else 255
    return (img * peak).round().astype(dtype)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bombs() -> dict[str, bytes]:
    """Tiny files whose headers claim BOMB pixels, one per format (and per WebP/TIFF variant)."""
    w, h = BOMB
    out = {}
    out["bomb_png.png"] = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                       + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))
    jpeg = bytearray(imencode(photo(), ".jpg"))
    at = next(i for i in range(2, len(jpeg)) if jpeg[i] == 0xFF and jpeg[i + 1] in (0xC0, 0xC2))
    jpeg[at + 5:at + 9] = struct.pack(">HH", h, w)
    out["bomb_jpg.jpg"] = bytes(jpeg[:629])  # the header and a little scan data, as in the issue
    side = 16383  # VP8 and VP8L store 14-bit sizes: 268 MP is their largest claim
    vp8 = b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", side, side) + b"\x00" * 16
    out["bomb_vp8.webp"] = riff_webp(b"VP8 ", vp8)
    bits = (side - 1) | ((side - 1) << 14)
    out["bomb_vp8l.webp"] = riff_webp(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\x00" * 16)
    out["bomb_vp8x.webp"] = riff_webp(b"VP8X", b"\x00" * 4 + (w - 1).to_bytes(3, "little")
                                      + (h - 1).to_bytes(3, "little"))
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, w * h)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4
    out["bomb_tif.tif"] = b"II*\x00" + struct.pack("<I", 8 + 8) + b"\0" * 8 + ifd
    out["bomb_bmp.bmp"] = (b"BM" + struct.pack("<IHHI", 0, 0, 0, 54)
                       + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0) + b"\0" * 64)
    out["bomb_ppm.ppm"] = f"P6\n{w} {h}\n255\n".encode() + b"\0" * 64
    out["bomb_pgm.pgm"] = f"P5\n# a comment\n{w} {h}\n255\n".encode() + b"\0" * 64
    return out


def riff_webp(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def images() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, 'bad' | 'ok', what it is)."""
    out = {}
    rgb, gray = photo(), photo(channels=1)
    encoded = {ext: imencode(gray if ext == ".pgm" else rgb, ext)
               for ext in (".png", ".jpg", ".webp", ".tif", ".bmp", ".ppm", ".pgm")}
    for ext, data in encoded.items():
        stem = ext[1:]
        out[f"truncated_{stem}{ext}"] = (data[:len(data) // 2], "bad", f"{stem} cut in half")
        out[f"empty_{stem}{ext}"] = (b"", "bad", "zero bytes")
        out[f"garbage_{stem}{ext}"] = (os.urandom(256), "bad", f"random bytes named {ext}")
        out[f"good_{stem}{ext}"] = (data, "ok", f"a valid {stem}")
    for name, data in bombs().items():
        out[name] = (data, "bad", "a header bomb (a tiny file claiming over 200 MP)")
    out["png_named.jpg"] = (encoded[".png"], "ok", "PNG content, .jpg extension")
    out["jpeg_named.png"] = (encoded[".jpg"], "ok", "JPEG content, .png extension")
    out["text_named.png"] = (b"this is not an image\n" * 4, "bad", "a text file")
    out["one_pixel_png.png"] = (imencode(photo(1, 1)), "ok", "1x1 pixel")
    out["one_pixel_jpg.jpg"] = (imencode(photo(1, 1), ".jpg"), "ok", "1x1 pixel JPEG")
    out["sixteen_bit_png.png"] = (imencode(photo(dtype=np.uint16)), "ok", "16-bit RGB")
    out["sixteen_bit_tif.tif"] = (imencode(photo(dtype=np.uint16), ".tif"), "ok", "16-bit TIFF")
    out["rgba.png"] = (imencode(photo(channels=4)), "ok", "RGBA")
    out["gray_alpha.png"] = (pil_bytes(Image.fromarray(photo(channels=1)[:, :, 0]).convert("LA"), "PNG"),
                             "ok", "gray + alpha")
    out["palette.png"] = (pil_bytes(Image.fromarray(rgb).convert("P"), "PNG"), "ok", "palette PNG")
    out["cmyk.jpg"] = (pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG"), "ok", "CMYK JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 on display
    out["exif_rotated.jpg"] = (pil_bytes(Image.fromarray(rgb), "JPEG", exif=exif.tobytes()), "ok",
                               "EXIF orientation 6")
    frames = [Image.fromarray(photo()), Image.fromarray(255 - photo())]
    out["animated_gif.gif"] = (pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:]), "ok",
                           "animated GIF (not an extension restore lists)")
    try:
        out["animated_webp.webp"] = (pil_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
                                "ok", "animated WebP (its first frame is read)")
    except (KeyError, OSError):  # Pillow built without WebP
        pass
    bad_crc = bytearray(encoded[".png"])
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC
    out["bad_crc.png"] = (bytes(bad_crc), "bad", "PNG whose IHDR CRC is wrong")
    zero = bytearray(encoded[".png"])
    zero[16:20] = b"\0\0\0\0"
    out["zero_width.png"] = (bytes(zero), "bad", "PNG header with width 0")
    out["soi_only.jpg"] = (b"\xff\xd8", "bad", "JPEG start marker only")
    out["name with spaces é.png"] = (encoded[".png"], "ok", "spaces and non-ASCII in the name")
    return out


def write_lmdb(path: str, items: dict[str, bytes], meta: bytes | None = None) -> None:
    os.makedirs(path, exist_ok=True)
    env = lmdb.open(path, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, value in items.items():
            txn.put(key.encode(), value)
    env.close()
    if meta is None:
        meta = "".join(f"{k}.png (24,32,3) 1\n" for k in items).encode()
    with open(os.path.join(path, "meta_info.txt"), "wb") as f:
        f.write(meta)


def lmdbs(root: str) -> dict[str, str]:
    good = {f"img{i:02d}": imencode(photo()) for i in range(40)}
    what = {}
    path = os.path.join(root, "truncated.lmdb")
    write_lmdb(path, good)
    data = os.path.join(path, "data.mdb")
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    what["truncated.lmdb"] = "data.mdb cut in half"
    path = os.path.join(root, "garbage.lmdb")
    os.makedirs(path)
    with open(os.path.join(path, "data.mdb"), "wb") as f:
        f.write(os.urandom(8192))
    with open(os.path.join(path, "meta_info.txt"), "w") as f:
        f.write("img00.png (24,32,3) 1\n")
    what["garbage.lmdb"] = "random bytes as data.mdb"
    path = os.path.join(root, "missing_key.lmdb")
    write_lmdb(path, dict(list(good.items())[:4]), meta=b"".join(
        f"{k}.png (24,32,3) 1\n".encode() for k in list(good)[:5]))
    what["missing_key.lmdb"] = "meta_info.txt lists a key the LMDB lacks"
    path = os.path.join(root, "latin1_meta.lmdb")
    write_lmdb(path, dict(list(good.items())[:4]), meta=b"img00.png (24,32,3) 1\n\xe9\xff.png (1,1,3) 1\n")
    what["latin1_meta.lmdb"] = "meta_info.txt is not UTF-8"
    path = os.path.join(root, "bad_value.lmdb")
    write_lmdb(path, {"img00": b"\x89PNG\r\n\x1a\ntruncated", **dict(list(good.items())[1:4])})
    what["bad_value.lmdb"] = "one value is a broken PNG"
    path = os.path.join(root, "empty.lmdb")
    write_lmdb(path, {}, meta=b"")
    what["empty.lmdb"] = "no images"
    return what


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder to write (must not exist)")
    args = p.parse_args(argv)
    if os.path.exists(args.out):
        p.error(f"{args.out} exists; give a new folder")
    folder = os.path.join(args.out, "images")
    os.makedirs(folder)
    manifest = {"images": {}, "lmdb": {}}
    for name, (data, verdict, what) in images().items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        manifest["images"][name] = {"expect": verdict, "what": what}
    os.makedirs(os.path.join(folder, "folder.png"))  # a directory named like an image
    manifest["images"]["folder.png"] = {"expect": "bad", "what": "a folder named like an image"}
    manifest["lmdb"] = {name: {"expect": "bad", "what": what}
                        for name, what in lmdbs(os.path.join(args.out, "lmdb")).items()}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    bad = sum(v["expect"] == "bad" for group in manifest.values() for v in group.values())
    print(f"wrote {len(manifest['images'])} images and {len(manifest['lmdb'])} LMDBs to {args.out} "
          f"({bad} that must be refused)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
