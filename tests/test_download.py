"""restore-download-datasets against a local HTTP server (127.0.0.1 only; never the internet):
archives and per-file sources, SHA256 checks, resumed downloads, and the built-in manifest."""
import hashlib
import http.server
import io
import json
import os
import re
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from restore.cli import download_datasets as dl
from restore.cli.common import run_cli
from restore.data.dataset_manifest import MANIFEST
from restore.data.download import pixel_sha256
from restore.data.testsets import TESTSETS, resolve_testset
from restore.utils.img_io import imencode, imread

SET5_FILES = ("bird.png", "butterfly.png", "head.png")


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path -> bytes); honours `Range: bytes=N-` with 206; logs (path, Range header)."""
    files: dict = {}
    log: list = []

    def do_GET(self):
        self.log.append((self.path, self.headers.get("Range")))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (RangeHandler,), {"files": {}, "log": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield handler
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def set5_bytes(data_root) -> dict:
    out = {}
    for name in SET5_FILES:
        with open(os.path.join(data_root, "Set5", name), "rb") as f:
            out[name] = f.read()
    return out


def write_manifest(tmp_path, manifest) -> str:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return str(path)


def fetch(tmp_path, manifest, *names):
    return run_cli(dl.main, [*names, "--data-root", str(tmp_path / "data"), "--no-progress",
                             "--manifest", write_manifest(tmp_path, manifest), "--timeout", "10"])


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_archive_download_extracts_the_layout(tmp_path, server, data_root, fmt):
    files = set5_bytes(data_root)
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in files.items():
                z.writestr(f"benchmark/Set5/HR/{name}", data)
            z.writestr("benchmark/Set5/LR_bicubic/X2/birdx2.png", b"not wanted")
            z.writestr("benchmark/Set5/HR/readme.txt", b"not an image")
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, data in files.items():
                info = tarfile.TarInfo(f"benchmark/Set5/HR/{name}")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    server.files[f"/bench.{fmt}"] = buf.getvalue()
    manifest = {"Set5": {"kind": "archive", "url": f"{server.url}/bench.{fmt}", "sha256": sha(buf.getvalue()),
                         "format": fmt, "members": "benchmark/Set5/HR",
                         "files": {n: sha(d) for n, d in files.items()}}}
    assert fetch(tmp_path, manifest, "set5") == 0
    folder = tmp_path / "data" / "Set5"
    assert sorted(os.listdir(folder)) == sorted(SET5_FILES)
    for name, data in files.items():
        assert (folder / name).read_bytes() == data
    assert resolve_testset("Set5", str(tmp_path / "data"))[1] == str(folder)
    assert not (tmp_path / "data" / ".downloads").exists()


def test_per_file_download_resumes_a_partial_file(tmp_path, server, data_root):
    files = set5_bytes(data_root)
    for name, data in files.items():
        server.files[f"/Set5/{name}"] = data
    manifest = {"Set5": {"kind": "files", "base_url": f"{server.url}/Set5/",
                         "files": {n: sha(d) for n, d in files.items()}}}
    folder = tmp_path / "data" / "Set5"
    folder.mkdir(parents=True)
    half = len(files["bird.png"]) // 2
    (folder / "bird.png.part").write_bytes(files["bird.png"][:half])  # an interrupted earlier run
    assert fetch(tmp_path, manifest, "Set5") == 0
    assert ("/Set5/bird.png", f"bytes={half}-") in server.log
    assert ("/Set5/head.png", None) in server.log
    assert sorted(os.listdir(folder)) == sorted(SET5_FILES)
    assert all((folder / n).read_bytes() == d for n, d in files.items())
    # a second run finds every file verified and downloads nothing
    server.log.clear()
    assert fetch(tmp_path, manifest, "Set5") == 0 and server.log == []


def test_checksum_mismatch_names_the_file_and_keeps_nothing(tmp_path, server, data_root, capsys):
    files = set5_bytes(data_root)
    for name, data in files.items():
        server.files[f"/Set5/{name}"] = data
    sums = {n: sha(d) for n, d in files.items()}
    sums["head.png"] = sha(b"something else")
    manifest = {"Set5": {"kind": "files", "base_url": f"{server.url}/Set5/", "files": sums}}
    assert fetch(tmp_path, manifest, "Set5") == 2
    err = capsys.readouterr().err
    head = tmp_path / "data" / "Set5" / "head.png"
    assert err.startswith(f"error: {head}: SHA256 mismatch (expected {sums['head.png']}, got {sha(files['head.png'])})")
    assert not head.exists() and not (tmp_path / "data" / "Set5" / "head.png.part").exists()


def test_corrupt_partial_file_fails_then_the_rerun_succeeds(tmp_path, server, data_root, capsys):
    data = set5_bytes(data_root)["bird.png"]
    server.files["/Set5/bird.png"] = data
    manifest = {"Set5": {"kind": "files", "base_url": f"{server.url}/Set5/", "files": {"bird.png": sha(data)}}}
    folder = tmp_path / "data" / "Set5"
    folder.mkdir(parents=True)
    (folder / "bird.png.part").write_bytes(b"\0" * 100)  # not a prefix of the real file
    assert fetch(tmp_path, manifest, "Set5") == 2
    assert "bird.png: SHA256 mismatch" in capsys.readouterr().err
    assert fetch(tmp_path, manifest, "Set5") == 0
    assert (folder / "bird.png").read_bytes() == data


def test_server_errors_and_manual_sets(tmp_path, server, capsys):
    manifest = {"Set5": {"kind": "files", "base_url": f"{server.url}/nothing/", "files": {"a.png": "0" * 64}},
                "Manga109": {"kind": "manual", "instructions": "ask the publisher"}}
    assert fetch(tmp_path, manifest, "Set5") == 2
    assert "/nothing/a.png: download failed (HTTP 404" in capsys.readouterr().err
    assert fetch(tmp_path, manifest, "Manga109") == dl.EXIT_MISSING
    err = capsys.readouterr().err
    assert "Manga109: ask the publisher" in err and "not downloaded (see above): Manga109" in err


def test_renamed_source_files_urban100(tmp_path, server):
    """Urban100's source names its HR files img_NNN_SRF_4_HR.png; they are saved as img_NNN.png."""
    spec = dict(MANIFEST["Urban100"])
    assert spec["base_url"].endswith("/jbhuang0604/SelfExSR/8f6dd8c1d20cb7e8792a7177b4f6fd677633f598/"
                                     "data/Urban100/image_SRF_4/")
    assert sorted(spec["files"]) == [f"img_{i:03d}.png" for i in range(1, 101)]
    images = {f"img_00{i}.png": imencode(np.full((6, 8, 3), 40 * i, np.uint8), ".png") for i in (1, 2)}
    for name, data in images.items():
        server.files[f"/SelfExSR/image_SRF_4/{name[:-4]}_SRF_4_HR.png"] = data
    spec.update(base_url=f"{server.url}/SelfExSR/image_SRF_4/", files={n: sha(d) for n, d in images.items()})
    assert fetch(tmp_path, {"Urban100": spec}, "urban100") == 0
    folder = tmp_path / "data" / "Urban100"
    assert sorted(os.listdir(folder)) == sorted(images)
    assert all((folder / n).read_bytes() == d for n, d in images.items())
    assert sorted(p for p, _ in server.log) == ["/SelfExSR/image_SRF_4/img_001_SRF_4_HR.png",
                                                "/SelfExSR/image_SRF_4/img_002_SRF_4_HR.png"]
    spec["files"]["img_001.png"] = "0" * 64  # a wrong checksum for a file already there: refused
    assert fetch(tmp_path, {"Urban100": spec}, "Urban100") == 2


