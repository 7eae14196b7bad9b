"""restore-download-datasets: fetch the standard test sets into the data root, verified by SHA256.

    restore-download-datasets Set5 Set14 BSD100 --data-root datasets
    restore-download-datasets all          # every set with a public source
    restore-download-datasets --list       # what exists under the data root

Sources and checksums are in restore/data/dataset_manifest.py (GitHub files pinned to a commit);
--manifest FILE.json replaces them (e.g. with a mirror). Every file is checked against its SHA256
before it takes its final name, so a set folder holds only verified files. An interrupted download
is kept as <file>.part and resumed with an HTTP Range request on the next run. Urban100 comes from
SelfExSR's repository (its 100 full-resolution HR files, renamed img_NNN.png). Sets without a stable
public URL with a checksum (Manga109, DIV2K_valid) print how to get them; the exit status is then 1.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile

from tqdm import tqdm

from restore.cli.common import entry
from restore.data.dataset_manifest import MANIFEST
from restore.data.testsets import TESTSETS, find_testset, get_testset
from restore.utils.errors import RestoreError
from restore.utils.img_io import atomic_write_bytes, imdecode, imencode, is_image_file
from restore.utils.paths import find_data_root

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


# --- command line --------------------------------------------------------------------------------------
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


def build_parser():
    p = argparse.ArgumentParser(prog="restore-download-datasets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="*", metavar="NAME", help="sets to fetch (e.g. Set5 BSD68), or 'all'")
    p.add_argument("--data-root", help="where the sets go (default: the data-root convention, else ./datasets)")
    p.add_argument("--manifest", help="a JSON manifest replacing the built-in sources (mirrors)")
    p.add_argument("--list", action="store_true", help="list the sets, their sources and which are present")
    p.add_argument("--timeout", type=float, default=60, help="network timeout in seconds (default 60)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def _canonical(name: str, manifest: dict) -> str:
    if name in manifest:
        return name
    try:
        canonical = get_testset(name).name
    except RestoreError:
        canonical = name
    if canonical not in manifest:
        raise RestoreError(f"{name}: not in the manifest (known: {', '.join(manifest)})")
    return canonical


def main(argv) -> int:
    args = build_parser().parse_args(argv)
    manifest = load_manifest(args.manifest)
    data_root = find_data_root(args.data_root) or os.path.abspath("datasets")
    if args.list:
        for name, spec in manifest.items():
            present = name in TESTSETS and find_testset(TESTSETS[name], data_root)
            source = spec.get("source") or spec.get("url") or "manual download"
            print(f"{name:10s} {'present' if present else 'missing':8s} {source}")
        print(f"data root: {data_root}")
        return 0
    if not args.sets:
        raise RestoreError("name the sets to fetch (or 'all'); --list shows them")
    names = list(manifest) if args.sets == ["all"] else [_canonical(n, manifest) for n in args.sets]
    missing = []
    for name in names:
        spec = manifest[name]
        state = fetch_set(name, spec, data_root, args.timeout, not args.no_progress)
        if state == "manual":
            on_disk = name in TESTSETS and find_testset(TESTSETS[name], data_root)
            if not on_disk:
                missing.append(name)
                print(f"{name}: {spec.get('instructions', 'no public source')}", file=sys.stderr)
                continue
            state = "present"
        print(f"{name}: {state} in {os.path.join(data_root, name)}", file=sys.stderr)
    shutil.rmtree(os.path.join(data_root, ".downloads"), ignore_errors=True)
    if missing:
        print(f"not downloaded (see above): {', '.join(missing)}", file=sys.stderr)
        return EXIT_MISSING
    return 0


cli = entry(main)

if __name__ == "__main__":
    cli()
