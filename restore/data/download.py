"""Fetching the standard test sets into the data root, every file checked against its SHA256 (the
work behind restore-download-datasets). Sources: restore/data/dataset_manifest.json; a download goes
to a `.part` file that resumes where it stopped, and is renamed only after its checksum matched.
"""
import hashlib
import json
import os
import tarfile
import urllib.error
import urllib.request
import zipfile

from tqdm import tqdm

from restore.data.dataset_manifest import MANIFEST
from restore.data.testsets import get_testset
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes, imdecode, imencode, is_image_file

CHUNK = 1 << 16
USER_AGENT = "restore-download-datasets/1"
EXIT_MISSING = 1
ARCHIVE_FORMATS = ("zip", "tar", "tar.gz")


# --- one verified, resumable download ---------------------------------------------------------------
def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial file is already complete (or longer than the file)
            return None
        raise RestoreError(f"{url}: download failed (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RestoreError(f"{url}: download failed ({reason}); run again to resume") from None


def download(url: str, dest: str, sha256: str | None, timeout: float = 60, progress: bool = False) -> str:
    """Fetch `url` to `dest` via `dest.part` (resumed with a Range request if present), check the
    SHA256, then rename. A mismatch removes the partial file and raises an error naming `dest`."""
    part = dest + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    response = _open(url, offset, timeout)
    if response is not None:
        with response:
            resumed = offset and response.status == 206 and \
                response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
            mode = "ab" if resumed else "wb"
            start = offset if resumed else 0
            total = response.headers.get("Content-Length")
            total = int(total) + start if total else None
            with open(part, mode) as f, tqdm(total=total, initial=start, unit="B", unit_scale=True, leave=False,
                                              desc=os.path.basename(dest), disable=not progress) as bar:
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        f.write(block)
                        bar.update(len(block))
                except OSError as e:
                    raise RestoreError(f"{url}: download interrupted ({e}); run again to resume") from None
    if sha256:
        got = sha256_file(part)
        if got != sha256.lower():
            os.unlink(part)
            raise RestoreError(f"{dest}: SHA256 mismatch (expected {sha256}, got {got}) for {url}; "
                               f"the partial file was removed, run again to retry")
    os.replace(part, dest)
    return dest


def pixel_sha256(img) -> str:
    """SHA256 of decoded pixels: 'HxWxC:' + the RGB (or gray) bytes."""
    header = "x".join(map(str, img.shape)).encode() + b":"
    return hashlib.sha256(header + img.tobytes()).hexdigest()


# --- one set -----------------------------------------------------------------------------------------
def remote_name(spec: dict, file: str) -> str:
    """The source's name for `file`: `remote_name` formatted with its stem and extension, if given
    (SelfExSR calls Urban100's img_001.png img_001_SRF_4_HR.png)."""
    template = spec.get("remote_name")
    if not template:
        return file
    stem, ext = os.path.splitext(file)
    return template.format(stem=stem, ext=ext)


def _fetch_files(name: str, spec: dict, folder: str, timeout: float, progress: bool) -> int:
    by_pixels = spec.get("check") == "pixels"
    fetched = 0
    for file, digest in tqdm(sorted(spec["files"].items()), desc=name, unit="file", disable=not progress):
        final = os.path.join(folder, os.path.splitext(file)[0] + spec["save_as"]) if by_pixels else \
            os.path.join(folder, file)
        if os.path.isfile(final):
            if by_pixels:
                with open(final, "rb") as f:
                    ok = pixel_sha256(imdecode(f.read(), final)) == digest
            else:
                ok = sha256_file(final) == digest
            if not ok:
                raise RestoreError(f"{final}: exists but does not match its SHA256; delete it to download again")
            continue
        url = spec["base_url"] + remote_name(spec, file)
        if not by_pixels:
            download(url, final, digest, timeout)
        else:
            raw = download(url, os.path.join(folder, "." + file), None, timeout)
            with open(raw, "rb") as f:
                img = imdecode(f.read(), raw)
            os.unlink(raw)
            if pixel_sha256(img) != digest:
                raise RestoreError(f"{final}: pixel SHA256 mismatch for {url} (expected {digest}); run again to retry")
            atomic_write_bytes(final, imencode(img, spec["save_as"]))
        fetched += 1
    return fetched


def _archive_members(path: str, fmt: str):
    """(member name, reader) for every regular file of a zip or tar archive."""
    if fmt == "zip":
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, lambda info=info: z.read(info)
    else:
        with tarfile.open(path, "r:gz" if fmt == "tar.gz" else "r:") as t:
            for member in t.getmembers():
                if member.isfile():
                    yield member.name, lambda member=member: t.extractfile(member).read()


def _fetch_archive(name: str, spec: dict, folder: str, data_root: str, timeout: float, progress: bool) -> int:
    fmt = spec.get("format", "zip")
    if fmt not in ARCHIVE_FORMATS:
        raise RestoreError(f"{name}: archive format '{fmt}' is not one of {', '.join(ARCHIVE_FORMATS)}")
    url = spec["url"]
    archive = os.path.join(data_root, ".downloads", os.path.basename(url.split("?")[0]) or f"{name}.{fmt}")
    if not (os.path.isfile(archive) and sha256_file(archive) == spec["sha256"]):
        download(url, archive, spec["sha256"], timeout, progress)
    prefix = spec.get("members", "").strip("/")
    expected = spec.get("files") or {}
    count = 0
    try:
        for member, read in _archive_members(archive, fmt):
            inside = member.replace("\\", "/")
            if prefix and not inside.startswith(prefix + "/"):
                continue
            base = os.path.basename(inside)
            if not is_image_file(base) or base.startswith("."):
                continue
            data = read()
            if base in expected and hashlib.sha256(data).hexdigest() != expected[base]:
                raise RestoreError(f"{os.path.join(folder, base)}: SHA256 mismatch inside {archive}")
            atomic_write_bytes(os.path.join(folder, base), data)  # flattened: no path from the archive is used
            count += 1
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise RestoreError(f"{archive}: cannot read the archive ({e}); delete it and run again") from None
    if not count:
        raise RestoreError(f"{archive}: no image files under '{prefix or '/'}' in the archive")
    return count


def fetch_set(name: str, spec: dict, data_root: str, timeout: float = 60, progress: bool = True) -> str:
    """Download one set into <data_root>/<name>; returns 'downloaded', 'present' or 'manual'."""
    kind = spec.get("kind")
    if kind == "manual":
        return "manual"
    folder = os.path.join(data_root, name)
    os.makedirs(folder, exist_ok=True)
    if kind == "files":
        return "downloaded" if _fetch_files(name, spec, folder, timeout, progress) else "present"
    if kind == "archive":
        _fetch_archive(name, spec, folder, data_root, timeout, progress)
        return "downloaded"
    raise RestoreError(f"manifest entry {name}: unknown kind {kind!r} (files, archive or manual)")


def load_manifest(path: str | None) -> dict:
    if path is None:
        return MANIFEST
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise RestoreError(f"{path}: cannot read the manifest ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "kind" in v for v in data.values()):
        raise RestoreError(f"{path}: expected {{name: {{kind: files | archive | manual, ...}}}}")
    return data


def canonical_name(name: str, manifest: dict) -> str:
    if name in manifest:
        return name
    try:
        canonical = get_testset(name).name
    except RestoreError:
        canonical = name
    if canonical not in manifest:
        raise RestoreError(f"{name}: not in the manifest (known: {', '.join(manifest)})")
    return canonical