def test_div2k_valid_prints_instructions(tmp_path, capsys):
    assert run_cli(dl.main, ["DIV2K_valid", "--data-root", str(tmp_path), "--no-progress"]) == dl.EXIT_MISSING
    err = capsys.readouterr().err
    assert "DIV2K_valid_HR.zip" in err and "not downloaded (see above): DIV2K_valid" in err


def test_pixel_checked_source_is_converted_to_png(tmp_path, server, data_root):
    """McMaster's upstream files are TIFF: verified by decoded pixels, stored as PNG."""
    img = imread(os.path.join(data_root, "McMaster", "1.png"))[:40, :50]
    server.files["/mcm/1.tif"] = imencode(img, ".tif")
    manifest = {"McMaster": {"kind": "files", "base_url": f"{server.url}/mcm/", "check": "pixels",
                             "save_as": ".png", "files": {"1.tif": pixel_sha256(img)}}}
    assert fetch(tmp_path, manifest, "McMaster") == 0
    folder = tmp_path / "data" / "McMaster"
    assert os.listdir(folder) == ["1.png"] and np.array_equal(imread(folder / "1.png"), img)


# --- the built-in manifest ------------------------------------------------------------------------------
def shared_sums(data_root) -> dict:
    sums = {}
    with open(os.path.join(data_root, "SHA256SUMS")) as f:
        for line in f:
            digest, path = line.split(None, 1)
            folder, name = path.strip().split("/", 1)
            sums.setdefault(folder, {})[name] = digest
    return sums


def test_builtin_manifest_matches_the_shared_copies(data_root):
    """Every checksum in the manifest is that of the verified offline copy (pixels for McMaster)."""
    assert set(MANIFEST) == {t.folder_names[0] for t in TESTSETS.values()} | {"DIV2K_valid"}
    sums = shared_sums(data_root)
    urban = os.path.join(os.path.dirname(data_root), "urban100.sha256")
    if os.path.isfile(urban):  # the checksums of SelfExSR's 100 HR files, not in the offline copy
        with open(urban) as f:
            sums["Urban100"] = {name: digest for digest, name in (line.split() for line in f if line.strip())}
    for name, spec in MANIFEST.items():
        if spec["kind"] == "manual":
            assert spec["instructions"] and name in ("DIV2K_valid", "Manga109")
            continue
        if name not in sums:
            continue
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/[\w/]+/",
                            spec["base_url"]), name
        assert len(spec["files"]) == TESTSETS[name].images, name
        if spec.get("check") == "pixels":
            for file, digest in spec["files"].items():
                png = os.path.join(data_root, name, os.path.splitext(file)[0] + ".png")
                assert pixel_sha256(imread(png)) == digest, file
        else:
            assert spec["files"] == sums[name], name
