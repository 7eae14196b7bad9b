"""Every shipped option file parses and builds its network (a typo in any of them fails here).

Datasets that are not shipped (DIV2K) are stood in for by empty folders in a temporary data root.
"""
import glob
import os
import re

import pytest

from restore.archs import build_network
from restore.data.samples import write_skimage_samples
from restore.utils.options import parse_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "options", "**", "*.yml"), recursive=True))


def make_data_folders(text: str, data_root) -> None:
    """Empty stand-ins for every ${data_root}/X folder the option file names."""
    for rel in re.findall(r"\$\{data_root\}/([^\s,\]}]+)", text):
        os.makedirs(data_root / rel, exist_ok=True)


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_option_file_parses(path, tmp_path):
    text = open(path).read()
    make_data_folders(text, tmp_path)
    is_train = f"{os.sep}train{os.sep}" in path
    # test files point at checkpoints that training makes; the network is what we check here
    # (and a later run of a zoo model starts from an earlier run's network, made by training too)
    overrides = [] if is_train and "${root}/experiments/" not in text else ["path.pretrain_network_g=~"]
    if "${root}/datasets/skimage" in text:  # the quickstart's data, as `make quickstart` writes it,
        write_skimage_samples(str(tmp_path / "root" / "datasets" / "skimage"))  # but not into the checkout
        overrides.append(f"path.root={tmp_path / 'root'}")
    opt = parse_options(path, is_train=is_train, data_root=str(tmp_path), overrides=overrides)
    build_network(opt["network_g"])


ZOO_STARTS = [p for p in FILES if f"{os.sep}zoo{os.sep}" in p and "${root}/experiments/" not in open(p).read()
              and "pretrain_network_g:" in open(p).read()]


@pytest.mark.parametrize("path", ZOO_STARTS, ids=lambda p: os.path.relpath(p, ROOT))
def test_zoo_run_starts_from_the_weights_it_was_trained_from(path, tmp_path):
    """A zoo run that starts from committed weights (x3 and x4 from x2) must find them, and they
    must fit its net but for the scale-specific tail and skip: a retrained x2 in zoo.yml would
    otherwise load only partly, with a log line, and the run would silently start from scratch."""
    from restore.utils.checkpoint import load_network

    text = open(path).read()
    make_data_folders(text, tmp_path)
    opt = parse_options(path, is_train=True, data_root=str(tmp_path))
    net = build_network(opt["network_g"])
    kept = load_network(net, opt["path"]["pretrain_network_g"], opt["path"]["param_key_g"], strict=False)
    assert kept and all(name.split(".")[0] in ("tail", "skip") for name in kept), kept
