"""Where the standard test sets come from: the manifest that restore-download-datasets
(restore/data/download.py) fetches from, kept as data in dataset_manifest.json.

Each entry is one of
- `files`: one URL per file (`base_url` + name, or + `remote_name` formatted with the file's `stem`
  and `ext` when the source names it differently), each with its SHA256. The GitHub sources are pinned
  to a commit, so the bytes cannot change under the checksum. With `check: pixels` the SHA256 is of
  the decoded pixels (`HxWxC:` + RGB bytes) and the file is saved in the format `save_as`: McMaster
  is distributed as TIFF and kept here as lossless PNG.
- `archive`: one zip / tar / tar.gz (`url`, `sha256`, `format`); the image files under the folder
  `members` inside it are extracted, flattened, into the set's folder.
- `manual`: no stable public URL with a fixed checksum; `instructions` say how to get the set.

Set names are those of restore/data/testsets.py; files land in `<data root>/<Name>/`.
"""
import json
import os

MANIFEST_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dataset_manifest.json")

with open(MANIFEST_FILE, encoding="utf-8") as _f:
    MANIFEST: dict = json.load(_f)
