"""restore-download-datasets: fetch the standard test sets into the data root, verified by SHA256.

    restore-download-datasets Set5 Set14 BSD100 --data-root datasets
    restore-download-datasets all          # every set with a public source
    restore-download-datasets --list       # what exists under the data root

Sources and checksums are in restore/data/dataset_manifest.json (GitHub files pinned to a commit);
--manifest FILE.json replaces them (e.g. with a mirror). Every file is checked against its SHA256
before it takes its final name, so a set folder holds only verified files. An interrupted download
is kept as <file>.part and resumed with an HTTP Range request on the next run. Urban100 comes from
SelfExSR's repository (its 100 full-resolution HR files, renamed img_NNN.png). Sets without a stable
public URL with a checksum (Manga109, DIV2K_valid) print how to get them; the exit status is then 1.
"""
import argparse
import os
import shutil
import sys

from restore.cli.common import entry
from restore.data.download import EXIT_MISSING, canonical_name, fetch_set, load_manifest
from restore.data.testsets import TESTSETS, find_testset
from restore.utils.errors import RestoreError
from restore.utils.paths import find_data_root

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
    names = list(manifest) if args.sets == ["all"] else [canonical_name(n, manifest) for n in args.sets]
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
